//! A task's sandbox values (plain types of `tandem-task`, which does not know the worker)
//! as the worker's job spec types. Functions rather than `From` impls: both sides are
//! types of other crates, which Rust's orphan rule does not let this crate connect.

use tandem_task::{TaskFile, TaskLimits, TaskTmpfs};
use tandem_worker::{FileSpec, Limits, TmpfsMount};

/// A task's limits as the worker's.
pub fn limits(l: &TaskLimits) -> Limits {
    Limits {
        cpu: l.cpu,
        memory: l.memory,
        pids: l.pids,
        io_read_bps: l.io_read_bps,
        io_write_bps: l.io_write_bps,
        io_read_iops: l.io_read_iops,
        io_write_iops: l.io_write_iops,
    }
}

/// A task's file as the worker's (owners are always resolved to numbers).
pub fn file(f: &TaskFile) -> FileSpec {
    FileSpec {
        path: f.path.clone(),
        content: f.content.clone(),
        mode: f.mode,
        uid: Some(f.uid),
        gid: Some(f.gid),
    }
}

/// A task's tmpfs mount as the worker's.
pub fn tmpfs(t: &TaskTmpfs) -> TmpfsMount {
    TmpfsMount {
        target: t.target.clone(),
        size: t.size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_task::{MIN_CPU, MIN_MEMORY};

    /// `tandem-task` repeats the worker's limit checks (it cannot call them): both must
    /// give the same answer, message included, or a task that validates would not start.
    #[test]
    fn task_limits_are_checked_exactly_as_the_worker_checks_them() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let ok = TaskLimits::default();
        let mut cases = vec![ok.clone()];
        for cpu in [
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            MIN_CPU,
            MIN_CPU / 2.0,
            0.5,
            cpus,
            cpus + 0.5,
        ] {
            cases.push(TaskLimits {
                cpu: Some(cpu),
                ..ok.clone()
            });
        }
        for memory in [0, MIN_MEMORY - 1, MIN_MEMORY, 1 << 30, u64::MAX] {
            cases.push(TaskLimits {
                memory: Some(memory),
                ..ok.clone()
            });
        }
        for pids in [0, 1, 4_194_304, 4_194_305] {
            cases.push(TaskLimits {
                pids: Some(pids),
                ..ok.clone()
            });
        }
        for rate in [0, 1] {
            cases.push(TaskLimits {
                io_read_bps: Some(rate),
                ..ok.clone()
            });
            cases.push(TaskLimits {
                io_write_bps: Some(rate),
                ..ok.clone()
            });
            cases.push(TaskLimits {
                io_read_iops: Some(rate),
                ..ok.clone()
            });
            cases.push(TaskLimits {
                io_write_iops: Some(rate),
                ..ok.clone()
            });
        }
        for case in cases {
            assert_eq!(case.validate(), limits(&case).validate(), "{case:?}");
        }
    }

    #[test]
    fn files_and_mounts_keep_every_field() {
        let f = TaskFile {
            path: "/etc/motd".into(),
            content: b"hi".to_vec(),
            mode: 0o640,
            uid: 65534,
            gid: 4,
        };
        assert_eq!(
            file(&f),
            FileSpec {
                path: "/etc/motd".into(),
                content: b"hi".to_vec(),
                mode: 0o640,
                uid: Some(65534),
                gid: Some(4),
            }
        );
        let t = TaskTmpfs {
            target: "/data".into(),
            size: 10 << 20,
        };
        assert_eq!(
            tmpfs(&t),
            TmpfsMount {
                target: "/data".into(),
                size: 10 << 20
            }
        );
    }
}
