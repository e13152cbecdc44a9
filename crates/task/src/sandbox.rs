//! What a task asks of its sandbox, as plain values: resource limits, files placed before
//! setup, size-limited tmpfs mounts. `tandem-scenario` turns them into the worker's job
//! spec; this crate does not depend on the worker, so the limits' checks are repeated here
//! (a test in `tandem-scenario` holds both to the same answers).

use std::path::PathBuf;

/// Smallest memory limit accepted: below this a shell cannot even start (the worker's
/// own minimum).
pub const MIN_MEMORY: u64 = 4 * 1024 * 1024;
/// Smallest CPU limit accepted (a 1 ms quota per 100 ms period; the worker's minimum).
pub const MIN_CPU: f64 = 0.01;

/// Resource limits of a task's sandbox. `None` means unlimited. The fields are the
/// worker's; a task file sets cpu, memory, pids and the two bandwidths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskLimits {
    /// CPU time in cores (0.5 = half a core).
    pub cpu: Option<f64>,
    /// Memory in bytes (swap is capped too).
    pub memory: Option<u64>,
    /// Number of processes and threads.
    pub pids: Option<u64>,
    /// Read bandwidth, bytes per second.
    pub io_read_bps: Option<u64>,
    /// Write bandwidth, bytes per second.
    pub io_write_bps: Option<u64>,
    /// Read operations per second.
    pub io_read_iops: Option<u64>,
    /// Write operations per second.
    pub io_write_iops: Option<u64>,
}

impl TaskLimits {
    /// Rejects zero, negative and absurd values, naming the field: the same rules and
    /// messages as the worker's `Limits::validate`, so that a task that validates here
    /// starts there.
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
}

/// This machine's memory in bytes (`MemTotal` of `/proc/meminfo`), if it can be read.
fn total_memory() -> Option<u64> {
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

/// A file placed in the sandbox's root before setup runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFile {
    /// Absolute path inside the sandbox.
    pub path: PathBuf,
    /// Content.
    pub content: Vec<u8>,
    /// Permission bits (e.g. 0o644).
    pub mode: u32,
    /// Owner uid, resolved from the root filesystem's `/etc/passwd` or given as a number.
    pub uid: u32,
    /// Group gid, resolved the same way.
    pub gid: u32,
}

/// A size-limited tmpfs mounted in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTmpfs {
    /// Absolute path inside the sandbox (created if missing).
    pub target: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_field_they_refuse() {
        let ok = TaskLimits {
            cpu: Some(MIN_CPU),
            memory: Some(MIN_MEMORY),
            pids: Some(1),
            io_read_bps: Some(1),
            ..TaskLimits::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let cases = [
            (
                TaskLimits {
                    cpu: Some(0.0),
                    ..ok.clone()
                },
                "limits.cpu:",
            ),
            (
                TaskLimits {
                    cpu: Some(f64::NAN),
                    ..ok.clone()
                },
                "limits.cpu:",
            ),
            (
                TaskLimits {
                    cpu: Some(1e9),
                    ..ok.clone()
                },
                "limits.cpu:",
            ),
            (
                TaskLimits {
                    memory: Some(MIN_MEMORY - 1),
                    ..ok.clone()
                },
                "limits.memory:",
            ),
            (
                TaskLimits {
                    memory: Some(u64::MAX),
                    ..ok.clone()
                },
                "limits.memory:",
            ),
            (
                TaskLimits {
                    pids: Some(0),
                    ..ok.clone()
                },
                "limits.pids:",
            ),
            (
                TaskLimits {
                    io_write_bps: Some(0),
                    ..ok.clone()
                },
                "limits.io_write_bps:",
            ),
        ];
        for (limits, field) in cases {
            let err = limits.validate().expect_err(field);
            assert!(err.starts_with(field), "{err}");
        }
    }
}
