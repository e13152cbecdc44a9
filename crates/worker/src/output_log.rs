//! The output log of a job: an append-only file with one writer and any number of readers.
//!
//! The writer (the job's output pump) first hands each chunk to the job's terminal consumer
//! if there is one (see [`crate::terminal`]), then appends it and publishes the new length
//! on a `tokio::sync::watch` channel. A reader owns its offset, reads the file with `pread` in
//! chunks of at most [`CHUNK`] bytes, and waits on the watch channel only when it has caught
//! up. A watch channel remembers the latest version, so a reader that checks the length and
//! then waits can never miss an append between the two (no lost wake-ups), and readers hold
//! no queue of their own: memory per reader is one chunk at a time, however far behind it
//! is. When the writer is closed (or dropped, e.g. on panic) readers drain what is left and
//! end.

use crate::terminal::{Tap, TerminalReader};
use bytes::{Bytes, BytesMut};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;

/// Largest chunk a reader returns.
pub const CHUNK: usize = 64 * 1024;

/// Default cap of a job's output log.
pub const DEFAULT_OUTPUT_CAP: u64 = 64 * 1024 * 1024;

/// What readers can see of a log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogState {
    /// Bytes in the file (job output plus, once, the truncation marker).
    pub len: u64,
    /// Output bytes the job wrote beyond the cap, counted but not stored.
    pub dropped: u64,
    /// No more bytes will be appended.
    pub closed: bool,
}

/// Shared, read-side handle of a log: hands out readers and the current state.
#[derive(Debug, Clone)]
pub(crate) struct OutputLog {
    /// The log opened read-only once; readers share it and use `pread`, which does not
    /// touch the file position, so they never interfere.
    file: Arc<File>,
    /// Length/closed as published by the writer.
    state: watch::Receiver<LogState>,
    /// The writer's direct path to the terminal consumer.
    tap: Arc<Tap>,
}

/// The single writer of a log. Dropping it closes the log.
#[derive(Debug)]
pub(crate) struct LogWriter {
    /// Append handle; moved into the blocking pool during each write.
    file: Option<File>,
    /// Maximum number of output bytes stored.
    cap: u64,
    /// Output bytes stored so far (excludes the marker).
    stored: u64,
    /// The truncation marker has been written.
    marker_written: bool,
    /// The last write failed (logged once until a write succeeds again).
    failing: bool,
    /// Publishes the state to readers.
    pub(crate) state: watch::Sender<LogState>,
    /// Hands chunks to the terminal consumer before they are written.
    pub(crate) tap: Arc<Tap>,
}

/// Creates a new, empty log at `path` (which must not exist) with the given cap.
pub(crate) fn create(path: &Path, cap: u64) -> io::Result<(LogWriter, OutputLog)> {
    let writer = File::options().append(true).create_new(true).open(path)?;
    let reader = File::open(path)?;
    let (tx, rx) = watch::channel(LogState::default());
    let tap = Arc::new(Tap::default());
    Ok((
        LogWriter {
            file: Some(writer),
            cap,
            stored: 0,
            marker_written: false,
            failing: false,
            state: tx,
            tap: Arc::clone(&tap),
        },
        OutputLog {
            file: Arc::new(reader),
            state: rx,
            tap,
        },
    ))
}

/// Opens the complete log of a job from an earlier run (no writer: closed).
pub(crate) fn open_finished(path: &Path, dropped: u64) -> io::Result<OutputLog> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let (_tx, rx) = watch::channel(LogState {
        len,
        dropped,
        closed: true,
    });
    Ok(OutputLog {
        file: Arc::new(file),
        state: rx,
        tap: Arc::new(Tap::closed()),
    })
}

impl OutputLog {
    /// Current length, dropped count and closed flag.
    pub(crate) fn state(&self) -> LogState {
        *self.state.borrow()
    }

    /// A reader starting at byte `offset`.
    pub(crate) fn reader(&self, offset: u64) -> OutputReader {
        OutputReader {
            file: Arc::clone(&self.file),
            state: self.state.clone(),
            offset,
        }
    }

    /// The job's output for its terminal consumer: the log from byte 0, then chunks
    /// handed over live by the writer (see [`crate::terminal`]).
    pub(crate) fn terminal(&self) -> TerminalReader {
        TerminalReader::new(self.reader(0), Arc::clone(&self.tap))
    }
}

impl LogWriter {
    /// Appends `data` (as much as the cap allows; the first time the cap is hit a marker is
    /// written and the rest counted as dropped) and publishes the new length. A failed
    /// write (e.g. disk full) is logged and the bytes that did not reach the file are
    /// counted as dropped: the job's output keeps being drained either way, so the job
    /// never blocks on a full pipe, and the next write tries again, so output resumes as
    /// soon as there is room.
    ///
    /// The terminal consumer gets all of `data` first (even what the cap keeps out of the
    /// file), and the length is published to it last.
    pub(crate) async fn append(&mut self, data: Bytes) {
        let in_log = self.stored.saturating_add(data.len() as u64) <= self.cap;
        if !in_log && let Some(catching_up) = self.tap.catching_up() {
            // Past the cap, a consumer detached earlier is still reading the log: what it
            // missed would be lost for good, so it catches up first (and this chunk goes
            // to it live). It never waits for the writer meanwhile: the log is complete up
            // to here. (An error means: caught up or gone.)
            let _ = catching_up.await;
        }
        if let Some(consumer) = self.tap.hand_out(&data, in_log) {
            // Past the cap: the terminal gets it live or never. (Fails only when the
            // consumer is gone.)
            let _ = consumer
                .send(crate::terminal::Live::Data(data.clone()))
                .await;
        }
        self.store(data).await;
        self.tap.published(self.state.borrow().len);
    }

    /// The log part of [`append`](Self::append).
    pub(crate) async fn store(&mut self, data: Bytes) {
        let room = self.cap.saturating_sub(self.stored);
        let keep = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let mut dropped = (data.len() - keep) as u64;
        let mut bytes = data.slice(..keep);
        if dropped > 0 && !self.marker_written {
            self.marker_written = true;
            let mut with_marker = bytes.to_vec();
            with_marker.extend_from_slice(
                format!(
                    "\r\n[tandem: output limit of {} bytes reached; further output is dropped]\r\n",
                    self.cap
                )
                .as_bytes(),
            );
            bytes = Bytes::from(with_marker);
        }
        if !bytes.is_empty() {
            let (written, result) = self.write(bytes).await;
            // What reached the file is published, even from a write that failed halfway:
            // readers' offsets must match the file.
            let stored = written.min(keep as u64);
            self.stored += stored;
            if written > 0 {
                self.state.send_modify(|s| s.len += written);
            }
            match result {
                Ok(()) => {
                    if self.failing {
                        self.failing = false;
                        tracing::info!("writing job output log works again");
                    }
                }
                Err(e) => {
                    if !self.failing {
                        self.failing = true;
                        tracing::warn!(error = %e, "writing job output log failed; output dropped until it works again");
                    }
                    dropped += keep as u64 - stored;
                }
            }
        }
        if dropped > 0 {
            self.state.send_modify(|s| s.dropped += dropped);
        }
    }

    /// Writes in the blocking pool (file IO must not stall the runtime's threads); returns
    /// how many bytes reached the file, and the error that stopped it short.
    async fn write(&mut self, bytes: Bytes) -> (u64, io::Result<()>) {
        let Some(mut file) = self.file.take() else {
            return (0, Err(io::Error::other("the output log's writer was lost")));
        };
        let done = tokio::task::spawn_blocking(move || {
            let mut written = 0;
            let result = loop {
                if written == bytes.len() {
                    break Ok(());
                }
                match file.write(&bytes[written..]) {
                    Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            (file, written as u64, result)
        })
        .await;
        match done {
            Ok((file, written, result)) => {
                self.file = Some(file);
                (written, result)
            }
            Err(e) => (0, Err(io::Error::other(e))),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // Readers see `closed` before the terminal consumer's queue closes.
        self.state.send_modify(|s| s.closed = true);
        self.tap.close();
    }
}

/// What [`OutputReader::try_chunk`] found.
pub(crate) enum Polled {
    /// The next chunk.
    Chunk(Bytes),
    /// Nothing beyond the offset yet.
    CaughtUp,
    /// Nothing beyond the offset, ever.
    Ended,
}

/// Follows a job's output from an offset until the job has ended and everything is read.
#[derive(Debug)]
pub struct OutputReader {
    /// Shared read-only handle of the log file.
    file: Arc<File>,
    /// The writer's published state; this reader's own "seen" version.
    state: watch::Receiver<LogState>,
    /// Next byte this reader returns.
    offset: u64,
}

impl OutputReader {
    /// Offset of the next byte [`next_chunk`](Self::next_chunk) returns.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Continues at byte `offset`.
    pub(crate) fn seek(&mut self, offset: u64) {
        self.offset = offset;
    }

    /// Reads the next chunk, up to (excluding) byte `end`, which must be published.
    pub(crate) async fn read_until(&mut self, end: u64) -> io::Result<Bytes> {
        let want = end.saturating_sub(self.offset).min(CHUNK as u64) as usize;
        let file = Arc::clone(&self.file);
        let offset = self.offset;
        let chunk = tokio::task::spawn_blocking(move || {
            let mut buf = BytesMut::zeroed(want);
            let n = file.read_at(&mut buf, offset)?;
            buf.truncate(n);
            Ok::<_, io::Error>(buf.freeze())
        })
        .await
        .map_err(io::Error::other)??;
        if chunk.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "output log is shorter than its published length",
            ));
        }
        self.offset += chunk.len() as u64;
        Ok(chunk)
    }

    /// The next chunk if the log has one beyond this reader's offset, without waiting.
    pub(crate) async fn try_chunk(&mut self) -> io::Result<Polled> {
        let state = *self.state.borrow_and_update();
        if self.offset < state.len {
            return self.read_until(state.len).await.map(Polled::Chunk);
        }
        Ok(if state.closed {
            Polled::Ended
        } else {
            Polled::CaughtUp
        })
    }

    /// The next chunk of output (at most [`CHUNK`] bytes), waiting for the job to write
    /// more if needed. `None` once the job has ended and every byte has been returned.
    pub async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match self.try_chunk().await? {
                Polled::Chunk(chunk) => return Ok(Some(chunk)),
                Polled::Ended => return Ok(None),
                Polled::CaughtUp => {}
            }
            if self.state.changed().await.is_err() {
                // The writer is gone; its Drop published `closed`, so the next pass
                // drains what is left and ends.
                if self.state.borrow().closed {
                    continue;
                }
                return Ok(None);
            }
        }
    }

    /// Reads everything until the end of the job's output.
    pub async fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_follow_and_end_after_close() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, log) = create(&dir.path().join("out.log"), 1 << 20).unwrap();
        let mut early = log.reader(0);
        let follower = tokio::spawn(async move { early.read_to_end().await.unwrap() });
        w.append(Bytes::from_static(b"hello ")).await;
        w.append(Bytes::from_static(b"world")).await;
        drop(w);
        assert_eq!(follower.await.unwrap(), b"hello world");
        assert_eq!(log.reader(6).read_to_end().await.unwrap(), b"world");
        assert_eq!(log.reader(100).read_to_end().await.unwrap(), b"");
    }

    #[tokio::test]
    async fn cap_writes_one_marker_and_counts_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, log) = create(&dir.path().join("out.log"), 10).unwrap();
        w.append(Bytes::from_static(b"0123456")).await;
        w.append(Bytes::from_static(b"789abc")).await;
        w.append(Bytes::from_static(b"defg")).await;
        drop(w);
        let text = String::from_utf8(log.reader(0).read_to_end().await.unwrap()).unwrap();
        assert!(text.starts_with("0123456789\r\n[tandem: output limit of 10 bytes"));
        assert_eq!(text.matches("output limit").count(), 1);
        let state = log.state();
        assert_eq!(state.dropped, 7);
        assert_eq!(state.len, text.len() as u64);
        assert!(state.closed);
    }

    #[tokio::test]
    async fn dropped_readers_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, log) = create(&dir.path().join("out.log"), 1 << 20).unwrap();
        w.append(Bytes::from_static(b"x")).await;
        let (parked_tx, mut parked) = tokio::sync::mpsc::channel(100);
        let followers: Vec<_> = (0..100)
            .map(|_| {
                let mut r = log.reader(0);
                let parked_tx = parked_tx.clone();
                tokio::spawn(async move {
                    let first = r.next_chunk().await;
                    let _ = parked_tx.send(()).await;
                    // Parks on the watch channel: the log stays open.
                    (first, r.next_chunk().await)
                })
            })
            .collect();
        for _ in 0..100 {
            parked.recv().await.unwrap();
        }
        for f in &followers {
            f.abort();
        }
        for f in followers {
            assert!(f.await.unwrap_err().is_cancelled());
        }
        assert_eq!(
            w.state.receiver_count(),
            1,
            "only the log's own receiver is left"
        );
    }
}
