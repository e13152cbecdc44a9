//! The timeline on the pages. A live page follows the session's `events.jsonl` as it is
//! written (a [`Follower`] per page, woken by the recorder after each write, reading only
//! what is new); the replay page fetches an ended session's whole timeline
//! (`GET /s/<id>/timeline`). Interviewers' notes are private: an observer's page never
//! gets them.

use crate::AppState;
use crate::auth::{Mode, grant, refused};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use std::io::SeekFrom;
use std::path::PathBuf;
use tandem_session::{Timeline, TimelineEntry, TimelineReader};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Bytes of the event log read for a page at a time (a page opened late in a long
/// session catches up in steps, between which its terminal keeps flowing).
const READ_STEP: usize = 256 * 1024;
/// Longest event line kept for parsing; a longer one (a huge paste's `input` event) is
/// skipped: it is never a timeline entry worth its memory.
const MAX_LINE: usize = 1 << 20;

/// One live page's reading of the session's event log.
#[derive(Debug)]
pub(crate) struct Follower {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    /// Bytes read so far.
    offset: u64,
    /// The start of a line not yet complete.
    partial: Vec<u8>,
    /// Skipping the rest of a line longer than [`MAX_LINE`].
    skipping: bool,
    reader: TimelineReader,
    /// Whether the page may see interviewers' notes.
    notes: bool,
    /// The progress last sent to the page.
    sent: Option<Value>,
}

impl Follower {
    pub(crate) fn new(path: PathBuf, notes: bool) -> Self {
        Self {
            path,
            file: None,
            offset: 0,
            partial: Vec::new(),
            skipping: false,
            reader: TimelineReader::default(),
            notes,
            sent: None,
        }
    }

    /// Reads up to `written` (bytes of the log written so far), one step at most: the
    /// page's message with the new entries and the progress if either is new, and whether
    /// more is left to read.
    pub(crate) async fn step(&mut self, written: u64) -> std::io::Result<(Option<Value>, bool)> {
        if written <= self.offset {
            return Ok((None, false));
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let mut file = tokio::fs::File::open(&self.path).await?;
                file.seek(SeekFrom::Start(self.offset)).await?;
                self.file.insert(file)
            }
        };
        let want = usize::try_from(written - self.offset)
            .unwrap_or(usize::MAX)
            .min(READ_STEP);
        let mut buf = vec![0; want];
        let mut got = 0;
        while got < want {
            match file.read(&mut buf[got..]).await? {
                0 => break,
                n => got += n,
            }
        }
        buf.truncate(got);
        self.offset += got as u64;
        let entries = self.lines(&buf);
        let progress = progress(self.reader.progress());
        let progress_new = self.sent.as_ref() != Some(&progress);
        let more = got > 0 && self.offset < written;
        if entries.is_empty() && !progress_new {
            return Ok((None, more));
        }
        self.sent = Some(progress.clone());
        let message = json!({"type": "timeline", "entries": entries, "progress": progress});
        Ok((Some(message), more))
    }

    /// The entries of the complete lines in `partial` + `bytes`; the incomplete end stays.
    fn lines(&mut self, mut bytes: &[u8]) -> Vec<TimelineEntry> {
        let mut entries = Vec::new();
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(end);
            bytes = &rest[1..];
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            let whole = if self.partial.is_empty() {
                line
            } else {
                self.partial.extend_from_slice(line);
                &self.partial[..]
            };
            let entry = std::str::from_utf8(whole)
                .ok()
                .and_then(|l| self.reader.push(l));
            self.partial.clear();
            if let Some(entry) = entry.filter(|e| self.notes || e.kind != "note") {
                entries.push(entry);
            }
        }
        if !self.skipping {
            if self.partial.len() + bytes.len() > MAX_LINE {
                self.partial.clear();
                self.skipping = true;
            } else {
                self.partial.extend_from_slice(bytes);
            }
        }
        entries
    }
}

/// What a page shows of a timeline besides its entries.
fn progress(t: &Timeline) -> Value {
    json!({
        "task": t.task, "started": t.started, "ended": t.ended, "conditions": t.conditions,
        "solved": t.solved, "hints_revealed": t.hints_revealed, "hints_total": t.hints_total,
    })
}

/// `GET /s/<id>/timeline`: an ended session's whole timeline, for a replay cookie (an
/// interviewer's).
pub(crate) async fn timeline(
    State(app): State<AppState>,
    Extension(proven): Extension<crate::Proven>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(grant) = grant(&app, &headers, &id, &proven).filter(|g| g.mode == Mode::Replay) else {
        return refused();
    };
    let sessions = app.sessions.clone();
    // Reads and parses the whole event log (up to the recording cap): off the runtime.
    let read = tokio::task::spawn_blocking(move || sessions.timeline(grant.session)).await;
    match read {
        Ok(Ok(timeline)) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({"entries": timeline.entries, "progress": progress(&timeline)})),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::warn!(session = %grant.session, error = %e, "cannot read the timeline");
            (StatusCode::NOT_FOUND, "no timeline\n").into_response()
        }
        Err(e) => {
            tracing::warn!(session = %grant.session, error = %e, "reading the timeline failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, extra: &str, t: f64) -> String {
        format!(r#"{{"event":"{kind}",{extra}"t":{t},"time":"2026-01-01T10:00:00.000Z"}}"#) + "\n"
    }

    #[tokio::test]
    async fn a_follower_reads_what_is_new_in_steps_and_keeps_notes_from_observers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut log = event("create", r#""task":"demo","by":"ivy","#, 0.0)
            + &event("note", r#""by":"ivy","text":"private","#, 1.0);
        // A torn last line: written in two flushes.
        let torn = event(
            "hint",
            r#""by":"ivy","number":1,"total":2,"text":"look","#,
            2.0,
        );
        let (head, tail) = torn.split_at(20);
        log.push_str(head);
        std::fs::write(&path, &log).unwrap();
        let mut observer = Follower::new(path.clone(), false);
        let mut interviewer = Follower::new(path.clone(), true);
        let kinds = |m: &Value| {
            m["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["kind"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        let (m, more) = observer.step(log.len() as u64).await.unwrap();
        let m = m.unwrap();
        assert!(!more);
        assert_eq!(kinds(&m), ["create"], "no note for an observer: {m}");
        assert_eq!(m["progress"]["task"], "demo");
        let (m, _) = interviewer.step(log.len() as u64).await.unwrap();
        assert_eq!(kinds(&m.unwrap()), ["create", "note"]);
        // Nothing new: nothing sent.
        assert_eq!(observer.step(log.len() as u64).await.unwrap().0, None);
        // The line's end arrives, and a long input line that is skipped whole.
        log.push_str(tail);
        log += &event(
            "input",
            &format!(r#""data":"{}","#, "x".repeat(MAX_LINE + 10)),
            3.0,
        );
        log += &event("unlock", "", 4.0);
        std::fs::write(&path, &log).unwrap();
        let mut got = Vec::new();
        let mut steps = 0;
        loop {
            let (m, more) = observer.step(log.len() as u64).await.unwrap();
            steps += 1;
            if let Some(m) = m {
                for kind in kinds(&m) {
                    got.push(format!(
                        "{kind} ({} hints)",
                        m["progress"]["hints_revealed"]
                    ));
                }
            }
            if !more {
                break;
            }
        }
        assert!(steps > 4, "read in steps of {READ_STEP} bytes: {steps}");
        assert_eq!(got, ["hint (1 hints)", "unlock (1 hints)"]);
        assert!(observer.partial.is_empty() && !observer.skipping);
    }
}
