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
    /// Wakes the client's reader when it is removed.
    closed: tokio::sync::Notify,
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
            let queued = slot.queued.load(Ordering::Acquire);
            if queued + data.len() > CLIENT_QUEUE || slot.tx.try_send(data.clone()).is_err() {
                // Too far behind (or closed): skip it until it has drained and resynced.
                slot.lagged.store(true, Ordering::Release);
            } else {
                slot.queued.fetch_add(data.len(), Ordering::AcqRel);
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
            closed: tokio::sync::Notify::new(),
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
        self.closed.notify_one();
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
                // Removed: loop to drain and end.
                _ = self.slot.closed.notified() => {}
            }
        }
    }
}
