//! Task instances: one sandbox per instance (a holding sandbox job with the task's limits,
//! root, files and mounts), the setup script run in it first, then the candidate's shell
//! on a terminal, and checks run in the same sandbox any number of times.
//!
//! A check's result is one of three: passed, failed (the task is not solved; the check's
//! output says why), or error (the check could not run or did not finish in time). "The
//! check could not run" is never reported as "not solved".

use crate::pool::{Pools, Prepared};
use crate::task::Task;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tandem_worker::{JobError, JobId, JobManager, JobSpec, JobState, PtySize};
use tokio::sync::watch;

/// PATH of setup, check and shell (the task's `env` may override it).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why an instance operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// No task of that name.
    #[error("no task named {0:?}")]
    NoSuchTask(String),
    /// No instance with that id (or not visible to the caller).
    #[error("task instance {0} not found")]
    NotFound(JobId),
    /// The worker refused.
    #[error(transparent)]
    Job(#[from] JobError),
    /// The setup script failed or did not finish; the instance is `failed` and stopped.
    #[error("setup of task {task:?} failed: {reason}\n--- setup output ---\n{output}")]
    SetupFailed {
        /// The task.
        task: String,
        /// The instance (kept, in state `failed`, with the output).
        instance: JobId,
        /// What went wrong.
        reason: String,
        /// Everything the setup printed.
        output: String,
    },
    /// The instance is not ready (still setting up, failed, or ended).
    #[error("task instance {0} is not running")]
    NotRunning(JobId),

    /// A file could not be written into the sandbox (`Instances::write_file`).
    #[error("writing {path} in the sandbox failed: {reason}")]
    Write {
        /// The path inside the sandbox.
        path: String,
        /// Why.
        reason: String,
    },
    /// A bug in tandem (a task that panicked).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Most output kept in the log of a candidate's shell job (the session's recording is
/// the record of the terminal; a shell that prints a flood and exits, again and again,
/// must not fill the state disk 64 MiB at a time).
pub const SHELL_OUTPUT_CAP: u64 = 4 << 20;

/// Where an instance is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    /// The setup script runs.
    SettingUp,
    /// Setup done; the candidate's shell runs.
    Ready,
    /// Setup failed; the reason, and the sandbox is stopped.
    Failed {
        /// Why.
        reason: String,
    },
    /// The sandbox has ended.
    Ended,
}

/// One running copy of a task.
#[derive(Debug)]
pub struct Instance {
    /// The instance id: the id of its sandbox job (stopping that job ends the instance).
    pub id: JobId,
    /// The task it runs.
    pub task: Arc<Task>,
    /// Who started it.
    pub owner: String,
    /// When it was started.
    pub created_at: SystemTime,
    /// The setup job, if the task has a setup script.
    pub setup: Option<JobId>,
    /// Taken from the task's warm pool (set up before it was asked for).
    pub warm: bool,
    /// The candidate's current shell job, once setup is done (a new one replaces it when
    /// it exits during a session).
    shell: std::sync::Mutex<Option<JobId>>,
    /// Current state.
    state: watch::Sender<InstanceState>,
    /// Held while a check runs: checks take turns (each is a job with its own mounts, and
    /// each answers for the state after its caller asked).
    checking: tokio::sync::Mutex<()>,
}

impl Instance {
    /// The candidate's shell job (a terminal job in the sandbox), once ready.
    pub fn shell(&self) -> Option<JobId> {
        *self
            .shell
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current state.
    pub fn state(&self) -> InstanceState {
        self.state.borrow().clone()
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Solved (the check exited 0).
    Passed,
    /// Not solved (the check exited non-zero).
    Failed,
    /// The check could not run or did not finish: nothing is known about the task.
    Error,
}

impl std::fmt::Display for CheckOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Error => "error",
        })
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Passed, failed or error.
    pub outcome: CheckOutcome,
    /// The check's output (its explanation), or why it could not run.
    pub output: String,
    /// How long it took.
    pub duration: Duration,
    /// The named conditions the check reported (`PASS name` / `FAIL name: reason` lines
    /// of its output; see `tandem_task::conditions`); empty for a check without them.
    pub conditions: Vec<tandem_task::Condition>,
}

/// All instances of a daemon.
#[derive(Debug, Clone)]
pub struct Instances {
    /// The worker running the sandboxes.
    manager: JobManager,
    /// Instances by id. A std lock, never held across `.await`.
    all: Arc<RwLock<HashMap<JobId, Arc<Instance>>>>,
    /// Sandboxes set up ahead of time, by task.
    pub(crate) pools: Pools,
}

impl Instances {
    /// Instances run by `manager`.
    pub fn new(manager: JobManager) -> Self {
        Self {
            manager,
            all: Arc::default(),
            pools: Pools::default(),
        }
    }

    /// The worker.
    pub fn manager(&self) -> &JobManager {
        &self.manager
    }

    /// Starts an instance of `task` for `owner` with the candidate's shell on a `size`
    /// terminal. With a warm instance of the task ready (see [`Instances::keep_warm`]) it
    /// is taken: only the shell starts. Otherwise a cold start: the sandbox, then the
    /// setup (to its end, within the task's setup timeout), then the shell. A failing
    /// setup stops the sandbox and returns [`ScenarioError::SetupFailed`] with its output;
    /// the instance stays listed as `failed`.
    pub async fn start(
        &self,
        task: Arc<Task>,
        owner: &str,
        size: PtySize,
    ) -> Result<Arc<Instance>, ScenarioError> {
        while let Some(prepared) = self.pools.take(&task.name) {
            match self.claim(prepared, owner, size).await {
                Ok(instance) => return Ok(instance),
                // Ended while it waited (or its shell could not start): try the next.
                Err(e) => {
                    tracing::warn!(task = %task.name, error = %e, "a warm instance was unusable")
                }
            }
        }
        let (id, setup) = self.sandbox(&task, owner).await?;
        let instance = Arc::new(Instance {
            id,
            task: Arc::clone(&task),
            owner: owner.to_string(),
            created_at: SystemTime::now(),
            setup,
            warm: false,
            shell: std::sync::Mutex::new(None),
            state: watch::Sender::new(InstanceState::SettingUp),
            checking: tokio::sync::Mutex::new(()),
        });
        self.write().insert(id, Arc::clone(&instance));
        if let Err(e) = self.set_up(&task, id, setup).await {
            if let ScenarioError::SetupFailed { reason, .. } = &e {
                instance.state.send_replace(InstanceState::Failed {
                    reason: reason.clone(),
                });
            }
            return Err(e);
        }
        self.start_shell(instance, size).await
    }

    /// A sandbox of `task` with the task's setup started in it (not waited for).
    pub(crate) async fn sandbox(
        &self,
        task: &Task,
        owner: &str,
    ) -> Result<(JobId, Option<JobId>), ScenarioError> {
        let mut sandbox = JobSpec::sandbox()
            .owner(owner)
            .label("task", &task.name)
            .label("role", "sandbox")
            .limits(task.limits.clone());
        sandbox.hostname = task.hostname.clone();
        sandbox.rootfs = task.rootfs.clone();
        sandbox.capabilities = task.capabilities.clone();
        sandbox.files = task.files.iter().map(crate::sandbox::file).collect();
        // Login shells greet the candidate with the task (on the shared screen, so the
        // interviewers see what the candidate was told).
        sandbox.files.push(tandem_worker::FileSpec {
            path: "/etc/tandem/task.txt".into(),
            content: format!(
                "\n\x1b[1m{}\x1b[0m\n\n{}\n",
                task.title,
                task.description.trim_end()
            )
            .into_bytes(),
            mode: 0o644,
            uid: Some(0),
            gid: Some(0),
        });
        sandbox.files.push(tandem_worker::FileSpec {
            path: "/etc/profile.d/zz-tandem-task.sh".into(),
            content: b"if [ -z \"$TANDEM_TASK_SHOWN\" ] && [ -r /etc/tandem/task.txt ]; then\n  cat /etc/tandem/task.txt\n  export TANDEM_TASK_SHOWN=1\nfi\n".to_vec(),
            mode: 0o644,
            uid: Some(0),
            gid: Some(0),
        });
        sandbox.tmpfs = task.tmpfs.iter().map(crate::sandbox::tmpfs).collect();
        let id = self.manager.start(sandbox).await?;
        tracing::info!(instance = %id, task = %task.name, %owner, "task sandbox started");
        let setup = match &task.setup {
            Some(script) => {
                let spec = self.script(task, owner, "setup", script);
                match self.manager.exec(id, spec).await {
                    Ok(job) => Some(job),
                    Err(e) => {
                        let _ = self.manager.stop(id, Duration::ZERO).await;
                        return Err(e.into());
                    }
                }
            }
            None => None,
        };
        Ok((id, setup))
    }

    /// Waits for the setup `setup` of the sandbox `id`; when it fails, stops the sandbox
    /// and says why, with the setup's output.
    pub(crate) async fn set_up(
        &self,
        task: &Task,
        id: JobId,
        setup: Option<JobId>,
    ) -> Result<(), ScenarioError> {
        let Some(setup) = setup else {
            return Ok(());
        };
        let Err(reason) = self.finish(setup, task.setup_timeout).await else {
            return Ok(());
        };
        let output = self.output_of(setup).await;
        let _ = self.manager.stop(id, Duration::ZERO).await;
        tracing::warn!(instance = %id, task = %task.name, %reason, "task setup failed");
        Err(ScenarioError::SetupFailed {
            task: task.name.clone(),
            instance: id,
            reason,
            output,
        })
    }

    /// Makes a warm sandbox `owner`'s instance and starts the candidate's shell in it.
    async fn claim(
        &self,
        prepared: Prepared,
        owner: &str,
        size: PtySize,
    ) -> Result<Arc<Instance>, ScenarioError> {
        let running = self
            .manager
            .status(prepared.id)
            .is_ok_and(|s| s.state == JobState::Running);
        if !running {
            let _ = self.manager.stop(prepared.id, Duration::ZERO).await;
            return Err(ScenarioError::NotRunning(prepared.id));
        }
        let instance = Arc::new(Instance {
            id: prepared.id,
            task: prepared.task,
            owner: owner.to_string(),
            created_at: SystemTime::now(),
            setup: prepared.setup,
            warm: true,
            shell: std::sync::Mutex::new(None),
            state: watch::Sender::new(InstanceState::SettingUp),
            checking: tokio::sync::Mutex::new(()),
        });
        self.write().insert(instance.id, Arc::clone(&instance));
        tracing::info!(instance = %instance.id, task = %instance.task.name, %owner, "warm task instance taken");
        self.start_shell(instance, size).await
    }

    /// Starts the candidate's shell in a set-up instance: it is then ready.
    async fn start_shell(
        &self,
        instance: Arc<Instance>,
        size: PtySize,
    ) -> Result<Arc<Instance>, ScenarioError> {
        let shell = self.shell_spec(&instance.task, &instance.owner, size);
        match self.manager.exec(instance.id, shell).await {
            Ok(job) => {
                *instance
                    .shell
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(job);
                instance.state.send_replace(InstanceState::Ready);
                self.watch_end(Arc::clone(&instance));
                Ok(instance)
            }
            Err(e) => {
                instance.state.send_replace(InstanceState::Failed {
                    reason: format!("the candidate's shell could not start: {e}"),
                });
                let _ = self.manager.stop(instance.id, Duration::ZERO).await;
                Err(e.into())
            }
        }
    }

    /// Starts a fresh shell for the candidate in a ready instance (the previous one exited)
    /// and makes it the instance's shell.
    pub async fn new_shell(
        &self,
        instance: &Instance,
        size: PtySize,
    ) -> Result<JobId, ScenarioError> {
        if instance.state() != InstanceState::Ready {
            return Err(ScenarioError::NotRunning(instance.id));
        }
        let spec = self.shell_spec(&instance.task, &instance.owner, size);
        let job = self.manager.exec(instance.id, spec).await?;
        *instance
            .shell
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(job);
        Ok(job)
    }

    /// The candidate's shell: the task's shell on a terminal, as the task's user.
    fn shell_spec(&self, task: &Task, owner: &str, size: PtySize) -> JobSpec {
        let mut shell = JobSpec::new(task.shell[0].clone(), task.shell[1..].iter().cloned())
            .owner(owner)
            .label("task", &task.name)
            .label("role", "shell")
            .pty(size);
        shell.env = self.env(task);
        shell.env.insert("TERM".into(), "xterm-256color".into());
        // The session's recording keeps the terminal; each shell the candidate ends and
        // gets again is a new job with a log of its own on the state disk.
        shell.output_cap = Some(SHELL_OUTPUT_CAP);
        if task.user != "root" {
            shell.env.remove("HOME");
            shell.user = Some(task.user.clone());
        }
        shell
    }

    /// Runs the task's check in the instance's sandbox. Checks of one instance take
    /// turns: a check asked for while another runs starts when that one has ended.
    pub async fn check(&self, id: JobId) -> Result<CheckResult, ScenarioError> {
        let instance = self.get(id).ok_or(ScenarioError::NotFound(id))?;
        // A caller that gives up while waiting or checking gives its turn back.
        let _turn = instance.checking.lock().await;
        if instance.state() != InstanceState::Ready {
            return Err(ScenarioError::NotRunning(id));
        }
        let task = &instance.task;
        let mut spec = self.script(task, &instance.owner, "check", &task.check);
        // The candidate is root in the sandbox: the check runs with a pristine view of
        // the system (see the worker's check mode) and no rc files of the candidate's.
        spec.pristine = true;
        spec.env.insert("HOME".into(), "/nonexistent".into());
        let started = Instant::now();
        let job = match self.manager.exec(id, spec).await {
            Ok(job) => job,
            Err(e) => {
                return Ok(CheckResult {
                    outcome: CheckOutcome::Error,
                    output: format!("the check could not run: {e}"),
                    duration: started.elapsed(),
                    conditions: Vec::new(),
                });
            }
        };
        let finished = self.finish(job, task.check_timeout).await;
        let output = self.output_of(job).await;
        let duration = started.elapsed();
        let state = self.manager.status(job).map(|s| s.state);
        let outcome = match (&finished, &state) {
            (Ok(()), _) => CheckOutcome::Passed,
            (Err(_), Ok(JobState::Exited { .. })) => CheckOutcome::Failed,
            _ => CheckOutcome::Error,
        };
        let output = match (outcome, finished) {
            (CheckOutcome::Error, Err(reason)) if output.trim().is_empty() => {
                format!("the check could not complete: {reason}")
            }
            (CheckOutcome::Error, Err(reason)) => {
                format!("{output}\n(the check could not complete: {reason})")
            }
            _ => output,
        };
        tracing::info!(instance = %id, task = %task.name, %outcome, ?duration, "task checked");
        // A check that could not complete says nothing about its conditions.
        let conditions = match outcome {
            CheckOutcome::Error => Vec::new(),
            _ => tandem_task::conditions(&output),
        };
        Ok(CheckResult {
            outcome,
            output,
            duration,
            conditions,
        })
    }

    /// Replaces the file `path` (absolute, inside the sandbox) of a ready instance with
    /// `content` (mode 0644, its directory made if missing), as the sandbox's root: through
    /// a job joining the sandbox, never from the host, since the candidate owns that tree
    /// (a link they put on the way leads nowhere outside). The write is a rename, so a
    /// reader sees the old file or the new one. Bounded by the task's `check_timeout`.
    pub async fn write_file(
        &self,
        id: JobId,
        path: &str,
        content: &str,
    ) -> Result<(), ScenarioError> {
        let instance = self.get(id).ok_or(ScenarioError::NotFound(id))?;
        if instance.state() != InstanceState::Ready {
            return Err(ScenarioError::NotRunning(id));
        }
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let script = format!(
            "set -e\numask 022\nf={path}\nmkdir -p \"${{f%/*}}\"\n\
             t=$(mktemp \"${{f%/*}}/.tandem.XXXXXX\")\nprintf '%s' {content} >\"$t\"\n\
             chmod 644 \"$t\"\nmv -f \"$t\" \"$f\"\n",
            path = quote(path),
            content = quote(content),
        );
        let spec = self.script(&instance.task, &instance.owner, "write", &script);
        let job = self.manager.exec(id, spec).await?;
        match self.finish(job, instance.task.check_timeout).await {
            Ok(()) => Ok(()),
            Err(reason) => Err(ScenarioError::Write {
                path: path.to_string(),
                reason: format!("{reason}: {}", self.output_of(job).await.trim()),
            }),
        }
    }

    /// The instance `id`.
    pub fn get(&self, id: JobId) -> Option<Arc<Instance>> {
        self.read().get(&id).cloned()
    }

    /// Every instance, oldest first.
    pub fn list(&self) -> Vec<Arc<Instance>> {
        let mut all: Vec<_> = self.read().values().cloned().collect();
        all.sort_by_key(|i| i.created_at);
        all
    }

    /// A bash script of the task, run as root with the script on stdin.
    fn script(&self, task: &Task, owner: &str, role: &str, script: &str) -> JobSpec {
        let mut spec = JobSpec::new("/bin/bash", ["-s"])
            .owner(owner)
            .label("task", &task.name)
            .label("role", role);
        spec.env = self.env(task);
        spec.stdin = Some(script.as_bytes().to_vec());
        spec
    }

    fn env(&self, task: &Task) -> std::collections::BTreeMap<String, String> {
        let mut env: std::collections::BTreeMap<String, String> =
            [("PATH", PATH), ("HOME", "/root"), ("LANG", "C.UTF-8")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        env.extend(task.env.clone());
        env
    }

    /// Waits for `job` to exit 0 within `timeout`; otherwise stops it and says why.
    async fn finish(&self, job: JobId, timeout: Duration) -> Result<(), String> {
        let status = match tokio::time::timeout(timeout, self.manager.wait(job)).await {
            Ok(status) => status.map_err(|e| e.to_string())?,
            Err(_) => {
                let _ = self.manager.stop(job, Duration::ZERO).await;
                return Err(format!(
                    "did not finish within {}",
                    humantime::format_duration(timeout)
                ));
            }
        };
        match status.state {
            JobState::Exited { code: 0 } => Ok(()),
            JobState::Exited { code } => Err(format!("exited with code {code}")),
            JobState::Signaled { signal } => Err(format!("killed by signal {signal}")),
            other => Err(format!("ended as {other:?}")),
        }
    }

    async fn output_of(&self, job: JobId) -> String {
        match self.manager.output(job) {
            Ok(mut reader) => match reader.read_to_end().await {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => format!("(output unreadable: {e})"),
            },
            Err(e) => format!("(no output: {e})"),
        }
    }

    /// Marks the instance ended when its sandbox ends. The task ends with the sandbox.
    fn watch_end(&self, instance: Arc<Instance>) {
        let manager = self.manager.clone();
        tokio::spawn(async move {
            let _ = manager.wait(instance.id).await;
            instance.state.send_if_modified(|s| {
                if *s == InstanceState::Ready {
                    *s = InstanceState::Ended;
                    true
                } else {
                    false
                }
            });
        });
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<JobId, Arc<Instance>>> {
        self.all
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<JobId, Arc<Instance>>> {
        self.all
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
