//! The private protocol between the worker (in the daemon) and `tandem-init`.
//!
//! The worker starts `tandem-init` with three extra file descriptors (five when joining):
//!
//! | fd | direction | content |
//! |----|-----------|---------|
//! | 3  | worker → init | [`InitConfig`] as JSON in a sealed memfd (no pipe, so no deadlock on large specs) |
//! | 4  | init → worker | [`InitEvent`]s: a `SOCK_SEQPACKET` socket, one JSON object per message; descriptors travel with [`InitEvent::Sandbox`] and [`InitEvent::Terminal`] as `SCM_RIGHTS` |
//! | 5  | worker → init | control bytes: [`CONTROL_TERMINATE`], [`CONTROL_KILL`]; EOF means kill |
//! | 6  | worker → init | join modes only: a pidfd of the sandbox's init, whose namespaces to enter |
//! | 7  | worker → init | join modes only: the sandbox's user namespace |
//!
//! All of them are close-on-exec inside init, so the user's command never sees them.
//!
//! Three modes ([`Mode`]): **create** builds a new sandbox (the monitor sends a pidfd of
//! the new init and its user namespace with [`InitEvent::Sandbox`], so that later jobs can
//! join it); **join** runs a command in an existing sandbox (its namespaces, root and
//! cgroup) without creating anything; **check** joins like `join`, but the command sees a
//! pristine system view over the sandbox's files (see `sandbox::check`).

use crate::capability::CapSet;
use crate::spec::{BindMount, FileSpec, PtySize, TmpfsMount};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// File descriptor number of the config memfd in `tandem-init`.
pub const CONFIG_FD: i32 = 3;
/// File descriptor number of the event pipe (write end) in `tandem-init`.
pub const EVENT_FD: i32 = 4;
/// File descriptor number of the control pipe (read end) in `tandem-init`.
pub const CONTROL_FD: i32 = 5;
/// File descriptor number of the target sandbox's init pidfd (join modes only).
pub const JOIN_FD: i32 = 6;
/// File descriptor number of the target sandbox's user namespace (join modes only).
pub const USERNS_FD: i32 = 7;

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
    /// The capabilities the job's processes keep (bounding, permitted and effective sets),
    /// inside the sandbox's user namespace.
    pub caps: CapSet,
    /// What to build or join.
    pub mode: Mode,
}

/// What init does before running the command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    /// Build a new sandbox.
    Create(SandboxConfig),
    /// Enter the sandbox behind [`JOIN_FD`] and [`USERNS_FD`].
    Join,
    /// Enter it as a check (see [`CheckConfig`]).
    Check(CheckConfig),
}

/// A sandbox's user namespace maps its ids `0..count` to the host's `host_base..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// Host uid (and gid) of the sandbox's root.
    pub host_base: u32,
    /// How many ids are mapped.
    pub count: u32,
}

/// What a new sandbox consists of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// Host name in the job's UTS namespace.
    pub hostname: String,
    /// Its user namespace's id map.
    pub ids: IdMap,
    /// The job's root filesystem.
    pub rootfs: RootfsConfig,
    /// Files written into the root (as the sandbox's root user) before anything runs.
    pub files: Vec<FileSpec>,
}

/// How init builds the job's copy-on-write root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootfsConfig {
    /// An empty host directory (in the job's state dir) on which init mounts, in the
    /// sandbox's own mount namespace only, the tmpfs holding the writable layers.
    pub staging: PathBuf,
    /// Lowest, read-only layer of the root: the system view's skeleton or a rootfs
    /// directory. Presented through an idmapped mount.
    pub lower: PathBuf,
    /// Host directories shown read-only at the same path inside (`/usr`, …), each under a
    /// writable layer of its own. Idmapped too.
    pub system_dirs: Vec<PathBuf>,
    /// Size of the writable layers' tmpfs in bytes (`limits.disk`).
    pub disk: u64,
    /// Host paths hidden inside the job under an empty read-only tmpfs, when they exist in
    /// the lower layer (matters for a rootfs directory that contains them).
    pub hide: Vec<PathBuf>,
    /// Host directories or files bind-mounted into the job.
    pub binds: Vec<BindMount>,
    /// Size-limited tmpfs mounts.
    pub tmpfs: Vec<TmpfsMount>,
}

/// How a check sees the sandbox: its files through a private copy-on-write layer, with
/// the system parts (`/usr`, the loader's links and configuration, interpreters' site
/// configuration) replaced by pristine read-only copies, as a host uid that is not mapped
/// in the sandbox (so the sandbox cannot trace it or read its memory).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckConfig {
    /// Host directory of the pins layer (see `system_view`).
    pub pins: PathBuf,
    /// `(path inside, host directory)` of the pristine system directories.
    pub system_dirs: Vec<(PathBuf, PathBuf)>,
    /// The sandbox's mounts (inside paths) the check sees live: `/proc`, `/dev`, tmpfs …
    pub mounts: Vec<PathBuf>,
    /// Host uid and gid the check runs as.
    pub host_uid: u32,
    /// Size of the check's private writable layer in bytes.
    pub scratch: u64,
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
    /// Create mode: a pidfd of the new sandbox's init and its user namespace are attached
    /// as `SCM_RIGHTS` (sent by the monitor, the init's parent, so the pid cannot have been
    /// reused).
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
        /// True when a stop signal reached the main process while it was still alive and
        /// not already exiting, i.e. the stop (not a natural exit) may have ended it.
        stop_delivered: bool,
    },
}
