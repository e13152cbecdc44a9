//! Starting a job: a new sandbox ([`JobManager::start`]) or a command joining one
//! ([`JobManager::exec`]).
//!
//! 1. [`plan`]: what init is asked to do: build a sandbox (its uid range, root, files,
//!    capabilities), join one, or join one as a check.
//! 2. The job's cgroup, limits applied before any of the job runs: a warm slot's, renamed
//!    to the job id (`warm.rs`: its `tandem-init` is already inside), or a new one that
//!    [`spawn`]'s child joins between fork and exec.
//! 3. [`spawn`]: the protocol's descriptors go to the warm init, or to a new one.
//! 4. [`await_running`]: init's events until the command runs (or the exact error).
//!
//! A start that fails leaves nothing: no job entry, cgroup, directory or process.

use crate::capability::CapSet;
use crate::cgroup::{self, DeviceNumber, Group};
use crate::error::JobError;
use crate::ids::IdLease;
use crate::manager::{Job, JobManager, JobManagerConfig, SandboxHandles, SandboxLayout};
use crate::monitor::Monitor;
use crate::output_log::{self, LogWriter};
use crate::protocol::{CheckConfig, InitConfig, InitEvent, Mode, RootfsConfig, SandboxConfig};
use crate::pty::PtyMaster;
use crate::spec::{FileSpec, JobId, JobSpec};
use crate::state;
use crate::status::{JobState, JobStatus};
use crate::supervise::{DRAIN_LIMIT, Source, Supervised, pump_output, read_events, supervise};
use crate::sys::{self, InitFds};
use crate::system_view::SYSTEM_DIRS;
use nix::fcntl::OFlag;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};

/// A check's working directory: empty, in the pins layer (the candidate's directory of
/// that name, if any, does not show through).
pub(crate) const CHECK_DIR: &str = "/.tandem-check";

/// Size of a check's private writable layer.
const CHECK_SCRATCH: u64 = 64 << 20;

/// Most output kept of a check (`JobSpec::pristine`): a verdict, not a log. Checks often
/// quote what the candidate made, so the candidate decides how much they print; each
/// check's log is kept on the state disk and its text travels in one API answer.
pub const CHECK_OUTPUT_CAP: u64 = 1 << 20;

/// What init will be asked to do, with what the job keeps of it.
struct Plan {
    /// Init's instructions.
    mode: Mode,
    /// The capabilities of the job's processes.
    caps: CapSet,
    /// For a new sandbox: what later commands need to join it.
    layout: Option<Arc<SandboxLayout>>,
    /// For a join: duplicates of the sandbox's pidfd and user namespace.
    join: Option<(OwnedFd, OwnedFd)>,
}

impl JobManager {
    pub(crate) async fn launch(
        self,
        spec: JobSpec,
        parent: Option<Arc<Job>>,
    ) -> Result<JobId, JobError> {
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
        let ids = match parent {
            Some(_) => None,
            None => Some(
                IdLease::take(self.inner.config.first_uid, self.inner.config.sandbox_slots)
                    .map_err(JobError::Setup)?,
            ),
        };
        let id = JobId::new_random();
        let dir = self.inner.jobs_dir.join(id.to_string());
        let owns_cgroup = parent.is_none();
        let slot = match (&parent, &self.inner.warm) {
            (None, Some(warm)) => warm.take().map(|slot| (warm, slot)),
            _ => None,
        };
        // A slot's directory skeleton becomes the job's by a rename: on ext4 every new
        // inode costs (here 0.2-0.8 ms), a rename does not.
        let made = match &slot {
            Some((pool, slot)) => pool.adopt_dir(slot, &dir),
            None => Err(io::ErrorKind::NotFound.into()),
        }
        .or_else(|_| std::fs::DirBuilder::new().mode(0o700).create(&dir));
        if let Err(e) = made {
            if let Some((pool, slot)) = slot {
                pool.discard(slot).await;
            }
            return Err(JobError::io(format!(
                "create job directory {}",
                dir.display()
            ))(e));
        }
        let (cgroup, warm): (Arc<dyn Group>, Option<WarmInit>) = match (&parent, slot) {
            (Some(parent), _) => (parent.cgroup(), None),
            (None, Some((pool, slot))) => {
                match self
                    .inner
                    .cgroups
                    .adopt(&slot.name, &id.to_string(), &spec.limits, io_device)
                {
                    Ok(group) => {
                        let warm = WarmInit {
                            child: slot.child,
                            socket: slot.socket,
                        };
                        (Arc::from(group), Some(warm))
                    }
                    Err(e) => {
                        pool.discard(slot).await;
                        let _ = std::fs::remove_dir_all(&dir);
                        return Err(e.into());
                    }
                }
            }
            (None, None) => {
                match self
                    .inner
                    .cgroups
                    .create(&id.to_string(), &spec.limits, io_device)
                {
                    Ok(group) => (Arc::from(group), None),
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        return Err(e.into());
                    }
                }
            }
        };
        let launched = self
            .launch_in(id, spec, &dir, (Arc::clone(&cgroup), warm), parent, ids)
            .await;
        if let Some(pool) = &self.inner.warm
            && owns_cgroup
        {
            pool.refill();
        }
        match launched {
            Ok(()) => Ok(id),
            Err(e) => {
                self.write_jobs().remove(&id);
                if owns_cgroup && let Err(err) = cgroup::destroy(cgroup).await {
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
                Some(node) => cgroup::block_device_node(node).map_err(|e| e.to_string()),
                None => cgroup::block_device_of(&self.inner.state_dir).map_err(|e| e.to_string()),
            })
            .clone()
    }

    async fn launch_in(
        &self,
        id: JobId,
        spec: JobSpec,
        dir: &Path,
        (cgroup, warm): (Arc<dyn Group>, Option<WarmInit>),
        parent: Option<Arc<Job>>,
        ids: Option<IdLease>,
    ) -> Result<(), JobError> {
        let config = &self.inner.config;
        let check_cap = if spec.pristine {
            CHECK_OUTPUT_CAP
        } else {
            u64::MAX
        };
        let cap = config
            .output_cap
            .min(spec.output_cap.unwrap_or(u64::MAX))
            .min(check_cap);
        let (writer, log) = output_log::create(&dir.join("output.log"), cap)
            .map_err(JobError::io("create output log"))?;
        let plan = match (&parent, &ids) {
            (None, Some(ids)) => self.plan_sandbox(id, &spec, dir, ids)?,
            (Some(parent), _) => plan_join(parent, &spec, crate::ids::check_uid(config.first_uid))?,
            (None, None) => {
                return Err(JobError::Setup("a new sandbox without a uid range".into()));
            }
        };
        let mut env = spec.env.clone();
        let mut cwd = spec.cwd.clone();
        if spec.pristine {
            // Interpreters load code from their working directory (Python puts it first in
            // sys.path; glibc resolves NSS modules named with a '/' against it): a check
            // starts in an empty directory of its own, not in the candidate's files.
            cwd.get_or_insert_with(|| PathBuf::from(CHECK_DIR));
            env.entry("PYTHONSAFEPATH".into())
                .or_insert_with(|| "1".into());
        }
        let init_config = InitConfig {
            argv: if spec.hold {
                Vec::new()
            } else {
                std::iter::once(spec.command.clone())
                    .chain(spec.args.iter().cloned())
                    .collect()
            },
            env: env.into_iter().collect(),
            cwd,
            pty: spec.pty,
            user: spec.user.clone(),
            caps: plan.caps,
            mode: plan.mode,
        };

        let (commands, command_rx) = mpsc::channel(8);
        let job = Arc::new(Job {
            id,
            spec: Arc::new(spec),
            status: watch::Sender::new(JobStatus::new(SystemTime::now())),
            dir: dir.to_path_buf(),
            log,
            cgroup: Mutex::new(cgroup),
            parent,
            layout: plan.layout,
            sandbox: Mutex::new(None),
            ids: Mutex::new(ids),
            stopping: AtomicBool::new(false),
            pty: Mutex::new(None),
            commands,
            supervisor: Mutex::new(None),
        });
        state::write(dir, state::SPEC, &*job.spec, state::Sync::Cached)
            .map_err(JobError::io("record the job's spec"))?;
        self.write_jobs().insert(id, Arc::clone(&job));

        let spawned = spawn(self, &job, &init_config, plan.join, warm)?;
        let Spawned {
            mut child,
            pipe,
            control,
            events,
        } = spawned;
        let events = sys::register_async(events).map_err(JobError::io("event socket"))?;
        let (event_tx, mut event_rx) = mpsc::channel(4);
        let event_reader = tokio::spawn(read_events(events, event_tx));
        let mut writer = Some(writer);
        let mut pump = pipe.map(|p| {
            tokio::spawn(pump_output(
                Source::Pipe(p),
                writer.take().expect("writer unused"),
            ))
        });
        let mut held = Vec::new();
        let failure = await_running(
            &job,
            &mut event_rx,
            &mut held,
            &mut writer,
            &mut pump,
            config.start_timeout,
        )
        .await;
        if let Some(error) = failure {
            // Init exits by itself after a failure; the kills cover the timeout case.
            if job.parent.is_none() {
                let _ = job.cgroup().kill_all();
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
        job.record_status(state::Sync::Cached);
        let supervisor = tokio::spawn(supervise(
            Arc::clone(&job),
            Supervised {
                child,
                held,
                events: event_rx,
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

    /// A new sandbox: its root (the system view, or the spec's rootfs directory), its
    /// files, its capabilities.
    fn plan_sandbox(
        &self,
        id: JobId,
        spec: &JobSpec,
        dir: &Path,
        ids: &IdLease,
    ) -> Result<Plan, JobError> {
        let view = self.inner.system_view.as_ref().ok_or_else(|| {
            JobError::Setup("the sandbox system view was not built (not root?)".into())
        })?;
        let staging = dir.join("sandbox");
        // A warm slot's skeleton has it already.
        match std::fs::create_dir(&staging) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(JobError::io(format!("create {}", staging.display()))(e));
            }
            _ => {}
        }
        let (lower, system_dirs, pins, check_dirs) = match &spec.rootfs {
            None => (
                view.root.clone(),
                view.system_dirs.clone(),
                view.pins.clone(),
                view.system_dirs
                    .iter()
                    .map(|d| (d.clone(), d.clone()))
                    .collect(),
            ),
            Some(rootfs) => {
                let check_dirs = SYSTEM_DIRS
                    .iter()
                    .map(|name| (PathBuf::from("/").join(name), rootfs.join(name)))
                    .filter(|(_, host)| std::fs::symlink_metadata(host).is_ok_and(|m| m.is_dir()))
                    .collect();
                (
                    rootfs.clone(),
                    Vec::new(),
                    self.rootfs_pins(rootfs)?,
                    check_dirs,
                )
            }
        };
        let id_text = id.to_string();
        let hostname = spec
            .hostname
            .clone()
            .unwrap_or_else(|| format!("job-{}", &id_text[..8]));
        let caps = CapSet::with_extra(&spec.capabilities).map_err(JobError::InvalidSpec)?;
        let hide: Vec<PathBuf> = std::iter::once(self.inner.state_dir.clone())
            .chain(self.inner.config.hide_paths.iter().cloned())
            .collect();
        let mounts = ["/proc", "/dev", "/sys", "/run"]
            .into_iter()
            .map(PathBuf::from)
            .chain(spec.tmpfs.iter().map(|t| t.target.clone()))
            .chain(spec.binds.iter().map(|b| b.target.clone()))
            .chain(hide.iter().cloned())
            .collect();
        let mut files = identity_files(&hostname, id);
        files.extend(spec.files.iter().cloned());
        Ok(Plan {
            mode: Mode::Create(SandboxConfig {
                hostname,
                ids: ids.map,
                rootfs: RootfsConfig {
                    staging,
                    lower,
                    system_dirs,
                    disk: spec.limits.disk.unwrap_or(cgroup::DEFAULT_DISK),
                    hide,
                    binds: spec.binds.clone(),
                    tmpfs: spec.tmpfs.clone(),
                },
                files,
            }),
            caps,
            layout: Some(Arc::new(SandboxLayout {
                caps,
                pins,
                system_dirs: check_dirs,
                mounts,
            })),
            join: None,
        })
    }

    /// The check pins of a rootfs directory, built on first use.
    fn rootfs_pins(&self, rootfs: &Path) -> Result<PathBuf, JobError> {
        let mut built = self
            .inner
            .rootfs_pins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(pins) = built.get(rootfs) {
            return Ok(pins.clone());
        }
        let dir = self
            .inner
            .state_dir
            .join("system")
            .join(format!("rootfs-pins-{}", built.len()));
        let pins = crate::system_view::build_rootfs_pins(rootfs, &dir)
            .map_err(|e| JobError::Setup(e.to_string()))?;
        built.insert(rootfs.to_path_buf(), pins.clone());
        Ok(pins)
    }
}

/// A command joining `parent`'s sandbox: plainly, or as a check.
fn plan_join(parent: &Job, spec: &JobSpec, check_uid: u32) -> Result<Plan, JobError> {
    if parent.status.borrow().state.is_finished() {
        return Err(JobError::Ended(parent.id));
    }
    let handles = parent
        .sandbox
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (handles, layout) = match (handles.as_ref(), &parent.layout) {
        (Some(h), Some(l)) => (h, l),
        _ => {
            return Err(JobError::Start {
                step: format!("join the sandbox of job {}", parent.id),
                error: io::Error::from(io::ErrorKind::NotFound),
            });
        }
    };
    let join = (
        handles
            .pidfd
            .try_clone()
            .map_err(JobError::io("duplicate the sandbox's pidfd"))?,
        handles
            .userns
            .try_clone()
            .map_err(JobError::io("duplicate the sandbox's user namespace"))?,
    );
    let (mode, caps) = if spec.pristine {
        (
            Mode::Check(CheckConfig {
                pins: layout.pins.clone(),
                system_dirs: layout.system_dirs.clone(),
                mounts: layout.mounts.clone(),
                host_uid: check_uid,
                scratch: CHECK_SCRATCH,
            }),
            // SYS_PTRACE: to read the candidate's /proc/PID/fd and the like. KILL: the
            // check's init kills what the check left behind, whatever uid it took.
            layout.caps.plus("SYS_PTRACE").plus("KILL"),
        )
    } else {
        (Mode::Join, layout.caps)
    };
    Ok(Plan {
        mode,
        caps,
        layout: None,
        join: Some(join),
    })
}

/// `/etc/hostname`, `/etc/hosts` and `/etc/machine-id` of a new sandbox.
fn identity_files(hostname: &str, id: JobId) -> Vec<FileSpec> {
    let file = |path: &str, content: String| FileSpec {
        path: path.into(),
        content: content.into_bytes(),
        mode: 0o644,
        uid: None,
        gid: None,
    };
    vec![
        file("/etc/hostname", format!("{hostname}\n")),
        file(
            "/etc/hosts",
            format!(
                "127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            ),
        ),
        file(
            "/etc/machine-id",
            format!("{}\n", id.to_string().replace('-', "")),
        ),
    ]
}

/// A warm slot's init, taken for this job: it waits for the job's descriptors.
struct WarmInit {
    /// The waiting `tandem-init`, already in the job's cgroup.
    child: tokio::process::Child,
    /// Where its descriptors go.
    socket: OwnedFd,
}

/// The spawned monitor and the daemon's ends of its descriptors.
struct Spawned {
    child: Monitor,
    /// Output pipe (no terminal).
    pipe: Option<pipe::Receiver>,
    /// Write end of the control pipe.
    control: pipe::Sender,
    /// The worker's end of the event socket.
    events: OwnedFd,
}

/// Starts `tandem-init` for `job`: hands the job's descriptors to a warm init (already in
/// the job's cgroup), or spawns one that joins the job's cgroup before it execs.
fn spawn(
    manager: &JobManager,
    job: &Job,
    init_config: &InitConfig,
    join: Option<(OwnedFd, OwnedFd)>,
    warm: Option<WarmInit>,
) -> Result<Spawned, JobError> {
    let config = &manager.inner.config;
    // A PTY job's terminal is created by init inside the job; without one, stdout and
    // stderr share one pipe (merged in order) and stdin is /dev/null.
    let null = || {
        std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map(OwnedFd::from)
            .map_err(JobError::io("open /dev/null"))
    };
    let (stdio, pipe): ([OwnedFd; 3], _) = if job.spec.pty.is_some() {
        ([null()?, null()?, null()?], None)
    } else {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| JobError::io("create output pipe")(e.into()))?;
        let stdin = match &job.spec.stdin {
            Some(bytes) => sys::memfd_with("tandem-job-stdin", bytes)
                .map_err(JobError::io("create stdin memfd"))?,
            None => null()?,
        };
        let write_dup = write
            .try_clone()
            .map_err(JobError::io("duplicate descriptor"))?;
        let read = pipe::Receiver::from_owned_fd(read).map_err(JobError::io("output pipe"))?;
        ([stdin, write_dup, write], Some(read))
    };
    let (events_ours, events_init) =
        sys::event_socket().map_err(JobError::io("create event socket"))?;
    let (control_read, control_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| JobError::io("create control pipe")(e.into()))?;
    let config_json = serde_json::to_vec(init_config)
        .map_err(|e| JobError::io("encode init config")(io::Error::other(e)))?;
    let config_fd = sys::memfd_with("tandem-init-config", &config_json)
        .map_err(JobError::io("create init config memfd"))?;

    let child = match warm {
        Some(warm) => {
            // fds 0, 1, 2, CONFIG_FD, EVENT_FD, CONTROL_FD by order. Only new sandboxes
            // take a slot, so there is nothing to join.
            let [stdin, stdout, stderr] = &stdio;
            let fds = [
                stdin,
                stdout,
                stderr,
                &config_fd,
                &events_init,
                &control_read,
            ];
            sys::send_fds(&warm.socket, &fds)
                .map_err(JobError::io("hand the job's descriptors to its warm init"))?;
            Monitor::Spawned(warm.child)
        }
        None => {
            let init_fds = InitFds::new(
                &config_fd,
                &events_init,
                &control_read,
                join.as_ref().map(|(p, u)| (p, u)),
            )
            .map_err(JobError::io("prepare init descriptors"))?;
            let cgroup = job.cgroup();
            // cgroup v2: born inside the job's cgroup, no migration.
            let target = cgroup.clone_target().filter(|_| config.clone_into_cgroup);
            let cloned = match target {
                Some(target) => sys::spawn_into_cgroup(
                    &config.init.program,
                    &config.init.args,
                    &stdio,
                    &init_fds,
                    target,
                )
                .map_err(JobError::io(format!(
                    "spawn init program {} into the job's cgroup",
                    config.init.program.display()
                )))?,
                None => None,
            };
            if let Some(child) = cloned {
                Monitor::Cloned(child)
            } else {
                Monitor::Spawned(spawn_joining(config, stdio, &init_fds, &*cgroup)?)
            }
        }
    };
    // Only the job may hold these (the pipe's write ends above all, or readers would
    // never see EOF).
    drop((config_fd, events_init, control_read, join));
    let control =
        pipe::Sender::from_owned_fd(control_write).map_err(JobError::io("control pipe"))?;
    Ok(Spawned {
        child,
        pipe,
        control,
        events: events_ours,
    })
}

/// Spawns `tandem-init` with tokio; it joins the job's cgroups between fork and exec.
fn spawn_joining(
    config: &JobManagerConfig,
    [stdin, stdout, stderr]: [OwnedFd; 3],
    init_fds: &InitFds,
    cgroup: &dyn Group,
) -> Result<tokio::process::Child, JobError> {
    let mut cmd = tokio::process::Command::new(&config.init.program);
    cmd.args(&config.init.args)
        .env_clear()
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    init_fds.install(&mut cmd, cgroup.procs_files());
    let spawned = cmd.spawn();
    // Close the daemon's copies right away: the pipe's write end (held by `cmd`)
    // must only be open in the job, or readers would never see EOF.
    drop(cmd);
    spawned.map_err(JobError::io(format!(
        "spawn init program {}",
        config.init.program.display()
    )))
}

/// Follows init's events until the command runs (and, for a new sandbox, its handles
/// have come); `Some(error)` if it did not. Events that come after `Running` while the
/// sandbox's handles are awaited go to `held`, for the supervisor.
async fn await_running(
    job: &Job,
    events: &mut mpsc::Receiver<(InitEvent, Vec<OwnedFd>)>,
    held: &mut Vec<InitEvent>,
    writer: &mut Option<LogWriter>,
    pump: &mut Option<tokio::task::JoinHandle<()>>,
    timeout: std::time::Duration,
) -> Option<JobError> {
    let protocol = |step: &str| {
        Some(JobError::Start {
            step: step.into(),
            error: io::Error::from(io::ErrorKind::InvalidData),
        })
    };
    // The sandbox's handles come from the monitor, `Running` from the init: two processes
    // writing to one socket, so under load `Running` may come first. Commands join the
    // sandbox with the handles: `start` returns only once both have come.
    let mut running = false;
    tokio::time::timeout(timeout, async {
        loop {
            match events.recv().await {
                Some((InitEvent::Sandbox, fds)) => {
                    let mut fds = fds.into_iter();
                    match (fds.next(), fds.next()) {
                        (Some(pidfd), Some(userns)) => {
                            let mut handles = job
                                .sandbox
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            if handles.is_none() {
                                *handles = Some(SandboxHandles { pidfd, userns });
                            }
                        }
                        _ => return protocol("receive the sandbox's pidfd and user namespace"),
                    }
                    if running {
                        return None;
                    }
                }
                Some((InitEvent::Terminal, fds)) => {
                    let (Some(master), Some(writer)) = (fds.into_iter().next(), writer.take())
                    else {
                        return protocol("receive the job's terminal");
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
                    let mut pty = job
                        .pty
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if pty.is_none() {
                        *pty = Some(Arc::clone(&master));
                    }
                    drop(pty);
                    *pump = Some(tokio::spawn(pump_output(Source::Pty(master), writer)));
                }
                Some((InitEvent::Running, _)) => {
                    let awaiting = job.layout.is_some()
                        && job
                            .sandbox
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .is_none();
                    if !awaiting {
                        return None;
                    }
                    running = true;
                }
                // The command runs; what it does meanwhile is the supervisor's.
                Some((other, _)) if running => held.push(other),
                Some((InitEvent::Failed { step, errno }, _)) => {
                    return Some(JobError::Start {
                        step,
                        error: io::Error::from_raw_os_error(errno),
                    });
                }
                Some((other, _)) => {
                    return protocol(&format!(
                        "init reported {other:?} before the command started"
                    ));
                }
                // The monitor is gone without the handles: the supervisor sees it end.
                None if running => return None,
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
            step: format!("init did not report within {timeout:?}"),
            error: io::Error::from(io::ErrorKind::TimedOut),
        })
    })
}
