//! A real SSH server (in-process, port 0) over real sessions, and real OpenSSH clients
//! driven through pseudo-terminals, as a person at a keyboard would use them.
#![allow(dead_code)]

use nix::pty::{OpenptyResult, openpty};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tandem_scenario::Instances;
use tandem_session::{CreateSession, Sessions, Tokens};
use tandem_worker::{InitProgram, JobId, JobManager, JobManagerConfig};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

pub struct Server {
    pub port: u16,
    pub sessions: Sessions,
    pub manager: JobManager,
    pub task: Arc<tandem_scenario::Task>,
    pub state: tempfile::TempDir,
    _tasks: tempfile::TempDir,
    stop: watch::Sender<bool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.manager.abort_all();
        self.manager.remove_cgroups_blocking(Duration::from_secs(5));
    }
}

impl Server {
    pub async fn start() -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (sandboxes)"
        );
        let exe = std::env::current_exe().unwrap();
        let init: PathBuf = exe.parent().unwrap().parent().unwrap().join("tandem-init");
        assert!(
            init.exists(),
            "{} is not built: run `cargo test --workspace`",
            init.display()
        );
        let state = tempfile::tempdir_in("/var/tmp").unwrap();
        let mut config = JobManagerConfig::new(state.path(), InitProgram::binary(init));
        config.cgroup_parent = format!("tandem-test-{}", JobId::new_random());
        let manager = JobManager::new(config).unwrap();
        let tasks = tempfile::tempdir().unwrap();
        let dir = tasks.path().join("demo");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("task.yaml"),
            "name: demo\ntitle: Demo task\ndescription: |\n  Demo.\ndifficulty: easy\n\
             time_limit: 10m\nshell: /bin/bash --norc -i\nenv:\n  PS1: 'demo$ '\n\
             check: |\n  test -f /tmp/solved && echo solved || { echo not yet; exit 1; }\n\
             solution: |\n  touch /tmp/solved\n",
        )
        .unwrap();
        let task = Arc::new(tandem_scenario::task::load(&dir).unwrap());
        let sessions = Sessions::new(Instances::new(manager.clone()), state.path()).unwrap();
        let (key, _) = tandem_ssh::host_key(&state.path().join("ssh_host_ed25519_key")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, rx) = watch::channel(false);
        tokio::spawn(tandem_ssh::serve(listener, key, sessions.clone(), rx));
        Self {
            port,
            sessions,
            manager,
            task,
            state,
            _tasks: tasks,
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

    /// An OpenSSH client logging in as `user` on a `cols`x`rows` terminal.
    pub fn ssh(&self, user: &str, cols: u16, rows: u16) -> SshClient {
        SshClient::spawn(self.port, user, cols, rows, &[])
    }
}

/// OpenSSH's `ssh` on a pseudo-terminal we hold the master of.
pub struct SshClient {
    pub child: tokio::process::Child,
    master: AsyncFd<OwnedFd>,
    /// Everything the client printed so far.
    pub seen: String,
    /// The client's screen, as a terminal would show it.
    pub screen: vt100::Parser,
}

impl SshClient {
    pub fn spawn(port: u16, user: &str, cols: u16, rows: u16, extra: &[&str]) -> Self {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let OpenptyResult { master, slave } = openpty(&size, None).unwrap();
        nix::fcntl::fcntl(
            &master,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .unwrap();
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args([
            "-tt",
            "-p",
            &port.to_string(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            "-F",
            "/dev/null",
        ])
        .args(extra)
        .arg(format!("{user}@127.0.0.1"))
        .env("TERM", "xterm-256color")
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .kill_on_drop(true);
        // SAFETY: setsid and TIOCSCTTY are async-signal-safe; fd 0 is the slave.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("run ssh");
        Self {
            child,
            // SAFETY: an OwnedFd stays open and unchanged for the AsyncFd's life.
            master: unsafe { AsyncFd::register(master) }
                .map_err(std::io::Error::from)
                .unwrap(),
            seen: String::new(),
            screen: vt100::Parser::new(
                std::num::NonZeroU16::new(rows).unwrap(),
                std::num::NonZeroU16::new(cols).unwrap(),
                0,
            ),
        }
    }

    /// Reads until `needle` appears in the output (fails the test after 20 s).
    pub async fn expect(&mut self, needle: &str) -> String {
        let result = tokio::time::timeout(Duration::from_secs(20), async {
            let mut buf = [0u8; 8192];
            while !self.seen.contains(needle) {
                let mut guard = self.master.readable().await.unwrap();
                match guard
                    .try_io(|fd| nix::unistd::read(fd.get_ref(), &mut buf).map_err(Into::into))
                {
                    Ok(Ok(0)) | Ok(Err(_)) => return false,
                    Ok(Ok(n)) => {
                        self.screen.process(&buf[..n]);
                        self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                    Err(_) => continue,
                }
            }
            true
        })
        .await;
        match result {
            Ok(true) => self.seen.clone(),
            Ok(false) => panic!("ssh ended before {needle:?}; it printed {:?}", self.seen),
            Err(_) => panic!("{needle:?} not seen within 20 s; got {:?}", self.seen),
        }
    }

    /// Reads whatever arrives until the client exits; returns all output.
    pub async fn until_exit(&mut self) -> String {
        let mut buf = [0u8; 8192];
        let _ = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let mut guard = self.master.readable().await.unwrap();
                match guard
                    .try_io(|fd| nix::unistd::read(fd.get_ref(), &mut buf).map_err(Into::into))
                {
                    Ok(Ok(0)) | Ok(Err(_)) => return,
                    Ok(Ok(n)) => {
                        self.screen.process(&buf[..n]);
                        self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                    Err(_) => continue,
                }
            }
        })
        .await;
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("ssh exited")
            .unwrap();
        self.seen.clone()
    }

    /// Types `text`.
    pub fn send(&self, text: &str) {
        nix::unistd::write(self.master.get_ref(), text.as_bytes()).unwrap();
    }

    /// Resizes the client's terminal (ssh forwards it as a window change).
    pub fn resize(&self, cols: u16, rows: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a valid winsize.
        unsafe { libc::ioctl(self.master.get_ref().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }

    /// Stops / continues the ssh process (a client that stops reading).
    pub fn pause(&self, paused: bool) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        let sig = if paused {
            nix::sys::signal::Signal::SIGSTOP
        } else {
            nix::sys::signal::Signal::SIGCONT
        };
        nix::sys::signal::kill(pid, sig).unwrap();
    }

    /// Forgets what was seen so far (to wait for new output only).
    pub fn clear(&mut self) {
        self.seen.clear();
    }
}
