//! A job manager for tests (a dev-dependency only), for the tests of every crate above
//! the worker: scenario, session, ssh, api, the CLI, tandemd. The worker's own tests
//! cannot use it without a dependency cycle; they build their manager from
//! `tandem-testkit`'s parts.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::time::Duration;
use tandem_testkit::{cgroup_parent, require_root, state_dir, workspace_bin};
use tandem_worker::{InitProgram, JobManager, JobManagerConfig};

/// A job manager for tests: its state dir under /var/tmp (on the root filesystem, so
/// hiding it from jobs is exercised), its own cgroup parent, the workspace's
/// `tandem-init`. On drop it kills what tests left running and removes its cgroups (the
/// test's runtime, gone by then, will not run the jobs' supervisors).
pub struct TestManager {
    /// The manager (also reachable through `Deref`).
    pub manager: JobManager,
    /// Its state directory, removed on drop.
    pub state: tempfile::TempDir,
}

impl TestManager {
    /// A manager that runs jobs; needs root (panics with a clear message without it).
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// Like [`new`](Self::new), with a chance to adjust the configuration.
    pub fn with(adjust: impl FnOnce(&mut JobManagerConfig)) -> Self {
        require_root();
        Self::build(adjust)
    }

    /// A manager for tests that never start a job (TLS, permissions, parsing): it needs
    /// no root, since creating a manager does not (only starting a job does, and it
    /// fails without root). As root it is a full manager like [`new`](Self::new)'s.
    pub fn unprivileged(adjust: impl FnOnce(&mut JobManagerConfig)) -> Self {
        Self::build(adjust)
    }

    fn build(adjust: impl FnOnce(&mut JobManagerConfig)) -> Self {
        let state = state_dir();
        let mut config = JobManagerConfig::new(
            state.path(),
            InitProgram::binary(workspace_bin("tandem-init")),
        );
        config.cgroup_parent = cgroup_parent();
        adjust(&mut config);
        let manager = JobManager::new(config).expect("job manager");
        Self { manager, state }
    }
}

impl Default for TestManager {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for TestManager {
    type Target = JobManager;
    fn deref(&self) -> &JobManager {
        &self.manager
    }
}

impl Drop for TestManager {
    fn drop(&mut self) {
        self.manager.abort_all();
        self.manager.remove_cgroups_blocking(Duration::from_secs(5));
        // The aborted jobs' supervisors and the warm slots' refill may still write into
        // the state directory for a moment, and a file created while it is being removed
        // makes the removal fail: `TempDir`'s own drop then gives up silently and leaves
        // the rest (up to a flood test's 94 MB) in /var/tmp. Removed until it is gone.
        let path = self.state.path();
        for _ in 0..100 {
            match std::fs::remove_dir_all(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break,
            }
        }
    }
}
