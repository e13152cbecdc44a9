//! tandem's job worker: runs Linux processes as jobs, keeps their output, and gives them a
//! terminal on request.
//!
//! * [`JobManager`] starts, stops and tracks jobs; [`OutputReader`] follows a job's output
//!   from any offset, live, with any number of concurrent readers; [`TerminalReader`] gives
//!   one consumer (a shared terminal) the output straight from the job's pump.
//! * Every job runs under `tandem-init` ([`init`]): the job's init is PID 1 of its own PID
//!   namespace, so stopping a job (or the job's command ending) takes every process of the
//!   job with it, daemonized grandchildren included.
//! * Every job is isolated: its own PID, mount, network, UTS, IPC and cgroup namespaces, a
//!   copy-on-write root (overlay over the host's `/` or a rootfs directory), cgroup limits
//!   (v1 or v2) on CPU, memory, pids and disk IO, a seccomp filter and a reduced capability
//!   set. This needs root.
//!
//! The worker knows nothing of gRPC, SSH or YAML; those crates are its clients.
#![warn(missing_docs)]
// Raw system calls live in three modules, each saying so in its header; nowhere else.
#![deny(unsafe_code)]

mod cgroup;
mod error;
mod ids;
#[allow(unsafe_code)]
pub mod init;
mod launch;
mod manager;
mod monitor;
mod output_log;
pub mod protocol;
mod pty;
mod recovery;
#[allow(unsafe_code)]
mod sandbox;
mod spec;
mod state;
mod status;
mod supervise;
#[allow(unsafe_code)]
mod sys;
mod system_view;
mod terminal;
mod warm;

pub use cgroup::{CgroupError, CgroupVersion, DEFAULT_DISK, DeviceNumber, Limits, ResourceUsage};
pub use error::JobError;
pub use ids::{DEFAULT_FIRST_UID, DEFAULT_SANDBOX_SLOTS, IDS_PER_SANDBOX};
pub use init::INIT_ARG;
pub use launch::CHECK_OUTPUT_CAP;
pub use manager::{DEFAULT_STOP_GRACE, InitProgram, JobManager, JobManagerConfig};
pub use output_log::{CHUNK, DEFAULT_OUTPUT_CAP, OutputReader};
pub use spec::{
    BindMount, FileSpec, JobId, JobSpec, MAX_ARG_BYTES, MAX_ARGS, MAX_ARGV_BYTES, MAX_CAPABILITIES,
    MAX_COMMAND_BYTES, MAX_ENV_VARS, MAX_FILES_BYTES, MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES,
    MAX_LABELS, MAX_PATH_BYTES, MAX_TERMINAL_COLS, MAX_TERMINAL_ROWS, PtySize, TmpfsMount,
};
pub use status::{ExitOutcome, JobInfo, JobState, JobStatus};
pub use system_view::{ETC_DIRS, ETC_FILES};
pub use tandem_limits::CapSet;
pub use tandem_limits::capability;
pub use terminal::{LIVE_CHUNKS, TerminalReader};
