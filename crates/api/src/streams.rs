//! Counting live server streams: each stream holds a guard; the count is observable so
//! tests can wait for it to return to zero after a client goes away.

use std::sync::Arc;
use tokio::sync::watch;

/// Shared counter of live streams.
#[derive(Debug, Clone)]
pub struct StreamTracker {
    count: Arc<watch::Sender<usize>>,
}

impl Default for StreamTracker {
    fn default() -> Self {
        Self {
            count: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl StreamTracker {
    /// A guard counting one stream until dropped.
    pub fn guard(&self) -> StreamGuard {
        self.count.send_modify(|c| *c += 1);
        StreamGuard {
            count: Arc::clone(&self.count),
        }
    }

    /// Watches the number of live streams.
    pub fn watch(&self) -> watch::Receiver<usize> {
        self.count.subscribe()
    }
}

/// Decrements the count when the stream it belongs to is dropped.
#[derive(Debug)]
pub struct StreamGuard {
    count: Arc<watch::Sender<usize>>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.count.send_modify(|c| *c -= 1);
    }
}
