//! The direct path of a job's output to one in-process consumer (a session's shared
//! terminal), beside the output log.
//!
//! The output pump hands each chunk it reads to the consumer first, in memory, and only
//! then appends it to the log, so a keystroke's echo never waits for the file (nor for the
//! blocking pool, nor for a `pread` on the way back). The log stays the complete record;
//! the consumer reads it only to catch up:
//!
//! * It starts in the log (from byte 0) and, once it has read everything the log holds,
//!   attaches to the [`Tap`]. The seam is exact: when no append is in flight the log's
//!   length is final and every later chunk is handed over live; when one is in flight
//!   (its chunk was handed out before the consumer attached, and is going to the file), the
//!   writer sends the seam — the log's length after that append — when it publishes it,
//!   and the consumer reads the file up to there before taking live chunks.
//! * The live queue is bounded ([`LIVE_CHUNKS`] chunks). While the log stores everything,
//!   the pump never waits for the consumer: when the queue is full it detaches it and
//!   records where in the log the first chunk it could not hand over starts. The consumer
//!   drains its queue, reads the log from there and attaches again once it has caught up.
//!   Memory per job is the queue, however far behind the consumer is. Past the log's cap
//!   the log cannot fill such a gap (a detached consumer would lose what it missed, the end
//!   of a long burst included), so there the pump waits for room in the queue instead: the
//!   job's output is paced by its terminal, as any terminal paces it. A consumer that was
//!   detached before the cap and is still catching up from the log when the cap is crossed
//!   is waited for too: the first chunk the log will not hold waits until that consumer
//!   has read the log to its end and attached again (or is gone), then goes to it live.
//! * One consumer at a time gets the live path; another one (while the first is alive)
//!   simply follows the log, as an [`OutputReader`] does.
//!
//! Bytes the log does not store (beyond its cap, or lost to a failing disk) still reach a
//! live consumer, and one that is catching up past the cap (see above). Only a consumer
//! that first attaches past the cap (a new reader of an old log) starts from what the log
//! holds.

use crate::CHUNK;
use crate::output_log::{OutputReader, Polled};
use bytes::{Bytes, BytesMut};
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// Chunks (of at most [`CHUNK`](crate::CHUNK) bytes) a live consumer may have queued
/// before the pump detaches it and it falls back to the log.
pub const LIVE_CHUNKS: usize = 64;

/// What goes through the live queue.
#[derive(Debug)]
pub(crate) enum Live {
    /// The log offset where live chunks start (sent when the consumer attached during an
    /// append).
    From(u64),
    /// Output, in order.
    Data(Bytes),
}

/// The attached consumer, as the writer sees it.
#[derive(Debug)]
struct Consumer {
    tx: mpsc::Sender<Live>,
    /// Set when the writer detached a consumer that fell behind: the log offset of the
    /// first chunk it did not get.
    behind: Arc<OnceLock<u64>>,
    /// The consumer attached during an append and waits for the seam.
    seam_pending: bool,
    /// Closes when the consumer drops its [`CatchingUp`]: kept by the writer while the
    /// consumer catches up from the log after being detached.
    caught_up: oneshot::Receiver<()>,
}

/// Held by a consumer from its attachment until it has caught up from the log and attached
/// again (or gave up, or is gone): past the log's cap the writer waits for it to be
/// dropped. Nothing is ever sent on it.
type CatchingUp = oneshot::Sender<()>;

#[derive(Debug, Default)]
struct TapState {
    /// The log's published length; final for every append that is not in flight.
    len: u64,
    /// An append is between handing its chunk out and publishing its length.
    busy: bool,
    /// The writer is gone.
    closed: bool,
    consumer: Option<Consumer>,
    /// A consumer detached while the log held everything, and catching up from it: closes
    /// once it has attached again or is gone.
    catching_up: Option<oneshot::Receiver<()>>,
}

/// Shared between a log's writer and its terminal consumer.
#[derive(Debug, Default)]
pub(crate) struct Tap {
    state: Mutex<TapState>,
}

/// The answer to a consumer asking to go live.
enum Attach {
    /// Live from `seam` (known now, or sent first on the queue).
    Live {
        rx: mpsc::Receiver<Live>,
        behind: Arc<OnceLock<u64>>,
        seam: Option<u64>,
        catching_up: CatchingUp,
    },
    /// The log has more than the consumer read: read on.
    NotCaughtUp,
    /// Another consumer is live, or the writer is gone: follow the log.
    No,
}

impl Tap {
    /// A tap whose writer is already gone (a finished job's log).
    pub(crate) fn closed() -> Self {
        Self {
            state: Mutex::new(TapState {
                closed: true,
                ..TapState::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TapState> {
        // Every update is a few plain assignments: the state is consistent even if a
        // holder panicked.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writer: an append starts; its chunk goes to the live consumer, if any. A consumer
    /// whose queue is full is detached (it continues from the log) when the log is going
    /// to hold the whole chunk (`in_log`). Past the log's cap it is not, and a detached
    /// consumer would lose what it missed: then the consumer's sender comes back, and the
    /// writer waits for room (the job's output is paced by its terminal, as a terminal
    /// does; the consumer is the session's pump, which never waits on anyone).
    pub(crate) fn hand_out(&self, data: &Bytes, in_log: bool) -> Option<mpsc::Sender<Live>> {
        let mut state = self.lock();
        state.busy = true;
        let len = state.len;
        let consumer = state.consumer.as_ref()?;
        debug_assert!(
            !consumer.seam_pending,
            "the seam is sent before the next append"
        );
        match consumer.tx.try_send(Live::Data(data.clone())) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(_)) if !in_log => Some(consumer.tx.clone()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                let _ = consumer.behind.set(len);
                if let Some(detached) = state.consumer.take() {
                    state.catching_up = Some(detached.caught_up);
                }
                None
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                state.consumer = None;
                None
            }
        }
    }

    /// Writer: the append is complete and the log's length `len` published.
    pub(crate) fn published(&self, len: u64) {
        let mut state = self.lock();
        state.len = len;
        state.busy = false;
        if let Some(consumer) = &mut state.consumer
            && consumer.seam_pending
        {
            // The queue is new and empty: the seam always fits, unless it is closed.
            if consumer.tx.try_send(Live::From(len)).is_ok() {
                consumer.seam_pending = false;
            } else {
                state.consumer = None;
            }
        }
    }

    /// Writer, before an append the log will not hold in full (past its cap): a consumer
    /// that was detached and is catching up from the log, to be waited for (until it has
    /// attached again or is gone) before the chunk is handed out, since the log cannot fill
    /// that gap later. Taken: asked again, it is `None`.
    pub(crate) fn catching_up(&self) -> Option<oneshot::Receiver<()>> {
        self.lock().catching_up.take()
    }

    /// Writer: gone; the consumer's queue closes after what it holds.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.consumer = None;
        state.catching_up = None;
    }

    /// Consumer: go live after having read the log up to `offset`.
    fn attach(&self, offset: u64) -> Attach {
        let mut state = self.lock();
        if state.closed || state.consumer.as_ref().is_some_and(|c| !c.tx.is_closed()) {
            return Attach::No;
        }
        let seam = if state.busy {
            None
        } else if offset == state.len {
            Some(offset)
        } else {
            return Attach::NotCaughtUp;
        };
        let (tx, rx) = mpsc::channel(LIVE_CHUNKS);
        let behind = Arc::new(OnceLock::new());
        let (catching_up, caught_up) = oneshot::channel();
        state.consumer = Some(Consumer {
            tx,
            behind: Arc::clone(&behind),
            seam_pending: seam.is_none(),
            caught_up,
        });
        // The consumer that was catching up (this one: there is one at a time) has.
        state.catching_up = None;
        Attach::Live {
            rx,
            behind,
            seam,
            catching_up,
        }
    }
}

/// The consumer's end of a live attachment.
#[derive(Debug)]
struct Link {
    rx: mpsc::Receiver<Live>,
    behind: Arc<OnceLock<u64>>,
    /// Where live chunks start; `None` until the writer has sent it.
    seam: Option<u64>,
    /// Kept until this consumer has caught up again after being detached.
    catching_up: CatchingUp,
}

/// A job's terminal output for its one live consumer: what the log holds, then live
/// chunks straight from the output pump. Same shape as [`OutputReader`]; see the module
/// documentation.
#[derive(Debug)]
pub struct TerminalReader {
    log: OutputReader,
    tap: Arc<Tap>,
    live: Option<Link>,
    /// Detached and catching up from the log: the writer may wait for this to be dropped.
    catching_up: Option<CatchingUp>,
}

/// `first` and what else is queued right now, as one chunk (stopping once it has
/// [`CHUNK`] bytes, so at most twice that): a consumer that is behind catches up in few
/// large chunks, as from the log, instead of many small ones (a PTY is read a few KiB at a
/// time); one that keeps up gets each chunk as it comes.
fn coalesce(first: Bytes, rx: &mut mpsc::Receiver<Live>) -> Bytes {
    if rx.is_empty() || first.len() >= CHUNK {
        return first;
    }
    let mut out = BytesMut::from(&first[..]);
    while out.len() < CHUNK {
        // Only data follows the seam (`From` is sent once, before any data).
        let Ok(Live::Data(more)) = rx.try_recv() else {
            break;
        };
        out.extend_from_slice(&more);
    }
    out.freeze()
}

impl TerminalReader {
    pub(crate) fn new(log: OutputReader, tap: Arc<Tap>) -> Self {
        Self {
            log,
            tap,
            live: None,
            catching_up: None,
        }
    }

    /// The consumer gets chunks handed over in memory (as opposed to reading the log).
    pub fn is_live(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.seam.is_some())
    }

    /// The next chunk of output, waiting for the job to write more if needed. `None` once
    /// the job has ended and every byte has been returned.
    pub async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if let Some(link) = &mut self.live {
                match link.seam {
                    Some(seam) if self.log.offset() < seam => {
                        return self.log.read_until(seam).await.map(Some);
                    }
                    Some(_) => match link.rx.recv().await {
                        Some(Live::Data(data)) => return Ok(Some(coalesce(data, &mut link.rx))),
                        Some(Live::From(_)) => {
                            return Err(io::Error::other("terminal seam sent twice"));
                        }
                        None => {
                            // Detached: fell behind (continue from the log where the
                            // first missed chunk starts), or the writer is gone (the end).
                            let behind = link.behind.get().copied();
                            let link = self.live.take();
                            match behind {
                                Some(offset) => {
                                    self.log.seek(offset);
                                    self.catching_up = link.map(|l| l.catching_up);
                                }
                                None => return Ok(None),
                            }
                        }
                    },
                    None => match link.rx.recv().await {
                        Some(Live::From(seam)) => link.seam = Some(seam),
                        Some(Live::Data(_)) => {
                            return Err(io::Error::other("terminal output before its seam"));
                        }
                        // The writer went away mid-append: the log has the rest.
                        None => self.live = None,
                    },
                }
                continue;
            }
            match self.log.try_chunk().await? {
                Polled::Chunk(chunk) => return Ok(Some(chunk)),
                Polled::Ended => return Ok(None),
                Polled::CaughtUp => {}
            }
            match self.tap.attach(self.log.offset()) {
                Attach::Live {
                    rx,
                    behind,
                    seam,
                    catching_up,
                } => {
                    // Caught up: the writer need not wait for this consumer any more.
                    self.catching_up = None;
                    self.live = Some(Link {
                        rx,
                        behind,
                        seam,
                        catching_up,
                    });
                }
                Attach::NotCaughtUp => {}
                Attach::No => {
                    // Following the log, never live: nothing to wait for.
                    self.catching_up = None;
                    return self.log.next_chunk().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output_log::{self, LogWriter, OutputLog};

    fn log(cap: u64) -> (tempfile::TempDir, LogWriter, OutputLog) {
        let dir = tempfile::tempdir().unwrap();
        let (w, log) = output_log::create(&dir.path().join("out.log"), cap).unwrap();
        (dir, w, log)
    }

    /// Chunk `i` of a test stream: distinct, of varying length.
    fn chunk(i: usize) -> Bytes {
        Bytes::from(format!("<{i}:{}>", "x".repeat(i % 97)))
    }

    async fn read_all(reader: &mut TerminalReader) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(c) = reader.next_chunk().await.unwrap() {
            out.extend_from_slice(&c);
        }
        out
    }

    /// Output written before the consumer exists and while it catches up and attaches, at
    /// every interleaving the runtime produces: the consumer sees every byte once, in
    /// order, and the log is byte-exact.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_byte_once_across_the_seam() {
        for before in [0, 1, 7, 300] {
            let (_dir, mut w, log) = log(1 << 30);
            let expected: Vec<u8> = (0..2000).flat_map(|i| chunk(i).to_vec()).collect();
            for i in 0..before {
                w.append(chunk(i)).await;
            }
            let mut reader = log.terminal();
            let consumer = tokio::spawn(async move { read_all(&mut reader).await });
            for i in before..2000 {
                w.append(chunk(i)).await;
                if i % 3 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            drop(w);
            assert!(consumer.await.unwrap() == expected, "before={before}");
            assert!(log.reader(0).read_to_end().await.unwrap() == expected);
        }
    }

    /// Past the log's cap a consumer that falls behind is not detached (the log could not
    /// fill the gap): the writer waits for it, and it gets every byte, the stream's end
    /// included. (Before: detached at the cap, it lost what came while it drained its
    /// queue, and a long burst's last line never reached the session's screen.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_cap_a_slow_consumer_loses_nothing() {
        // A cap smaller than the first few chunks: nearly all of the stream is live only.
        let (_dir, mut w, log) = log(64);
        let mut reader = log.terminal();
        // Attached and live before the output starts.
        assert!(pass(&mut reader, &mut w, b"start ").await == "start ");
        let chunks = LIVE_CHUNKS * 20;
        let expected: Vec<u8> = (0..chunks).flat_map(|i| chunk(i).to_vec()).collect();
        let appended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writer = {
            let appended = Arc::clone(&appended);
            tokio::spawn(async move {
                for i in 0..chunks {
                    w.append(chunk(i)).await;
                    appended.fetch_add(1, std::sync::atomic::Ordering::Release);
                }
            })
        };
        // The consumer is slow: it reads nothing until its queue is full (far past the
        // cap), then lets the writer go on as far as it will before it starts reading.
        while appended.load(std::sync::atomic::Ordering::Acquire) < LIVE_CHUNKS {
            tokio::task::yield_now().await;
        }
        for _ in 0..1000 {
            tokio::task::yield_now().await;
        }
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let c = reader.next_chunk().await.unwrap().unwrap();
            got.extend_from_slice(&c);
            tokio::task::yield_now().await;
        }
        writer.await.unwrap();
        assert!(got == expected, "the consumer missed output past the cap");
        assert!(reader.is_live());
    }

    /// A consumer detached while the log still held everything, and still catching up from
    /// it when the cap is crossed, is waited for: it reads the log to its end, goes live,
    /// and gets the rest of the stream, its end included. (Before: the writer went on
    /// without it, and everything printed past the cap while it caught up, a burst's last
    /// line and prompt included, was lost to it; nobody waited on anything, the session's
    /// screen just never showed them.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_consumer_catching_up_when_the_cap_is_crossed_loses_nothing() {
        let chunks = LIVE_CHUNKS * 6;
        let stream: Vec<Bytes> = (0..chunks).map(chunk).collect();
        // The log holds the first 3 × LIVE_CHUNKS chunks (and part of the next): the
        // consumer is detached long before the cap, and the rest is live only.
        let in_log = LIVE_CHUNKS * 3;
        let cap: usize =
            "start ".len() + stream[..in_log].iter().map(Bytes::len).sum::<usize>() + 1;
        let (_dir, mut w, log) = log(cap as u64);
        let mut reader = log.terminal();
        assert!(pass(&mut reader, &mut w, b"start ").await == "start ");
        assert!(reader.is_live());
        let expected: Vec<u8> = stream.iter().flat_map(|c| c.to_vec()).collect();
        let tap = Arc::clone(&w.tap);
        let appended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writer = {
            let appended = Arc::clone(&appended);
            tokio::spawn(async move {
                for c in stream {
                    w.append(c).await;
                    appended.fetch_add(1, std::sync::atomic::Ordering::Release);
                }
            })
        };
        // The consumer reads nothing until the writer has reached the cap, and then until
        // it has passed it or stays there (waiting for the consumer) for many yields.
        while appended.load(std::sync::atomic::Ordering::Acquire) < in_log {
            tokio::task::yield_now().await;
        }
        for _ in 0..10_000 {
            if appended.load(std::sync::atomic::Ordering::Acquire) > in_log + 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        {
            let state = tap.lock();
            assert!(
                state.consumer.is_none(),
                "the consumer fell behind in the log"
            );
        }
        let got = read_all(&mut reader).await;
        writer.await.unwrap();
        assert!(
            got == expected,
            "the consumer missed {} bytes past the cap",
            expected.len().saturating_sub(got.len())
        );
    }

    /// A consumer that attaches while an append is between handing out its chunk and
    /// publishing its length reads that chunk from the log, then goes live.
    #[tokio::test]
    async fn attaching_during_an_append_waits_for_its_seam() {
        let (_dir, mut w, log) = log(1 << 20);
        w.append(Bytes::from_static(b"one ")).await;
        let in_flight = Bytes::from_static(b"two ");
        w.tap.hand_out(&in_flight, true);
        let mut reader = log.terminal();
        assert_eq!(&reader.next_chunk().await.unwrap().unwrap()[..], b"one ");
        // Caught up with the log while the append is in flight: attaches, seam pending
        // (`join!` polls the reader first); then the append completes as `append` does.
        let (c, ()) = tokio::join!(reader.next_chunk(), async {
            w.store(in_flight).await;
            w.tap.published(w.state.borrow().len);
        });
        let c = c.unwrap().unwrap();
        assert_eq!(&c[..], b"two ");
        assert!(reader.is_live());
        w.append(Bytes::from_static(b"three")).await;
        assert_eq!(&reader.next_chunk().await.unwrap().unwrap()[..], b"three");
        drop(w);
        assert!(reader.next_chunk().await.unwrap().is_none());
    }

    /// Appends `data` while `reader` waits for output (as a terminal's pump does), and
    /// returns what the reader got.
    async fn pass(reader: &mut TerminalReader, w: &mut LogWriter, data: &'static [u8]) -> Bytes {
        // `join!` polls the reader first: it is waiting (caught up, so attached) before the
        // append starts.
        let (chunk, ()) = tokio::join!(reader.next_chunk(), w.append(Bytes::from_static(data)));
        chunk.unwrap().unwrap()
    }

    /// A consumer that stops reading is detached when its queue is full (the writer never
    /// waits and holds at most LIVE_CHUNKS chunks for it); it then catches up from the log
    /// and goes live again, missing and repeating nothing.
    #[tokio::test]
    async fn a_stalled_consumer_is_detached_and_catches_up_from_the_log() {
        let (_dir, mut w, log) = log(1 << 30);
        let mut reader = log.terminal();
        w.append(chunk(0)).await;
        let mut seen = reader.next_chunk().await.unwrap().unwrap().to_vec();
        seen.extend_from_slice(&pass(&mut reader, &mut w, b"<live>").await);
        assert!(reader.is_live());
        // Stalled: the writer goes on far beyond the queue.
        let n = LIVE_CHUNKS * 4;
        for i in 1..n {
            w.append(chunk(i)).await;
        }
        {
            let tap = w.tap.lock();
            assert!(tap.consumer.is_none(), "the stalled consumer was detached");
        }
        // The writer went on without it; now it reads again, and goes live again.
        for _ in 0..n {
            seen.extend_from_slice(&reader.next_chunk().await.unwrap().unwrap());
            if seen.ends_with(&chunk(n - 1)) {
                break;
            }
        }
        seen.extend_from_slice(&pass(&mut reader, &mut w, b"<live again>").await);
        assert!(reader.is_live());
        drop(w);
        assert!(reader.next_chunk().await.unwrap().is_none());
        let mut expected = chunk(0).to_vec();
        expected.extend_from_slice(b"<live>");
        for i in 1..n {
            expected.extend_from_slice(&chunk(i));
        }
        expected.extend_from_slice(b"<live again>");
        assert!(seen == expected);
        assert!(log.reader(0).read_to_end().await.unwrap() == expected);
    }

    /// While one consumer is live another one follows the log; once the first is gone, a
    /// new one can go live.
    #[tokio::test]
    async fn one_live_consumer_at_a_time() {
        let (_dir, mut w, log) = log(1 << 20);
        let mut first = log.terminal();
        let mut second = log.terminal();
        assert_eq!(&pass(&mut first, &mut w, b"a").await[..], b"a");
        assert!(first.is_live());
        assert_eq!(&pass(&mut second, &mut w, b"b").await[..], b"a");
        assert!(!second.is_live());
        assert_eq!(&first.next_chunk().await.unwrap().unwrap()[..], b"b");
        assert_eq!(&second.next_chunk().await.unwrap().unwrap()[..], b"b");
        drop(first);
        assert_eq!(&pass(&mut second, &mut w, b"c").await[..], b"c");
        assert!(second.is_live());
    }

    /// The cap limits the log, not the live terminal: a live consumer keeps seeing output
    /// after the log's cap, and the log holds exactly the cap and one marker.
    #[tokio::test]
    async fn the_cap_limits_the_log_not_the_live_terminal() {
        let (_dir, mut w, log) = log(10);
        let mut reader = log.terminal();
        assert_eq!(&pass(&mut reader, &mut w, b"01234").await[..], b"01234");
        assert!(reader.is_live());
        assert_eq!(
            &pass(&mut reader, &mut w, b"56789abc").await[..],
            b"56789abc"
        );
        assert_eq!(&pass(&mut reader, &mut w, b"def").await[..], b"def");
        drop(w);
        assert!(reader.next_chunk().await.unwrap().is_none());
        let text = String::from_utf8(log.reader(0).read_to_end().await.unwrap()).unwrap();
        assert!(text.starts_with("0123456789\r\n[tandem: output limit of 10 bytes"));
        assert_eq!(text.matches("output limit").count(), 1);
    }

    /// A finished job's log (from an earlier run) is read to its end.
    #[tokio::test]
    async fn a_finished_log_is_read_to_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        std::fs::write(&path, b"from before").unwrap();
        let log = output_log::open_finished(&path, 0).unwrap();
        assert_eq!(read_all(&mut log.terminal()).await, b"from before");
    }
}
