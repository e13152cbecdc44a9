//! The fault suite: what an interview survives. The daemon killed with SIGKILL in the
//! middle of everything, an SSH client killed mid-session, connections cut or stalled
//! during the TLS and SSH handshakes, the state disk full, a job that closes its output
//! but keeps running. (The clock jumping for session expiry is tested on the expiry
//! timer's clock itself, in `crates/session/src/expiry.rs`: changing the host's clock in a
//! test would disturb everything else running on the machine.)
//!
//! Needs root: every test runs real jobs and sandboxes (namespaces, cgroups, mounts), and
//! the disk-full test mounts a tmpfs (and needs Linux >= 6.3, see there).

use std::path::Path;
use std::time::Duration;
use tandem_api::test_server::TestServer;
use tandem_proto::v1 as pb;
use tandem_suites::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long any single expected event may take.
const WITHIN: Duration = Duration::from_secs(30);

/// The output of `seq 1 n`.
fn seq(n: u32) -> Vec<u8> {
    (1..=n)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// (1) tandemd is killed (SIGKILL) while jobs run, one of them followed by `tandem job logs
/// -f`, while a session is live with the candidate connected over ssh and flooding the
/// terminal (so its recording is being written). Restarted on the same state dir: every
/// finished job's output is there to the byte with its exit code, running jobs are `lost`,
/// the session is ended and its recording is valid asciicast v2 on every line, and
/// nothing is left of the old jobs: no process (by a marker in their command lines), no
/// cgroup, no mount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_mid_everything_a_restart_finds_output_and_recordings_intact_and_nothing_left()
{
    require_root();
    let dir = workdir();
    let mut daemon = Daemon::start(dir.path()).await;
    let certs = dir.path().join("certs");
    let mut api = api(&certs, &daemon.grpc).await;
    let marker = unique("killed-daemon");

    // Two jobs that finish before the kill, with known output and exit codes.
    let counted = api
        .jobs
        .start(sh("seq 1 50000"))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let yes = api
        .jobs
        .start(sh("yes abcdefghij | head -n 200000; exit 3"))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    for (id, code) in [(&counted, 0), (&yes, 3)] {
        let (_, job) = api.finish(id).await;
        assert_eq!(job.state(), pb::JobState::Exited, "{job:?}");
        assert_eq!(job.exit_code, Some(code));
    }

    // Two jobs running at the kill: one idle, one printing, followed by the CLI.
    let sleeper = api
        .jobs
        .start(sh(&format!("echo up; sleep 1000; : {marker}")))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let ticker = api
        .jobs
        .start(sh(&format!(
            "i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.05; done; : {marker}"
        )))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let mut follower = tandem_cli(&certs, &daemon.grpc)
        .args(["job", "logs", "-f", &ticker])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut follower_out = follower.stdout.take().unwrap();
    let mut followed = Vec::new();
    tokio::time::timeout(WITHIN, async {
        while !String::from_utf8_lossy(&followed).contains("tick-3\n") {
            let mut buf = [0u8; 4096];
            let n = follower_out.read(&mut buf).await.unwrap();
            assert!(n > 0, "the follower ended early");
            followed.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the follower prints the ticks");
    let follower_rest = tokio::spawn(async move {
        let mut rest = Vec::new();
        let _ = follower_out.read_to_end(&mut rest).await;
        rest
    });

    // A live session: the candidate over ssh starts a marked background process, then
    // floods the terminal, so the recording is being written when the daemon dies.
    let created = api
        .sessions
        .create(pb::CreateSessionRequest {
            task: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let session = created.session.unwrap();
    let logins = created.tokens.unwrap();
    let port = ssh_port(&created.ssh.unwrap().candidate);
    let mut cand = SshClient::spawn(port, &logins.candidate, 80, 24, &[]);
    cand.expect(PROMPT).await;
    cand.send(&format!("bash -c 'sleep 1000; : {marker}' &\r"));
    cand.send("i=0; while :; do i=$((i+1)); echo rec-$i; done\r");
    cand.expect("rec-2000\r\n").await;
    assert!(
        processes_with(&marker).len() >= 3,
        "the marked processes run before the kill"
    );

    daemon.child.start_kill().unwrap(); // SIGKILL
    daemon.child.wait().await.unwrap();

    // Everybody connected notices: the ssh client is disconnected, the follower fails.
    cand.until_exit().await;
    let status = tokio::time::timeout(WITHIN, follower.wait())
        .await
        .expect("the follower ends when the daemon dies")
        .unwrap();
    assert_eq!(status.code(), Some(1), "the follower reports the failure");
    let mut err = String::new();
    follower
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(err.starts_with("tandem: "), "{err:?}");
    followed.extend(follower_rest.await.unwrap());

    // What the kill left of the recording, up to its last complete line. A kill during a
    // write of several pages stops it at a page boundary and tears the last line; that
    // window is narrow, so the test tears it itself, as such a kill would.
    let recording_dir = dir.path().join("state/sessions").join(&session.id);
    let mut complete = Vec::new();
    for name in ["recording.cast", "events.jsonl"] {
        let path = recording_dir.join(name);
        let mut left = std::fs::read(&path).unwrap();
        let end = left.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        left.truncate(end);
        complete.push(left);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, b"[12.345678, \"o\", \"torn in the mid").unwrap();
    }

    let daemon = Daemon::start(dir.path()).await;
    let mut api = tandem_suites::api(&certs, &daemon.grpc).await;
    assert!(api.serving().await);

    // Finished jobs: their output to the byte, their exit codes.
    let expected_yes: Vec<u8> = b"abcdefghij\n".repeat(200_000);
    for (id, expected, code) in [(&counted, seq(50_000), 0), (&yes, expected_yes, 3)] {
        let job = api.job(id).await;
        assert_eq!(job.state(), pb::JobState::Exited, "{job:?}");
        assert_eq!(job.exit_code, Some(code));
        assert_eq!(job.output_bytes, expected.len() as u64);
        let out = api.output(id, false).await;
        assert_eq!(out.len(), expected.len());
        assert!(out == expected, "the output of {id} changed");
    }
    // Running jobs: lost, their output up to the kill kept; the follower saw a prefix.
    for id in [&sleeper, &ticker] {
        assert_eq!(api.job(id).await.state(), pb::JobState::Lost);
    }
    assert_eq!(api.output(&sleeper, false).await, b"up\n");
    let ticks = api.output(&ticker, false).await;
    assert!(
        ticks.starts_with(&followed),
        "what the follower printed ({} bytes) is not the start of the job's output ({} bytes)",
        followed.len(),
        ticks.len()
    );

    // The session: ended, its recording complete and valid on every line.
    let listed = api
        .sessions
        .list(pb::ListSessionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .sessions;
    let old = listed.iter().find(|s| s.id == session.id).unwrap();
    assert!(old.ended.contains("restarted"), "{old:?}");
    let on_disk = std::fs::read(recording_dir.join("recording.cast")).unwrap();
    let text = String::from_utf8(on_disk.clone()).expect("the recording is UTF-8");
    let (_, events) = parse_asciicast(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        on_disk.starts_with(&complete[0]),
        "complete lines were lost"
    );
    assert!(!text.contains("torn in the mid"));
    let log = std::fs::read_to_string(recording_dir.join("events.jsonl")).unwrap();
    assert!(log.as_bytes().starts_with(&complete[1]) && log.ends_with('\n'));
    for line in log.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("events.jsonl: {e}: {line:?}"));
        assert!(event["event"].is_string(), "{line}");
    }
    let typed = |kind: &str, needle: &str| {
        events
            .iter()
            .any(|e| e[1] == kind && e[2].as_str().unwrap().contains(needle))
    };
    assert!(
        typed("i", "echo rec-$i"),
        "the candidate's input is recorded"
    );
    // Output is recorded in chunks that may split a line: look at it whole.
    let output: String = events
        .iter()
        .filter(|e| e[1] == "o")
        .map(|e| e[2].as_str().unwrap())
        .collect();
    assert!(output.contains("\r\nrec-100\r\n"), "the flood is recorded");
    let mut served = Vec::new();
    let mut stream = api
        .sessions
        .recording(pb::RecordingRequest {
            id: session.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(chunk) = stream.message().await.unwrap() {
        served.extend(chunk.data);
    }
    assert!(served == on_disk, "the API serves the recording as stored");

    // Nothing of the old jobs is left: processes, cgroups, mounts.
    assert_eq!(processes_with(&marker), Vec::<u32>::new(), "processes left");
    for id in [&counted, &yes, &sleeper, &ticker, &session.instance_id] {
        assert_eq!(cgroups_named(id), Vec::<std::path::PathBuf>::new());
    }
    assert_eq!(mounts_mentioning(dir.path()), Vec::<String>::new());
    eprintln!(
        "kill -9: recording {} bytes, {} events; follower had {} of {} tick bytes",
        on_disk.len(),
        events.len(),
        followed.len(),
        ticks.len()
    );
}

/// (2) An SSH client killed (SIGKILL) in the middle of a session, halfway through typing a
/// line: it is listed as gone at once (without anybody typing after it), the others
/// are told in their title bar, and they keep typing and seeing each other's echo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_client_killed_mid_session_leaves_and_the_others_keep_typing() {
    require_root();
    let server = SshServer::start().await;
    let (session, tokens) = server.session().await;
    let mut cand = server.ssh(&tokens.candidate);
    cand.expect(PROMPT).await;
    let mut ivy = server.ssh(&tokens.interviewer);
    ivy.expect(PROMPT).await;
    let mut victim = server.ssh(&tokens.interviewer);
    victim.expect(PROMPT).await;
    let numbers = |s: &tandem_session::Session| {
        s.participants()
            .iter()
            .map(|p| p.number)
            .collect::<Vec<_>>()
    };
    assert_eq!(numbers(&session), [1, 2, 3]);
    victim.send("echo one-$((1+1))\r");
    cand.expect("one-2").await;
    ivy.expect("one-2").await;
    victim.send("echo half-typ");
    ivy.expect("half-typ").await;

    victim.child.start_kill().unwrap();
    victim.child.wait().await.unwrap();
    // Nobody types now: the leave comes from the connection's end alone.
    ivy.expect("interviewer (#3) left").await;
    assert_eq!(numbers(&session), [1, 2]);
    assert!(session.info().ended.is_none());

    // The half-typed line is the shell's; the candidate clears it and everyone goes on.
    cand.send("\x15echo cand-$((2+1))\r");
    ivy.expect("cand-3").await;
    ivy.send("echo ivy-$((3+1))\r");
    cand.expect("ivy-4").await;
    assert!(!cand.seen.contains("half-typecho"), "{:?}", cand.seen);
}

/// Half of a real TLS ClientHello for the API server at 127.0.0.1 (what a client cut off
/// mid-handshake sent).
fn half_client_hello(certs: &Path) -> Vec<u8> {
    let tls = tandem_client::ClientTls::from_dir(certs, "admin");
    let config = tandem_client::client_config(&tls).unwrap();
    let mut conn = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    assert!(
        hello.len() > 100 && hello[0] == 0x16,
        "a TLS handshake record"
    );
    hello.truncate(hello.len() / 2);
    hello
}

/// (3) Connections cut or stalled in the middle of the TLS handshake on the gRPC port
/// (more stalled ones than the 256 handshakes served at once), and half-open connections
/// in the middle of the SSH handshake: while they are there, the daemon serves everybody
/// else at once (a new API client, a job, an ssh login with echo).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_cut_or_stalled_on_both_ports_do_not_stop_others_being_served() {
    require_root();
    let dir = workdir();
    let mut daemon = Daemon::start(dir.path()).await;
    let certs = dir.path().join("certs");
    let mut admin = api(&certs, &daemon.grpc).await;
    let created = admin
        .sessions
        .create(pb::CreateSessionRequest {
            task: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let logins = created.tokens.unwrap();
    let port = ssh_port(&created.ssh.unwrap().candidate);
    let ssh = format!("127.0.0.1:{port}");

    const STALLED: usize = 300;
    let hello = half_client_hello(&certs);
    let mut held = Vec::new();
    // Cut: half a ClientHello, then the connection is closed.
    for _ in 0..30 {
        let mut s = tokio::net::TcpStream::connect(&daemon.grpc).await.unwrap();
        s.write_all(&hello).await.unwrap();
        drop(s);
    }
    // Stalled: half a ClientHello (or nothing), and the connection kept open.
    for i in 0..STALLED {
        let mut s = tokio::net::TcpStream::connect(&daemon.grpc).await.unwrap();
        if i % 2 == 0 {
            s.write_all(&hello).await.unwrap();
        }
        held.push(s);
    }
    // SSH: half-open (a banner and half a packet, then silence), half-closed (a banner,
    // then no more to send), cut (a banner and half a packet, then closed), and silent.
    let mut partial = b"SSH-2.0-OpenSSH_9.9 cut\r\n".to_vec();
    partial.extend_from_slice(&[0, 0, 1, 0, 8, 20]);
    partial.extend_from_slice(&[7u8; 40]);
    for kind in 0..4 {
        let mut s = tokio::net::TcpStream::connect(&ssh).await.unwrap();
        match kind {
            0 => s.write_all(&partial).await.unwrap(),
            1 => {
                s.write_all(b"SSH-2.0-OpenSSH_9.9 half\r\n").await.unwrap();
                s.shutdown().await.unwrap();
            }
            2 => {
                s.write_all(&partial).await.unwrap();
                drop(s);
                continue;
            }
            _ => {}
        }
        held.push(s);
    }

    // Everybody else is served meanwhile: a new TLS client, a job, an ssh login.
    let started = std::time::Instant::now();
    let mut fresh = api(&certs, &daemon.grpc).await;
    assert!(fresh.serving().await);
    let id = fresh
        .jobs
        .start(sh("echo served"))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    assert_eq!(fresh.finish(&id).await.0, b"served\n");
    let mut cand = SshClient::spawn(port, &logins.candidate, 80, 24, &[]);
    cand.expect(PROMPT).await;
    cand.send("echo still-$((4+4))\r");
    cand.expect("still-8").await;
    let served_in = started.elapsed();
    assert!(
        served_in < Duration::from_secs(10),
        "others waited on the stalled handshakes ({served_in:?}; the handshake timeout is 10 s)"
    );
    assert!(daemon.child.try_wait().unwrap().is_none(), "tandemd is up");
    eprintln!(
        "served in {served_in:?} with 30 handshakes cut, {} stalled and held",
        held.len()
    );
    drop(held);
    assert!(admin.serving().await);
}

/// A tmpfs mounted for a test, detached on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some(format!("size={size},mode=0700").as_str()),
        )
        .expect("mount a tmpfs");
        Self(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Fills the file system of `path` with a file there; returns its size.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let mut size = 0;
    for chunk in [1 << 20, 4096, 1] {
        let block = vec![b'x'; chunk];
        loop {
            match std::io::Write::write(&mut file, &block) {
                Ok(n) => size += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
    size
}

/// (4) The state disk is full (the state dir on a 16 MiB tmpfs, filled up while a session
/// is live): starting a job or a session is refused with a clear error, tandemd stays up
/// and SERVING, and once there is room again the live session goes on (the candidate
/// and the interviewer type and see each other) and jobs start again. Needs Linux >= 6.3
/// (sandboxes need idmapped mounts of the state dir's file system: tmpfs has them since
/// 6.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_disk_refuses_new_work_clearly_and_live_sessions_go_on() {
    require_root();
    let dir = workdir();
    let _state = Tmpfs::mount(&dir.path().join("state"), "16m");
    let mut daemon = Daemon::start(dir.path()).await;
    let certs = dir.path().join("certs");
    let mut api = api(&certs, &daemon.grpc).await;
    let create = pb::CreateSessionRequest {
        task: "demo".into(),
        ..Default::default()
    };
    let created = api
        .sessions
        .create(create.clone())
        .await
        .unwrap()
        .into_inner();
    let logins = created.tokens.unwrap();
    let port = ssh_port(&created.ssh.unwrap().candidate);
    let mut cand = SshClient::spawn(port, &logins.candidate, 80, 24, &[]);
    let mut ivy = SshClient::spawn(port, &logins.interviewer, 80, 24, &[]);
    cand.expect(PROMPT).await;
    ivy.expect(PROMPT).await;

    let filler = dir.path().join("state/filler");
    let filled = fill(&filler);

    // New work is refused, saying why.
    let refused = api.jobs.start(sh("echo never")).await.unwrap_err();
    assert!(
        refused.message().contains("No space left on device"),
        "{refused:?}"
    );
    let refused = api.sessions.create(create.clone()).await.unwrap_err();
    assert!(
        refused.message().contains("No space left on device"),
        "{refused:?}"
    );
    // The daemon is up and serving.
    assert!(daemon.child.try_wait().unwrap().is_none(), "tandemd is up");
    assert!(api.serving().await);
    // The session's shell writes more than a page while the disk is full: its output
    // log cannot store it (the shared terminal shows what the log holds).
    cand.send("seq 1 3000; echo full-$((2+3))\r");
    let shells: Vec<pb::Job> = api
        .jobs
        .list(pb::ListJobsRequest {})
        .await
        .unwrap()
        .into_inner()
        .jobs
        .into_iter()
        .filter(|j| j.terminal)
        .collect();
    assert_eq!(shells.len(), 1, "the session's shell");
    let shell = &shells[0].id;
    let lost = tokio::time::timeout(WITHIN, async {
        let mut ticks = tokio::time::interval(Duration::from_millis(50));
        loop {
            ticks.tick().await;
            let dropped = api.job(shell).await.output_dropped_bytes;
            if dropped > 0 {
                return dropped;
            }
        }
    })
    .await
    .expect("the shell's output meets the full disk");
    // Room again: the session's terminal goes on, and jobs start again.
    std::fs::remove_file(&filler).unwrap();
    cand.send("echo room-$((3+4))\r");
    cand.expect("room-7").await;
    ivy.expect("room-7").await;
    ivy.send("echo ivy-$((4+4))\r");
    cand.expect("ivy-8").await;
    let id = api
        .jobs
        .start(sh("echo room again"))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    assert_eq!(api.finish(&id).await.0, b"room again\n");
    eprintln!(
        "disk full: filled {filled} bytes; {lost} bytes of the shell's output lost while full"
    );
}

/// (5) A job that closes its stdout and stderr but keeps running. `tandem job logs -f`
/// ends (exit 0) once the output has ended, with everything printed before: the output
/// pipe has no writer left, so nothing more can ever come, and following stops there
/// rather than at the job's end. `tandem job status` still says running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_closes_its_output_ends_logs_follow_but_keeps_running() {
    let server = TestServer::start().await;
    let server_addr = server.server();
    let certs = server.pki.path();
    let marker = unique("closed-output");
    let out = tandem_cli(certs, &server_addr)
        .args(["job", "start", "--", "sh", "-c"])
        .arg(format!(
            "echo before-close; exec >&- 2>&-; sleep 1000; : {marker}"
        ))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let follow = tokio::time::timeout(
        WITHIN,
        tandem_cli(certs, &server_addr)
            .args(["job", "logs", "-f", &id])
            .output(),
    )
    .await
    .expect("logs -f ends at the end of the output, not at the job's end")
    .unwrap();
    assert!(follow.status.success(), "{follow:?}");
    assert_eq!(follow.stdout, b"before-close\n");

    let status = tandem_cli(certs, &server_addr)
        .args(["-o", "json", "job", "status", &id])
        .output()
        .await
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["state"], "running", "{json}");
    assert_eq!(
        processes_with(&marker).len(),
        1,
        "the job's shell still runs"
    );

    let stop = tandem_cli(certs, &server_addr)
        .args(["job", "stop", &id, "--grace", "1s"])
        .output()
        .await
        .unwrap();
    assert!(stop.status.success(), "{stop:?}");
    assert_eq!(processes_with(&marker), Vec::<u32>::new());
}
