//! The real OpenSSH client on a pseudo-terminal, driven as a person at a keyboard would.

use nix::pty::{OpenptyResult, openpty};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// OpenSSH's `ssh` on a pseudo-terminal we hold the master of.
pub struct SshClient {
    pub child: tokio::process::Child,
    master: AsyncFd<OwnedFd>,
    /// Bytes read from the terminal and not taken by any reader yet: what followed the
    /// needle in the read where [`skip_until`](Self::skip_until) found it. Every read
    /// starts with them.
    unread: Vec<u8>,
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
            unread: Vec::new(),
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
                let n = self.read_some(&mut buf).await;
                if n == 0 {
                    return false;
                }
                self.screen.process(&buf[..n]);
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
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

    /// The next bytes the client printed (those left unread first), at most `buf.len()`;
    /// 0 once ssh has closed its terminal.
    async fn read_some(&mut self, buf: &mut [u8]) -> usize {
        if !self.unread.is_empty() {
            let n = self.unread.len().min(buf.len());
            buf[..n].copy_from_slice(&self.unread[..n]);
            self.unread.drain(..n);
            return n;
        }
        loop {
            let mut guard = self.master.readable().await.unwrap();
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(Into::into)) {
                Ok(Ok(n)) => return n,
                // EIO: the other side of the terminal is closed.
                Ok(Err(_)) => return 0,
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads until `needle` appears (fails the test after `limit`), keeping nothing but
    /// what is needed to find it: for floods that would not fit in `seen` (the screen is
    /// not updated). What followed the needle is left for the next read. Returns the time
    /// it took.
    pub async fn skip_until(&mut self, needle: &str, limit: Duration) -> Duration {
        self.skip_until_each(&[needle], limit).await[0]
    }

    /// Like [`skip_until`](Self::skip_until) for several needles, in whatever order they
    /// come (one may even come within another's wait): reads until each has appeared.
    /// Returns the time each first appeared.
    pub async fn skip_until_each(&mut self, needles: &[&str], limit: Duration) -> Vec<Duration> {
        let start = std::time::Instant::now();
        let mut found: Vec<Option<Duration>> = vec![None; needles.len()];
        // A needle may span two reads: the last bytes of one are kept for the next.
        let overlap = needles
            .iter()
            .map(|n| n.len())
            .max()
            .unwrap_or(0)
            .saturating_sub(1);
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let all_found = tokio::time::timeout(limit, async {
            loop {
                let n = self.read_some(&mut buf).await;
                if n == 0 {
                    return false;
                }
                tail.extend_from_slice(&buf[..n]);
                // Where the needles found in this read end: bytes after the last one are
                // not this call's. (A needle found now ends in this read: one within the
                // overlap alone would have been found in the read before.)
                let mut end = 0;
                for (needle, when) in needles.iter().zip(found.iter_mut()) {
                    if when.is_some() {
                        continue;
                    }
                    if let Some(at) = tail
                        .windows(needle.len())
                        .position(|w| w == needle.as_bytes())
                    {
                        *when = Some(start.elapsed());
                        end = end.max(at + needle.len());
                    }
                }
                if found.iter().all(Option::is_some) {
                    // Before whatever a short read left unread.
                    let mut rest = tail.split_off(end);
                    rest.append(&mut self.unread);
                    self.unread = rest;
                    return true;
                }
                let keep = overlap.min(tail.len());
                tail.drain(..tail.len() - keep);
            }
        })
        .await;
        let missing: Vec<&str> = needles
            .iter()
            .zip(&found)
            .filter(|(_, when)| when.is_none())
            .map(|(needle, _)| *needle)
            .collect();
        match all_found {
            Ok(true) => found.into_iter().flatten().collect(),
            Ok(false) => panic!("ssh ended before {missing:?}"),
            Err(_) => panic!("{missing:?} not seen within {limit:?}"),
        }
    }

    /// Reads whatever arrives until the client exits; returns all output.
    pub async fn until_exit(&mut self) -> String {
        let mut buf = [0u8; 8192];
        let _ = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let n = self.read_some(&mut buf).await;
                if n == 0 {
                    return;
                }
                self.screen.process(&buf[..n]);
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
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
                let n = self.read_some(&mut buf).await;
                if n == 0 {
                    return;
                }
                self.screen.process(&buf[..n]);
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
        .await;
    }

    /// Forgets what was seen so far (to wait for new output only).
    pub fn clear(&mut self) {
        self.seen.clear();
    }
}

/// The reads themselves, against a stand-in for `ssh` (found first on `PATH`) that prints
/// a fixed line on the same kind of terminal and then echoes what is typed.
#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn stand_in(dir: &tempfile::TempDir, script: &str) -> SshClient {
        let ssh = dir.path().join("ssh");
        std::fs::write(&ssh, format!("#!/bin/sh\n{script}\nexec cat\n")).unwrap();
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        SshClient::spawn_with_env(1, "nobody", 80, 24, &[], &[("PATH", &path)])
    }

    /// Two needles printed by one write arrive in one read: the second is still there
    /// for the next wait (before, the rest of the read was dropped and the second wait
    /// waited for ever: here, failed after its limit).
    #[tokio::test]
    async fn what_follows_a_needle_is_left_for_the_next_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut client = stand_in(&dir, "printf 'one-1 two-2 three-3\\n'");
        client.skip_until("one-1", Duration::from_secs(20)).await;
        client.skip_until("two-2", Duration::from_secs(20)).await;
        let seen = client.expect("three-3").await;
        assert!(!seen.contains("two-2"), "{seen:?}");
    }

    /// Needles in another order than they come: each is found, and reading goes on after
    /// the last one.
    #[tokio::test]
    async fn needles_are_found_in_whatever_order_they_come() {
        let dir = tempfile::tempdir().unwrap();
        let mut client = stand_in(&dir, "printf 'one-1 two-2 three-3\\n'");
        let times = client
            .skip_until_each(&["three-3", "one-1"], Duration::from_secs(20))
            .await;
        assert_eq!(times.len(), 2);
        client.send("four-4\r");
        client.expect("four-4").await;
    }
}
