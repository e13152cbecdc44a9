//! tandem's task scenarios: the catalog of loaded tasks ([`catalog`]) and task instances
//! ([`instance`]): one sandbox per instance, the setup script, the candidate's shell, and
//! any number of checks, all run inside the same sandbox by the worker.
//!
//! The task format and its validation live in `tandem-task` (which needs no worker);
//! they are re-exported here as [`task`] and [`units`] so that users of scenarios need
//! only this crate. [`sandbox`] turns a task's plain sandbox values into the worker's.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod catalog;
pub mod instance;
pub mod pool;
pub mod sandbox;

pub use tandem_task as task;
pub use tandem_task::units;

pub use catalog::Catalog;
pub use instance::{
    CheckOutcome, CheckResult, Instance, InstanceState, Instances, SHELL_OUTPUT_CAP, ScenarioError,
};
pub use pool::{PoolStatus, WarmPools, WarmSettings};
pub use task::{Diagnostic, Difficulty, Task};
