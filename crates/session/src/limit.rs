//! Failed logins per source address (the same policy for the SSH and the web front ends): after [`MAX_FAILURES`] within [`WINDOW`], further
//! attempts from that address are refused without looking at the credentials, until the
//! window has passed. Tokens are 160 random bits; this stops log floods and noisy
//! scanners, not guessing (which is hopeless anyway).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per address within the window.
pub(crate) const MAX_FAILURES: u32 = 10;
/// The window.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// Failed logins by source address; see the module's header.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    /// Failures and the start of their window, by address.
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureLimiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a failed login from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut map = self.lock();
        // Bounded memory: forget expired windows whenever the map grows.
        if map.len() > 10_000 {
            map.retain(|_, (_, start)| now.duration_since(*start) < WINDOW);
        }
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// Takes back one failure of `ip` (its connection logged in after all).
    pub fn forgive(&self, ip: IpAddr) {
        if let Some(entry) = self.lock().get_mut(&ip) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }

    /// Whether `ip` has used up its failures.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let map = self.lock();
        map.get(&ip)
            .is_some_and(|(count, start)| *count >= MAX_FAILURES && start.elapsed() < WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_too_many_failures_per_address() {
        let limiter = FailureLimiter::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(!limiter.blocked(a));
            limiter.failed(a);
        }
        assert!(limiter.blocked(a));
        assert!(!limiter.blocked(b), "other addresses are unaffected");
        limiter.forgive(a);
        assert!(
            !limiter.blocked(a),
            "a login after all takes its failure back"
        );
    }
}
