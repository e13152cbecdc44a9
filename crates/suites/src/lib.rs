//! What the fault suite (`tests/fault.rs`) and the load suite (`tests/load.rs`) share:
//! probes of the host (processes by a marker in their command line, mounts, cgroups),
//! figures of a process (RSS, descriptors, threads), an asciicast v2 checker, the demo
//! task, and clients of the real `tandemd` (`tandem_testkit::Daemon`).
//!
//! Nothing here waits by sleeping: the helpers that wait follow a stream or a process to
//! its end, bounded by a timeout.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tandem_proto::v1 as pb;
use tandem_proto::v1::job_service_client::JobServiceClient;
use tandem_proto::v1::session_service_client::SessionServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

pub use tandem_testkit::{Daemon, SshClient, require_root, workspace_bin};

/// The prompt of the demo task's shell.
pub const PROMPT: &str = "demo$ ";

/// A task whose shell is bash without rc files and with a known prompt ([`PROMPT`]).
pub const DEMO_TASK: &str = "name: demo\ntitle: Demo\ndescription: |\n  Demo.\n\
    difficulty: easy\ntime_limit: 10m\nshell: /bin/bash --norc -i\nenv:\n  PS1: 'demo$ '\n\
    check: |\n  true\nsolution: |\n  none\n";

/// Writes the demo task into `tasks/demo/task.yaml`.
pub fn write_demo_task(tasks: &Path) -> PathBuf {
    let dir = tasks.join("demo");
    std::fs::create_dir_all(&dir).expect("task dir");
    std::fs::write(dir.join("task.yaml"), DEMO_TASK).expect("task.yaml");
    dir
}

/// The demo task loaded, for in-process session stores.
pub fn demo_task(tasks: &Path) -> Arc<tandem_scenario::Task> {
    let dir = write_demo_task(tasks);
    Arc::new(tandem_scenario::task::load(&dir).expect("the demo task loads"))
}

/// A directory for a real daemon (`Daemon::start`): `tasks/demo` written, `state` and
/// `certs` made by the daemon. Under /var/tmp (the root filesystem), removed on drop.
pub fn workdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("tandem-suite-")
        .tempdir_in("/var/tmp")
        .expect("work dir");
    write_demo_task(&dir.path().join("tasks"));
    dir
}

/// Pids of host processes whose command line contains `marker`, this process excluded.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .collect()
}

/// Lines of the host's mount table (this process's, which is the host's) that mention
/// `path`.
pub fn mounts_mentioning(path: &Path) -> Vec<String> {
    let path = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| l.contains(&*path))
        .map(str::to_string)
        .collect()
}

/// Every cgroup directory named `name`, in every cgroup hierarchy mounted on the host
/// (v1 controllers and the unified one).
pub fn cgroups_named(name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    for line in mounts.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split_whitespace().next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let Some(point) = left.split_whitespace().nth(4) else {
            continue;
        };
        walk(Path::new(point), name, 0, &mut found);
    }
    found
}

fn walk(dir: &Path, name: &str, depth: usize, found: &mut Vec<PathBuf>) {
    if depth > 12 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        if entry.file_name().to_str() == Some(name) {
            found.push(path.clone());
        }
        walk(&path, name, depth + 1, found);
    }
}

/// What a process holds: resident memory, open descriptors, threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// Entries of `/proc/PID/fd`.
    pub fds: usize,
    /// `Threads`.
    pub threads: u64,
}

/// The [`Figures`] of process `pid`.
pub fn figures(pid: u32) -> Figures {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    Figures {
        rss_kib: field("VmRSS:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("fd dir")
            .count(),
        threads: field("Threads:"),
    }
}

/// Checks an asciicast v2 recording line by line: a header object (version 2, width,
/// height) then events `[time, "o"|"i"|"r", text]` with times that never go back. Every
/// line must parse, the last one included. Returns the header and the events.
pub fn parse_asciicast(text: &str) -> Result<(serde_json::Value, Vec<serde_json::Value>), String> {
    if !text.ends_with('\n') {
        return Err(format!(
            "the recording does not end with a complete line: {:?}",
            &text[text.len().saturating_sub(200)..]
        ));
    }
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().ok_or("empty recording")?)
        .map_err(|e| format!("header: {e}"))?;
    if header["version"] != 2 || !header["width"].is_u64() || !header["height"].is_u64() {
        return Err(format!("not an asciicast v2 header: {header}"));
    }
    let mut events = Vec::new();
    let mut last = 0.0f64;
    for (i, line) in lines.enumerate() {
        let event: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}: {line:?}", i + 2))?;
        let ok = event.as_array().is_some_and(|a| {
            a.len() == 3
                && a[0].is_f64()
                && ["o", "i", "r"].contains(&a[1].as_str().unwrap_or(""))
                && a[2].is_string()
        });
        if !ok {
            return Err(format!("line {}: not an event: {line}", i + 2));
        }
        let t = event[0].as_f64().unwrap_or(0.0);
        if t < last {
            return Err(format!("line {}: time goes back ({t} < {last})", i + 2));
        }
        last = t;
        events.push(event);
    }
    Ok((header, events))
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

/// A SHA-256 fed piece by piece (a follower hashes what it receives as it comes).
#[derive(Default, Clone)]
pub struct StreamHash {
    hasher: sha2::Sha256,
    /// Bytes fed so far.
    pub len: u64,
}

impl StreamHash {
    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// The digest of everything fed.
    pub fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

/// Clients of one API server, all over one TLS connection.
pub struct Api {
    /// `JobService`.
    pub jobs: JobServiceClient<Channel>,
    /// `SessionService`.
    pub sessions: SessionServiceClient<Channel>,
    /// `grpc.health.v1`.
    pub health: HealthClient<Channel>,
}

/// A TLS connection to `server` as `user` with the certificates in `certs`.
pub async fn channel(certs: &Path, user: &str, server: &str) -> Channel {
    let tls = tandem_client::ClientTls::from_dir(certs, user);
    let config = tandem_client::client_config(&tls).expect("client TLS config");
    tandem_client::connect(server, config)
        .await
        .expect("connect to the API")
}

/// The services of `server`, as `admin` (certificates in `certs`).
pub async fn api(certs: &Path, server: &str) -> Api {
    Api::over(channel(certs, "admin", server).await)
}

impl Api {
    /// The services over `channel`.
    pub fn over(channel: Channel) -> Self {
        Self {
            jobs: JobServiceClient::new(channel.clone()),
            sessions: SessionServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
        }
    }

    /// Whether the server's overall health is SERVING.
    pub async fn serving(&mut self) -> bool {
        let response = self
            .health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health check");
        response.into_inner().status
            == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    }

    /// A job's status.
    pub async fn job(&mut self, id: &str) -> pb::Job {
        self.jobs
            .status(pb::JobStatusRequest { job_id: id.into() })
            .await
            .expect("job status")
            .into_inner()
            .job
            .expect("a job")
    }

    /// A job's whole output (what exists now, or, with `follow`, until the job's output
    /// ends), bounded by 60 s.
    pub async fn output(&mut self, id: &str, follow: bool) -> Vec<u8> {
        let mut stream = self
            .jobs
            .logs(pb::LogsRequest {
                job_id: id.into(),
                offset: 0,
                follow,
            })
            .await
            .expect("logs")
            .into_inner();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(chunk) = stream.message().await.expect("logs stream") {
                out.extend(chunk.data);
            }
        })
        .await
        .expect("the output ended within 60 s");
        out
    }

    /// Waits for a job's end: follows its output to the end (all its processes closed
    /// it), then asks for a stop, which returns the final status (stopping an ended job
    /// changes nothing; a stop of a job still exiting waits for it).
    pub async fn finish(&mut self, id: &str) -> (Vec<u8>, pb::Job) {
        let out = self.output(id, true).await;
        let job = self
            .jobs
            .stop(pb::StopJobRequest {
                job_id: id.into(),
                grace: Some(prost_duration(Duration::from_secs(30))),
            })
            .await
            .expect("stop")
            .into_inner()
            .job
            .expect("a job");
        (out, job)
    }
}

/// A protobuf duration.
pub fn prost_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// `sh -c SCRIPT` as a job request.
pub fn sh(script: &str) -> pb::StartJobRequest {
    pb::StartJobRequest {
        command: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        ..Default::default()
    }
}

/// The SSH port in a session's login command (`ssh -p PORT user@host`).
pub fn ssh_port(command: &str) -> u16 {
    command
        .split_whitespace()
        .skip_while(|w| *w != "-p")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {command:?}"))
}

/// The `tandem` CLI against `server` with the certificates in `certs`, as `admin`.
pub fn tandem_cli(certs: &Path, server: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(workspace_bin("tandem"));
    cmd.env_clear()
        .arg("--server")
        .arg(server)
        .arg("--certs-dir")
        .arg(certs)
        .arg("--user")
        .arg("admin")
        .kill_on_drop(true);
    cmd
}

/// Interview sessions served over SSH in this process (port 0), over a test job manager:
/// the same session store and SSH front end as tandemd's, with direct access to both.
pub struct SshServer {
    /// The SSH port on 127.0.0.1.
    pub port: u16,
    /// The session store.
    pub sessions: tandem_session::Sessions,
    /// The demo task.
    pub task: Arc<tandem_scenario::Task>,
    /// The jobs (killed and cleaned up on drop).
    pub manager: tandem_testkit_worker::TestManager,
    /// The tasks directory.
    _tasks: tempfile::TempDir,
    /// Turns true on drop: the SSH server stops.
    stop: tokio::sync::watch::Sender<bool>,
}

impl SshServer {
    /// Starts the SSH front end on 127.0.0.1:0 (needs root: sessions run sandboxes).
    pub async fn start() -> Self {
        let manager = tandem_testkit_worker::TestManager::new();
        let tasks = tempfile::tempdir().expect("tasks dir");
        let task = demo_task(tasks.path());
        let sessions = tandem_session::Sessions::new(
            tandem_scenario::Instances::new(manager.manager.clone()),
            manager.state.path(),
        )
        .expect("sessions");
        let (key, _) = tandem_ssh::host_key(&manager.state.path().join("ssh_host_ed25519_key"))
            .expect("host key");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (stop, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(tandem_ssh::serve(
            listener,
            key,
            sessions.clone(),
            tandem_ssh::SshLimits::default(),
            rx,
        ));
        Self {
            port,
            sessions,
            task,
            manager,
            _tasks: tasks,
            stop,
        }
    }

    /// A new session of the demo task.
    pub async fn session(&self) -> (Arc<tandem_session::Session>, tandem_session::Tokens) {
        self.sessions
            .create(tandem_session::CreateSession {
                task: Arc::clone(&self.task),
                created_by: "alice".into(),
                duration: None,
                candidate_keys: vec![],
                interviewer_keys: vec![],
            })
            .await
            .expect("session created")
    }

    /// The real OpenSSH client logging in as `user` on an 80x24 terminal.
    pub fn ssh(&self, user: &str) -> SshClient {
        SshClient::spawn(self.port, user, 80, 24, &[])
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Reads a transport-free participant's output until every needle has appeared (fails the
/// test after `within`); returns all it read.
pub async fn until_all(
    client: &tandem_session::Client,
    needles: &[String],
    within: Duration,
) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(within, async {
        while !needles.iter().all(|n| seen.contains(n.as_str())) {
            match client.next_output().await {
                Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                None => return false,
            }
        }
        true
    })
    .await;
    match found {
        Ok(true) => seen,
        Ok(false) => panic!("the session ended before {needles:?}; got {seen:?}"),
        Err(_) => panic!("{needles:?} not all seen within {within:?}; got {seen:?}"),
    }
}

/// A marker no other process on the host carries: `tag`, this test process's pid and a
/// counter.
pub fn unique(tag: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{tag}-{}-{n}", std::process::id())
}
