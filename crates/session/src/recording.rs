//! Session recordings: `recording.cast` (asciicast v2: `o` output, `i` input, `r` resize,
//! `m` markers for checks, hints and notes; playable with `asciinema play`) and `events.jsonl` (joins, leaves, role changes, locks,
//! checks, and who typed each input chunk).
//!
//! One writer task per session owns both files; everything reaches it through an
//! unbounded channel, so no producer (the PTY reader, a client) ever waits on the disk.
//! The task flushes after every burst and ends, flushing, when the session drops its
//! handle.
//!
//! **Bounded, and the candidate cannot blind it.** What the candidate produces at will is
//! capped ([`DEFAULT_RECORDING_CAP`] by default), each kind on its own: the terminal's
//! traffic in the cast (`o`, `i`, `r`); and in the events, typed input (`input`, `resize`),
//! commands (`command`, from the shell's marks, which the candidate can print), joins
//! and leaves (the candidate can reconnect at will), and automatic checks (`check` and
//! `condition` by `auto`: the candidate can change the result at every period). The
//! session's own events (interviewers' checks, conditions, `solved`, hints, notes, access,
//! locks, resets, warnings, the end, the cut markers) and the cast's `m` markers have a
//! budget of their own ([`session_cap`]: at least [`DEFAULT_RECORDING_CAP`]) that no flood
//! of the candidate's touches: they come from interviewers and the daemon, each bounded in
//! size (a note at most [`MAX_NOTE_BYTES`](crate::MAX_NOTE_BYTES), a check's output in its
//! event at most [`MAX_CHECK_OUTPUT_EVENT_BYTES`](crate::MAX_CHECK_OUTPUT_EVENT_BYTES)),
//! or, the few the candidate can cause, at a bounded rate (a shell restart at most 5 a
//! minute, else the session ends; `solved` once).
//! The line that would cross a budget is replaced by one marker (an `o` event on the
//! terminal and a `recording_cut` event; an `events_cut` event naming the kind), which
//! the timeline shows, and the rest of that kind is counted, not written. One `input`
//! event holds at most [`MAX_INPUT_EVENT_BYTES`] of its chunk's text (the cast's `i` event
//! holds all of it) and its full size, so one paste cannot take the budget in one line.

use serde_json::{Value, json};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Default cap of each kind of the candidate's traffic (see the module's documentation).
pub const DEFAULT_RECORDING_CAP: u64 = 64 << 20;

/// Most text of one input chunk kept in its `input` event (the whole chunk is in the
/// cast's `i` event, and its size in the event's `bytes`).
pub const MAX_INPUT_EVENT_BYTES: usize = 4096;

/// The budget of the session's own events and of the cast's markers, for a recording
/// whose candidate traffic is capped at `cap`.
pub fn session_cap(cap: u64) -> u64 {
    cap.max(DEFAULT_RECORDING_CAP)
}

enum Entry {
    Cast(f64, &'static str, String),
    /// Terminal output as read: a character may be cut between two reads.
    Output(f64, Vec<u8>),
    Event(Value),
}

/// What a line counts against: each has its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The cast's terminal traffic: `o`, `i`, `r`.
    Terminal,
    /// The cast's `m` markers (checks, hints, notes).
    Markers,
    /// `input` and `resize` events.
    Input,
    /// `command` events.
    Commands,
    /// `join` and `leave` events.
    Joins,
    /// Automatic checks' `check` and `condition` events.
    AutoChecks,
    /// Everything else: the session's own events.
    Session,
}

impl Kind {
    fn of_event(event: &Value) -> Self {
        match event["event"].as_str() {
            Some("input" | "resize") => Self::Input,
            Some("command") => Self::Commands,
            Some("join" | "leave") => Self::Joins,
            Some("check" | "condition") if event["by"] == crate::timeline::AUTO => Self::AutoChecks,
            _ => Self::Session,
        }
    }

    /// How an `events_cut` event names it.
    fn name(self) -> &'static str {
        match self {
            Self::Terminal => "terminal",
            Self::Markers => "markers",
            Self::Input => "input",
            Self::Commands => "commands",
            Self::Joins => "joins",
            Self::AutoChecks => "auto_checks",
            Self::Session => "session",
        }
    }
}

/// One budget: bytes written, and what was not once it was reached.
#[derive(Debug)]
struct Budget {
    cap: u64,
    written: u64,
    /// Bytes not written since the cap was reached (0 until then).
    dropped: u64,
    full: bool,
}

/// What to do with a line.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Write,
    /// The first line over the cap: write a marker instead.
    Cut,
    Drop,
}

impl Budget {
    fn new(cap: u64) -> Self {
        Self {
            cap,
            written: 0,
            dropped: 0,
            full: false,
        }
    }

    /// Counts a line of `len` bytes (its newline included).
    fn admit(&mut self, len: u64) -> Admit {
        if self.full {
            self.dropped += len;
            Admit::Drop
        } else if self.written + len > self.cap {
            self.full = true;
            self.dropped += len;
            Admit::Cut
        } else {
            self.written += len;
            Admit::Write
        }
    }
}

/// One file of the recording.
struct File {
    out: BufWriter<std::fs::File>,
    /// Bytes written so far.
    written: u64,
}

impl File {
    fn new(file: std::fs::File) -> Self {
        Self {
            out: BufWriter::new(file),
            written: 0,
        }
    }

    fn line(&mut self, line: &str) -> std::io::Result<()> {
        self.written += line.len() as u64 + 1;
        writeln!(self.out, "{line}")
    }
}

/// The writer task's state: both files and their budgets.
struct Writer {
    cast: File,
    events: File,
    cap: u64,
    terminal: Budget,
    markers: Budget,
    input: Budget,
    commands: Budget,
    joins: Budget,
    auto_checks: Budget,
    session: Budget,
}

impl Writer {
    fn budget(&mut self, kind: Kind) -> &mut Budget {
        match kind {
            Kind::Terminal => &mut self.terminal,
            Kind::Markers => &mut self.markers,
            Kind::Input => &mut self.input,
            Kind::Commands => &mut self.commands,
            Kind::Joins => &mut self.joins,
            Kind::AutoChecks => &mut self.auto_checks,
            Kind::Session => &mut self.session,
        }
    }

    /// A line of the cast.
    fn cast(&mut self, t: f64, kind: &'static str, data: String) -> std::io::Result<()> {
        let line = json!([round(t), kind, data]).to_string();
        let budget = if kind == "m" {
            Kind::Markers
        } else {
            Kind::Terminal
        };
        match self.budget(budget).admit(line.len() as u64 + 1) {
            Admit::Write => self.cast.line(&line),
            Admit::Drop => Ok(()),
            // Markers past theirs are dropped silently: the session's events (where each
            // has its event) say when that budget ran out.
            Admit::Cut if budget == Kind::Markers => self.event(json!({
                "event": "events_cut", "of": Kind::Markers.name(), "cap": self.markers.cap,
                "t": round(t), "time": now_rfc3339(),
            })),
            Admit::Cut => {
                let cap = self.cap;
                let notice = json!([
                    round(t),
                    "o",
                    format!(
                        "\r\n[tandem] the recording stops here: it reached its cap of {cap} bytes\r\n"
                    )
                ]);
                self.cast.line(&notice.to_string())?;
                self.event(json!({
                    "event": "recording_cut", "cap": cap, "t": round(t), "time": now_rfc3339(),
                }))
            }
        }
    }

    /// A line of the events.
    fn event(&mut self, event: Value) -> std::io::Result<()> {
        let line = event.to_string();
        let kind = Kind::of_event(&event);
        let budget = self.budget(kind);
        let cap = budget.cap;
        match budget.admit(line.len() as u64 + 1) {
            Admit::Write => self.events.line(&line),
            Admit::Drop => Ok(()),
            // The marker goes over the cap by its own length, once per budget; it takes
            // the time of the event it stands for.
            Admit::Cut => self.events.line(
                &json!({
                    "event": "events_cut", "of": kind.name(), "cap": cap,
                    "t": event["t"], "time": event["time"],
                })
                .to_string(),
            ),
        }
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Sends entries to the session's recorder.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Entry>,
    /// Time zero of the recording.
    start: Instant,
    /// Bytes of `events.jsonl` written and flushed so far: followers (a web page's live
    /// timeline) read up to it. Closed when the writer task ends.
    events_written: watch::Receiver<u64>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Entry")
    }
}

impl Recorder {
    /// Creates the files in `dir` and the writer task. Each kind of the candidate's
    /// traffic keeps at most `cap` bytes; the session's own events and the cast's markers
    /// at most [`session_cap`]`(cap)`.
    pub fn start(
        dir: &Path,
        cols: u16,
        rows: u16,
        title: &str,
        cap: u64,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let mut cast = File::new(std::fs::File::create(dir.join("recording.cast"))?);
        let events = File::new(std::fs::File::create(dir.join(crate::EVENTS_FILE))?);
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = json!({
            "version": 2,
            "width": cols,
            "height": rows,
            "timestamp": timestamp,
            "title": title,
            "env": {"TERM": "xterm-256color", "SHELL": "/bin/bash"},
        });
        cast.line(&header.to_string())?;
        cast.out.flush()?;
        let mut w = Writer {
            cast,
            events,
            cap,
            terminal: Budget::new(cap),
            markers: Budget::new(session_cap(cap)),
            input: Budget::new(cap),
            commands: Budget::new(cap),
            joins: Budget::new(cap),
            auto_checks: Budget::new(cap),
            session: Budget::new(session_cap(cap)),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Entry>();
        let (written_tx, events_written) = watch::channel(0);
        let task = tokio::task::spawn_blocking(move || {
            let write = |w: &mut Writer, entry: Entry| match entry {
                Entry::Cast(t, kind, data) => w.cast(t, kind, data),
                Entry::Event(v) => w.event(v),
                Entry::Output(..) => unreachable!("output is decoded before it is written"),
            };
            // The start of a character the next output completes, and the latest time
            // recorded (where what is left of it goes at the end).
            let mut carry = (0.0, Vec::new());
            let mut whole = |entry: Entry| match entry {
                Entry::Output(t, bytes) => {
                    let text = whole_chars(&mut carry.1, &bytes);
                    carry.0 = t;
                    (!text.is_empty()).then_some(Entry::Cast(t, "o", text))
                }
                Entry::Cast(t, kind, data) => {
                    carry.0 = t;
                    Some(Entry::Cast(t, kind, data))
                }
                other => Some(other),
            };
            while let Some(entry) = rx.blocking_recv() {
                let mut result = Ok(());
                // Drain the burst before flushing.
                for entry in std::iter::once(entry).chain(std::iter::from_fn(|| rx.try_recv().ok()))
                {
                    if let Some(entry) = whole(entry) {
                        result = result.and(write(&mut w, entry));
                    }
                }
                if let Err(e) = result.and(w.cast.out.flush()).and(w.events.out.flush()) {
                    tracing::error!(error = %e, "writing the session recording failed");
                }
                let written = w.events.written;
                written_tx.send_if_modified(|old| std::mem::replace(old, written) != written);
            }
            if !carry.1.is_empty() {
                let text = String::from_utf8_lossy(&carry.1).into_owned();
                let result = write(&mut w, Entry::Cast(carry.0, "o", text));
                if let Err(e) = result.and(w.cast.out.flush()).and(w.events.out.flush()) {
                    tracing::error!(error = %e, "writing the session recording failed");
                }
            }
            if [
                &w.terminal,
                &w.markers,
                &w.input,
                &w.commands,
                &w.joins,
                &w.auto_checks,
                &w.session,
            ]
            .iter()
            .any(|b| b.dropped > 0)
            {
                tracing::warn!(
                    terminal_dropped = w.terminal.dropped,
                    markers_dropped = w.markers.dropped,
                    input_dropped = w.input.dropped,
                    commands_dropped = w.commands.dropped,
                    joins_dropped = w.joins.dropped,
                    auto_checks_dropped = w.auto_checks.dropped,
                    session_dropped = w.session.dropped,
                    "the session recording reached a cap"
                );
            }
        });
        Ok((
            Self {
                tx,
                start: Instant::now(),
                events_written,
            },
            task,
        ))
    }

    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Bytes of `events.jsonl` written so far; changes after each flush, closes when the
    /// recording ends.
    pub fn events_written(&self) -> watch::Receiver<u64> {
        self.events_written.clone()
    }

    /// Seconds since the recording started (as its events are stamped).
    pub(crate) fn offset(&self) -> f64 {
        round(self.now())
    }

    /// An asciicast v2 marker (`m`): players can jump to it.
    pub(crate) fn marker(&self, label: &str) {
        let _ = self
            .tx
            .send(Entry::Cast(self.now(), "m", label.to_string()));
    }

    /// Terminal output (a multi-byte character cut between two calls is recorded whole).
    pub fn output(&self, data: &[u8]) {
        let _ = self.tx.send(Entry::Output(self.now(), data.to_vec()));
    }

    /// Input that reached the terminal, and who typed it: all of it in the cast, at most
    /// [`MAX_INPUT_EVENT_BYTES`] of it in the event (with `truncated`), and its size.
    pub fn input(&self, participant: u64, name: &str, data: &[u8]) {
        let text = String::from_utf8_lossy(data).into_owned();
        let t = self.now();
        let mut event = json!({
            "event": "input", "participant": participant, "name": name,
            "data": &text[..floor_char_boundary(&text, MAX_INPUT_EVENT_BYTES)],
            "bytes": data.len(),
        });
        if text.len() > MAX_INPUT_EVENT_BYTES {
            event["truncated"] = json!(true);
        }
        let _ = self.tx.send(Entry::Cast(t, "i", text));
        self.event(event);
    }

    /// The terminal was resized.
    pub fn resize(&self, cols: u16, rows: u16) {
        let _ = self
            .tx
            .send(Entry::Cast(self.now(), "r", format!("{cols}x{rows}")));
    }

    /// A session event (a JSON object; `time` and `t` are added).
    pub fn event(&self, mut event: Value) {
        if let Some(obj) = event.as_object_mut() {
            obj.insert(
                "time".into(),
                json!(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()),
            );
            obj.insert("t".into(), json!(round(self.now())));
        }
        let _ = self.tx.send(Entry::Event(event));
    }
}

/// `carry` and `bytes` as text, except a final incomplete character, which stays in
/// `carry` for the next output to complete. Invalid bytes become U+FFFD as in
/// `String::from_utf8_lossy`, so the text of all outputs joined is that of the whole stream.
fn whole_chars(carry: &mut Vec<u8>, bytes: &[u8]) -> String {
    let mut buf = std::mem::take(carry);
    buf.extend_from_slice(bytes);
    // An incomplete character is at most 3 bytes: a lead byte and its continuations.
    let tail = (1..=buf.len().min(3))
        .find(|&len| {
            matches!(std::str::from_utf8(&buf[buf.len() - len..]),
                Err(e) if e.valid_up_to() == 0 && e.error_len().is_none())
        })
        .unwrap_or(0);
    *carry = buf.split_off(buf.len() - tail);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The largest char boundary of `text` at most `max`.
pub(crate) fn floor_char_boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    // A char is at most 4 bytes: a boundary is among the last 4 positions.
    (max.saturating_sub(3)..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

fn round(t: f64) -> f64 {
    (t * 1_000_000.0).round() / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `default` cases unless PROPTEST_CASES asks for more (or fewer).
    fn cases(default: u32) -> ProptestConfig {
        let mut config = ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        if std::env::var_os("PROPTEST_CASES").is_none() {
            config.cases = default;
        }
        config
    }

    /// Records `chunks` as terminal output (and `inputs` as input, resizes in between)
    /// and returns the lines of `recording.cast`.
    fn record(chunks: &[Vec<u8>], inputs: &[Vec<u8>]) -> Vec<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        runtime.block_on(async {
            let (recorder, task) =
                Recorder::start(dir.path(), 80, 24, "t\u{1b}\"", DEFAULT_RECORDING_CAP).unwrap();
            for (i, chunk) in chunks.iter().enumerate() {
                recorder.output(chunk);
                if let Some(input) = inputs.get(i) {
                    recorder.input(1, "name\u{7}", input);
                    recorder.resize(1 + i as u16, 1);
                }
            }
            drop(recorder);
            task.await.unwrap();
        });
        std::fs::read_to_string(dir.path().join("recording.cast"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Output bytes: arbitrary, or UTF-8 text (multi-byte characters included) cut at
    /// arbitrary places, as a terminal's reads cut it.
    fn output_chunks() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop_oneof![
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..20),
            ("\\PC{0,200}", prop::collection::vec(any::<usize>(), 0..12)).prop_map(
                |(text, cuts)| {
                    let bytes = text.into_bytes();
                    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
                    cuts.sort_unstable();
                    let mut chunks = Vec::new();
                    let mut start = 0;
                    for cut in cuts.into_iter().chain([bytes.len()]) {
                        chunks.push(bytes[start..cut].to_vec());
                        start = cut;
                    }
                    chunks
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(cases(300))]

        /// Whatever bytes are written: every line of the recording is JSON (the header,
        /// then `[time, kind, data]` events with times that never go back), and the
        /// output events, joined, are the output as (lossy) UTF-8: a character cut
        /// between two reads is recorded whole.
        #[test]
        fn the_asciicast_round_trips_any_output(
            chunks in output_chunks(),
            inputs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 0..5),
        ) {
            let lines = record(&chunks, &inputs);
            let header: Value = serde_json::from_str(&lines[0]).unwrap();
            prop_assert_eq!(&header["version"], 2);
            let mut output = String::new();
            let mut last = 0.0;
            for line in &lines[1..] {
                let event: Value = serde_json::from_str(line).unwrap();
                let t = event[0].as_f64().unwrap();
                prop_assert!(t >= last);
                last = t;
                let data = event[2].as_str().unwrap();
                match event[1].as_str().unwrap() {
                    "o" => output.push_str(data),
                    "i" | "r" | "m" => {}
                    other => prop_assert!(false, "unknown event kind {}", other),
                }
            }
            let all: Vec<u8> = chunks.concat();
            prop_assert_eq!(output, String::from_utf8_lossy(&all).into_owned());
        }
    }

    /// The lines of `name` in `dir`, as JSON (each line must be).
    fn json_lines(dir: &Path, name: &str) -> Vec<Value> {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// N3: the candidate floods the terminal (input, output, resizes, commands printed as
    /// marks, reconnections) far past the cap; the session's own events recorded after
    /// that (a check and its condition, a note, a hint, the end) and their cast markers
    /// are all still there, and so on the timeline, with one marker per budget that ran
    /// out; the candidate's traffic past its cap is not.
    #[tokio::test]
    async fn the_candidates_flood_never_hides_the_sessions_events() {
        let dir = tempfile::tempdir().unwrap();
        let cap = 4096;
        let (recorder, task) = Recorder::start(dir.path(), 80, 24, "t", cap).unwrap();
        recorder.event(json!({"event": "create", "task": "demo", "by": "ivy", "hints": 1}));
        for i in 0..1000 {
            recorder.input(1, "cand", format!("typed {i}\r").as_bytes());
            recorder.output(format!("line {i} of output\r\n").as_bytes());
            recorder.resize(80 + (i % 2) as u16, 24);
            recorder.event(json!({"event": "resize", "participant": 1, "cols": 80, "rows": 24}));
            recorder.event(
                json!({"event": "command", "text": "true", "by": "cand (#1)",
                "cwd": "/", "start": 0.0, "duration": 0.0, "exit": 0}),
            );
            recorder.event(
                json!({"event": "join", "participant": 2 + i, "name": "cand",
                "role": "candidate"}),
            );
            recorder.event(json!({"event": "check", "by": "auto", "outcome": "failed",
                "output": format!("FAIL a: {i}"), "conditions": []}));
        }
        recorder.event(json!({"event": "check", "by": "ivy", "outcome": "passed",
            "output": "PASS a", "duration_ms": 5, "conditions": [{"name": "a", "passed": true, "reason": ""}]}));
        recorder.event(
            json!({"event": "condition", "name": "a", "passed": true, "reason": "", "first": true}),
        );
        recorder.event(json!({"event": "solved", "by": "ivy"}));
        recorder.marker("check passed (1/1 conditions) [ivy]");
        recorder.event(json!({"event": "note", "by": "ivy", "text": "pasted a lot"}));
        recorder.marker("note [ivy]: pasted a lot");
        recorder
            .event(json!({"event": "hint", "by": "ivy", "number": 1, "total": 1, "text": "look"}));
        recorder.marker("hint 1/1 [ivy]");
        recorder.input(1, "cand", b"late input");
        recorder.event(json!({"event": "end", "reason": "ended by ivy"}));
        drop(recorder);
        task.await.unwrap();

        let events = json_lines(dir.path(), crate::EVENTS_FILE);
        let kind = |e: &Value| e["event"].as_str().unwrap().to_string();
        for k in ["condition", "solved", "note", "hint", "end"] {
            assert_eq!(events.iter().filter(|e| kind(e) == k).count(), 1, "{k}");
        }
        let checks: Vec<&Value> = events.iter().filter(|e| kind(e) == "check").collect();
        assert!(checks.len() < 1000, "{} checks", checks.len());
        assert_eq!(checks.iter().filter(|e| e["by"] == "ivy").count(), 1);
        let inputs: Vec<&Value> = events.iter().filter(|e| kind(e) == "input").collect();
        assert!(
            !inputs.is_empty() && inputs.len() < 1000,
            "{} inputs",
            inputs.len()
        );
        assert!(inputs.iter().all(|e| e["data"] != "late input"));
        assert_eq!(
            events.iter().filter(|e| kind(e) == "recording_cut").count(),
            1
        );
        let mut cuts: Vec<String> = events
            .iter()
            .filter(|e| kind(e) == "events_cut")
            .map(|e| e["of"].as_str().unwrap().to_string())
            .collect();
        cuts.sort();
        assert_eq!(cuts, ["auto_checks", "commands", "input", "joins"]);
        // Each of the candidate's kinds stays within the cap (plus its marker).
        for k in [
            &["input", "resize"][..],
            &["command"],
            &["join"],
            &["check"],
        ] {
            let bytes: usize = events
                .iter()
                .filter(|e| k.contains(&kind(e).as_str()) && e["by"] != "ivy")
                .map(|e| e.to_string().len() + 1)
                .sum();
            assert!(bytes as u64 <= cap, "{k:?}: {bytes} bytes");
        }

        let text = std::fs::read_to_string(dir.path().join(crate::EVENTS_FILE)).unwrap();
        let timeline = crate::Timeline::from_events(&text);
        let entries: Vec<&str> = timeline.entries.iter().map(|e| e.kind.as_str()).collect();
        for k in [
            "condition",
            "solved",
            "note",
            "hint",
            "end",
            "recording_cut",
        ] {
            assert_eq!(
                entries.iter().filter(|e| **e == k).count(),
                1,
                "{k}: {entries:?}"
            );
        }
        let checks_by_ivy = (timeline.entries.iter())
            .filter(|e| e.kind == "check" && e.by == "ivy")
            .count();
        assert_eq!(checks_by_ivy, 1);
        assert_eq!(entries.iter().filter(|e| **e == "events_cut").count(), 4);
        assert_eq!(timeline.ended.as_ref().unwrap().1, "ended by ivy");
        assert!(timeline.solved.is_some());
        assert_eq!(timeline.hints_revealed, 1);
        let cut = timeline
            .entries
            .iter()
            .find(|e| e.kind == "events_cut")
            .unwrap();
        assert!(
            cut.text.contains("reached its cap of 4096 bytes"),
            "{}",
            cut.text
        );
        assert!(cut.at.time > std::time::SystemTime::UNIX_EPOCH);

        let cast = json_lines(dir.path(), "recording.cast");
        let stops = cast
            .iter()
            .filter(|l| {
                l[2].as_str()
                    .is_some_and(|d| d.contains("the recording stops here"))
            })
            .count();
        assert_eq!(stops, 1);
        let traffic: usize = cast[1..]
            .iter()
            .filter(|l| l[1] != "m")
            .map(|l| l.to_string().len() + 1)
            .sum();
        assert!(traffic as u64 <= cap + 200, "{traffic} bytes");
        let markers: Vec<&str> = cast[1..]
            .iter()
            .filter(|l| l[1] == "m")
            .map(|l| l[2].as_str().unwrap())
            .collect();
        assert_eq!(
            markers,
            [
                "check passed (1/1 conditions) [ivy]",
                "note [ivy]: pasted a lot",
                "hint 1/1 [ivy]"
            ]
        );
    }

    /// A paste in one chunk takes at most MAX_INPUT_EVENT_BYTES of its event's text (cut
    /// at a character), with its full size; the cast has all of it.
    #[tokio::test]
    async fn one_input_event_holds_a_bounded_part_of_its_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let (recorder, task) =
            Recorder::start(dir.path(), 80, 24, "t", DEFAULT_RECORDING_CAP).unwrap();
        let paste = "é".repeat(MAX_INPUT_EVENT_BYTES); // 2 bytes each
        recorder.input(1, "cand", paste.as_bytes());
        recorder.input(1, "cand", b"ls\r");
        drop(recorder);
        task.await.unwrap();
        let events = json_lines(dir.path(), crate::EVENTS_FILE);
        assert_eq!(events[0]["data"], "é".repeat(MAX_INPUT_EVENT_BYTES / 2));
        assert_eq!(events[0]["bytes"], 2 * MAX_INPUT_EVENT_BYTES);
        assert_eq!(events[0]["truncated"], true);
        assert_eq!(events[1]["data"], "ls\r");
        assert_eq!(events[1]["bytes"], 3);
        assert!(events[1].get("truncated").is_none());
        let cast = json_lines(dir.path(), "recording.cast");
        assert_eq!(cast[1][2], paste.as_str());
    }

    #[test]
    fn floor_char_boundary_never_cuts_a_character() {
        let text = "a€b"; // € is 3 bytes
        let got: Vec<usize> = (0..6).map(|m| floor_char_boundary(text, m)).collect();
        assert_eq!(got, [0, 1, 1, 1, 4, 5]);
    }
}
