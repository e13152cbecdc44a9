//! A real SSH server (in-process, port 0) over real sessions, and real OpenSSH clients
//! driven through pseudo-terminals, as a person at a keyboard would use them.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;
use tandem_scenario::Instances;
pub use tandem_session::Tokens;
use tandem_session::{CreateSession, Sessions};
use tandem_testkit_worker::TestManager;
use tokio::sync::watch;

pub use tandem_testkit::SshClient;

pub struct Server {
    pub port: u16,
    pub sessions: Sessions,
    pub manager: TestManager,
    pub task: Arc<tandem_scenario::Task>,
    /// The tasks directory (the demo task is in `demo/`).
    pub tasks: tempfile::TempDir,
    /// The warm pool of the demo task, if the options asked for one.
    pub pools: Option<tandem_scenario::WarmPools>,
    stop: watch::Sender<bool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// How a test's server differs from the default one.
#[derive(Default)]
pub struct Options {
    /// The SSH front end's bounds.
    pub limits: tandem_ssh::SshLimits,
    /// YAML lines added to the demo task (e.g. `limits:` with a disk size).
    pub task_extra: &'static str,
    /// Files written into the demo task's directory before it is loaded.
    pub task_files: Vec<(&'static str, &'static str)>,
    /// Keep one demo sandbox warm.
    pub warm: bool,
    /// The windows around scheduled starts.
    pub schedule: Option<tandem_session::ScheduleTimes>,
    /// The recording cap of the candidate's traffic (the default if None).
    pub recording_cap: Option<u64>,
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let manager = TestManager::new();
        let tasks = tempfile::tempdir().unwrap();
        let dir = tasks.path().join("demo");
        std::fs::create_dir(&dir).unwrap();
        for (name, content) in &options.task_files {
            std::fs::write(dir.join(name), content).unwrap();
        }
        std::fs::write(
            dir.join("task.yaml"),
            format!(
                "name: demo\ntitle: Demo task\ndescription: |\n  Demo.\ndifficulty: easy\n\
                 time_limit: 10m\nshell: /bin/bash --norc -i\nenv:\n  PS1: 'demo$ '\n\
                 check: |\n  test -f /tmp/solved && echo solved || {{ echo not yet; exit 1; }}\n\
                 solution: |\n  touch /tmp/solved\n{}",
                options.task_extra
            ),
        )
        .unwrap();
        let task = Arc::new(tandem_scenario::task::load(&dir).unwrap());
        let state = manager.state.path().to_path_buf();
        let instances = Instances::new(manager.manager.clone());
        let pools = options.warm.then(|| {
            instances.keep_warm(
                Arc::new(tandem_scenario::Catalog::from_tasks([(*task).clone()])),
                tandem_scenario::WarmSettings {
                    per_task: Some(1),
                    max_total: 1,
                },
            )
        });
        let mut sessions = Sessions::new(instances, &state).unwrap();
        if let Some(times) = options.schedule {
            sessions = sessions.with_schedule_times(times);
        }
        if let Some(cap) = options.recording_cap {
            sessions = sessions.with_recording_cap(cap);
        }
        let (key, _) = tandem_ssh::host_key(&state.join("ssh_host_ed25519_key")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, rx) = watch::channel(false);
        tokio::spawn(tandem_ssh::serve(
            listener,
            key,
            sessions.clone(),
            options.limits,
            rx,
        ));
        Self {
            port,
            sessions,
            manager,
            task,
            tasks,
            pools,
            stop,
        }
    }

    pub async fn session(
        &self,
        duration: Option<Duration>,
    ) -> (Arc<tandem_session::Session>, Tokens) {
        self.sessions
            .create(CreateSession {
                task: Arc::clone(&self.task),
                created_by: "alice".into(),
                duration,
                candidate_keys: vec![],
                interviewer_keys: vec![],
            })
            .await
            .unwrap()
    }

    /// The demo task scheduled at `at` (clock `clock`, `duration`).
    pub fn schedule(
        &self,
        at: std::time::SystemTime,
        clock: tandem_session::ClockStart,
        duration: Duration,
    ) -> (tandem_session::SessionRecord, Tokens) {
        self.sessions
            .schedule(
                CreateSession {
                    task: Arc::clone(&self.task),
                    created_by: "alice".into(),
                    duration: Some(duration),
                    candidate_keys: vec![],
                    interviewer_keys: vec![],
                },
                tandem_session::Schedule { at, clock },
            )
            .unwrap()
    }

    /// An OpenSSH client logging in as `user` on a `cols`x`rows` terminal.
    pub fn ssh(&self, user: &str, cols: u16, rows: u16) -> SshClient {
        SshClient::spawn(self.port, user, cols, rows, &[])
    }

    /// A new session with the candidate and an interviewer logged in over ssh (80×24),
    /// both at the prompt.
    pub async fn candidate_and_interviewer(
        &self,
    ) -> (Arc<tandem_session::Session>, Tokens, SshClient, SshClient) {
        let (session, tokens) = self.session(None).await;
        let mut cand = self.ssh(&tokens.candidate, 80, 24);
        let mut ivy = self.ssh(&tokens.interviewer, 80, 24);
        cand.expect("demo$ ").await;
        ivy.expect("demo$ ").await;
        (session, tokens, cand, ivy)
    }
}
