//! The private protocol between the worker (in the daemon) and `tandem-init`.
//!
//! The worker starts `tandem-init` with three extra file descriptors:
//!
//! | fd | direction | content |
//! |----|-----------|---------|
//! | 3  | worker → init | [`InitConfig`] as JSON in a sealed memfd (no pipe, so no deadlock on large specs) |
//! | 4  | init → worker | [`InitEvent`]s: a `SOCK_SEQPACKET` socket, one JSON object per message; the PTY master travels with [`InitEvent::Terminal`] as `SCM_RIGHTS` |
//! | 5  | worker → init | control bytes: [`CONTROL_TERMINATE`], [`CONTROL_KILL`]; EOF means kill |
//! | 6  | worker → init | only in join mode: a pidfd of the sandbox's init, whose namespaces to enter |
//!
//! All of them are close-on-exec inside init, so the user's command never sees them.
//!
//! Two modes: **create** builds a new sandbox (the monitor sends a pidfd of the new init
//! with [`InitEvent::Sandbox`], so that later jobs can join it); **join** runs a command in
//! an existing sandbox (its namespaces, root and cgroup) without creating anything.

use crate::spec::{BindMount, PtySize, TmpfsMount};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// File descriptor number of the config memfd in `tandem-init`.
pub const CONFIG_FD: i32 = 3;
/// File descriptor number of the event pipe (write end) in `tandem-init`.
pub const EVENT_FD: i32 = 4;
/// File descriptor number of the control pipe (read end) in `tandem-init`.
pub const CONTROL_FD: i32 = 5;
/// File descriptor number of the target sandbox's init pidfd (join mode only).
pub const JOIN_FD: i32 = 6;

/// Control byte: send the job's process group SIGTERM (and SIGHUP first on a PTY).
pub const CONTROL_TERMINATE: u8 = b'T';
/// Control byte: kill the whole job now. EOF on the control pipe means the same, so a
/// job never outlives the worker that started it.
pub const CONTROL_KILL: u8 = b'K';

/// Upper bound on one event message; init never writes more, the worker never reads more.
pub const MAX_EVENT: usize = 16 * 1024;

/// Everything `tandem-init` needs to set up and run one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitConfig {
    /// Program and arguments (`argv[0]` is looked up in `PATH` if it has no `/`). Empty
    /// in create mode: the sandbox holds, without a command, until it is stopped.
    pub argv: Vec<String>,
    /// The complete environment of the command.
    pub env: Vec<(String, String)>,
    /// Working directory of the command; `/` when unset.
    pub cwd: Option<PathBuf>,
    /// Run on a terminal of this size. Init allocates it in the job's own devpts instance
    /// (so `tty` and `ttyname` work inside) and sends the master to the worker.
    pub pty: Option<PtySize>,
    /// Run the command as this user (a name or uid in the sandbox's /etc/passwd); root
    /// when unset.
    pub user: Option<String>,
    /// What to build (create mode), or `None` to join the sandbox behind [`JOIN_FD`].
    pub sandbox: Option<SandboxConfig>,
}

/// What a new sandbox consists of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// Host name in the job's UTS namespace.
    pub hostname: String,
    /// The job's root filesystem.
    pub rootfs: RootfsConfig,
}

/// How init builds the job's copy-on-write root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootfsConfig {
    /// Read-only lower layer: the host's `/` or a rootfs directory.
    pub lower: PathBuf,
    /// Overlay upper directory (the job's writes), in the job's state dir.
    pub upper: PathBuf,
    /// Overlay work directory, next to `upper`.
    pub work: PathBuf,
    /// Where the overlay is mounted before `pivot_root`.
    pub mount_point: PathBuf,
    /// Host paths hidden inside the job under an empty read-only tmpfs (the state dir,
    /// the certificates…), when they exist in the lower layer.
    pub hide: Vec<PathBuf>,
    /// Host directories or files bind-mounted into the job.
    pub binds: Vec<BindMount>,
    /// Size-limited tmpfs mounts.
    pub tmpfs: Vec<TmpfsMount>,
}

/// How the job's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitOutcome {
    /// It called `exit` with this code.
    Code(i32),
    /// A signal with this number killed it.
    Signal(i32),
}

/// What init reports, in order: `Terminal` (PTY jobs), then `Running` or `Failed` once,
/// then `Exited` once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum InitEvent {
    /// Create mode: a pidfd of the new sandbox's init is attached as `SCM_RIGHTS` (sent by
    /// the monitor, the init's parent, so the pid cannot have been reused).
    Sandbox,
    /// The PTY master is attached to this message as `SCM_RIGHTS`.
    Terminal,
    /// The command was exec'd successfully.
    Running,
    /// Setting up or exec'ing the command failed; nothing of the job keeps running.
    Failed {
        /// What init was doing, e.g. `exec /bin/nope`.
        step: String,
        /// The OS error number.
        errno: i32,
    },
    /// The main process ended; init is about to exit and take every other process with it.
    Exited {
        /// How it ended.
        outcome: ExitOutcome,
        /// True when a stop signal reached the main process while it was still alive,
        /// i.e. the stop (not a natural exit) may have ended it.
        stop_delivered: bool,
    },
}
