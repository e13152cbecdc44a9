//! A job's monitor process as the daemon holds it: spawned by tokio (joining its cgroup
//! between fork and exec, or a warm slot's init), or cloned straight into its cgroup
//! (cgroup v2, `sys::spawn_into_cgroup`). Either way the daemon's only child for the job;
//! dropped unreaped, it is killed.

use crate::sys::PidfdChild;
use std::io;
use std::process::ExitStatus;

#[derive(Debug)]
pub(crate) enum Monitor {
    /// Spawned by `tokio::process::Command` (with `kill_on_drop`).
    Spawned(tokio::process::Child),
    /// Cloned into its cgroup, held by its pidfd.
    Cloned(PidfdChild),
}

impl Monitor {
    /// Its pid while it has not been reaped.
    pub(crate) fn id(&self) -> Option<u32> {
        match self {
            Self::Spawned(child) => child.id(),
            Self::Cloned(child) => child.id(),
        }
    }

    /// Sends SIGKILL.
    pub(crate) fn start_kill(&mut self) -> io::Result<()> {
        match self {
            Self::Spawned(child) => child.start_kill(),
            Self::Cloned(child) => child.start_kill(),
        }
    }

    /// Waits for it to exit and reaps it.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        match self {
            Self::Spawned(child) => child.wait().await,
            Self::Cloned(child) => child.wait().await,
        }
    }
}
