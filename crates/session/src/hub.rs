//! The shared terminal's fan-out: one PTY reader feeds a vt100 parser (the current
//! screen, for late joiners and resyncs), the recording, and every client's own bounded
//! queue. A client that cannot keep up is never waited for: when its queue is full it is
//! marked lagged and skipped; once it has drained what it had, it gets a fresh snapshot of
//! the screen and continues live. Snapshot-and-resume happen under the same lock as the
//! reader's "parse and push", so a client never misses or repeats a byte in between.
//!
//! A client whose window is smaller than the terminal (in either dimension) gets no raw
//! bytes, which would wrap into garbage there: it gets frames of a viewport onto the
//! screen model that follows the cursor (`viewport.rs`), at most one per
//! [`FRAME_INTERVAL`] while output comes, each redrawing only the rows that changed. It
//! switches between the two paths whenever its window or the terminal changes size.

use crate::viewport::{FRAME_INTERVAL, Viewport};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bytes of terminal output a client may have queued before it is considered lagging
/// (and later resynced with a snapshot): bounds memory per client.
pub const CLIENT_QUEUE: usize = 256 * 1024;

/// Messages a client's channel holds (output chunks and notices); the byte bound above is
/// what normally applies.
const CLIENT_MESSAGES: usize = 1024;

/// One client's delivery slot.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The client's queue (output chunks, snapshots, its own notices).
    tx: mpsc::Sender<Bytes>,
    /// The reader skipped this client; it needs a snapshot when it has drained.
    lagged: AtomicBool,
    /// Output bytes queued and not yet taken by the client.
    queued: std::sync::atomic::AtomicUsize,
    /// Receives terminal output (false once removed).
    live: AtomicBool,
    /// Wakes the client's reader when it is removed, marked lagged, or has a frame to draw.
    wake: tokio::sync::Notify,
    /// The client's window (rows, cols), once known.
    window: Mutex<Option<(u16, u16)>>,
    /// Its viewport, while its window is smaller than the terminal.
    clip: Mutex<Option<Viewport>>,
    /// `clip` is set (read without its lock on every output).
    clipped: AtomicBool,
    /// Output came since its last frame.
    dirty: AtomicBool,
}

/// The screen and the clients, behind one lock.
struct State {
    /// Current screen.
    parser: vt100::Parser,
    /// Connected clients.
    clients: Vec<Arc<Slot>>,
}

/// Fan-out of one session's terminal.
pub(crate) struct Hub {
    state: Mutex<State>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hub")
    }
}

/// The receiving side of a client's slot.
#[derive(Debug)]
pub(crate) struct ClientQueue {
    pub(crate) slot: Arc<Slot>,
    rx: mpsc::Receiver<Bytes>,
    /// When its last frame was drawn (clipped clients).
    last_frame: Option<Instant>,
}

impl Hub {
    pub(crate) fn new(rows: u16, cols: u16) -> Self {
        Self {
            state: Mutex::new(State {
                parser: vt100::Parser::new(nonzero(rows), nonzero(cols), 0),
                clients: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked (each operation is one
        // parse or one list change).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Terminal output: parsed into the screen and queued for every live client.
    pub(crate) fn output(&self, data: &Bytes) {
        let mut state = self.lock();
        state.parser.process(data);
        for slot in &state.clients {
            if slot.clipped.load(Ordering::Acquire) {
                slot.dirty.store(true, Ordering::Release);
                slot.wake.notify_one();
                continue;
            }
            if !slot.live.load(Ordering::Acquire) || slot.lagged.load(Ordering::Acquire) {
                continue;
            }
            // Counted before it is queued: the client may take it (and subtract it) before
            // `try_send` returns, and a count added after that would stay as a phantom.
            let queued = slot.queued.fetch_add(data.len(), Ordering::AcqRel);
            if queued + data.len() > CLIENT_QUEUE || slot.tx.try_send(data.clone()).is_err() {
                slot.queued.fetch_sub(data.len(), Ordering::AcqRel);
                // Too far behind (or closed): skip it until it has drained and resynced.
                // It may already have drained and be waiting for more: wake it, or it
                // would wait for output that it is now skipped for.
                slot.lagged.store(true, Ordering::Release);
                slot.wake.notify_one();
            }
        }
    }

    /// The terminal's size changed: every client's path is decided again.
    pub(crate) fn resize(&self, rows: u16, cols: u16) {
        let mut state = self.lock();
        state
            .parser
            .screen_mut()
            .set_size(nonzero(rows), nonzero(cols));
        for slot in &state.clients {
            let window = *lock(&slot.window);
            if let Some((r, c)) = window {
                slot.choose_path(r, c, (rows.max(1), cols.max(1)));
            }
        }
    }

    /// A client's window is `rows` × `cols`: smaller than the terminal in either
    /// dimension, it gets a clipped view; otherwise the raw stream.
    pub(crate) fn set_window(&self, slot: &Slot, rows: u16, cols: u16) {
        let state = self.lock();
        let (r, c) = state.parser.screen().size();
        *lock(&slot.window) = Some((rows, cols));
        slot.choose_path(rows, cols, (r.get(), c.get()));
    }

    /// The next frame of a clipped client, if its view changed.
    fn frame(&self, slot: &Slot) -> Option<Bytes> {
        let state = self.lock();
        let mut clip = lock(&slot.clip);
        let frame = clip.as_mut()?.frame(state.parser.screen())?;
        Some(Bytes::from(frame))
    }

    /// Terminal size (rows, cols) as the screen model sees it.
    pub(crate) fn size(&self) -> (u16, u16) {
        let (rows, cols) = self.lock().parser.screen().size();
        (rows.get(), cols.get())
    }

    /// Adds a client of unknown window; its queue starts with a snapshot of the screen.
    #[cfg(test)]
    pub(crate) fn join(&self) -> ClientQueue {
        self.join_with_window(None)
    }

    /// Adds a client whose window is `window` (rows, cols): one smaller than the terminal
    /// starts with a full frame of its clipped view instead of the raw snapshot.
    pub(crate) fn join_with_window(&self, window: Option<(u16, u16)>) -> ClientQueue {
        let (tx, rx) = mpsc::channel(CLIENT_MESSAGES);
        let slot = Arc::new(Slot {
            tx,
            lagged: AtomicBool::new(false),
            queued: std::sync::atomic::AtomicUsize::new(0),
            live: AtomicBool::new(true),
            wake: tokio::sync::Notify::new(),
            window: Mutex::new(None),
            clip: Mutex::new(None),
            clipped: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
        });
        let mut state = self.lock();
        if let Some((rows, cols)) = window {
            let (r, c) = state.parser.screen().size();
            *lock(&slot.window) = Some((rows, cols));
            slot.choose_path(rows, cols, (r.get(), c.get()));
        }
        if !slot.clipped.load(Ordering::Acquire) {
            let snapshot = Bytes::from(state.parser.screen().state_formatted().into_bytes());
            // The queue is empty: the snapshot always fits.
            let _ = slot.tx.try_send(snapshot);
        }
        state.clients.push(Arc::clone(&slot));
        ClientQueue {
            slot,
            rx,
            last_frame: None,
        }
    }

    /// Removes a client.
    pub(crate) fn leave(&self, slot: &Arc<Slot>) {
        slot.close();
        self.lock().clients.retain(|s| !Arc::ptr_eq(s, slot));
    }

    /// Removes every client: their queues close after what they hold.
    pub(crate) fn close_all(&self) {
        let mut state = self.lock();
        for slot in &state.clients {
            slot.close();
        }
        state.clients.clear();
    }

    /// A fresh snapshot for a lagged client, and live delivery again from this point;
    /// `None` if its queue is not empty after all (output may have been queued after the
    /// client last looked, before it was skipped): it drains that first, or those older
    /// bytes would be drawn over the newer snapshot.
    fn resync(&self, queue: &ClientQueue) -> Option<Bytes> {
        let state = self.lock();
        // Output is queued under this lock: an empty queue now stays empty until the
        // snapshot is taken.
        if !queue.rx.is_empty() {
            return None;
        }
        queue.slot.queued.store(0, Ordering::Release);
        queue.slot.lagged.store(false, Ordering::Release);
        Some(Bytes::from(
            state.parser.screen().state_formatted().into_bytes(),
        ))
    }
}

/// A slot's own small locks: each holder does one short, panic-free step.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Terminal sizes are validated ≥ 1 upstream; 1 stands in for a zero that slipped by.
fn nonzero(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).unwrap_or(std::num::NonZeroU16::MIN)
}

impl Slot {
    /// No more output for this client; its reader ends after what is queued.
    pub(crate) fn close(&self) {
        self.live.store(false, Ordering::Release);
        self.wake.notify_one();
    }

    /// Raw stream or clipped view, for a window of `rows` × `cols` on a `terminal`
    /// (rows, cols). Called under the hub's lock, so no output is parsed meanwhile.
    fn choose_path(&self, rows: u16, cols: u16, terminal: (u16, u16)) {
        let smaller = rows < terminal.0 || cols < terminal.1;
        let mut clip = lock(&self.clip);
        match (smaller, clip.as_mut()) {
            (true, Some(view)) => view.resize(rows, cols),
            (true, None) => {
                let mut view = Viewport::new(rows, cols);
                view.invalidate();
                *clip = Some(view);
                self.clipped.store(true, Ordering::Release);
            }
            (false, Some(_)) => {
                // Back to the raw stream, from a snapshot of the screen (as after a lag).
                *clip = None;
                self.clipped.store(false, Ordering::Release);
                self.lagged.store(true, Ordering::Release);
            }
            (false, None) => return,
        }
        self.dirty.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Queues bytes for this client only (a notice); dropped if its queue is full.
    pub(crate) fn notify(&self, bytes: Bytes) {
        let _ = self.tx.try_send(bytes);
    }
}

impl ClientQueue {
    /// Accounts for bytes leaving the queue. Notices were never counted: saturate.
    fn taken(&self, bytes: Bytes) -> Bytes {
        let _ = self
            .slot
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(bytes.len()))
            });
        bytes
    }

    /// The next bytes for this client; `None` once it was removed and has drained.
    pub(crate) async fn next(&mut self, hub: &Hub) -> Option<Bytes> {
        loop {
            if let Ok(bytes) = self.rx.try_recv() {
                return Some(self.taken(bytes));
            }
            if !self.slot.live.load(Ordering::Acquire) {
                return None;
            }
            if self.slot.clipped.load(Ordering::Acquire) && self.slot.dirty.load(Ordering::Acquire)
            {
                let due = self
                    .last_frame
                    .map_or_else(Instant::now, |t| t + FRAME_INTERVAL);
                if Instant::now() < due {
                    // A burst: wait for the frame's time (or a notice, or the end).
                    tokio::select! {
                        bytes = self.rx.recv() => return bytes.map(|b| self.taken(b)),
                        () = tokio::time::sleep_until(due) => {}
                        () = self.slot.wake.notified() => {}
                    }
                    continue;
                }
                self.slot.dirty.store(false, Ordering::Release);
                self.last_frame = Some(Instant::now());
                if let Some(frame) = hub.frame(&self.slot) {
                    return Some(frame);
                }
                continue;
            }
            if self.slot.lagged.load(Ordering::Acquire) {
                // Drained: catch up with one snapshot instead of the bytes it missed.
                if let Some(snapshot) = hub.resync(self) {
                    return Some(snapshot);
                }
                continue;
            }
            tokio::select! {
                bytes = self.rx.recv() => return bytes.map(|b| self.taken(b)),
                // Removed (drain and end), lagged (drain and resync), or a frame to
                // draw: loop.
                () = self.slot.wake.notified() => {}
            }
        }
    }
}

/// The hub's rules without a terminal or a process: what a client gets first, live
/// delivery, the byte bound, lag and resync, notices, and leaving.
#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &Bytes) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// What the queue holds now, without waiting (and without a resync).
    fn queued_now(queue: &mut ClientQueue) -> Vec<Bytes> {
        let mut all = Vec::new();
        while let Ok(bytes) = queue.rx.try_recv() {
            all.push(queue.taken(bytes));
        }
        all
    }

    #[tokio::test]
    async fn a_late_joiner_first_gets_a_snapshot_of_the_screen() {
        let hub = Hub::new(24, 80);
        hub.output(&Bytes::from_static(b"$ echo earlier\r\nearlier\r\n$ "));
        let mut late = hub.join();
        let first = late.next(&hub).await.expect("a snapshot");
        assert!(text(&first).contains("earlier"), "{:?}", text(&first));
        assert!(
            late.rx.is_empty(),
            "the snapshot is all it gets until new output"
        );
        hub.output(&Bytes::from_static(b"next"));
        assert_eq!(late.next(&hub).await.expect("live output"), "next");
    }

    #[tokio::test]
    async fn live_output_reaches_every_client_in_order_and_unchanged() {
        let hub = Hub::new(24, 80);
        let mut a = hub.join();
        let mut b = hub.join();
        queued_now(&mut a);
        queued_now(&mut b);
        for chunk in ["one ", "two ", "three"] {
            hub.output(&Bytes::from(chunk));
        }
        for client in [&mut a, &mut b] {
            assert_eq!(queued_now(client), ["one ", "two ", "three"]);
            assert_eq!(client.slot.queued.load(Ordering::Acquire), 0);
        }
    }

    #[tokio::test]
    async fn a_slow_client_gets_its_queue_worth_then_a_snapshot_and_never_slows_the_others() {
        let hub = Hub::new(24, 80);
        let mut slow = hub.join();
        let mut fast = hub.join();
        queued_now(&mut slow);
        queued_now(&mut fast);
        let chunk = Bytes::from(vec![b'x'; 4096]);
        let chunks = CLIENT_QUEUE / chunk.len() + 8;
        for _ in 0..chunks {
            hub.output(&chunk);
            // The fast client gets every chunk, whatever the slow one does.
            assert_eq!(queued_now(&mut fast), std::slice::from_ref(&chunk));
        }
        assert!(slow.slot.lagged.load(Ordering::Acquire));
        // The slow client's queue holds at most CLIENT_QUEUE bytes of output.
        let held: usize = queued_now(&mut slow).iter().map(Bytes::len).sum();
        assert_eq!(held, CLIENT_QUEUE);
        // Output while it lags is skipped for it …
        hub.output(&Bytes::from_static(b"\r\nafter-the-lag"));
        assert!(slow.rx.is_empty());
        // … and once drained it gets one snapshot of the current screen instead.
        let snapshot = slow.next(&hub).await.expect("a resync snapshot");
        assert!(text(&snapshot).contains("after-the-lag"), "{snapshot:?}");
        assert!(!slow.slot.lagged.load(Ordering::Acquire));
        // Then it is live again, from exactly this point.
        hub.output(&Bytes::from_static(b"live-again"));
        assert_eq!(slow.next(&hub).await.expect("live output"), "live-again");
    }

    #[tokio::test]
    async fn a_lagged_client_drains_what_it_holds_before_its_snapshot() {
        let hub = Hub::new(24, 80);
        let mut client = hub.join();
        queued_now(&mut client);
        let chunk = Bytes::from(vec![b'x'; 4096]);
        while !client.slot.lagged.load(Ordering::Acquire) {
            hub.output(&chunk);
        }
        // Lagged with a full queue (as when output filled it between the client's last
        // look and its resync): no snapshot while older bytes would follow it.
        assert_eq!(hub.resync(&client), None);
        hub.output(&Bytes::from_static(b"\r\nnewest"));
        let mut held = 0;
        let snapshot = loop {
            let bytes = client.next(&hub).await.expect("output, then a snapshot");
            if bytes.iter().all(|&b| b == b'x') {
                held += bytes.len();
                continue;
            }
            break bytes;
        };
        assert_eq!(
            held, CLIENT_QUEUE,
            "every queued byte came before the snapshot"
        );
        assert!(text(&snapshot).contains("newest"), "{snapshot:?}");
        assert!(client.rx.is_empty());
    }

    #[tokio::test]
    async fn many_small_chunks_lag_a_client_once_its_channel_is_full() {
        let hub = Hub::new(24, 80);
        let mut client = hub.join();
        queued_now(&mut client);
        for _ in 0..CLIENT_MESSAGES {
            hub.output(&Bytes::from_static(b"."));
        }
        assert!(!client.slot.lagged.load(Ordering::Acquire));
        hub.output(&Bytes::from_static(b"!"));
        assert!(client.slot.lagged.load(Ordering::Acquire));
        assert_eq!(queued_now(&mut client).len(), CLIENT_MESSAGES);
    }

    #[tokio::test]
    async fn notices_are_delivered_but_not_counted_against_the_byte_bound() {
        let hub = Hub::new(24, 80);
        let mut client = hub.join();
        queued_now(&mut client);
        client.slot.notify(Bytes::from(vec![b'n'; 100]));
        hub.output(&Bytes::from_static(b"0123456789"));
        assert_eq!(client.slot.queued.load(Ordering::Acquire), 10);
        let got = queued_now(&mut client);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], "0123456789");
        // Taking the uncounted notice did not make the count wrap around.
        assert_eq!(client.slot.queued.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_client_that_left_drains_what_it_had_then_ends() {
        let hub = Hub::new(24, 80);
        let mut gone = hub.join();
        let mut staying = hub.join();
        queued_now(&mut gone);
        queued_now(&mut staying);
        hub.output(&Bytes::from_static(b"before"));
        hub.leave(&gone.slot);
        hub.output(&Bytes::from_static(b"after"));
        assert_eq!(gone.next(&hub).await.expect("queued output"), "before");
        assert_eq!(gone.next(&hub).await, None);
        assert_eq!(queued_now(&mut staying), ["before", "after"]);
    }

    #[tokio::test]
    async fn closing_all_ends_every_client_after_what_it_holds() {
        let hub = Hub::new(24, 80);
        let mut a = hub.join();
        let mut b = hub.join();
        queued_now(&mut a);
        queued_now(&mut b);
        hub.output(&Bytes::from_static(b"goodbye"));
        hub.close_all();
        for client in [&mut a, &mut b] {
            assert_eq!(client.next(&hub).await.expect("queued output"), "goodbye");
            assert_eq!(client.next(&hub).await, None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_smaller_window_gets_clipped_frames_at_most_one_per_interval() {
        let hub = Hub::new(30, 100);
        hub.output(&Bytes::from(format!("{}>end", "x".repeat(90))));
        let mut small = hub.join_with_window(Some((15, 60)));
        let mut big = hub.join_with_window(Some((40, 120)));
        // The big one gets the raw snapshot; the small one a frame of its view.
        let first = text(&big.next(&hub).await.unwrap());
        assert!(first.contains(">end"), "{first:?}");
        let frame = text(&small.next(&hub).await.unwrap());
        assert!(
            frame.contains(">end") && frame.contains("columns 36-95 of the 100x30"),
            "{frame:?}"
        );
        // A burst: raw bytes for the big one, one frame for the small one (time is paused:
        // the frame waits for its interval without the test waiting).
        for i in 0..100 {
            hub.output(&Bytes::from(format!("\r\nline {i}")));
        }
        assert_eq!(queued_now(&mut big).len(), 100);
        assert!(small.rx.is_empty(), "no raw bytes for a clipped client");
        let burst = text(&small.next(&hub).await.unwrap());
        assert!(burst.contains("line 99"), "{burst:?}");
        assert!(!small.slot.dirty.load(Ordering::Acquire));
        // Grown to the terminal's size: back to the raw stream, from a snapshot.
        hub.set_window(&small.slot, 30, 100);
        let snapshot = text(&small.next(&hub).await.unwrap());
        assert!(snapshot.contains("line 99") && !snapshot.contains("tandem: rows"));
        hub.output(&Bytes::from_static(b"raw again"));
        assert_eq!(small.next(&hub).await.unwrap(), "raw again");
        assert_eq!(queued_now(&mut big), ["raw again"]);
        // The terminal grows past the big window: it is clipped now.
        hub.resize(50, 130);
        let frame = text(&big.next(&hub).await.unwrap());
        assert!(frame.contains("of the 130x50 terminal"), "{frame:?}");
    }

    #[test]
    fn the_screen_follows_resizes_and_never_has_a_zero_size() {
        let hub = Hub::new(24, 80);
        hub.resize(30, 100);
        assert_eq!(hub.size(), (30, 100));
        hub.resize(0, 0);
        assert_eq!(hub.size(), (1, 1));
        assert_eq!(Hub::new(0, 0).size(), (1, 1));
    }

    /// A client that keeps up, on another thread, while output comes in many small chunks:
    /// every time it is counted as too far behind it is woken to resync, and no count is
    /// left over from chunks it took before they were counted. It always gets to the end
    /// (before both fixes it could wait forever on an empty queue it was skipped for).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_keeps_up_is_never_left_waiting() {
        let hub = Arc::new(Hub::new(24, 80));
        let mut client = hub.join();
        let reader = {
            let hub = Arc::clone(&hub);
            tokio::spawn(async move {
                // The mark may end a chunk, start one, or sit inside a snapshot (which
                // ends with cursor and mode escapes): look before trimming.
                let mut tail = String::new();
                loop {
                    let bytes = client.next(&hub).await.expect("live");
                    tail.push_str(&text(&bytes));
                    if tail.contains("END-MARK") {
                        break;
                    }
                    let keep = tail.len().saturating_sub(16);
                    tail.drain(..keep);
                }
                client.slot.queued.load(Ordering::Acquire)
            })
        };
        for i in 0..300_000 {
            hub.output(&Bytes::from(format!("{i:07}\r\n")));
            if i % 128 == 0 {
                tokio::task::yield_now().await;
            }
        }
        hub.output(&Bytes::from_static(b"END-MARK"));
        let left = tokio::time::timeout(std::time::Duration::from_secs(120), reader)
            .await
            .expect("the client got to the end instead of waiting forever")
            .unwrap();
        assert_eq!(left, 0, "nothing is counted as queued once it has all");
    }
}
