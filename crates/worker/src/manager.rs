//! [`JobManager`]: the worker's public API and its map of jobs.
//!
//! The rest of a job's life lives beside it: `launch.rs` starts a job (a new sandbox, or a
//! command joining one), `supervise.rs` owns it while it runs and decides its final state
//! (with `status::final_state`), `recovery.rs` cleans up after a crashed predecessor and
//! restores the records of earlier runs.
//!
//! `start` runs in its own task, so a caller that gives up half-way (a dropped future)
//! never leaves a half-started job behind.

use crate::capability::CapSet;
use crate::cgroup::{self, Backend, CgroupVersion, DeviceNumber, Group, Limits};
use crate::error::JobError;
use crate::ids::IdLease;
use crate::output_log::{DEFAULT_OUTPUT_CAP, OutputLog, OutputReader};
use crate::pty::PtyMaster;
use crate::spec::{JobId, JobSpec, PtySize, check_overlay_path, check_size};
use crate::state;
use crate::status::{JobInfo, JobState, JobStatus};
use crate::system_view::SystemView;
use crate::terminal::TerminalReader;
use crate::warm::WarmPool;
use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Default grace period between SIGTERM and SIGKILL when stopping a job.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// How to run `tandem-init`.
#[derive(Debug, Clone)]
pub struct InitProgram {
    /// Executable path.
    pub program: PathBuf,
    /// Arguments placed before nothing else (e.g. [`INIT_ARG`](crate::INIT_ARG) for a
    /// daemon that re-executes itself).
    pub args: Vec<OsString>,
}

impl InitProgram {
    /// The standalone `tandem-init` binary at `path`.
    pub fn binary(path: impl Into<PathBuf>) -> Self {
        Self {
            program: path.into(),
            args: Vec::new(),
        }
    }

    /// The running executable again, with [`INIT_ARG`](crate::INIT_ARG): for binaries
    /// that call [`init::main`](crate::init::main) when they see that argument first.
    pub fn reexec_self() -> Self {
        Self {
            program: PathBuf::from("/proc/self/exe"),
            args: vec![crate::init::INIT_ARG.into()],
        }
    }
}

/// Settings of a [`JobManager`].
#[derive(Debug, Clone)]
pub struct JobManagerConfig {
    /// Directory holding `jobs/<id>/output.log`; created if missing (mode 0700).
    pub state_dir: PathBuf,
    /// How to start `tandem-init`.
    pub init: InitProgram,
    /// Maximum bytes of output stored per job.
    pub output_cap: u64,
    /// How long `start` waits for init to report that the command runs.
    pub start_timeout: Duration,
    /// Which cgroup version to use.
    pub cgroup_version: CgroupVersion,
    /// Name of the cgroup, under the daemon's own, holding the job cgroups. Leftovers in it
    /// (from a crashed daemon) are killed and removed when the manager is created.
    pub cgroup_parent: String,
    /// Block device node (e.g. `/dev/vda`) for disk IO limits; by default the disk under
    /// the state dir.
    pub io_device: Option<PathBuf>,
    /// Host paths hidden from jobs whose rootfs directory contains them (e.g. the
    /// certificates). The state dir always is. (The default system view shows nothing of
    /// the host but its `/usr`, so there is nothing to hide in it.)
    pub hide_paths: Vec<PathBuf>,
    /// Limits a new sandbox gets for each limit its spec leaves unset (so that no sandbox
    /// is unbounded by default): 4096 processes (a sixteenth of the host's `pid_max` if
    /// that is less) and 2 GiB of memory (half the machine's if that is less), unless
    /// changed here.
    pub default_limits: Limits,
    /// First host uid of the sandboxes' uid ranges (65536 ids each, one per sandbox).
    pub first_uid: u32,
    /// How many uid ranges there are, so how many sandboxes can exist at once.
    pub sandbox_slots: u32,
    /// How many warm slots (a cgroup with a waiting `tandem-init` already inside) to keep
    /// ready, so that a start does not wait for the cgroup migration (cgroup v1 only;
    /// `0` turns them off). Each holds one idle process and a cgroup per hierarchy.
    pub warm_slots: usize,
    /// On cgroup v2, start each monitor inside its job's cgroup with
    /// `clone3(CLONE_INTO_CGROUP)` (no migration). `false` joins between fork and exec
    /// instead, as on v1 (for comparison in benchmarks); kernels before 5.7 do that anyway.
    pub clone_into_cgroup: bool,
}

impl JobManagerConfig {
    /// Defaults: 64 MiB output cap, 30 s start timeout, cgroup version detected, job
    /// cgroups under `<own cgroup>/tandem`.
    pub fn new(state_dir: impl Into<PathBuf>, init: InitProgram) -> Self {
        Self {
            state_dir: state_dir.into(),
            init,
            output_cap: DEFAULT_OUTPUT_CAP,
            start_timeout: Duration::from_secs(30),
            cgroup_version: CgroupVersion::Auto,
            cgroup_parent: "tandem".into(),
            io_device: None,
            hide_paths: Vec::new(),
            default_limits: default_limits(),
            first_uid: crate::ids::DEFAULT_FIRST_UID,
            sandbox_slots: crate::ids::DEFAULT_SANDBOX_SLOTS,
            warm_slots: 2,
            clone_into_cgroup: true,
        }
    }
}

/// The default [`JobManagerConfig::default_limits`].
fn default_limits() -> Limits {
    let half = tandem_limits::total_memory().map_or(u64::MAX, |m| m / 2);
    // A sixteenth of the host's pid space at most (pid_max is 32768 on some hosts).
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    Limits {
        pids: Some((pid_max / 16).min(4096)),
        memory: Some(half.min(2 << 30)),
        ..Limits::default()
    }
}

/// Runs and tracks jobs. Cheap to clone; all clones share the same jobs.
#[derive(Debug, Clone)]
pub struct JobManager {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// Settings given at construction.
    pub(crate) config: JobManagerConfig,
    /// The state dir, canonical (it is hidden inside jobs by this path).
    pub(crate) state_dir: PathBuf,
    /// `state_dir/jobs`.
    pub(crate) jobs_dir: PathBuf,
    /// The cgroup backend (v1 or v2) detected at construction.
    pub(crate) cgroups: Arc<dyn Backend>,
    /// Warm slots (cgroup v1, as root, unless turned off).
    pub(crate) warm: Option<Arc<WarmPool>>,
    /// The disk that IO limits apply to, resolved on first use.
    pub(crate) io_device: OnceLock<Result<DeviceNumber, String>>,
    /// What sandboxes see of the host, built at construction (as root; `None` otherwise,
    /// and `start` refuses anyway).
    pub(crate) system_view: Option<SystemView>,
    /// Check pins built for rootfs directories, by directory.
    pub(crate) rootfs_pins: Mutex<HashMap<PathBuf, PathBuf>>,
    /// Every job by id. A std lock: held only for map lookups, never across `.await`.
    pub(crate) jobs: RwLock<HashMap<JobId, Arc<Job>>>,
}

/// A sandbox's handles, for commands that join it later.
#[derive(Debug)]
pub(crate) struct SandboxHandles {
    /// A pidfd of the sandbox's init (its namespaces).
    pub(crate) pidfd: OwnedFd,
    /// The sandbox's user namespace.
    pub(crate) userns: OwnedFd,
}

/// What commands joining a sandbox need to know about it.
#[derive(Debug)]
pub(crate) struct SandboxLayout {
    /// The capabilities of its processes.
    pub(crate) caps: CapSet,
    /// The pins layer for checks.
    pub(crate) pins: PathBuf,
    /// `(inside, host)` pristine system directories for checks.
    pub(crate) system_dirs: Vec<(PathBuf, PathBuf)>,
    /// The sandbox's own mounts, which checks see live.
    pub(crate) mounts: Vec<PathBuf>,
}

#[derive(Debug)]
pub(crate) struct Job {
    /// Its id.
    pub(crate) id: JobId,
    /// What it runs.
    pub(crate) spec: Arc<JobSpec>,
    /// Status as last set by `start` or the supervisor (output counters come from `log`).
    pub(crate) status: watch::Sender<JobStatus>,
    /// The job's directory in the state dir.
    pub(crate) dir: PathBuf,
    /// The output log readers are created from.
    pub(crate) log: OutputLog,
    /// The job's cgroup: its own (destroyed by the supervisor once the job is gone), or,
    /// for a command run in another job's sandbox, that sandbox's (left alone). Replaced
    /// by [`cgroup::Detached`] once the job has ended, which closes the `cgroup.procs`
    /// descriptors (one per hierarchy) when no job holds the group any more.
    pub(crate) cgroup: Mutex<Arc<dyn Group>>,
    /// The sandbox this job runs in when it joined another job's (see `exec`).
    pub(crate) parent: Option<Arc<Job>>,
    /// The sandbox's layout (a sandbox of its own only).
    pub(crate) layout: Option<Arc<SandboxLayout>>,
    /// Handles of this job's sandbox, for commands that join it later; taken (closed)
    /// once the job has ended.
    pub(crate) sandbox: Mutex<Option<SandboxHandles>>,
    /// The host uid range of this job's sandbox, released when its last process is gone.
    pub(crate) ids: Mutex<Option<IdLease>>,
    /// A stop was requested (read by jobs running in this job's sandbox when it ends).
    pub(crate) stopping: std::sync::atomic::AtomicBool,
    /// The terminal of a PTY job, set when init sends its master; taken (closed) once
    /// the job has ended.
    pub(crate) pty: Mutex<Option<Arc<PtyMaster>>>,
    /// Requests to the supervisor.
    pub(crate) commands: mpsc::Sender<Command>,
    /// The supervisor task; taken by `shutdown` to await it.
    pub(crate) supervisor: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
pub(crate) enum Command {
    Stop { grace: Duration },
}

impl JobManager {
    /// Creates a manager keeping its files under `config.state_dir`, detects the cgroup
    /// setup, and (as root) builds the sandboxes' system view (`<state>/system`) and removes
    /// what a crashed predecessor left: job cgroups under `config.cgroup_parent` and the
    /// jobs' sandbox directories. Works without root; `start` then refuses with
    /// [`JobError::NotPermitted`].
    pub fn new(config: JobManagerConfig) -> Result<Self, JobError> {
        let jobs_dir = config.state_dir.join("jobs");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&jobs_dir)
            .map_err(JobError::io(format!(
                "create state directory {}",
                jobs_dir.display()
            )))?;
        let state_dir = std::fs::canonicalize(&config.state_dir).map_err(JobError::io(format!(
            "resolve state directory {}",
            config.state_dir.display()
        )))?;
        check_overlay_path(&state_dir)
            .map_err(|e| JobError::Setup(format!("state directory: {e}")))?;
        if !config.init.program.exists() {
            return Err(JobError::Setup(format!(
                "init program {} does not exist",
                config.init.program.display()
            )));
        }
        let cgroups: Arc<dyn Backend> = Arc::from(cgroup::backend(
            config.cgroup_version,
            &config.cgroup_parent,
        )?);
        crate::ids::check_config(config.first_uid, config.sandbox_slots)
            .map_err(JobError::Setup)?;
        let mut config = config;
        let enforceable = cgroups.enforceable(&config.default_limits);
        if enforceable != config.default_limits {
            tracing::warn!(
                wanted = ?config.default_limits,
                enforced = ?enforceable,
                "this cgroup setup cannot enforce some default limits; jobs that set none go without them"
            );
            config.default_limits = enforceable;
        }
        let jobs_dir = state_dir.join("jobs");
        let root = nix::unistd::geteuid().is_root();
        let system_view = if root {
            let view =
                crate::system_view::build(std::path::Path::new("/"), &state_dir.join("system"))
                    .map_err(|e| JobError::Setup(e.to_string()))?;
            Some(view)
        } else {
            None
        };
        let warm = (root && cgroups.supports_warm() && config.warm_slots > 0).then(|| {
            WarmPool::new(
                Arc::clone(&cgroups),
                config.init.clone(),
                state_dir.join("warm"),
                config.warm_slots,
            )
        });
        let manager = Self {
            inner: Arc::new(Inner {
                config,
                state_dir,
                jobs_dir,
                cgroups,
                warm,
                io_device: OnceLock::new(),
                system_view,
                rootfs_pins: Mutex::new(HashMap::new()),
                jobs: RwLock::new(HashMap::new()),
            }),
        };
        if root {
            manager.clean_up_after_crash();
        }
        manager.restore_jobs();
        if let Some(warm) = &manager.inner.warm {
            warm.refill();
        }
        Ok(manager)
    }

    /// The cgroup version in use (1 or 2).
    pub fn cgroup_version(&self) -> u8 {
        self.inner.cgroups.version()
    }

    /// The directories job cgroups are created in, `<own cgroup>/<cgroup_parent>` (one
    /// per hierarchy on v1). A job's cgroup is the job id below each.
    pub fn cgroup_parent_paths(&self) -> Vec<PathBuf> {
        self.inner.cgroups.parent_paths()
    }

    /// Waits until the warm slots being prepared are ready and returns how many are
    /// (0 without warm slots). For benchmarks and tests that need a start to take a slot;
    /// a start never waits for one.
    pub async fn warm_slots_ready(&self) -> usize {
        match &self.inner.warm {
            Some(warm) => warm.wait_filled().await,
            None => 0,
        }
    }

    /// Starts a job in its sandbox and returns its id once the command is running. If the
    /// command cannot be exec'd (not in the rootfs, permission denied, bad working
    /// directory…) or the sandbox cannot be built, this returns [`JobError::Start`] with
    /// the OS error and leaves nothing behind (no cgroup, no mount, no state dir).
    pub async fn start(&self, mut spec: JobSpec) -> Result<JobId, JobError> {
        spec.limits = spec.limits.or(&self.inner.config.default_limits);
        spec.validate().map_err(JobError::InvalidSpec)?;
        let manager = self.clone();
        // A task of its own: completes even if the caller stops polling.
        tokio::spawn(async move { manager.launch(spec, None).await })
            .await
            .map_err(|e| JobError::Io {
                context: "start task".into(),
                error: io::Error::other(e),
            })?
    }

    /// Runs a command inside the sandbox of the running job `sandbox` (its namespaces, root
    /// filesystem, cgroup and limits), e.g. a task's setup script, a shell, a check. The
    /// command is a job of its own (status, output, stop), owned by `spec.owner`. What it
    /// leaves running in the background (daemons) stays in the sandbox after it exits;
    /// stopping it signals its process group. When the sandbox ends, so does the command.
    /// Sandbox-level fields of `spec` (limits, rootfs, hostname, mounts, files) must be
    /// empty: they belong to the sandbox.
    pub async fn exec(&self, sandbox: JobId, spec: JobSpec) -> Result<JobId, JobError> {
        spec.validate().map_err(JobError::InvalidSpec)?;
        spec.validate_for_exec().map_err(JobError::InvalidSpec)?;
        let parent = self.get(sandbox)?;
        if parent.parent.is_some() {
            return Err(JobError::InvalidSpec(format!(
                "job {sandbox} runs inside another job's sandbox; run commands in that one"
            )));
        }
        // Only a running sandbox has a locked-down init that may be joined.
        if parent.status.borrow().state != JobState::Running {
            return Err(JobError::Ended(sandbox));
        }
        let manager = self.clone();
        tokio::spawn(async move { manager.launch(spec, Some(parent)).await })
            .await
            .map_err(|e| JobError::Io {
                context: "start task".into(),
                error: io::Error::other(e),
            })?
    }

    /// Asks a job to stop: SIGTERM to its process group (SIGHUP first on a terminal),
    /// then, if it is still alive after `grace`, SIGKILL to every process of the job.
    /// Returns the final status. Idempotent: stopping a stopping job keeps the earlier
    /// deadline if it is sooner; stopping an ended job returns its status.
    pub async fn stop(&self, id: JobId, grace: Duration) -> Result<JobStatus, JobError> {
        let job = self.get(id)?;
        // Fails only when the supervisor has finished, i.e. the job already ended.
        let _ = job.commands.send(Command::Stop { grace }).await;
        Ok(job.wait().await)
    }

    /// Current status of a job.
    pub fn status(&self, id: JobId) -> Result<JobStatus, JobError> {
        Ok(self.get(id)?.snapshot())
    }

    /// Spec and status of a job.
    pub fn info(&self, id: JobId) -> Result<JobInfo, JobError> {
        Ok(self.get(id)?.info())
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<JobInfo> {
        let jobs: Vec<Arc<Job>> = self.read_jobs().values().cloned().collect();
        let mut infos: Vec<JobInfo> = jobs.iter().map(|j| j.info()).collect();
        infos.sort_by_key(|i| i.status.created_at);
        infos
    }

    /// A reader of the job's output from the first byte, following it live.
    pub fn output(&self, id: JobId) -> Result<OutputReader, JobError> {
        self.output_from(id, 0)
    }

    /// A reader of the job's output from byte `offset`.
    pub fn output_from(&self, id: JobId, offset: u64) -> Result<OutputReader, JobError> {
        Ok(self.get(id)?.log.reader(offset))
    }

    /// The job's output for the one in-process consumer that shows it live (a session's
    /// shared terminal): like [`output`](Self::output) (from byte 0, to the end), but once
    /// it has caught up with the log, chunks come straight from the job's output pump,
    /// before they are written to the log. While such a reader is alive, another one
    /// follows the log instead. See [`TerminalReader`].
    pub fn terminal(&self, id: JobId) -> Result<TerminalReader, JobError> {
        Ok(self.get(id)?.log.terminal())
    }

    /// Waits until the job has ended; returns its final status.
    pub async fn wait(&self, id: JobId) -> Result<JobStatus, JobError> {
        Ok(self.get(id)?.wait().await)
    }

    /// Writes bytes to a PTY job's terminal, as if typed.
    pub async fn write_input(&self, id: JobId, data: &[u8]) -> Result<(), JobError> {
        let job = self.get(id)?;
        let pty = job.terminal()?;
        let mut ended = job.status.subscribe();
        if ended.borrow_and_update().state.is_finished() {
            return Err(JobError::Ended(id));
        }
        tokio::select! {
            res = pty.write_all(data) => res.map_err(JobError::io("write to terminal")),
            _ = ended.wait_for(|s| s.state.is_finished()) => Err(JobError::Ended(id)),
        }
    }

    /// Resizes a PTY job's terminal (the job gets SIGWINCH).
    pub fn resize(&self, id: JobId, size: PtySize) -> Result<(), JobError> {
        check_size(size).map_err(JobError::InvalidSize)?;
        let job = self.get(id)?;
        let pty = job.terminal()?;
        if job.status.borrow().state.is_finished() {
            return Err(JobError::Ended(id));
        }
        pty.resize(size).map_err(JobError::io("resize terminal"))
    }

    /// Discards the warm slots, stops every job that is still running (each with
    /// `grace`) and waits for all supervisors to finish.
    pub async fn shutdown(&self, grace: Duration) {
        if let Some(warm) = &self.inner.warm {
            warm.close().await;
        }
        let jobs: Vec<Arc<Job>> = self.read_jobs().values().cloned().collect();
        let mut stops = tokio::task::JoinSet::new();
        for job in jobs {
            stops.spawn(async move {
                let _ = job.commands.send(Command::Stop { grace }).await;
                let handle = job.supervisor.lock().ok().and_then(|mut h| h.take());
                if let Some(handle) = handle {
                    let _ = handle.await;
                }
            });
        }
        while stops.join_next().await.is_some() {}
    }

    /// Kills every running job (SIGKILL through its cgroup) and warm slot at once without
    /// waiting. For
    /// emergencies and for tearing down a runtime that will not get to run the jobs'
    /// supervisors (e.g. at the end of a test); `shutdown` is the orderly way.
    pub fn abort_all(&self) {
        if let Some(warm) = &self.inner.warm {
            warm.abort();
        }
        let jobs: Vec<Arc<Job>> = self.read_jobs().values().cloned().collect();
        for job in jobs {
            if !job.status.borrow().state.is_finished()
                && let Err(e) = job.cgroup().kill_all()
            {
                tracing::warn!(job = %job.id, error = %e, "killing the job's cgroup failed");
            }
        }
    }

    /// Removes the job cgroups still present under this manager's parent cgroup and the
    /// parent itself, blocking up to `timeout` for killed processes to disappear. Pairs
    /// with [`abort_all`](Self::abort_all) when supervisors will not run any more.
    pub fn remove_cgroups_blocking(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        for parent in self.inner.cgroups.parent_paths() {
            loop {
                let children: Vec<PathBuf> = std::fs::read_dir(&parent)
                    .map(|d| {
                        d.flatten()
                            .map(|e| e.path())
                            .filter(|p| p.is_dir())
                            .collect()
                    })
                    .unwrap_or_default();
                for child in &children {
                    let _ = std::fs::remove_dir(child);
                }
                let gone = std::fs::remove_dir(&parent).is_ok() || !parent.exists();
                if gone || std::time::Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    pub(crate) fn get(&self, id: JobId) -> Result<Arc<Job>, JobError> {
        self.read_jobs()
            .get(&id)
            .cloned()
            .ok_or(JobError::NotFound(id))
    }

    pub(crate) fn read_jobs(&self) -> std::sync::RwLockReadGuard<'_, HashMap<JobId, Arc<Job>>> {
        // A poisoned lock only means another thread panicked while holding it; the map
        // itself is always consistent (single insert/remove operations).
        self.inner
            .jobs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn write_jobs(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<JobId, Arc<Job>>> {
        self.inner
            .jobs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Job {
    pub(crate) fn snapshot(&self) -> JobStatus {
        let mut status = self.status.borrow().clone();
        let log = self.log.state();
        status.output_bytes = log.len;
        status.output_dropped_bytes = log.dropped;
        // A command run in another job's sandbox shares its cgroup: usage is the sandbox's.
        if status.state == JobState::Running && self.parent.is_none() {
            status.usage = Some(self.cgroup().usage());
        }
        status
    }

    /// The job's cgroup (see [`Job::cgroup`](struct.Job.html#structfield.cgroup)).
    pub(crate) fn cgroup(&self) -> Arc<dyn Group> {
        Arc::clone(
            &self
                .cgroup
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Lets go of what only a running job needs, once it has ended: its sandbox's pidfd
    /// and user namespace, its terminal, its hold on the cgroup (closed with the last
    /// holder). A finished job keeps only its output log open, which it still serves.
    pub(crate) fn release(&self) {
        drop(
            self.sandbox
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        drop(
            self.pty
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        let detached: Arc<dyn Group> = Arc::new(cgroup::Detached);
        drop(std::mem::replace(
            &mut *self
                .cgroup
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            detached,
        ));
    }

    /// Records the current status durably (see [`state`]): the final status.
    pub(crate) fn persist(&self) {
        self.record_status(state::Sync::Durable);
    }

    /// Records the current status, synced or not (see [`state`]).
    pub(crate) fn record_status(&self, sync: state::Sync) {
        if let Err(e) = state::write(&self.dir, state::STATUS, &self.snapshot(), sync) {
            tracing::warn!(job = %self.id, error = %e, "cannot record the job's status");
        }
    }

    fn terminal(&self) -> Result<Arc<PtyMaster>, JobError> {
        let pty = self
            .pty
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        pty.ok_or(
            if self.spec.pty.is_some() && self.status.borrow().state.is_finished() {
                JobError::Ended(self.id)
            } else {
                JobError::NoTerminal(self.id)
            },
        )
    }

    fn info(&self) -> JobInfo {
        JobInfo {
            id: self.id,
            spec: Arc::clone(&self.spec),
            status: self.snapshot(),
        }
    }

    async fn wait(&self) -> JobStatus {
        let mut rx = self.status.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|s| s.state.is_finished()).await;
        self.snapshot()
    }
}
