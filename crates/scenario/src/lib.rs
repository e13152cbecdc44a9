//! tandem's task scenarios: the `tasks/<name>/task.yaml` format ([`task`]), validation
//! that names file, line and column, the catalog of loaded tasks ([`catalog`]), and task
//! instances ([`instance`]): one sandbox per instance, the setup script, the candidate's
//! shell, and any number of checks, all run inside the same sandbox by the worker.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod catalog;
pub mod instance;
pub mod task;
pub mod units;

pub use catalog::Catalog;
pub use instance::{CheckOutcome, CheckResult, Instance, InstanceState, Instances, ScenarioError};
pub use task::{Diagnostic, Difficulty, Task};
