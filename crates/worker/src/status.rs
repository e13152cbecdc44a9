//! The state machine of a job and the status snapshot callers see.

use crate::cgroup::ResourceUsage;
use crate::spec::{JobId, JobSpec};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::SystemTime;

pub use crate::protocol::ExitOutcome;

/// Where a job is in its life: `starting → running → one of the final states`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// `start` is setting the job up.
    Starting,
    /// The command was exec'd and has not ended.
    Running,
    /// The command exited on its own with this code.
    Exited {
        /// Exit code, 0–255.
        code: i32,
    },
    /// A signal killed the command, not sent by a stop.
    Signaled {
        /// Signal number.
        signal: i32,
    },
    /// A stop ended the job.
    Stopped {
        /// True when the grace period ran out and the job was killed; false when the
        /// command ended after the stop signal on its own terms.
        forced: bool,
        /// How the main process ended (on `forced`, always SIGKILL).
        outcome: ExitOutcome,
    },
    /// The kernel's OOM killer killed the job for exceeding its memory limit.
    OomKilled {
        /// Peak memory of the job, where the cgroup version reports it.
        memory_peak_bytes: Option<u64>,
    },
    /// The daemon stopped (crashed, or was killed) while the job was running; its
    /// processes were killed when the next daemon started. The output up to then is kept.
    Lost,
    /// The job could not run or its supervision broke; the reason says why.
    Failed {
        /// Human-readable cause including the OS error.
        reason: String,
    },
}

impl JobState {
    /// True for every state a job can no longer leave.
    pub fn is_finished(&self) -> bool {
        !matches!(self, Self::Starting | Self::Running)
    }
}

/// A snapshot of a job's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// Current state.
    pub state: JobState,
    /// Host pid of the job's `tandem-init` monitor (the worker's child for this job).
    /// For operators' eyes: the worker never signals pids, and after the job ends the
    /// number may belong to another process.
    pub pid: Option<u32>,
    /// When `start` was called.
    pub created_at: SystemTime,
    /// When the command was exec'd.
    pub started_at: Option<SystemTime>,
    /// When the job's last process was gone.
    pub ended_at: Option<SystemTime>,
    /// Bytes stored in the output log (including a truncation marker, if any).
    pub output_bytes: u64,
    /// Output bytes dropped because the log reached its cap.
    pub output_dropped_bytes: u64,
    /// Resources used: live while running, final once ended (`None` while starting).
    pub usage: Option<ResourceUsage>,
}

impl JobStatus {
    pub(crate) fn new(now: SystemTime) -> Self {
        Self {
            state: JobState::Starting,
            pid: None,
            created_at: now,
            started_at: None,
            ended_at: None,
            output_bytes: 0,
            output_dropped_bytes: 0,
            usage: None,
        }
    }
}

/// A job as [`JobManager::list`](crate::JobManager::list) shows it.
#[derive(Debug, Clone)]
pub struct JobInfo {
    /// The job's id.
    pub id: JobId,
    /// What it runs.
    pub spec: Arc<JobSpec>,
    /// Its status.
    pub status: JobStatus,
}
