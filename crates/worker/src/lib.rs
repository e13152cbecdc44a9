//! tandem's job worker: runs Linux processes as jobs, keeps their output, and gives them a
//! terminal on request.
//!
//! * [`JobManager`] starts, stops and tracks jobs; [`OutputReader`] follows a job's output
//!   from any offset, live, with any number of concurrent readers.
//! * Every job runs under `tandem-init` ([`init`]): the job's init is PID 1 of its own PID
//!   namespace, so stopping a job (or the job's command ending) takes every process of the
//!   job with it, daemonized grandchildren included.
//!
//! The worker knows nothing of gRPC, SSH or YAML; those crates are its clients.
#![warn(missing_docs)]

mod error;
pub mod init;
mod manager;
mod output_log;
pub mod protocol;
mod pty;
mod spec;
mod status;
mod sys;

pub use error::JobError;
pub use init::INIT_ARG;
pub use manager::{DEFAULT_STOP_GRACE, InitProgram, JobManager, JobManagerConfig};
pub use output_log::{CHUNK, DEFAULT_OUTPUT_CAP, OutputReader};
pub use spec::{JobId, JobSpec, PtySize};
pub use status::{ExitOutcome, JobInfo, JobState, JobStatus};
