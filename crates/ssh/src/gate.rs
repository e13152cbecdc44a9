//! The front door: how many connections there may be, how long a connection may take to
//! log in, and who makes room when too many have not logged in yet.
//!
//! * At most [`SshLimits::max_connections`] connections at all; beyond that a new one is
//!   closed at once.
//! * Every connection must authenticate within [`SshLimits::pre_auth_timeout`] of being
//!   accepted, or it is closed.
//! * At most [`SshLimits::max_unauthenticated`] connections may be waiting to log in; a
//!   new one beyond that evicts the *oldest* waiting one. So a flood of idle connections
//!   can delay a real login by at most one pre-auth timeout, never lock it out; a real
//!   client logs in within a second and leaves the queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The SSH front end's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshLimits {
    /// Time from accepting a connection to its successful login.
    pub pre_auth_timeout: Duration,
    /// Connections waiting to log in, at most.
    pub max_unauthenticated: usize,
    /// Connections, at most.
    pub max_connections: usize,
    /// Session channels per connection (one is a terminal; OpenSSH asks for one).
    pub max_channels: usize,
}

impl Default for SshLimits {
    fn default() -> Self {
        Self {
            pre_auth_timeout: Duration::from_secs(20),
            max_unauthenticated: 256,
            max_connections: 1024,
            max_channels: 4,
        }
    }
}

/// The queue of connections that have not logged in yet, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    waiting: Mutex<VecDeque<Arc<Pending>>>,
    next: AtomicU64,
}

/// One connection's login state.
#[derive(Debug)]
pub(crate) struct Pending {
    id: u64,
    /// It logged in.
    authenticated: AtomicBool,
    /// It was evicted to make room for a newer one.
    evicted: AtomicBool,
    /// Wakes the connection's task when either flag turns true.
    changed: Notify,
}

impl Gate {
    /// Admits a new connection, evicting the oldest waiting one if `max` are waiting.
    pub(crate) fn enter(self: &Arc<Self>, max: usize) -> Arc<Pending> {
        let pending = Arc::new(Pending {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            authenticated: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            changed: Notify::new(),
        });
        let mut waiting = self.lock();
        while waiting.len() >= max.max(1) {
            let Some(oldest) = waiting.pop_front() else {
                break;
            };
            oldest.evicted.store(true, Ordering::Release);
            oldest.changed.notify_one();
        }
        waiting.push_back(Arc::clone(&pending));
        pending
    }

    /// The connection logged in (or ended): it no longer waits.
    pub(crate) fn leave(&self, pending: &Pending) {
        self.lock().retain(|p| p.id != pending.id);
    }

    /// How many connections wait to log in.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Pending>>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Pending {
    /// Marks the login done.
    pub(crate) fn authenticated(&self, gate: &Gate) {
        self.authenticated.store(true, Ordering::Release);
        gate.leave(self);
        self.changed.notify_one();
    }

    pub(crate) fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    pub(crate) fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// Completes when the state changed (see the flags).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiting_connection_makes_room() {
        let gate = Arc::new(Gate::default());
        let a = gate.enter(2);
        let b = gate.enter(2);
        b.authenticated(&gate);
        let c = gate.enter(2);
        assert!(!a.is_evicted(), "b logged in and left the queue");
        let d = gate.enter(2);
        assert!(a.is_evicted(), "a was the oldest waiting");
        assert!(!c.is_evicted() && !d.is_evicted());
        assert_eq!(gate.waiting(), 2);
        gate.leave(&c);
        assert_eq!(gate.waiting(), 1);
    }
}
