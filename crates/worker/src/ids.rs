//! Host uid ranges of sandboxes: each sandbox's user namespace maps its ids `0..65536` to
//! a range of the host's of its own, so that two sandboxes never share a host uid (kernel
//! objects accounted per user, like inotify instances or `RLIMIT_NPROC`, stay apart, and a
//! process that somehow reached another sandbox would be nobody there).
//!
//! Ranges are leased from a process-wide table starting at a configured host uid (default
//! [`DEFAULT_FIRST_UID`], above every regular and system account and below 2³¹, which some
//! tools read as negative); a lease ends when the sandbox's last process is gone. The host
//! uid just below the first range is the one checks run as (see `sandbox::check`).

use crate::protocol::IdMap;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// Ids per sandbox: 0 (root) to 65535 (nobody is 65534).
pub const IDS_PER_SANDBOX: u32 = 65536;
/// Default first host uid of sandbox ranges (0x5000_0000).
pub const DEFAULT_FIRST_UID: u32 = 0x5000_0000;
/// Default number of ranges (so of sandboxes at once).
pub const DEFAULT_SANDBOX_SLOTS: u32 = 4096;

/// Bases of the ranges in use, across every manager of this process.
static LEASED: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// A leased range; released on drop.
#[derive(Debug)]
pub(crate) struct IdLease {
    /// The range.
    pub map: IdMap,
}

impl IdLease {
    /// The lowest free range of the `slots` ranges from `first`.
    pub(crate) fn take(first: u32, slots: u32) -> Result<Self, String> {
        let mut leased = LEASED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let base = (0..slots)
            .map(|slot| first + slot * IDS_PER_SANDBOX)
            .find(|base| !leased.contains(base))
            .ok_or_else(|| {
                format!("all {slots} sandbox uid ranges are in use: too many sandboxes at once")
            })?;
        leased.insert(base);
        Ok(Self {
            map: IdMap {
                host_base: base,
                count: IDS_PER_SANDBOX,
            },
        })
    }
}

impl Drop for IdLease {
    fn drop(&mut self) {
        LEASED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.map.host_base);
    }
}

/// Checks a configured range table: it must not include host uid 0..65535 (regular
/// accounts) and must fit below 2³²−1 (the kernel's invalid uid).
pub(crate) fn check_config(first: u32, slots: u32) -> Result<(), String> {
    let end = u64::from(first) + u64::from(slots) * u64::from(IDS_PER_SANDBOX);
    if first < IDS_PER_SANDBOX + 1 || slots == 0 || end >= u64::from(u32::MAX) {
        return Err(format!(
            "sandbox uid ranges: {slots} ranges of {IDS_PER_SANDBOX} from host uid {first} must \
             start above {IDS_PER_SANDBOX} and end below {}",
            u32::MAX
        ));
    }
    Ok(())
}

/// The host uid checks run as.
pub(crate) fn check_uid(first: u32) -> u32 {
    first - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_distinct_and_released() {
        let first = 0x6000_0000;
        let a = IdLease::take(first, 2).unwrap();
        let b = IdLease::take(first, 2).unwrap();
        assert_ne!(a.map.host_base, b.map.host_base);
        assert!(IdLease::take(first, 2).is_err(), "only two ranges");
        let base = a.map.host_base;
        drop(a);
        assert_eq!(IdLease::take(first, 2).unwrap().map.host_base, base);
    }

    #[test]
    fn config_bounds() {
        assert!(check_config(DEFAULT_FIRST_UID, DEFAULT_SANDBOX_SLOTS).is_ok());
        assert!(check_config(1000, 1).is_err());
        assert!(check_config(u32::MAX - 10, 1).is_err());
    }
}
