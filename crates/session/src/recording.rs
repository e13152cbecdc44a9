//! Session recordings: `recording.cast` (asciicast v2: `o` output, `i` input, `r` resize,
//! `m` markers for checks, hints and notes; playable with `asciinema play`) and `events.jsonl` (joins, leaves, role changes, locks,
//! checks, and who typed each input chunk).
//!
//! One writer task per session owns both files; everything reaches it through an
//! unbounded channel, so no producer (the PTY reader, a client) ever waits on the disk.
//! The task flushes after every burst and ends, flushing, when the session drops its
//! handle. Each file is capped ([`DEFAULT_RECORDING_CAP`] by default): the line that would
//! cross the cap is replaced by a marker (an `o` event on the terminal, a `recording_cut`
//! or `events_cut` event), and the rest is counted, not written, so a flood of output
//! cannot fill the state disk.

use serde_json::{Value, json};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Default cap of `recording.cast` and of `events.jsonl`, each.
pub const DEFAULT_RECORDING_CAP: u64 = 64 << 20;

enum Entry {
    Cast(f64, &'static str, String),
    /// Terminal output as read: a character may be cut between two reads.
    Output(f64, Vec<u8>),
    Event(Value),
}

/// One capped file of the recording.
struct Capped {
    out: BufWriter<std::fs::File>,
    /// Bytes written so far.
    written: u64,
    /// The cap.
    cap: u64,
    /// Bytes not written since the cap was reached (0 until then).
    dropped: u64,
    /// The cap was reached.
    full: bool,
}

impl Capped {
    fn new(file: std::fs::File, cap: u64) -> Self {
        Self {
            out: BufWriter::new(file),
            written: 0,
            cap,
            dropped: 0,
            full: false,
        }
    }

    /// Writes `line` (and a newline) unless that crosses the cap; the first time it would,
    /// writes `marker` instead (markers may go over the cap by their own length).
    fn line(&mut self, line: &str, marker: impl FnOnce() -> String) -> std::io::Result<()> {
        let len = line.len() as u64 + 1;
        if self.full {
            self.dropped += len;
            return Ok(());
        }
        if self.written + len > self.cap {
            self.full = true;
            self.dropped += len;
            let marker = marker();
            self.written += marker.len() as u64 + 1;
            return writeln!(self.out, "{marker}");
        }
        self.written += len;
        writeln!(self.out, "{line}")
    }
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
    /// Creates the files in `dir` and the writer task.
    /// Each file keeps at most `cap` bytes.
    pub fn start(
        dir: &Path,
        cols: u16,
        rows: u16,
        title: &str,
        cap: u64,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let mut cast = Capped::new(std::fs::File::create(dir.join("recording.cast"))?, cap);
        let mut events = Capped::new(std::fs::File::create(dir.join(crate::EVENTS_FILE))?, cap);
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
        cast.line(&header.to_string(), String::new)?;
        cast.out.flush()?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Entry>();
        let (written_tx, events_written) = watch::channel(0);
        let task = tokio::task::spawn_blocking(move || {
            let write = |cast: &mut Capped, events: &mut Capped, entry: Entry| match entry {
                Entry::Cast(t, kind, data) => {
                    let line = json!([round(t), kind, data]).to_string();
                    let cut = cast.line(&line, || {
                            json!([
                                round(t),
                                "o",
                                format!(
                                    "\r\n[tandem] the recording stops here: it reached its cap of {cap} bytes\r\n"
                                )
                            ])
                            .to_string()
                        });
                    if cast.full && cast.dropped == line.len() as u64 + 1 {
                        let marker = json!({"event": "recording_cut", "t": round(t), "cap": cap});
                        cut.and(events.line(&marker.to_string(), || marker.to_string()))
                    } else {
                        cut
                    }
                }
                Entry::Event(v) => events.line(&v.to_string(), || {
                    json!({"event": "events_cut", "cap": cap}).to_string()
                }),
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
                        result = result.and(write(&mut cast, &mut events, entry));
                    }
                }
                if let Err(e) = result.and(cast.out.flush()).and(events.out.flush()) {
                    tracing::error!(error = %e, "writing the session recording failed");
                }
                written_tx
                    .send_if_modified(|w| std::mem::replace(w, events.written) != events.written);
            }
            if !carry.1.is_empty() {
                let text = String::from_utf8_lossy(&carry.1).into_owned();
                let result = write(&mut cast, &mut events, Entry::Cast(carry.0, "o", text));
                if let Err(e) = result.and(cast.out.flush()) {
                    tracing::error!(error = %e, "writing the session recording failed");
                }
            }
            if cast.dropped > 0 || events.dropped > 0 {
                tracing::warn!(
                    recording_dropped = cast.dropped,
                    events_dropped = events.dropped,
                    "the session recording reached its cap"
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

    #[tokio::test]
    async fn each_file_stops_at_its_cap_with_one_marker() {
        let dir = tempfile::tempdir().unwrap();
        let cap = 4096;
        let (recorder, task) = Recorder::start(dir.path(), 80, 24, "t", cap).unwrap();
        for i in 0..1000 {
            recorder.output(format!("line {i} of output\r\n").as_bytes());
            recorder.event(json!({"event": "note", "i": i}));
        }
        drop(recorder);
        task.await.unwrap();
        let cast = std::fs::read_to_string(dir.path().join("recording.cast")).unwrap();
        let events = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        let last_cast = cast.lines().last().unwrap();
        assert!(
            last_cast.contains("the recording stops here"),
            "{last_cast}"
        );
        assert_eq!(cast.matches("the recording stops here").count(), 1);
        assert!(cast.len() as u64 <= cap + 200, "{} bytes", cast.len());
        // Every line is still valid asciicast / JSON.
        for line in cast.lines().chain(events.lines()) {
            serde_json::from_str::<Value>(line).unwrap();
        }
        assert!(events.len() as u64 <= cap + 200);
        assert_eq!(events.matches("events_cut").count(), 1, "{events}");
        assert!(events.contains("recording_cut") || events.contains("events_cut"));
    }
}
