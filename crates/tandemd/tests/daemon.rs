//! The real `tandemd` process: restart after kill -9, graceful shutdown, readiness,
//! configuration errors.
//!
//! The restart and shutdown tests need root (tandemd runs real jobs); the configuration
//! error tests do not.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tandem_proto::v1 as pb;
use tandem_proto::v1::job_service_client::JobServiceClient;
use tandem_testkit::{Daemon, require_root};
use tokio::process::Command;

async fn client(dir: &Path, daemon: &Daemon) -> JobServiceClient<tonic::transport::Channel> {
    let tls = tandem_client::ClientTls::from_dir(&dir.join("certs"), "admin");
    let config = tandem_client::client_config(&tls).unwrap();
    JobServiceClient::new(tandem_client::connect(&daemon.grpc, config).await.unwrap())
}

fn sh(script: &str) -> pb::StartJobRequest {
    pb::StartJobRequest {
        command: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        ..Default::default()
    }
}

async fn job(client: &mut JobServiceClient<tonic::transport::Channel>, id: &str) -> pb::Job {
    client
        .status(pb::JobStatusRequest { job_id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap()
}

async fn logs(client: &mut JobServiceClient<tonic::transport::Channel>, id: &str) -> Vec<u8> {
    let mut stream = client
        .logs(pb::LogsRequest {
            job_id: id.into(),
            offset: 0,
            follow: false,
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(c) = stream.message().await.unwrap() {
        out.extend(c.data);
    }
    out
}

/// Waits (following the job's output) until the job has printed something.
async fn first_output(client: &mut JobServiceClient<tonic::transport::Channel>, id: &str) {
    let mut stream = client
        .logs(pb::LogsRequest {
            job_id: id.into(),
            offset: 0,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner();
    tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("output within 30 s")
        .unwrap()
        .expect("the job printed something");
}

/// Pids whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .collect()
}

fn workdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("tandemd-test-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let task = dir.path().join("tasks/idle");
    std::fs::create_dir_all(&task).unwrap();
    std::fs::write(
        task.join("task.yaml"),
        "name: idle\ntitle: Idle\ndescription: |\n  Nothing.\ndifficulty: easy\n\
         time_limit: 10m\ncheck: |\n  true\nsolution: |\n  none\n",
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_a_restart_serves_finished_jobs_and_marks_running_ones_lost() {
    require_root();
    let dir = workdir();
    let mut daemon = Daemon::start(dir.path()).await;
    let mut c = client(dir.path(), &daemon).await;
    let finished = c
        .start(sh("echo all of it; exit 3"))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let marker = format!("marker-{}", std::process::id());
    let running = c
        .start(sh(&format!(
            "echo before the crash; exec sleep 1000 # {marker}"
        )))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    // Wait until both are where we want them: the first job has ended (a stop of an ended
    // job returns its final status), the second has printed its line.
    let ended = c
        .stop(pb::StopJobRequest {
            job_id: finished.clone(),
            grace: None,
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(ended.state(), pb::JobState::Exited);
    first_output(&mut c, &running).await;

    // A live interview session too.
    let channel = {
        let tls = tandem_client::ClientTls::from_dir(&dir.path().join("certs"), "admin");
        let config = tandem_client::client_config(&tls).unwrap();
        tandem_client::connect(&daemon.grpc, config).await.unwrap()
    };
    let mut sessions = tandem_proto::v1::session_service_client::SessionServiceClient::new(channel);
    let session = sessions
        .create(pb::CreateSessionRequest {
            task: "idle".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap()
        .id;

    daemon.child.start_kill().unwrap(); // SIGKILL
    daemon.child.wait().await.unwrap();
    let mut daemon = Daemon::start(dir.path()).await;
    let mut c = client(dir.path(), &daemon).await;
    let channel = {
        let tls = tandem_client::ClientTls::from_dir(&dir.path().join("certs"), "admin");
        let config = tandem_client::client_config(&tls).unwrap();
        tandem_client::connect(&daemon.grpc, config).await.unwrap()
    };
    let mut sessions = tandem_proto::v1::session_service_client::SessionServiceClient::new(channel);
    let listed = sessions
        .list(pb::ListSessionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .sessions;
    let old = listed
        .iter()
        .find(|s| s.id == session)
        .expect("the session is listed");
    assert!(old.ended.contains("restarted"), "{old:?}");
    let mut recording = sessions
        .recording(pb::RecordingRequest {
            id: session.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = recording.message().await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&first.data).into_owned();
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2, "{text}");
    let f = job(&mut c, &finished).await;
    assert_eq!(f.state(), pb::JobState::Exited);
    assert_eq!(f.exit_code, Some(3));
    assert_eq!(logs(&mut c, &finished).await, b"all of it\n");
    let r = job(&mut c, &running).await;
    assert_eq!(r.state(), pb::JobState::Lost);
    assert_eq!(logs(&mut c, &running).await, b"before the crash\n");
    assert!(
        processes_with(&marker).is_empty(),
        "the lost job's process survived"
    );
    daemon.child.start_kill().unwrap();
    let _ = daemon.child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_jobs_and_exits_zero_within_the_bound() {
    require_root();
    let dir = workdir();
    let mut daemon = Daemon::start(dir.path()).await;
    let mut c = client(dir.path(), &daemon).await;
    let marker = format!("graceful-{}", std::process::id());
    let id = c
        .start(sh(&format!(
            "trap '' TERM; echo up; while :; do sleep 1; done # {marker}"
        )))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    first_output(&mut c, &id).await;
    let pid = nix::unistd::Pid::from_raw(daemon.child.id().unwrap() as i32);
    let started = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), daemon.child.wait())
        .await
        .expect("tandemd exits within 30 s")
        .unwrap();
    assert!(status.success(), "{status:?}");
    eprintln!("shutdown took {:?}", started.elapsed());
    // The job ignores SIGTERM: it took the 2 s grace, then the kill.
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        processes_with(&marker).is_empty(),
        "job processes survived the shutdown"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(dir.path().to_str().unwrap()),
        "mount left behind"
    );
    // The job's final status was recorded.
    let record =
        std::fs::read_to_string(dir.path().join("state/jobs").join(&id).join("status.json"))
            .unwrap();
    assert!(record.contains("stopped"), "{record}");
    // It said what it was doing, in order, and finished the sequence.
    // The reader ends at EOF of the exited daemon's stdout, which closes the channel.
    let mut messages = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(10), daemon.logs.recv())
        .await
        .expect("the log channel closes after tandemd exited")
    {
        messages.push(line["fields"]["message"].as_str().unwrap_or("").to_string());
    }
    let at = |m: &str| messages.iter().position(|x| x == m);
    let (term, stopping, stopped) = (
        at("SIGTERM received"),
        at("shutting down: ending sessions, stopping jobs"),
        at("stopped"),
    );
    assert!(
        term.is_some() && term < stopping && stopping < stopped,
        "{messages:?}"
    );
}

#[tokio::test]
async fn a_bad_config_file_exits_2_naming_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tandemd.toml");
    std::fs::write(
        &config,
        "state_dir = \"/tmp/x\"\nssh_lisen = \"0.0.0.0:22\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tandemd"))
        .arg("--config")
        .arg(&config)
        .env_clear()
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tandemd.toml:2:1"), "{err}");
    assert!(err.contains("ssh_lisen"), "{err}");
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = workdir();
    let out = Command::new(env!("CARGO_BIN_EXE_tandemd"))
        .args([
            "--grpc-listen",
            &format!("127.0.0.1:{port}"),
            "--ssh-listen",
            "127.0.0.1:0",
        ])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--certs-dir")
        .arg(dir.path().join("certs"))
        .arg("--tasks-dir")
        .arg(dir.path().join("tasks"))
        .env_clear()
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("in use"), "{err}");
    let _: PathBuf = dir.path().to_path_buf();
}
