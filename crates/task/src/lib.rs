//! tandem's task format: `tasks/<name>/task.yaml` ([`load`] → [`Task`]), its validation
//! (every problem as `file:line:column: message`), and the size and rate units people
//! write in task files and on the command line ([`units`]).
//!
//! It runs nothing and does not depend on the job worker, so the CLI can validate task
//! files and parse units without linking it. What a task asks of its sandbox is plain
//! values here ([`Limits`], [`TaskFile`], [`TaskTmpfs`]); `tandem-scenario` turns
//! them into worker job specs and runs task instances.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod conditions;
mod sandbox;
mod task;
pub mod units;

pub use conditions::{Condition, MAX_CONDITION_NAME, MAX_CONDITIONS, conditions};
pub use sandbox::{TaskFile, TaskTmpfs};
pub use tandem_limits::{CapSet, Limits};
pub use task::{
    DEFAULT_CHECK_TIMEOUT, DEFAULT_SETUP_TIMEOUT, DEFAULT_SHELL, DEFAULT_WARM, Diagnostic,
    Difficulty, MAX_AUTO_CHECK, MAX_SCRIPT_TIMEOUT, MAX_TASK_FILE_BYTES, MAX_TIME_LIMIT, MAX_WARM,
    MIN_AUTO_CHECK, Task, load,
};
