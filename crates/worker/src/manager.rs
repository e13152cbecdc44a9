//! [`JobManager`]: starts jobs through `tandem-init`, supervises them, and hands out their
//! status and output.
//!
//! Per job there are three tasks, all owned by the job's supervisor:
//! * the **supervisor** owns the monitor process (the only waiter on it), turns stop
//!   requests into control bytes with a grace timer, and computes the final state;
//! * the **output pump** copies the pipe or PTY master into the output log;
//! * the **event reader** parses init's event lines.
//!
//! `start` runs in its own task, so a caller that gives up half-way (a dropped future)
//! never leaves a half-started job behind.

use crate::cgroup::{self, Backend, CgroupVersion, DeviceNumber, Group};
use crate::error::JobError;
use crate::output_log::{self, CHUNK, DEFAULT_OUTPUT_CAP, LogWriter, OutputLog, OutputReader};
use crate::protocol::{
    CONTROL_KILL, CONTROL_TERMINATE, ExitOutcome, InitConfig, InitEvent, MAX_EVENT, RootfsConfig,
    SandboxConfig,
};
use crate::pty::PtyMaster;
use crate::spec::{JobId, JobSpec, PtySize, check_overlay_path, check_size};
use crate::state;
use crate::status::{JobInfo, JobState, JobStatus};
use crate::sys::{self, InitFds};
use nix::fcntl::OFlag;
use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Default grace period between SIGTERM and SIGKILL when stopping a job.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// How long after the job's last process is gone the output pump may still drain. The
/// PID namespace guarantees no process holds the output open by then; this bound only
/// protects readers from a bug.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How long to wait for the monitor after asking it to kill the job before SIGKILLing it
/// directly.
const KILL_FALLBACK: Duration = Duration::from_secs(5);

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
    /// Host paths hidden from jobs (e.g. the certificates). The state dir always is.
    pub hide_paths: Vec<PathBuf>,
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
        }
    }
}

/// Runs and tracks jobs. Cheap to clone; all clones share the same jobs.
#[derive(Debug, Clone)]
pub struct JobManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Settings given at construction.
    config: JobManagerConfig,
    /// The state dir, canonical (it is hidden inside jobs by this path).
    state_dir: PathBuf,
    /// `state_dir/jobs`.
    jobs_dir: PathBuf,
    /// The cgroup backend (v1 or v2) detected at construction.
    cgroups: Box<dyn Backend>,
    /// The disk that IO limits apply to, resolved on first use.
    io_device: OnceLock<Result<DeviceNumber, String>>,
    /// Every job by id. A std lock: held only for map lookups, never across `.await`.
    jobs: RwLock<HashMap<JobId, Arc<Job>>>,
}

#[derive(Debug)]
struct Job {
    /// Its id.
    id: JobId,
    /// What it runs.
    spec: Arc<JobSpec>,
    /// Status as last set by `start` or the supervisor (output counters come from `log`).
    status: watch::Sender<JobStatus>,
    /// The job's directory in the state dir.
    dir: PathBuf,
    /// The output log readers are created from.
    log: OutputLog,
    /// The job's cgroup: its own (destroyed by the supervisor once the job is gone), or,
    /// for a command run in another job's sandbox, that sandbox's (left alone).
    cgroup: Arc<dyn Group>,
    /// The sandbox this job runs in when it joined another job's (see `exec`).
    parent: Option<Arc<Job>>,
    /// A pidfd of this job's sandbox init, for commands that join the sandbox later.
    sandbox: OnceLock<OwnedFd>,
    /// A stop was requested (read by jobs running in this job's sandbox when it ends).
    stopping: std::sync::atomic::AtomicBool,
    /// The terminal of a PTY job, set when init sends its master.
    pty: OnceLock<Arc<PtyMaster>>,
    /// Requests to the supervisor.
    commands: mpsc::Sender<Command>,
    /// The supervisor task; taken by `shutdown` to await it.
    supervisor: std::sync::Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
enum Command {
    Stop { grace: Duration },
}

impl JobManager {
    /// Creates a manager keeping its files under `config.state_dir`, detects the cgroup
    /// setup, and (as root) removes what a crashed predecessor left: job cgroups under
    /// `config.cgroup_parent` and the jobs' overlay directories. Works without root;
    /// `start` then refuses with [`JobError::NotPermitted`].
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
        let cgroups = cgroup::backend(config.cgroup_version, &config.cgroup_parent)
            .map_err(|e| JobError::Setup(format!("cgroups: {e}")))?;
        let jobs_dir = state_dir.join("jobs");
        let manager = Self {
            inner: Arc::new(Inner {
                config,
                state_dir,
                jobs_dir,
                cgroups,
                io_device: OnceLock::new(),
                jobs: RwLock::new(HashMap::new()),
            }),
        };
        if nix::unistd::geteuid().is_root() {
            manager.clean_up_after_crash();
        }
        manager.restore_jobs();
        Ok(manager)
    }

    /// Loads the jobs an earlier run recorded: finished ones keep their status and output;
    /// ones that were still starting or running are `lost` (their processes were killed with
    /// that run's daemon, or by `clean_up_after_crash`).
    fn restore_jobs(&self) {
        let Ok(entries) = std::fs::read_dir(&self.inner.jobs_dir) else {
            return;
        };
        let mut restored = 0usize;
        for entry in entries.flatten() {
            let dir = entry.path();
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<JobId>().ok())
            else {
                continue;
            };
            let Some(record) = state::load(&dir) else {
                // Died before its spec was recorded: there is nothing to show.
                tracing::warn!(dir = %dir.display(), "removing a job directory without a record");
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            };
            let mut status = record
                .status
                .unwrap_or_else(|| JobStatus::new(SystemTime::now()));
            if !status.state.is_finished() {
                status.state = JobState::Lost;
                status.ended_at = Some(SystemTime::now());
                tracing::warn!(job = %id, "job was running when the daemon stopped: marked lost");
            }
            let log = match output_log::open_finished(
                &dir.join("output.log"),
                status.output_dropped_bytes,
            ) {
                Ok(log) => log,
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "cannot open the output of a recorded job");
                    continue;
                }
            };
            // Nobody will ever receive: stop() on a finished job returns its status.
            let (commands, _) = mpsc::channel(1);
            let job = Arc::new(Job {
                id,
                spec: Arc::new(record.spec),
                status: watch::Sender::new(status),
                dir,
                log,
                cgroup: Arc::new(cgroup::Detached),
                parent: None,
                sandbox: OnceLock::new(),
                stopping: std::sync::atomic::AtomicBool::new(false),
                pty: OnceLock::new(),
                commands,
                supervisor: std::sync::Mutex::new(None),
            });
            job.persist();
            self.write_jobs().insert(id, job);
            restored += 1;
        }
        if restored > 0 {
            tracing::info!(jobs = restored, "restored the jobs of an earlier run");
        }
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

    /// Kills and removes leftover job cgroups and overlay directories. Runs before any job
    /// of this manager exists, so everything found is a leftover.
    fn clean_up_after_crash(&self) {
        for group in self.inner.cgroups.stale() {
            // Only cgroups of jobs recorded in this state dir: another daemon on the same
            // host (other state dir, same cgroup parent) owns the rest.
            let ours = group
                .paths()
                .first()
                .and_then(|p| p.file_name())
                .is_some_and(|name| self.inner.jobs_dir.join(name).is_dir());
            if !ours {
                continue;
            }
            tracing::warn!(cgroup = ?group.paths(), "removing a job cgroup left by an earlier run");
            for _ in 0..100 {
                if group.is_empty().unwrap_or(true) {
                    break;
                }
                let _ = group.kill_all();
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Err(e) = group.remove() {
                tracing::warn!(cgroup = ?group.paths(), error = %e, "cannot remove stale cgroup");
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.inner.jobs_dir) {
            for entry in entries.flatten() {
                remove_sandbox_dirs(&entry.path());
            }
        }
    }

    /// Starts a job in its sandbox and returns its id once the command is running. If the
    /// command cannot be exec'd (not in the rootfs, permission denied, bad working
    /// directory…) or the sandbox cannot be built, this returns [`JobError::Start`] with
    /// the OS error and leaves nothing behind (no cgroup, no mount, no state dir).
    pub async fn start(&self, spec: JobSpec) -> Result<JobId, JobError> {
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

    /// Stops every job that is still running (each with `grace`) and waits for all
    /// supervisors to finish.
    pub async fn shutdown(&self, grace: Duration) {
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

    /// Kills every running job at once (SIGKILL through its cgroup) without waiting. For
    /// emergencies and for tearing down a runtime that will not get to run the jobs'
    /// supervisors (e.g. at the end of a test); `shutdown` is the orderly way.
    pub fn abort_all(&self) {
        let jobs: Vec<Arc<Job>> = self.read_jobs().values().cloned().collect();
        for job in jobs {
            if !job.status.borrow().state.is_finished()
                && let Err(e) = job.cgroup.kill_all()
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

    fn get(&self, id: JobId) -> Result<Arc<Job>, JobError> {
        self.read_jobs()
            .get(&id)
            .cloned()
            .ok_or(JobError::NotFound(id))
    }

    fn read_jobs(&self) -> std::sync::RwLockReadGuard<'_, HashMap<JobId, Arc<Job>>> {
        // A poisoned lock only means another thread panicked while holding it; the map
        // itself is always consistent (single insert/remove operations).
        self.inner
            .jobs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_jobs(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<JobId, Arc<Job>>> {
        self.inner
            .jobs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn launch(self, spec: JobSpec, parent: Option<Arc<Job>>) -> Result<JobId, JobError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(JobError::NotPermitted(format!(
                "jobs run in their own namespaces, cgroups and overlay root filesystem, which \
                 needs root (CAP_SYS_ADMIN); this process runs as uid {}",
                nix::unistd::geteuid()
            )));
        }
        let io_device = if spec.limits.has_io() {
            Some(self.io_device().map_err(JobError::InvalidSpec)?)
        } else {
            None
        };
        let id = JobId::new_random();
        let dir = self.inner.jobs_dir.join(id.to_string());
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(JobError::io(format!(
                "create job directory {}",
                dir.display()
            )))?;
        let owns_cgroup = parent.is_none();
        let cgroup: Arc<dyn Group> = match &parent {
            Some(parent) => Arc::clone(&parent.cgroup),
            None => match self
                .inner
                .cgroups
                .create(&id.to_string(), &spec.limits, io_device)
            {
                Ok(group) => Arc::from(group),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(JobError::Setup(format!("cgroup: {e}")));
                }
            },
        };
        match self
            .launch_in(id, spec, &dir, Arc::clone(&cgroup), parent)
            .await
        {
            Ok(()) => Ok(id),
            Err(e) => {
                self.write_jobs().remove(&id);
                if owns_cgroup && let Err(err) = cgroup::destroy(cgroup.as_ref()).await {
                    tracing::warn!(job = %id, error = %err, "cannot remove the cgroup of a failed start");
                }
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn io_device(&self) -> Result<DeviceNumber, String> {
        self.inner
            .io_device
            .get_or_init(|| match &self.inner.config.io_device {
                Some(node) => cgroup::block_device_node(node),
                None => cgroup::block_device_of(&self.inner.state_dir),
            })
            .clone()
    }

    async fn launch_in(
        &self,
        id: JobId,
        spec: JobSpec,
        dir: &Path,
        cgroup: Arc<dyn Group>,
        parent: Option<Arc<Job>>,
    ) -> Result<(), JobError> {
        let config = &self.inner.config;
        let (writer, log) = output_log::create(&dir.join("output.log"), config.output_cap)
            .map_err(JobError::io("create output log"))?;
        // A new sandbox, or the pidfd of the one to join.
        let (sandbox, join_fd) = match &parent {
            None => {
                let rootfs = RootfsConfig {
                    lower: spec.rootfs.clone().unwrap_or_else(|| PathBuf::from("/")),
                    upper: dir.join("upper"),
                    work: dir.join("work"),
                    mount_point: dir.join("rootfs"),
                    hide: std::iter::once(self.inner.state_dir.clone())
                        .chain(config.hide_paths.iter().cloned())
                        .collect(),
                    binds: spec.binds.clone(),
                    tmpfs: spec.tmpfs.clone(),
                };
                for d in [&rootfs.upper, &rootfs.work, &rootfs.mount_point] {
                    std::fs::create_dir(d)
                        .map_err(JobError::io(format!("create {}", d.display())))?;
                }
                crate::files::place(&rootfs.lower, &rootfs.upper, &spec.files)
                    .map_err(JobError::InvalidSpec)?;
                let id_text = id.to_string();
                let hostname = spec
                    .hostname
                    .clone()
                    .unwrap_or_else(|| format!("job-{}", &id_text[..8]));
                (Some(SandboxConfig { hostname, rootfs }), None)
            }
            Some(parent) => {
                if parent.status.borrow().state.is_finished() {
                    return Err(JobError::Ended(parent.id));
                }
                let pidfd = parent.sandbox.get().ok_or_else(|| JobError::Start {
                    step: format!("join the sandbox of job {}", parent.id),
                    error: io::Error::from(io::ErrorKind::NotFound),
                })?;
                let join = pidfd
                    .try_clone()
                    .map_err(JobError::io("duplicate the sandbox's pidfd"))?;
                (None, Some(join))
            }
        };
        let init_config = InitConfig {
            argv: if spec.hold {
                Vec::new()
            } else {
                std::iter::once(spec.command.clone())
                    .chain(spec.args.iter().cloned())
                    .collect()
            },
            env: spec
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            cwd: spec.cwd.clone(),
            pty: spec.pty,
            user: spec.user.clone(),
            sandbox,
        };

        // A PTY job's terminal is created by init inside the job; without one, stdout and
        // stderr share one pipe (merged in order) and stdin is /dev/null.
        let (stdio, pipe_source) = if spec.pty.is_some() {
            ([Stdio::null(), Stdio::null(), Stdio::null()], None)
        } else {
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| JobError::io("create output pipe")(e.into()))?;
            let stdin = match &spec.stdin {
                Some(bytes) => Stdio::from(
                    sys::memfd_with("tandem-job-stdin", bytes)
                        .map_err(JobError::io("create stdin memfd"))?,
                ),
                None => Stdio::null(),
            };
            let stdio = [stdin, dup(&write)?.into(), Stdio::from(write)];
            let read = pipe::Receiver::from_owned_fd(read).map_err(JobError::io("output pipe"))?;
            (stdio, Some(read))
        };

        let (events_ours, events_init) =
            sys::event_socket().map_err(JobError::io("create event socket"))?;
        let (control_read, control_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| JobError::io("create control pipe")(e.into()))?;
        let config_json = serde_json::to_vec(&init_config)
            .map_err(|e| JobError::io("encode init config")(io::Error::other(e)))?;
        let config_fd = sys::memfd_with("tandem-init-config", &config_json)
            .map_err(JobError::io("create init config memfd"))?;

        let (commands, command_rx) = mpsc::channel(8);
        let job = Arc::new(Job {
            id,
            spec: Arc::new(spec),
            status: watch::Sender::new(JobStatus::new(SystemTime::now())),
            dir: dir.to_path_buf(),
            log,
            cgroup,
            parent,
            sandbox: OnceLock::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            pty: OnceLock::new(),
            commands,
            supervisor: std::sync::Mutex::new(None),
        });
        state::write(dir, state::SPEC, &*job.spec)
            .map_err(JobError::io("record the job's spec"))?;
        self.write_jobs().insert(id, Arc::clone(&job));

        let [stdin, stdout, stderr] = stdio;
        let mut cmd = tokio::process::Command::new(&config.init.program);
        cmd.args(&config.init.args)
            .env_clear()
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        let init_fds = InitFds::new(&config_fd, &events_init, &control_read, join_fd.as_ref())
            .map_err(JobError::io("prepare init descriptors"))?;
        init_fds.install(&mut cmd, job.cgroup.procs_files());
        let spawned = cmd.spawn();
        // Close the daemon's copies right away: the pipe's write end (held by `cmd`) must
        // only be open in the job, or readers would never see EOF.
        drop(cmd);
        drop((init_fds, config_fd, events_init, control_read, join_fd));
        let mut child = spawned.map_err(JobError::io(format!(
            "spawn init program {}",
            config.init.program.display()
        )))?;

        let mut writer = Some(writer);
        let mut pump = pipe_source.map(|p| {
            tokio::spawn(pump_output(
                Source::Pipe(p),
                writer.take().expect("writer unused"),
            ))
        });
        let control =
            pipe::Sender::from_owned_fd(control_write).map_err(JobError::io("control pipe"))?;
        let events_ours = sys::register_async(events_ours).map_err(JobError::io("event socket"))?;
        let (event_tx, mut events) = mpsc::channel(4);
        let event_reader = tokio::spawn(read_events(events_ours, event_tx));

        let failure = tokio::time::timeout(config.start_timeout, async {
            loop {
                match events.recv().await {
                    Some((InitEvent::Sandbox, fds)) => match fds.into_iter().next() {
                        Some(pidfd) => {
                            let _ = job.sandbox.set(pidfd);
                        }
                        None => {
                            return Some(JobError::Start {
                                step: "receive the sandbox's pidfd".into(),
                                error: io::Error::from(io::ErrorKind::InvalidData),
                            });
                        }
                    },
                    Some((InitEvent::Terminal, fds)) => {
                        let (Some(master), Some(writer)) = (fds.into_iter().next(), writer.take())
                        else {
                            return Some(JobError::Start {
                                step: "receive the job's terminal".into(),
                                error: io::Error::from(io::ErrorKind::InvalidData),
                            });
                        };
                        let master = match PtyMaster::new(master) {
                            Ok(m) => Arc::new(m),
                            Err(error) => {
                                return Some(JobError::Start {
                                    step: "register the job's terminal".into(),
                                    error,
                                });
                            }
                        };
                        let _ = job.pty.set(Arc::clone(&master));
                        pump = Some(tokio::spawn(pump_output(Source::Pty(master), writer)));
                    }
                    Some((InitEvent::Running, _)) => return None,
                    Some((InitEvent::Failed { step, errno }, _)) => {
                        return Some(JobError::Start {
                            step,
                            error: io::Error::from_raw_os_error(errno),
                        });
                    }
                    Some((other, _)) => {
                        return Some(JobError::Start {
                            step: format!("init reported {other:?} before the command started"),
                            error: io::Error::from(io::ErrorKind::InvalidData),
                        });
                    }
                    None => {
                        return Some(JobError::Start {
                            step: "init exited before the command started".into(),
                            error: io::Error::from(io::ErrorKind::UnexpectedEof),
                        });
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            Some(JobError::Start {
                step: format!("init did not report within {:?}", config.start_timeout),
                error: io::Error::from(io::ErrorKind::TimedOut),
            })
        });
        if let Some(error) = failure {
            // Init exits by itself after a failure; the kills cover the timeout case.
            if job.parent.is_none() {
                let _ = job.cgroup.kill_all();
            }
            let _ = child.start_kill();
            let _ = child.wait().await;
            drop(control);
            let _ = event_reader.await;
            if let Some(pump) = pump {
                let _ = tokio::time::timeout(DRAIN_LIMIT, pump).await;
            }
            return Err(error);
        }
        let Some(pump) = pump else {
            return Err(JobError::Start {
                step: "init started a terminal job without sending its terminal".into(),
                error: io::Error::from(io::ErrorKind::InvalidData),
            });
        };
        job.status.send_modify(|s| {
            s.state = JobState::Running;
            s.pid = child.id();
            s.started_at = Some(SystemTime::now());
        });
        job.persist();
        let supervisor = tokio::spawn(supervise(
            Arc::clone(&job),
            Supervised {
                child,
                events,
                event_reader,
                control,
                commands: command_rx,
                pump,
            },
        ));
        if let Ok(mut slot) = job.supervisor.lock() {
            *slot = Some(supervisor);
        }
        Ok(())
    }
}

impl Job {
    fn snapshot(&self) -> JobStatus {
        let mut status = self.status.borrow().clone();
        let log = self.log.state();
        status.output_bytes = log.len;
        status.output_dropped_bytes = log.dropped;
        // A command run in another job's sandbox shares its cgroup: usage is the sandbox's.
        if status.state == JobState::Running && self.parent.is_none() {
            status.usage = Some(self.cgroup.usage());
        }
        status
    }

    /// Records the current status durably (see [`state`]).
    fn persist(&self) {
        if let Err(e) = state::write(&self.dir, state::STATUS, &self.snapshot()) {
            tracing::warn!(job = %self.id, error = %e, "cannot record the job's status");
        }
    }

    fn terminal(&self) -> Result<&Arc<PtyMaster>, JobError> {
        self.pty.get().ok_or(JobError::NoTerminal(self.id))
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

fn dup(fd: &std::os::fd::OwnedFd) -> Result<std::os::fd::OwnedFd, JobError> {
    fd.try_clone().map_err(JobError::io("duplicate descriptor"))
}

/// Where a job's output comes from.
enum Source {
    Pipe(pipe::Receiver),
    Pty(Arc<PtyMaster>),
}

/// Copies output into the log until EOF (all writers closed / PTY hung up).
async fn pump_output(mut source: Source, mut writer: LogWriter) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let read = match &mut source {
            Source::Pipe(p) => p.read(&mut buf).await,
            Source::Pty(m) => m.read(&mut buf).await,
        };
        match read {
            Ok(0) => break,
            Ok(n) => writer.append(buf[..n].to_vec()).await,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading job output failed");
                break;
            }
        }
    }
    // Dropping the writer marks the log closed.
}

/// Forwards init's events (and the descriptors sent with them) until every sender has
/// closed the socket (init and monitor are gone).
async fn read_events(socket: AsyncFd<OwnedFd>, tx: mpsc::Sender<(InitEvent, Vec<OwnedFd>)>) {
    let mut buf = vec![0u8; MAX_EVENT];
    loop {
        let received = match socket.readable().await {
            Ok(mut guard) => match guard.try_io(|s| sys::recv_event(s.get_ref(), &mut buf)) {
                Ok(result) => result,
                Err(_would_block) => continue,
            },
            Err(e) => Err(e),
        };
        match received {
            Ok((0, fds)) if fds.is_empty() => return,
            Ok((n, fds)) => match serde_json::from_slice::<InitEvent>(&buf[..n]) {
                Ok(event) => {
                    if tx.send((event, fds)).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "unparseable event from tandem-init"),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading events from tandem-init failed");
                return;
            }
        }
    }
}

/// What the supervisor owns besides the job.
struct Supervised {
    /// The monitor process: the only child of the daemon for this job.
    child: tokio::process::Child,
    /// Parsed init events after `Running`.
    events: mpsc::Receiver<(InitEvent, Vec<OwnedFd>)>,
    /// The task producing `events`.
    event_reader: JoinHandle<()>,
    /// Write end of the control pipe.
    control: pipe::Sender,
    /// Stop requests.
    commands: mpsc::Receiver<Command>,
    /// The output pump.
    pump: JoinHandle<()>,
}

async fn supervise(job: Arc<Job>, mut s: Supervised) {
    let mut exited: Option<(ExitOutcome, bool)> = None;
    let mut stop_requested = false;
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    let mut fallback_at: Option<Instant> = None;
    let far = || Instant::now() + Duration::from_secs(86400 * 365);

    let wait_result = loop {
        tokio::select! {
            res = s.child.wait() => break res,
            Some((event, _)) = s.events.recv() => {
                if let InitEvent::Exited { outcome, stop_delivered } = event {
                    exited = Some((outcome, stop_delivered));
                }
            }
            Some(Command::Stop { grace }) = s.commands.recv() => {
                if !stop_requested {
                    stop_requested = true;
                    job.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
                    tracing::debug!(job = %job.id, ?grace, "stopping job");
                    let _ = s.control.write_all(&[CONTROL_TERMINATE]).await;
                }
                let deadline = Instant::now() + grace;
                kill_at = Some(kill_at.map_or(deadline, |d| d.min(deadline)));
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or_else(far)), if kill_at.is_some() && !killed => {
                killed = true;
                tracing::debug!(job = %job.id, "grace period over, killing job");
                let _ = s.control.write_all(&[CONTROL_KILL]).await;
                // The cgroup is the authoritative list of a sandbox's processes. (A command
                // run in another job's sandbox is killed by its init instead.)
                if job.parent.is_none()
                    && let Err(e) = job.cgroup.kill_all()
                {
                    tracing::warn!(job = %job.id, error = %e, "killing the job's cgroup failed");
                }
                fallback_at = Some(Instant::now() + KILL_FALLBACK);
            }
            _ = tokio::time::sleep_until(fallback_at.unwrap_or_else(far)), if fallback_at.is_some() => {
                tracing::warn!(job = %job.id, "tandem-init did not exit after kill; killing it directly");
                fallback_at = None;
                let _ = s.child.start_kill();
            }
        }
    };

    // The monitor exits only after the init, and the init's exit makes the kernel kill
    // and reap the rest of the namespace first: no process of the job should be left now.
    // The cgroup makes sure of it.
    drop(s.control);
    while let Some((event, _)) = s.events.recv().await {
        if let InitEvent::Exited {
            outcome,
            stop_delivered,
        } = event
        {
            exited = Some((outcome, stop_delivered));
        }
    }
    let _ = s.event_reader.await;
    if tokio::time::timeout(DRAIN_LIMIT, &mut s.pump)
        .await
        .is_err()
    {
        tracing::warn!(job = %job.id, "output still open after the job ended; closing it");
        s.pump.abort();
    }
    let usage = match &job.parent {
        None => {
            let usage = job.cgroup.usage();
            if let Err(e) = cgroup::destroy(job.cgroup.as_ref()).await {
                tracing::warn!(job = %job.id, error = %e, "cannot remove the job's cgroup");
            }
            remove_sandbox_dirs(&job.dir);
            Some(usage)
        }
        Some(_) => None,
    };
    // The sandbox this command ran in ended (or is being stopped) under it.
    let sandbox_gone = job.parent.as_ref().is_some_and(|p| {
        p.stopping.load(std::sync::atomic::Ordering::SeqCst)
            || p.status.borrow().state.is_finished()
    });
    let oom = usage.is_some_and(|u| u.oom_kills > 0)
        && !killed
        && matches!(exited, None | Some((ExitOutcome::Signal(libc::SIGKILL), _)));
    let state = match (exited, stop_requested) {
        (Some((outcome, true)), true) => JobState::Stopped {
            forced: killed && outcome == ExitOutcome::Signal(libc::SIGKILL),
            outcome,
        },
        _ if oom => JobState::OomKilled {
            memory_peak_bytes: usage.and_then(|u| u.memory_peak_bytes),
        },
        // Its sandbox was stopped: the sandbox's stop signal (or kill) ended it.
        (Some((outcome @ ExitOutcome::Signal(signal), _)), false) if sandbox_gone => {
            JobState::Stopped {
                forced: signal == libc::SIGKILL,
                outcome,
            }
        }
        (Some((ExitOutcome::Code(code), _)), _) => JobState::Exited { code },
        (Some((ExitOutcome::Signal(signal), _)), _) => JobState::Signaled { signal },
        (None, true) => JobState::Stopped {
            forced: true,
            outcome: ExitOutcome::Signal(libc::SIGKILL),
        },
        (None, false) if sandbox_gone => JobState::Stopped {
            forced: true,
            outcome: ExitOutcome::Signal(libc::SIGKILL),
        },
        (None, false) => JobState::Failed {
            reason: match wait_result {
                Ok(status) => format!("tandem-init ended without reporting an exit ({status})"),
                Err(e) => format!("waiting for tandem-init failed: {e}"),
            },
        },
    };
    tracing::debug!(job = %job.id, ?state, "job ended");
    job.status.send_modify(|st| {
        st.state = state;
        st.usage = usage;
        st.ended_at = Some(SystemTime::now());
    });
    job.persist();
}

/// Removes a job's overlay directories (its writes); the output log stays.
fn remove_sandbox_dirs(job_dir: &Path) {
    for name in ["upper", "work", "rootfs"] {
        let path = job_dir.join(name);
        if let Err(e) = std::fs::remove_dir_all(&path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove job directory");
        }
    }
}
