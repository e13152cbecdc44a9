//! Errors of the worker's public API.

use crate::spec::JobId;
use std::io;

/// Why a [`JobManager`](crate::JobManager) call failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No job has this id.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// The spec was rejected before anything ran; the message names the field.
    #[error("invalid job spec: {0}")]
    InvalidSpec(String),
    /// The job could not be started; `step` says what failed, `error` is the OS error.
    /// Nothing of the job is left behind.
    #[error("cannot start job: {step}: {error}")]
    Start {
        /// What was being done, e.g. `exec /bin/nope`.
        step: String,
        /// The operating system's error.
        error: io::Error,
    },
    /// Input or resize was requested for a job without a terminal.
    #[error("job {0} has no terminal")]
    NoTerminal(JobId),
    /// The job has already ended.
    #[error("job {0} has ended")]
    Ended(JobId),
    /// A terminal size was out of range.
    #[error("invalid terminal size: {0}")]
    InvalidSize(String),
    /// This process lacks a privilege jobs need; the message names it.
    #[error("not permitted: {0}")]
    NotPermitted(String),
    /// A job's cgroup could not be made as asked (a missing controller, a cgroup file).
    #[error("cgroup: {0}")]
    Cgroup(#[from] crate::cgroup::CgroupError),
    /// The worker's environment is unusable (cgroups, state directory, init program…).
    #[error("worker setup: {0}")]
    Setup(String),
    /// A file or system operation of the worker itself failed.
    #[error("{context}: {error}")]
    Io {
        /// What the worker was doing.
        context: String,
        /// The underlying error.
        error: io::Error,
    },
}

impl JobError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |error| Self::Io { context, error }
    }
}
