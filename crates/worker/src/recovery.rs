//! After a crash: what an earlier run of the daemon left behind.
//!
//! A new manager first kills and removes the job cgroups of jobs recorded in its state dir
//! (their processes died with the daemon's control pipes, or are killed here), the warm
//! slots' cgroups it had marked (`warm.rs`) and the jobs' sandbox directories, then loads
//! every recorded job: finished ones keep their status and output; ones that were running
//! are `lost`.

use crate::cgroup;
use crate::manager::{Job, JobManager};
use crate::output_log;
use crate::spec::JobId;
use crate::state;
use crate::status::{JobState, JobStatus};
use crate::supervise::remove_sandbox_dirs;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::{mpsc, watch};

impl JobManager {
    /// Loads the jobs an earlier run recorded: finished ones keep their status and output;
    /// ones that were still starting or running are `lost` (their processes were killed with
    /// that run's daemon, or by `clean_up_after_crash`).
    pub(crate) fn restore_jobs(&self) {
        let Ok(entries) = std::fs::read_dir(&self.inner.jobs_dir) else {
            return;
        };
        let mut restored = 0usize;
        for entry in entries.flatten() {
            let dir = entry.path();
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<JobId>().ok())
            else {
                continue;
            };
            let Some(record) = state::load(&dir) else {
                // Died before its spec was recorded: there is nothing to show.
                tracing::warn!(dir = %dir.display(), "removing a job directory without a record");
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            };
            let mut status = record
                .status
                .unwrap_or_else(|| JobStatus::new(SystemTime::now()));
            if !status.state.is_finished() {
                status.state = JobState::Lost;
                status.ended_at = Some(SystemTime::now());
                tracing::warn!(job = %id, "job was running when the daemon stopped: marked lost");
            }
            let log = match output_log::open_finished(
                &dir.join("output.log"),
                status.output_dropped_bytes,
            ) {
                Ok(log) => log,
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "cannot open the output of a recorded job");
                    continue;
                }
            };
            // Nobody will ever receive: stop() on a finished job returns its status.
            let (commands, _) = mpsc::channel(1);
            let job = Arc::new(Job {
                id,
                spec: Arc::new(record.spec),
                status: watch::Sender::new(status),
                dir,
                log,
                cgroup: Mutex::new(Arc::new(cgroup::Detached)),
                parent: None,
                layout: None,
                sandbox: Mutex::new(None),
                ids: Mutex::new(None),
                stopping: AtomicBool::new(false),
                pty: Mutex::new(None),
                commands,
                supervisor: Mutex::new(None),
            });
            job.persist();
            self.write_jobs().insert(id, job);
            restored += 1;
        }
        if restored > 0 {
            tracing::info!(jobs = restored, "restored the jobs of an earlier run");
        }
    }

    /// Kills and removes leftover job cgroups and sandbox directories. Runs before any job
    /// of this manager exists, so everything found is a leftover.
    pub(crate) fn clean_up_after_crash(&self) {
        for group in self.inner.cgroups.stale() {
            // Only cgroups of jobs recorded in this state dir: another daemon on the same
            // host (other state dir, same cgroup parent) owns the rest.
            // Warm slots' cgroups are ours if their marker is (see `warm.rs`).
            let ours = group
                .paths()
                .first()
                .and_then(|p| p.file_name())
                .is_some_and(|name| {
                    let warm = name
                        .to_str()
                        .is_some_and(|n| n.starts_with(crate::warm::WARM_PREFIX));
                    if warm {
                        self.inner.state_dir.join("warm").join(name).is_dir()
                    } else {
                        self.inner.jobs_dir.join(name).is_dir()
                    }
                });
            if !ours {
                continue;
            }
            tracing::warn!(cgroup = ?group.paths(), "removing a job cgroup left by an earlier run");
            if let Err(e) = cgroup::destroy_blocking(group.as_ref()) {
                tracing::warn!(cgroup = ?group.paths(), error = %e, "cannot remove stale cgroup");
            }
        }
        let _ = std::fs::remove_dir_all(self.inner.state_dir.join("warm"));
        if let Ok(entries) = std::fs::read_dir(&self.inner.jobs_dir) {
            for entry in entries.flatten() {
                remove_sandbox_dirs(&entry.path());
            }
        }
    }
}
