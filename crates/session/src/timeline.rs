//! The interview as a timeline: checks with partial credit (named conditions, when each
//! first passed, when the task was first solved), periodic checks (`auto_check`), hints
//! revealed to the candidate, interviewers' private notes, and the timeline itself, read
//! back from the session's `events.jsonl` merged with everything else the session
//! records there (joins, leaves, access and lock changes, commands, resets, the end).
//!
//! Everything here goes to the event log (and, for checks, hints and notes, an asciicast
//! `m` marker in the recording, which only the session's creator and admins can fetch);
//! nothing reaches the candidate's terminal except the hints themselves, which the
//! candidate reads with the `hint` command in the sandbox (see [`HINTS_FILE`]).

use crate::marks::Mark;
use crate::session::{Participant, Session};
use crate::{SessionError, SessionId, Sessions};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tandem_scenario::task::Condition;
use tandem_scenario::{CheckOutcome, CheckResult};

/// Where the revealed hints are, inside the sandbox: the `hint` command of the sandbox's
/// shell profile prints this file. The daemon rewrites it (through a job joining the
/// sandbox) at each hint, and after a reset.
pub const HINTS_FILE: &str = "/run/tandem/hints";

/// The session's event log, in its directory ([`Sessions::dir`]).
pub const EVENTS_FILE: &str = "events.jsonl";

/// Longest note taken.
pub const MAX_NOTE_BYTES: usize = 4096;

/// Most of a check's output its `check` event keeps (with `output_bytes`, its size, when
/// cut).
pub const MAX_CHECK_OUTPUT_EVENT_BYTES: usize = 16 << 10;
/// Most of a condition's reason its events keep.
pub const MAX_REASON_EVENT_BYTES: usize = 1024;

/// At most `max` bytes of `text`, cut at a character.
fn truncated(text: &str, max: usize) -> &str {
    &text[..crate::recording::floor_char_boundary(text, max)]
}

/// What a session knows of its progress (kept with the session while it is live; the
/// timeline reads it back from the events).
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// The last recorded check: its outcome and conditions (auto-checks record only
    /// changes of outcome or of a condition's result from it).
    last: Option<(CheckOutcome, Vec<Condition>)>,
    /// Conditions seen so far, by name: passing now, and since when first passed.
    conditions: BTreeMap<String, (bool, Option<f64>)>,
    /// When the whole task first passed (seconds into the recording).
    solved: Option<f64>,
    /// Hints revealed so far.
    hints: usize,
    /// Who last typed a line end (Enter): the author of the next command.
    enter_by: Option<String>,
    /// The command running now: when it started, its directory, its author (its text
    /// comes with its end).
    command: Option<(f64, String, String)>,
}

/// A hint revealed by [`Sessions::hint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevealedHint {
    /// 1-based number of this hint.
    pub number: usize,
    /// How many the task has.
    pub total: usize,
    /// Its text.
    pub text: String,
}

impl Session {
    /// Records a check result (`by`: who asked, or `auto`) in the events and the
    /// recording, updates the conditions' and the task's first-pass times, and tells
    /// interviewers. An automatic check whose outcome and conditions are those of the
    /// last recorded one is not recorded. Returns whether it was.
    pub fn record_check(&self, by: &str, result: &CheckResult) -> bool {
        let auto = by == AUTO;
        let t = self.recorder.offset();
        let (changes, solved_now) = {
            let mut progress = self
                .progress
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let same = progress
                .last
                .as_ref()
                .is_some_and(|(o, c)| same_result((*o, c), (result.outcome, &result.conditions)));
            if auto && same {
                return false;
            }
            progress.last = Some((result.outcome, result.conditions.clone()));
            let mut changes = Vec::new();
            for c in &result.conditions {
                let new = !progress.conditions.contains_key(&c.name);
                let entry = progress
                    .conditions
                    .entry(c.name.clone())
                    .or_insert((false, None));
                let first = c.passed && entry.1.is_none();
                if first {
                    entry.1 = Some(t);
                }
                // Seen for the first time (passing or not), or its result changed.
                if new || entry.0 != c.passed || first {
                    changes.push((c.clone(), first));
                }
                entry.0 = c.passed;
            }
            let solved_now = result.outcome == CheckOutcome::Passed && progress.solved.is_none();
            if solved_now {
                progress.solved = Some(t);
            }
            (changes, solved_now)
        };
        // The output and the reasons may echo what the candidate wrote: the events keep
        // a bounded part of them (the caller gets them whole).
        let reason = |c: &Condition| truncated(&c.reason, MAX_REASON_EVENT_BYTES).to_string();
        let conditions: Vec<Value> = result
            .conditions
            .iter()
            .map(|c| json!({"name": c.name, "passed": c.passed, "reason": reason(c)}))
            .collect();
        let mut check = json!({
            "event": "check", "by": by, "outcome": result.outcome.to_string(),
            "output": truncated(&result.output, MAX_CHECK_OUTPUT_EVENT_BYTES),
            "duration_ms": result.duration.as_millis() as u64,
            "conditions": conditions,
        });
        if result.output.len() > MAX_CHECK_OUTPUT_EVENT_BYTES {
            check["output_bytes"] = json!(result.output.len());
        }
        self.recorder.event(check);
        for (c, first) in &changes {
            self.recorder.event(json!({
                "event": "condition", "name": c.name, "passed": c.passed, "reason": reason(c),
                "first": first, "by": by,
            }));
        }
        if solved_now {
            self.recorder.event(json!({"event": "solved", "by": by}));
        }
        let passing = result.conditions.iter().filter(|c| c.passed).count();
        let summary = if result.conditions.is_empty() {
            format!("check {}", result.outcome)
        } else {
            format!(
                "check {} ({passing}/{} conditions)",
                result.outcome,
                result.conditions.len()
            )
        };
        self.recorder.marker(&format!("{summary} [{by}]"));
        let first = result.output.lines().next().unwrap_or("");
        self.tell_interviewers(&format!("{summary}: {first}"));
        true
    }
}

impl Session {
    /// Input from `participant` is about to reach the terminal: a line end makes them
    /// the author of the command it starts.
    pub(crate) fn typed(&self, participant: &Participant, data: &[u8]) {
        if data.iter().any(|b| matches!(b, b'\r' | b'\n')) {
            self.lock_progress().enter_by =
                Some(format!("{} (#{})", participant.name, participant.number));
        }
    }

    /// Marks read off the terminal (see `marks.rs`): each command, from its start mark
    /// to its end mark, becomes a `command` event.
    pub(crate) fn shell_marks(&self, marks: Vec<Mark>) {
        for mark in marks {
            let t = self.recorder.offset();
            let mut progress = self.lock_progress();
            match mark {
                Mark::Start { cwd } => {
                    let by = progress.enter_by.take().unwrap_or_default();
                    if let Some(unfinished) = progress.command.replace((t, cwd, by)) {
                        drop(progress);
                        self.record_command(unfinished, String::new(), t, None);
                    }
                }
                Mark::End { status, text } => {
                    if let Some(command) = progress.command.take() {
                        drop(progress);
                        self.record_command(command, text, t, Some(status));
                    }
                }
            }
        }
    }

    fn record_command(
        &self,
        command: (f64, String, String),
        text: String,
        end: f64,
        exit: Option<i32>,
    ) {
        let (start, cwd, by) = command;
        self.recorder.event(json!({
            "event": "command", "text": text, "by": by, "cwd": cwd, "start": start,
            "duration": ((end - start) * 1000.0).round() / 1000.0, "exit": exit,
        }));
    }

    fn lock_progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether two check results say the same: outcome and each condition's result.
/// Reasons change with time ("saved 39s ago") and do not count.
fn same_result(a: (CheckOutcome, &[Condition]), b: (CheckOutcome, &[Condition])) -> bool {
    a.0 == b.0
        && a.1.len() == b.1.len()
        && a.1
            .iter()
            .zip(b.1)
            .all(|(x, y)| x.name == y.name && x.passed == y.passed)
}

/// Who an automatic check is recorded as.
pub const AUTO: &str = "auto";

/// Runs the task's check every `auto_check` while the session is live (none without it).
/// Owned by the session: it ends when the session ends.
pub(crate) async fn auto_check(sessions: Sessions, session: Arc<Session>) {
    let Some(every) = session.instance().task.auto_check else {
        return;
    };
    let mut ended = session.watch();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = ended.wait_for(|i| i.ended.is_some()) => return,
        }
        let instance = session.instance();
        let check = sessions.instances().check(instance.id);
        let result = tokio::select! {
            r = check => r,
            _ = ended.wait_for(|i| i.ended.is_some()) => return,
        };
        match result {
            // A result of a sandbox a reset replaced meanwhile says nothing of the new one.
            Ok(result) if Arc::ptr_eq(&instance, &session.instance()) => {
                session.record_check(AUTO, &result);
            }
            Ok(_) => {}
            // Between a reset's swap and its new shell, or at the end: the next round.
            Err(e) => tracing::debug!(session = %session.id, error = %e, "auto-check skipped"),
        }
    }
}

impl Sessions {
    /// Runs the live session `id`'s check in its sandbox and records the result as asked
    /// by `by` (see [`Session::record_check`]).
    pub async fn check(&self, id: SessionId, by: &str) -> Result<CheckResult, SessionError> {
        let session = self.get(id).ok_or(SessionError::NotFound(id))?;
        let result = self.instances().check(session.instance().id).await?;
        session.record_check(by, &result);
        Ok(result)
    }

    /// Reveals the next hint of the live session `id`'s task (`by`: who): the candidate
    /// reads the revealed hints with `hint` in the sandbox; the timeline records it.
    /// FAILED_PRECONDITION when every hint is out (or the task has none).
    pub async fn hint(&self, id: SessionId, by: &str) -> Result<RevealedHint, SessionError> {
        let session = self.get(id).ok_or(SessionError::NotFound(id))?;
        let instance = session.instance();
        let hints = &instance.task.hints;
        let number = {
            let mut progress = session
                .progress
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if progress.hints >= hints.len() {
                return Err(SessionError::FailedPrecondition(format!(
                    "every hint of task {} is out ({} of {})",
                    instance.task.name,
                    progress.hints,
                    hints.len()
                )));
            }
            progress.hints += 1;
            progress.hints
        };
        let revealed = RevealedHint {
            number,
            total: hints.len(),
            text: hints[number - 1].clone(),
        };
        if let Err(e) = self.write_hints(&session, number).await {
            // Not revealed after all: the candidate could not read it.
            let mut progress = session
                .progress
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if progress.hints == number {
                progress.hints -= 1;
            }
            return Err(e);
        }
        session.recorder.event(json!({
            "event": "hint", "by": by, "number": number, "total": revealed.total,
            "text": revealed.text,
        }));
        session
            .recorder
            .marker(&format!("hint {number}/{} [{by}]", revealed.total));
        session.tell_everyone(&format!(
            "hint {number}/{} revealed: type `hint` to read it",
            revealed.total
        ));
        Ok(revealed)
    }

    /// Writes the first `count` hints of the session's task to [`HINTS_FILE`] in its
    /// current sandbox (at least as many as revealed when the write starts: writes are
    /// one at a time, so the last one holds them all).
    pub(crate) async fn write_hints(
        &self,
        session: &Session,
        count: usize,
    ) -> Result<(), SessionError> {
        let _one_at_a_time = session.hint_writes.lock().await;
        let count = count.max(Self::hints_revealed(session));
        let instance = session.instance();
        let text: String = instance.task.hints[..count.min(instance.task.hints.len())]
            .iter()
            .enumerate()
            .map(|(i, h)| format!("Hint {}: {}\n", i + 1, h.trim_end()))
            .collect();
        self.instances()
            .write_file(instance.id, HINTS_FILE, &text)
            .await?;
        Ok(())
    }

    /// The hints revealed in the live session `id` so far (to put them in a new sandbox
    /// after a reset).
    pub(crate) fn hints_revealed(session: &Session) -> usize {
        session
            .progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .hints
    }

    /// Stamps a private note of `by` on the live session `id`'s timeline at the current
    /// moment: in the events and as a recording marker, never on anyone's terminal.
    pub fn note(&self, id: SessionId, by: &str, text: &str) -> Result<(), SessionError> {
        let session = self.get(id).ok_or(SessionError::NotFound(id))?;
        let text = text.trim();
        if text.is_empty() {
            return Err(SessionError::InvalidArgument(
                "text: the note is empty".into(),
            ));
        }
        if text.len() > MAX_NOTE_BYTES {
            return Err(SessionError::InvalidArgument(format!(
                "text: a note holds at most {MAX_NOTE_BYTES} bytes"
            )));
        }
        session
            .recorder
            .event(json!({"event": "note", "by": by, "text": text}));
        session.recorder.marker(&format!("note [{by}]: {text}"));
        Ok(())
    }

    /// The timeline of session `id` (live or ended), read from its events.
    pub fn timeline(&self, id: SessionId) -> Result<Timeline, SessionError> {
        if self.record(id).is_none() {
            return Err(SessionError::NotFound(id));
        }
        let path = self.dir(id).join(EVENTS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(SessionError::Internal(format!(
                    "reading {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(Timeline::from_events(&text))
    }
}

/// One moment of a session: when (wall clock and seconds into the recording).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Moment {
    /// Wall-clock time.
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    /// Seconds since the recording started.
    pub offset: f64,
}

/// One entry of a timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    /// When.
    pub at: Moment,
    /// What: `create`, `open`, `join`, `leave`, `access`, `lock`, `unlock`, `command`,
    /// `check`, `condition`, `solved`, `hint`, `note`, `reset`, `extend`,
    /// `shell_restarted`, `end`, and `recording_cut` / `events_cut` where a part of the
    /// recording reached its cap.
    pub kind: String,
    /// Who (a participant's name, an API user, `auto`); empty when unknown.
    pub by: String,
    /// What happened, in a line (a command's text, a check's first line, a note).
    pub text: String,
    /// A command's exit status; absent for other kinds (and for a command that never
    /// finished).
    pub exit_code: Option<i32>,
    /// A command's working directory.
    pub cwd: String,
    /// How long a command ran (seconds).
    pub duration: Option<f64>,
    /// A check's or a condition's result.
    pub passed: Option<bool>,
    /// A condition's name.
    pub name: String,
}

/// When a condition (or the task) first passed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionProgress {
    /// The condition.
    pub name: String,
    /// Whether the last check passed it.
    pub passing: bool,
    /// When it first passed.
    pub first_passed: Option<Moment>,
}

/// A session's timeline: every recorded event in time order, and the progress they add
/// up to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timeline {
    /// When the session started (its `create` or `open` event).
    pub started: Option<Moment>,
    /// When it ended, and why.
    pub ended: Option<(Moment, String)>,
    /// The task.
    pub task: String,
    /// Entries, in time order.
    pub entries: Vec<TimelineEntry>,
    /// Conditions in the order first seen.
    pub conditions: Vec<ConditionProgress>,
    /// When the whole task first passed.
    pub solved: Option<Moment>,
    /// Hints revealed.
    pub hints_revealed: usize,
    /// Hints the task has (recorded at the session's start; None for a session recorded
    /// before that was).
    pub hints_total: Option<usize>,
}

impl Timeline {
    /// The timeline of an `events.jsonl` (lines that are not events are skipped; typed
    /// input is not an entry: commands are).
    pub fn from_events(text: &str) -> Self {
        let mut reader = TimelineReader::default();
        let entries: Vec<TimelineEntry> = text.lines().filter_map(|l| reader.push(l)).collect();
        let mut timeline = reader.progress;
        timeline.entries = entries;
        // Commands are stamped at their start, recorded at their end.
        timeline
            .entries
            .sort_by(|a, b| a.at.offset.total_cmp(&b.at.offset));
        timeline
    }
}

/// Reads a session's events one line at a time, as they are written (a page following a
/// live session's timeline): each line gives at most one entry, and the progress so far
/// (everything of a [`Timeline`] but its entries) is kept. Entries come in the order
/// recorded; a command's entry comes at its end but is stamped at its start.
#[derive(Debug, Default)]
pub struct TimelineReader {
    /// The timeline so far, without entries.
    progress: Timeline,
    /// Participant numbers to names, for events that only carry the number.
    names: BTreeMap<u64, String>,
}

impl TimelineReader {
    /// The progress so far: a [`Timeline`] without entries.
    pub fn progress(&self) -> &Timeline {
        &self.progress
    }

    /// Reads one line of `events.jsonl`: its entry, if it makes one.
    pub fn push(&mut self, line: &str) -> Option<TimelineEntry> {
        let timeline = &mut self.progress;
        let names = &mut self.names;
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            return None;
        };
        let s = |key: &str| event[key].as_str().unwrap_or("").to_string();
        let kind = s("event");
        let time = event["time"]
            .as_str()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let at = Moment {
            time,
            offset: event["t"].as_f64().unwrap_or(0.0),
        };
        let participant = event["participant"].as_u64();
        if let (Some(n), "join") = (participant, kind.as_str()) {
            names.insert(n, s("name"));
        }
        let who = participant
            .map(|n| {
                let name = names.get(&n).cloned().unwrap_or_else(|| s("name"));
                format!("{name} (#{n})")
            })
            .unwrap_or_else(|| s("by"));
        let mut entry = TimelineEntry {
            at,
            kind: kind.clone(),
            by: who,
            text: String::new(),
            exit_code: None,
            cwd: String::new(),
            duration: None,
            passed: None,
            name: String::new(),
        };
        match kind.as_str() {
            "input" | "resize" => return None,
            // A budget of the recording ran out (see `recording.rs`): interviewers must
            // know that what follows is missing from it.
            "recording_cut" => {
                entry.text = format!(
                    "the recording (recording.cast) reached its cap of {} bytes: later terminal output and input are not in it",
                    event["cap"]
                );
            }
            "events_cut" => {
                let what = match s("of").as_str() {
                    "input" => "typed input (and resizes)",
                    "commands" => "commands",
                    "joins" => "joins and leaves",
                    "auto_checks" => "automatic checks",
                    "markers" => "the recording's markers",
                    _ => "the session's events",
                };
                entry.text = format!(
                    "the event log reached its cap of {} bytes for {what}: later ones are not recorded",
                    event["cap"]
                );
            }
            "create" | "open" => {
                timeline.started = Some(at);
                timeline.task = s("task");
                timeline.hints_total = event["hints"].as_u64().map(|n| n as usize);
                entry.text = format!("task {}", s("task"));
            }
            "join" => entry.text = format!("joined as {}", s("role")),
            "leave" => entry.text = "left".into(),
            "access" => {
                entry.text = match s("set_by") {
                    by if by.is_empty() => format!("access: {}", s("access")),
                    by => format!("access: {}, set by {by}", s("access")),
                }
            }
            "lock" => entry.text = "terminal locked: only the candidate types".into(),
            "unlock" => entry.text = "terminal unlocked".into(),
            "command" => {
                entry.text = s("text");
                entry.cwd = s("cwd");
                entry.exit_code = event["exit"].as_i64().and_then(|c| i32::try_from(c).ok());
                entry.duration = event["duration"].as_f64();
                entry.passed = entry.exit_code.map(|c| c == 0);
                // The entry is stamped at the command's start.
                if let Some(start) = event["start"].as_f64() {
                    let back = (at.offset - start).max(0.0);
                    entry.at = Moment {
                        time: time
                            .checked_sub(Duration::from_secs_f64(back))
                            .unwrap_or(time),
                        offset: start,
                    };
                }
            }
            "check" => {
                let outcome = s("outcome");
                entry.passed = match outcome.as_str() {
                    "passed" => Some(true),
                    "failed" => Some(false),
                    _ => None,
                };
                let first = s("output");
                let first = first.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                entry.text = format!("{outcome}: {first}");
            }
            "condition" => {
                let name = s("name");
                let passed = event["passed"].as_bool().unwrap_or(false);
                entry.passed = Some(passed);
                entry.text = if passed {
                    format!("{name} passes")
                } else {
                    format!("{name} fails: {}", s("reason"))
                };
                match timeline.conditions.iter_mut().find(|c| c.name == name) {
                    Some(c) => {
                        c.passing = passed;
                        if passed && c.first_passed.is_none() {
                            c.first_passed = Some(at);
                        }
                    }
                    None => timeline.conditions.push(ConditionProgress {
                        name: name.clone(),
                        passing: passed,
                        first_passed: passed.then_some(at),
                    }),
                }
                entry.name = name;
            }
            "solved" => {
                timeline.solved.get_or_insert(at);
                entry.passed = Some(true);
                entry.text = "the task passes".into();
            }
            "hint" => {
                timeline.hints_revealed = timeline
                    .hints_revealed
                    .max(event["number"].as_u64().unwrap_or(0) as usize);
                entry.text = format!("hint {}/{}: {}", event["number"], event["total"], s("text"));
            }
            "note" => entry.text = s("text"),
            "reset" => entry.text = "reset the box".into(),
            "extend" => {
                entry.text = format!(
                    "extended by {}",
                    humantime::format_duration(Duration::from_secs(
                        event["by_s"].as_u64().unwrap_or(0)
                    ))
                );
                entry.by = String::new();
            }
            "shell_restarted" => entry.text = "the shell exited; a new one started".into(),
            "no_shell" => entry.text = format!("no new shell: {}", s("reason")),
            "end" => {
                timeline.ended = Some((at, s("reason")));
                entry.text = s("reason");
            }
            _ => entry.text = kind.clone(),
        }
        Some(entry)
    }
}

mod rfc3339 {
    use serde::Serializer;
    use std::time::SystemTime;

    pub(super) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auto_check_counts_as_a_change_only_when_a_result_changes() {
        let c = |name: &str, passed: bool, reason: &str| Condition {
            name: name.into(),
            passed,
            reason: reason.into(),
        };
        let failed = CheckOutcome::Failed;
        let before = [c("a", true, ""), c("b", false, "saved 39s ago")];
        let later = [c("a", true, ""), c("b", false, "saved 69s ago")];
        let fixed = [c("a", true, ""), c("b", true, "")];
        assert!(same_result((failed, &before), (failed, &later)));
        assert!(!same_result((failed, &before), (failed, &fixed)));
        assert!(!same_result((failed, &[]), (CheckOutcome::Error, &[])));
        assert!(!same_result((failed, &before), (failed, &before[..1])));
    }

    #[test]
    fn the_timeline_merges_events_in_time_order_with_progress() {
        let events = [
            r#"{"event":"create","task":"demo","by":"ivy","hints":2,"t":0.0,"time":"2026-01-01T10:00:00.000Z"}"#,
            r#"{"event":"join","participant":1,"name":"cand","role":"candidate","t":1.0,"time":"2026-01-01T10:00:01.000Z"}"#,
            r#"{"event":"input","participant":1,"name":"cand","data":"ls\r","t":2.0,"time":"2026-01-01T10:00:02.000Z"}"#,
            r#"{"event":"check","by":"auto","outcome":"failed","output":"PASS a\nFAIL b: no","conditions":[],"t":5.0,"time":"2026-01-01T10:00:05.000Z"}"#,
            r#"{"event":"condition","name":"a","passed":true,"reason":"","first":true,"t":5.0,"time":"2026-01-01T10:00:05.000Z"}"#,
            r#"{"event":"condition","name":"b","passed":false,"reason":"no","first":false,"t":5.0,"time":"2026-01-01T10:00:05.000Z"}"#,
            r#"{"event":"command","text":"false","by":"cand (#1)","start":3.0,"duration":1.5,"exit":1,"cwd":"/root","t":4.5,"time":"2026-01-01T10:00:04.500Z"}"#,
            r#"{"event":"hint","by":"ivy","number":1,"total":2,"text":"look","t":6.0,"time":"2026-01-01T10:00:06.000Z"}"#,
            r#"{"event":"note","by":"ivy","text":"slow start","t":7.0,"time":"2026-01-01T10:00:07.000Z"}"#,
            r#"{"event":"condition","name":"b","passed":true,"reason":"","first":true,"t":9.0,"time":"2026-01-01T10:00:09.000Z"}"#,
            r#"{"event":"solved","by":"auto","t":9.0,"time":"2026-01-01T10:00:09.000Z"}"#,
            r#"{"event":"end","reason":"ended by ivy","t":10.0,"time":"2026-01-01T10:00:10.000Z"}"#,
            r#"{"event":"leave","participant":1,"name":"cand","t":10.5,"time":"2026-01-01T10:00:10.500Z"}"#,
            "[torn",
        ]
        .join("\n");
        let timeline = Timeline::from_events(&events);
        let kinds: Vec<&str> = timeline.entries.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "create",
                "join",
                "command",
                "check",
                "condition",
                "condition",
                "hint",
                "note",
                "condition",
                "solved",
                "end",
                "leave"
            ]
        );
        let command = &timeline.entries[2];
        assert_eq!(command.text, "false");
        assert_eq!(command.by, "cand (#1)");
        assert_eq!(command.exit_code, Some(1));
        assert_eq!(command.at.offset, 3.0);
        assert_eq!(
            humantime::format_rfc3339_millis(command.at.time).to_string(),
            "2026-01-01T10:00:03.000Z"
        );
        assert_eq!(timeline.entries[1].by, "cand (#1)");
        assert_eq!(timeline.entries[11].by, "cand (#1)");
        assert_eq!(timeline.task, "demo");
        assert_eq!(timeline.hints_revealed, 1);
        assert_eq!(timeline.conditions.len(), 2);
        assert_eq!(timeline.conditions[0].first_passed.unwrap().offset, 5.0);
        assert_eq!(timeline.conditions[1].first_passed.unwrap().offset, 9.0);
        assert!(timeline.conditions.iter().all(|c| c.passing));
        assert_eq!(timeline.solved.unwrap().offset, 9.0);
        assert_eq!(timeline.ended.as_ref().unwrap().1, "ended by ivy");
        assert_eq!(timeline.hints_total, Some(2));

        // Read a line at a time (a page following a live session): the same entries, in
        // the order recorded, and the same progress.
        let mut reader = TimelineReader::default();
        let mut entries: Vec<TimelineEntry> =
            events.lines().filter_map(|l| reader.push(l)).collect();
        let recorded: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(recorded[..4], ["create", "join", "check", "condition"]);
        entries.sort_by(|a, b| a.at.offset.total_cmp(&b.at.offset));
        assert_eq!(entries, timeline.entries);
        let progress = Timeline {
            entries: timeline.entries.clone(),
            ..reader.progress().clone()
        };
        assert_eq!(progress, timeline);
    }
}
