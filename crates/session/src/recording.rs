//! Session recordings: `recording.cast` (asciicast v2: `o` output, `i` input, `r` resize,
//! playable with `asciinema play`) and `events.jsonl` (joins, leaves, role changes, locks,
//! checks, and who typed each input chunk).
//!
//! One writer task per session owns both files; everything reaches it through an
//! unbounded channel, so no producer (the PTY reader, a client) ever waits on the disk,
//! and nothing is dropped. The task flushes after every burst and ends, flushing, when
//! the session drops its handle.

use serde_json::{Value, json};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

enum Entry {
    Cast(f64, &'static str, String),
    Event(Value),
}

/// Sends entries to the session's recorder.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Entry>,
    /// Time zero of the recording.
    start: Instant,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Entry")
    }
}

impl Recorder {
    /// Creates the files in `dir` and the writer task.
    pub fn start(
        dir: &Path,
        cols: u16,
        rows: u16,
        title: &str,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let mut cast = BufWriter::new(std::fs::File::create(dir.join("recording.cast"))?);
        let mut events = BufWriter::new(std::fs::File::create(dir.join("events.jsonl"))?);
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
        writeln!(cast, "{header}")?;
        cast.flush()?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Entry>();
        let task = tokio::task::spawn_blocking(move || {
            let write = |cast: &mut BufWriter<std::fs::File>,
                         events: &mut BufWriter<std::fs::File>,
                         entry: Entry|
             -> std::io::Result<()> {
                match entry {
                    Entry::Cast(t, kind, data) => {
                        writeln!(cast, "{}", json!([round(t), kind, data]))
                    }
                    Entry::Event(v) => writeln!(events, "{v}"),
                }
            };
            while let Some(entry) = rx.blocking_recv() {
                let mut result = write(&mut cast, &mut events, entry);
                // Drain the burst before flushing.
                while let Ok(more) = rx.try_recv() {
                    result = result.and(write(&mut cast, &mut events, more));
                }
                if let Err(e) = result.and(cast.flush()).and(events.flush()) {
                    tracing::error!(error = %e, "writing the session recording failed");
                }
            }
        });
        Ok((
            Self {
                tx,
                start: Instant::now(),
            },
            task,
        ))
    }

    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Terminal output.
    pub fn output(&self, data: &[u8]) {
        let _ = self.tx.send(Entry::Cast(
            self.now(),
            "o",
            String::from_utf8_lossy(data).into_owned(),
        ));
    }

    /// Input that reached the terminal, and who typed it.
    pub fn input(&self, participant: u64, name: &str, data: &[u8]) {
        let text = String::from_utf8_lossy(data).into_owned();
        let t = self.now();
        let _ = self.tx.send(Entry::Cast(t, "i", text.clone()));
        self.event(json!({
            "event": "input", "participant": participant, "name": name, "data": text,
        }));
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

fn round(t: f64) -> f64 {
    (t * 1_000_000.0).round() / 1_000_000.0
}
