//! The shared terminal's fan-out: one PTY reader feeds a vt100 parser (the current
//! screen, for late joiners and resyncs), the recording, and every client's own bounded
//! queue. A client that cannot keep up is never waited for: when its queue is full it is
//! marked lagged and skipped; once it has drained what it had, it gets a fresh snapshot of
//! the screen and continues live. Snapshot-and-resume happen under the same lock as the
//! reader's "parse and push", so a client never misses or repeats a byte in between.

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

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
    /// Wakes the client's reader when it is removed or marked lagged.
    wake: tokio::sync::Notify,
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

    /// The terminal's size changed.
    pub(crate) fn resize(&self, rows: u16, cols: u16) {
        self.lock()
            .parser
            .screen_mut()
            .set_size(nonzero(rows), nonzero(cols));
    }

    /// Terminal size (rows, cols) as the screen model sees it.
    pub(crate) fn size(&self) -> (u16, u16) {
        let (rows, cols) = self.lock().parser.screen().size();
        (rows.get(), cols.get())
    }

    /// Adds a client; its queue starts with a snapshot of the current screen.
    pub(crate) fn join(&self) -> ClientQueue {
        let (tx, rx) = mpsc::channel(CLIENT_MESSAGES);
        let slot = Arc::new(Slot {
            tx,
            lagged: AtomicBool::new(false),
            queued: std::sync::atomic::AtomicUsize::new(0),
            live: AtomicBool::new(true),
            wake: tokio::sync::Notify::new(),
        });
        let mut state = self.lock();
        let snapshot = Bytes::from(state.parser.screen().state_formatted().into_bytes());
        // The queue is empty: the snapshot always fits.
        let _ = slot.tx.try_send(snapshot);
        state.clients.push(Arc::clone(&slot));
        ClientQueue { slot, rx }
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

    /// A fresh snapshot for a lagged client, and live delivery again from this point.
    fn resync(&self, slot: &Slot) -> Bytes {
        let state = self.lock();
        slot.queued.store(0, Ordering::Release);
        slot.lagged.store(false, Ordering::Release);
        Bytes::from(state.parser.screen().state_formatted().into_bytes())
    }
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
            if self.slot.lagged.load(Ordering::Acquire) {
                // Drained: catch up with one snapshot instead of the bytes it missed.
                return Some(hub.resync(&self.slot));
            }
            tokio::select! {
                bytes = self.rx.recv() => return bytes.map(|b| self.taken(b)),
                // Removed (drain and end) or lagged (drain and resync): loop.
                _ = self.slot.wake.notified() => {}
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
                let mut tail = String::new();
                while !tail.contains("END-MARK") {
                    let bytes = client.next(&hub).await.expect("live");
                    tail.push_str(&text(&bytes));
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
