//! tandem's sandbox limits and capability sets, as plain values with their checks.
//!
//! Shared by the job worker (which enforces them) and the task format (which reads them
//! from task files without linking the worker), so a limit is checked by one function,
//! with one message, wherever it comes from.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod accounts;
pub mod capability;

pub use capability::CapSet;
use serde::{Deserialize, Serialize};

/// Resource limits of a job. `None` means unlimited (for `disk`: the default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// CPU time in cores (0.5 = half a core), enforced as a CFS quota per 100 ms period.
    pub cpu: Option<f64>,
    /// Memory in bytes (swap is capped too: the job cannot swap beyond it).
    pub memory: Option<u64>,
    /// Number of processes and threads of the job's own (not counting tandem's init pair).
    pub pids: Option<u64>,
    /// Read bandwidth on the state dir's disk, bytes per second.
    pub io_read_bps: Option<u64>,
    /// Write bandwidth on the state dir's disk, bytes per second.
    pub io_write_bps: Option<u64>,
    /// Read operations per second on the state dir's disk.
    pub io_read_iops: Option<u64>,
    /// Write operations per second on the state dir's disk.
    pub io_write_iops: Option<u64>,
    /// Size of the sandbox's writable layer in bytes ([`DEFAULT_DISK`] when unset): what
    /// its processes can write anywhere in its root (`/tmp` included). The layer is a
    /// tmpfs, so what is written counts towards `memory` too.
    pub disk: Option<u64>,
}

/// Widest terminal a job may have: sessions model every cell of the screen (about 30
/// bytes each), and a client's claim of a 65535-column window must not cost the daemon
/// gigabytes. 500×200 cells is about 3 MB per screen.
pub const MAX_TERMINAL_COLS: u16 = 500;
/// Tallest terminal a job may have.
pub const MAX_TERMINAL_ROWS: u16 = 200;

/// A terminal size a client states, as `(cols, rows)` within 1×1 and
/// [`MAX_TERMINAL_COLS`] × [`MAX_TERMINAL_ROWS`].
pub fn clamp_terminal(cols: u32, rows: u32) -> (u16, u16) {
    let clamp = |n: u32, max: u16| u16::try_from(n).unwrap_or(max).clamp(1, max);
    (
        clamp(cols, MAX_TERMINAL_COLS),
        clamp(rows, MAX_TERMINAL_ROWS),
    )
}

/// Most bytes of file content placed in a new sandbox (a job's `files`, a task's
/// `files`), all files together: they travel to the sandbox's init in memory.
pub const MAX_FILES_BYTES: usize = 16 << 20;

/// Default size of a sandbox's writable layer.
pub const DEFAULT_DISK: u64 = 1 << 30;
/// Smallest writable layer accepted.
pub const MIN_DISK: u64 = 1 << 20;

/// Smallest memory limit accepted: below this a shell cannot even start.
pub const MIN_MEMORY: u64 = 4 * 1024 * 1024;
/// Smallest CPU limit accepted (a 1 ms quota per 100 ms period).
pub const MIN_CPU: f64 = 0.01;

impl Limits {
    /// True when any disk IO limit is set (those need a block device).
    pub fn has_io(&self) -> bool {
        self.io_read_bps.is_some()
            || self.io_write_bps.is_some()
            || self.io_read_iops.is_some()
            || self.io_write_iops.is_some()
    }

    /// Rejects zero, negative and absurd values, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some(cpu) = self.cpu {
            if !cpu.is_finite() || cpu < MIN_CPU {
                return Err(format!(
                    "limits.cpu: {cpu} is not a positive number of cores (minimum {MIN_CPU})"
                ));
            }
            if cpu > cpus as f64 {
                return Err(format!(
                    "limits.cpu: {cpu} cores is more than this machine's {cpus}"
                ));
            }
        }
        if let Some(memory) = self.memory {
            if memory < MIN_MEMORY {
                return Err(format!(
                    "limits.memory: {memory} bytes is below the minimum of {MIN_MEMORY} (4 MiB)"
                ));
            }
            if let Some(total) = total_memory()
                && memory > total
            {
                return Err(format!(
                    "limits.memory: {memory} bytes is more than this machine's {total}"
                ));
            }
        }
        if let Some(pids) = self.pids
            && !(1..=4_194_304).contains(&pids)
        {
            return Err(format!(
                "limits.pids: {pids} is out of range (1 to 4194304)"
            ));
        }
        if let Some(disk) = self.disk {
            if disk < MIN_DISK {
                return Err(format!(
                    "limits.disk: {disk} bytes is below the minimum of {MIN_DISK} (1 MiB)"
                ));
            }
            if let Some(total) = total_memory()
                && disk > total
            {
                return Err(format!(
                    "limits.disk: {disk} bytes is more than this machine's memory ({total}); \
                     a sandbox's writable layer is held in memory"
                ));
            }
        }
        for (name, value) in [
            ("io_read_bps", self.io_read_bps),
            ("io_write_bps", self.io_write_bps),
            ("io_read_iops", self.io_read_iops),
            ("io_write_iops", self.io_write_iops),
        ] {
            if value == Some(0) {
                return Err(format!("limits.{name}: must be positive"));
            }
        }
        Ok(())
    }

    /// These limits, with each unset one taken from `defaults`.
    pub fn or(&self, defaults: &Limits) -> Limits {
        Limits {
            cpu: self.cpu.or(defaults.cpu),
            memory: self.memory.or(defaults.memory),
            pids: self.pids.or(defaults.pids),
            io_read_bps: self.io_read_bps.or(defaults.io_read_bps),
            io_write_bps: self.io_write_bps.or(defaults.io_write_bps),
            io_read_iops: self.io_read_iops.or(defaults.io_read_iops),
            io_write_iops: self.io_write_iops.or(defaults.io_write_iops),
            disk: self.disk.or(defaults.disk),
        }
    }
}

/// This machine's memory in bytes (`MemTotal` of `/proc/meminfo`), if it can be read.
pub fn total_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_validation_names_the_field() {
        let ok = Limits {
            cpu: Some(0.5),
            memory: Some(64 << 20),
            pids: Some(100),
            io_write_bps: Some(10 << 20),
            ..Limits::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let bad = [
            (
                Limits {
                    cpu: Some(-1.0),
                    ..Default::default()
                },
                "limits.cpu",
            ),
            (
                Limits {
                    cpu: Some(f64::NAN),
                    ..Default::default()
                },
                "limits.cpu",
            ),
            (
                Limits {
                    cpu: Some(1e9),
                    ..Default::default()
                },
                "limits.cpu",
            ),
            (
                Limits {
                    memory: Some(0),
                    ..Default::default()
                },
                "limits.memory",
            ),
            (
                Limits {
                    memory: Some(u64::MAX),
                    ..Default::default()
                },
                "limits.memory",
            ),
            (
                Limits {
                    pids: Some(0),
                    ..Default::default()
                },
                "limits.pids",
            ),
            (
                Limits {
                    disk: Some(4096),
                    ..Default::default()
                },
                "limits.disk",
            ),
            (
                Limits {
                    disk: Some(u64::MAX),
                    ..Default::default()
                },
                "limits.disk",
            ),
            (
                Limits {
                    io_read_iops: Some(0),
                    ..Default::default()
                },
                "limits.io_read_iops",
            ),
        ];
        for (limits, field) in bad {
            let err = limits.validate().unwrap_err();
            assert!(err.starts_with(field), "{err:?} should name {field}");
        }
    }
}
