//! The sandbox wall, attacked as a candidate would: from the candidate's shell over a real
//! OpenSSH connection. Each probe first shows that what it tries works on the host.

mod common;
use common::*;
use std::time::Duration;
use tandem_session::TerminalSize;

/// Runs `command` in the candidate's shell and returns what it printed between two
/// markers (the command's own echo excluded).
async fn run(cand: &mut SshClient, command: &str) -> String {
    let n = rand_suffix();
    cand.clear();
    // The markers are built by the shell, so the typed command line never contains them.
    cand.send(&format!(
        "echo BEGIN-$(({n}+0)); {command}; echo END-$(({n}+0))\r"
    ));
    let seen = cand.expect(&format!("END-{n}\r\n")).await;
    let start = seen.find(&format!("BEGIN-{n}\r\n")).expect("begin marker")
        + format!("BEGIN-{n}\r\n").len();
    let end = seen.rfind(&format!("END-{n}")).unwrap();
    seen[start..end].replace("\r\n", "\n")
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_candidate_sees_no_host_file() {
    let server = Server::start().await;
    // Secrets on the host, readable there.
    let marker = format!("tandem-secret-{}", rand_suffix());
    let root_secret = std::path::PathBuf::from("/root").join(&marker);
    std::fs::write(&root_secret, "host secret").unwrap();
    let task_file = server.tasks.path().join("demo/task.yaml");
    let state = server.manager.state.path().canonicalize().unwrap();
    let host_shadow = std::fs::read_to_string("/etc/shadow").unwrap();
    assert!(std::fs::read_to_string(&root_secret).is_ok());
    assert!(
        std::fs::read_to_string(&task_file)
            .unwrap()
            .contains("touch /tmp/solved")
    );
    assert!(state.join("sessions").is_dir());

    let (_session, tokens) = server.session(None).await;
    let mut cand = server.ssh(&tokens.candidate, 100, 30);
    cand.expect("demo$ ").await;
    let out = run(
        &mut cand,
        &format!(
            "cat /root/{marker} 2>&1 | head -1; \
             cat {task} 2>&1 | head -1; \
             ls {state} 2>&1 | head -1; \
             find / -xdev -name 'task.yaml' 2>/dev/null | wc -l; \
             grep -c . /etc/shadow; head -1 /etc/shadow; ls /home | wc -l",
            task = task_file.display(),
            state = state.display()
        ),
    )
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("No such file"), "{out}");
    assert!(lines[1].contains("No such file"), "{out}");
    assert!(lines[2].contains("No such file"), "{out}");
    assert_eq!(lines[3], "0", "no task file anywhere: {out}");
    let shadow_lines: usize = lines[4].parse().unwrap();
    assert!(
        lines[5].starts_with("root:*:"),
        "the sandbox's own shadow: {out}"
    );
    assert_ne!(
        host_shadow.lines().next().unwrap_or_default(),
        lines[5],
        "the host's shadow"
    );
    assert!(shadow_lines < 30, "{out}");
    assert_eq!(lines[6], "0", "no host homes: {out}");
    std::fs::remove_file(root_secret).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_inside_is_an_unprivileged_uid_on_the_host() {
    let server = Server::start().await;
    let (_session, tokens) = server.session(None).await;
    let mut cand = server.ssh(&tokens.candidate, 100, 30);
    cand.expect("demo$ ").await;
    let marker = format!("tandem-uid-{}", rand_suffix());
    let out = run(
        &mut cand,
        &format!(
            "id -u; cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'; \
             mkfifo /tmp/started; \
             (setsid python3 -c 'import time; open(\"/tmp/started\", \"w\").close(); time.sleep(600)' {marker} >/dev/null 2>&1 &); \
             cat /tmp/started"
        ),
    )
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {out}");
    let host_base: u32 = lines[1].split(' ').nth(1).unwrap().parse().unwrap();
    assert!(host_base >= tandem_worker::DEFAULT_FIRST_UID, "{out}");
    // On the host, that process runs as the mapped uid, not as root.
    // It opened the fifo (so it runs) before the shell printed the end marker.
    let pid = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
        })
        .unwrap_or_else(|| panic!("no process with {marker} on the host"));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == host_base.to_string()),
        "{uid_line}"
    );
    let cap_bnd = status.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    let cap_bnd = u64::from_str_radix(cap_bnd.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(cap_bnd & (1 << 21), 0, "no CAP_SYS_ADMIN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filling_the_disk_hits_the_sandboxs_limit_not_the_hosts_disk() {
    let server = Server::start_with(Options {
        task_extra: "limits:\n  memory: 512M\n  disk: 32M\n",
        ..Options::default()
    })
    .await;
    let statvfs = || {
        let s = nix::sys::statvfs::statvfs(server.manager.state.path()).unwrap();
        s.blocks_available() as u64 * s.fragment_size() as u64
    };
    let (_session, tokens) = server.session(None).await;
    let mut cand = server.ssh(&tokens.candidate, 100, 30);
    cand.expect("demo$ ").await;
    let before = statvfs();
    let out = run(
        &mut cand,
        "dd if=/dev/zero of=/big bs=1M count=100 2>&1 | grep -o 'No space left on device' | head -1; \
         dd if=/dev/zero of=/tmp/big2 bs=1M count=10 2>&1 | grep -c 'No space left'; \
         df -m / | tail -1 | tr -s ' ' | cut -d' ' -f2",
    )
    .await;
    let after = statvfs();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "No space left on device", "{out}");
    assert_eq!(lines[1], "1", "/tmp shares the limit: {out}");
    assert_eq!(
        lines[2], "32",
        "the root's size is the task's disk limit: {out}"
    );
    // What the candidate wrote (32 MiB) did not land on the host's disk.
    assert!(
        before.saturating_sub(after) < 16 << 20,
        "the host disk lost {} bytes",
        before.saturating_sub(after)
    );
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_window_is_clamped_and_costs_the_daemon_little() {
    let server = Server::start().await;
    let (session, tokens) = server.session(None).await;
    let before = rss_bytes();
    // 3000x3000 used to cost the daemon ~280 MB for one screen model.
    let mut cand = server.ssh(&tokens.candidate, 3000, 3000);
    cand.expect("demo$ ").await;
    let out = run(&mut cand, "stty size").await;
    assert_eq!(
        out.trim(),
        format!("{} {}", TerminalSize::MAX_ROWS, TerminalSize::MAX_COLS)
    );
    assert_eq!(
        session.terminal_size(),
        TerminalSize {
            rows: TerminalSize::MAX_ROWS,
            cols: TerminalSize::MAX_COLS
        }
    );
    // A late joiner with an absurd window too: it gets a snapshot of the clamped screen.
    let mut obs = server.ssh(&tokens.observer, 65535, 65535);
    obs.expect("demo$ ").await;
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "RSS grew by {grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_neither_block_a_login_nor_outlive_the_pre_auth_timeout() {
    let server = Server::start_with(Options {
        limits: tandem_ssh::SshLimits {
            pre_auth_timeout: Duration::from_secs(3),
            ..tandem_ssh::SshLimits::default()
        },
        ..Options::default()
    })
    .await;
    let (_session, tokens) = server.session(None).await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", server.port))
                .await
                .unwrap(),
        );
    }
    // A real login still works, at once.
    let mut cand = server.ssh(&tokens.candidate, 80, 24);
    cand.expect("demo$ ").await;
    // Every idle connection is closed by the server: read sees the SSH banner, then EOF.
    let started = std::time::Instant::now();
    for stream in &mut idle {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf))
            .await
            .expect("the server closes an idle connection")
            .ok();
        assert!(buf.starts_with(b"SSH-2.0-"), "{buf:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    // The logged-in candidate is unaffected by the timeout.
    let out = run(&mut cand, "echo still-here").await;
    assert_eq!(out.trim(), "still-here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_who_replaces_bash_and_python_cannot_make_the_check_pass() {
    let server = Server::start().await;
    let (session, tokens) = server.session(None).await;
    let mut cand = server.ssh(&tokens.candidate, 100, 30);
    cand.expect("demo$ ").await;
    let instances = server.sessions.instances();
    let id = session.instance().id;
    assert_eq!(
        instances.check(id).await.unwrap().outcome,
        tandem_scenario::CheckOutcome::Failed
    );
    // The forgery works on what the candidate runs…
    let out = run(
        &mut cand,
        "printf '#!/bin/sh\\nexit 0\\n' > /tmp/pass && chmod 755 /tmp/pass; \
         cp /tmp/pass /usr/bin/python3; cp /usr/bin/bash /tmp/realbash; \
         /tmp/realbash -c 'rm /usr/bin/bash; cp /tmp/pass /usr/bin/bash'; \
         for d in /etc/python3*; do echo 'import os; os._exit(0)' > $d/sitecustomize.py; done; \
         /usr/bin/bash -c 'exit 1' && echo forged-bash-passes",
    )
    .await;
    assert!(out.contains("forged-bash-passes"), "{out}");
    // …but not on the check.
    let result = instances.check(id).await.unwrap();
    assert_eq!(
        result.outcome,
        tandem_scenario::CheckOutcome::Failed,
        "{result:?}"
    );
    assert!(result.output.contains("not yet"), "{result:?}");
    // The real fix still passes.
    run(&mut cand, "touch /tmp/solved").await;
    assert_eq!(
        instances.check(id).await.unwrap().outcome,
        tandem_scenario::CheckOutcome::Passed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanner_in_the_candidates_shell_never_sees_an_unconfined_join() {
    let server = Server::start().await;
    let (session, tokens) = server.session(None).await;
    let mut cand = server.ssh(&tokens.candidate, 100, 30);
    cand.expect("demo$ ").await;
    let allowed = tandem_worker::CapSet::default_set().0 | 1 << 19;
    let scanner = include_str!("../../../tests/probes/lockdown_scanner.py");
    // The scanner goes in as a file typed through the terminal (base64, one line).
    let encoded = base64(scanner.as_bytes());
    run(
        &mut cand,
        &format!(
            "echo {encoded} | base64 -d > /tmp/scan.py; \
             (setsid python3 /tmp/scan.py {allowed:x} > /tmp/scan.log 2>&1 &)"
        ),
    )
    .await;
    let instances = server.sessions.instances();
    let id = session.instance().id;
    let mut shells = Vec::new();
    for i in 0..70 {
        if i % 7 == 0 && shells.len() < 20 {
            // What happens when the candidate types `exit`: a new shell joins the sandbox.
            shells.push(
                instances
                    .new_shell(&session.instance(), TerminalSize::default().into())
                    .await
                    .unwrap(),
            );
        } else {
            instances.check(id).await.unwrap();
        }
    }
    let out = run(
        &mut cand,
        "touch /tmp/stop-scan; while ! grep -q seen= /tmp/scan.log; do sleep 0.1; done; \
         grep -c VIOLATION /tmp/scan.log; grep -o 'seen=[0-9]*' /tmp/scan.log",
    )
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "{out}");
    let seen: usize = lines[1].trim_start_matches("seen=").parse().unwrap();
    assert!(seen >= 70, "the scanner saw {seen} processes: {out}");
    for shell in shells {
        let _ = instances.manager().stop(shell, Duration::ZERO).await;
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
