//! The real OpenSSH client on a pseudo-terminal, driven as a person at a keyboard would.

use nix::pty::{OpenptyResult, openpty};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;
use tokio::io::unix::AsyncFd;

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
        Self::spawn_with_env(port, user, cols, rows, extra, &[])
    }

    /// Like [`spawn`](Self::spawn), with variables added to the client's environment
    /// (e.g. `DISPLAY` for `-X`, a variable for `SendEnv`).
    pub fn spawn_with_env(
        port: u16,
        user: &str,
        cols: u16,
        rows: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
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
        .envs(env.iter().copied())
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
            // The client's screen as the server can draw it: the server models at most
            // the largest terminal a job may have (a 3000x3000 window is clamped).
            screen: vt100::Parser::new(
                std::num::NonZeroU16::new(rows.clamp(1, tandem_limits::MAX_TERMINAL_ROWS)).unwrap(),
                std::num::NonZeroU16::new(cols.clamp(1, tandem_limits::MAX_TERMINAL_COLS)).unwrap(),
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

    /// Reads until `needle` appears (fails the test after `limit`), keeping nothing but
    /// what is needed to find it: for floods that would not fit in `seen` (the screen is
    /// not updated). Returns the time it took.
    pub async fn skip_until(&mut self, needle: &str, limit: Duration) -> Duration {
        let start = std::time::Instant::now();
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let found = tokio::time::timeout(limit, async {
            loop {
                let mut guard = self.master.readable().await.unwrap();
                match guard
                    .try_io(|fd| nix::unistd::read(fd.get_ref(), &mut buf).map_err(Into::into))
                {
                    Ok(Ok(0)) | Ok(Err(_)) => return false,
                    Ok(Ok(n)) => {
                        tail.extend_from_slice(&buf[..n]);
                        if tail.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                            return true;
                        }
                        let keep = needle.len().min(tail.len());
                        tail.drain(..tail.len() - keep);
                    }
                    Err(_) => continue,
                }
            }
        })
        .await;
        match found {
            Ok(true) => start.elapsed(),
            Ok(false) => panic!("ssh ended before {needle:?}"),
            Err(_) => panic!("{needle:?} not seen within {limit:?}"),
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

    /// Types all of `data` (a paste), waiting while the client takes no more.
    pub async fn type_all(&self, data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() {
            let mut guard = self.master.writable().await.unwrap();
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), rest).map_err(Into::into)) {
                Ok(Ok(n)) => rest = &rest[n..],
                Ok(Err(e)) => panic!("typing into the ssh client failed: {e}"),
                Err(_would_block) => continue,
            }
        }
    }

    /// Resizes the client's terminal (ssh forwards it as a window change), and the model
    /// of its screen.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.screen.screen_mut().set_size(
            std::num::NonZeroU16::new(rows.clamp(1, tandem_limits::MAX_TERMINAL_ROWS)).unwrap(),
            std::num::NonZeroU16::new(cols.clamp(1, tandem_limits::MAX_TERMINAL_COLS)).unwrap(),
        );
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

    /// Reads whatever arrives within `limit` (a screen that may still be changing).
    pub async fn read_for(&mut self, limit: Duration) {
        let mut buf = [0u8; 8192];
        let _ = tokio::time::timeout(limit, async {
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
    }

    /// Forgets what was seen so far (to wait for new output only).
    pub fn clear(&mut self) {
        self.seen.clear();
    }
}
