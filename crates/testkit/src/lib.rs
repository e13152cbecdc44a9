//! Test helpers any tandem crate's tests may use (a dev-dependency only): the root check,
//! the workspace's binaries, temporary state directories and cgroup names for job
//! managers, the real `tandemd` process, the real OpenSSH client on a pseudo-terminal,
//! and a headless Chromium over WebDriver.
//!
//! It depends on no other tandem crate, so no crate's tests form a dependency cycle
//! through it, the worker's included. The helpers that need tandem's own types sit one
//! layer up, next to what they wrap: `tandem-testkit-worker` (a job manager for tests,
//! for every crate above the worker) and `tandem-api`'s `test-server` feature (the API
//! server on port 0 and a temporary PKI).
#![allow(missing_docs)]
// Driving `ssh` on a pseudo-terminal needs a few raw calls; they are allowed only in `ssh.rs`.
#![deny(unsafe_code)]

mod browser;
mod daemon;
#[allow(unsafe_code)]
mod ssh;
pub use browser::{Browser, have_chromium};
pub use daemon::Daemon;
pub use ssh::SshClient;

use std::path::{Path, PathBuf};

/// Panics with a clear message unless running as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: jobs run in namespaces and cgroups (run the tests as root)"
    );
}

/// A binary of this workspace, built next to the running test (`target/<profile>/NAME`).
/// `cargo test --workspace` builds every binary before any test runs.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is not built; run `cargo build --workspace` (or `cargo test --workspace`) first",
        bin.display()
    );
    bin
}

/// A new state directory for a job manager, removed on drop. Under /var/tmp, not /tmp:
/// /tmp is a fresh tmpfs inside jobs anyway, so only a state dir on the root filesystem
/// shows that the state dir is hidden from jobs.
pub fn state_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tandem-test-")
        .tempdir_in("/var/tmp")
        .expect("state dir")
}

/// A cgroup parent name of its own for one test's job manager: managers clean up
/// leftovers in theirs at creation, which must not hit another test's running jobs.
pub fn cgroup_parent() -> String {
    format!("tandem-test-{}", uuid::Uuid::new_v4())
}
