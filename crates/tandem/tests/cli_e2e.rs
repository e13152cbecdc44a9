//! The `tandem` binary end to end against the real API server (mutual TLS on port 0):
//! start, status, logs -f, stop, list; exit codes and human errors.
//!
//! The tests that start jobs need root (jobs run in namespaces and cgroups); the one about
//! usage and connection errors does not.

use std::process::Output;
use tandem_api::test_server::TestServer;
use tokio::process::Command;

fn tandem(server: &TestServer, user: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    cmd.env_clear()
        .arg("--server")
        .arg(server.server())
        .arg("--certs-dir")
        .arg(server.pki.path())
        .arg("--user")
        .arg(user);
    cmd
}

async fn run(mut cmd: Command) -> Output {
    tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("tandem finished within 60 s")
        .expect("run tandem")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_status_follow_stop_through_the_cli() {
    let server = TestServer::start().await;

    let mut start = tandem(&server, "alice");
    start.args(["job", "start", "--memory", "64M", "--", "sh", "-c"]);
    start.arg("echo hello; echo err >&2; exec sleep 1000");
    let out = run(start).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert!(
        id.parse::<tandem_worker::JobId>().is_ok(),
        "stdout is only the id: {id:?}"
    );

    let mut status = tandem(&server, "alice");
    status.args(["-o", "json", "job", "status", &id]);
    let out = run(status).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["state"], "running");
    assert_eq!(json["owner"], "alice");
    assert_eq!(json["limits"]["memory_bytes"], 64 * 1024 * 1024);
    assert!(json["exit_code"].is_null());
    assert!(json["created_at"].is_string());

    // Follow in the background; it ends when the job does.
    let mut logs = tandem(&server, "alice");
    logs.args(["job", "logs", "-f", &id]);
    let follower = tokio::spawn(run(logs));

    let mut stop = tandem(&server, "alice");
    stop.args(["job", "stop", &id, "--grace", "2s"]);
    let out = run(stop).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("stopped"),
        "{}",
        text(&out.stdout)
    );

    let out = follower.await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        out.stdout, b"hello\nerr\n",
        "logs -f prints the raw output exactly"
    );

    let mut list = tandem(&server, "alice");
    list.args(["--output", "json", "job", "list"]);
    let out = run(list).await;
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    assert_eq!(jobs[0]["state"], "stopped");
    assert_eq!(jobs[0]["signal"], 15);

    // Bob cannot see it: exit 1, the server's answer on stderr.
    let mut status = tandem(&server, "bob");
    status.args(["job", "status", &id]);
    let out = run(status).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("NotFound"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_a_failed_job_still_print_and_exit_zero() {
    let server = TestServer::start().await;
    let mut start = tandem(&server, "admin");
    start.args(["job", "start", "--", "sh", "-c", "echo partial; exit 9"]);
    let id = text(&run(start).await.stdout).trim().to_string();
    server.manager.wait(id.parse().unwrap()).await.unwrap();
    let mut logs = tandem(&server, "admin");
    logs.args(["job", "logs", &id]);
    let out = run(logs).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"partial\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_follow_prints_the_id_on_stderr_and_the_output_to_the_end() {
    let server = TestServer::start().await;
    let mut start = tandem(&server, "admin");
    start.args([
        "job",
        "start",
        "-f",
        "--",
        "sh",
        "-c",
        "echo one; echo two; exit 3",
    ]);
    let out = run(start).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout, b"one\ntwo\n");
    // The output ends before the supervisor records the final state: wait for it.
    let id: tandem_worker::JobId = text(&out.stderr).trim().parse().unwrap();
    let status = server.manager.wait(id).await.unwrap();
    assert_eq!(status.state, tandem_worker::JobState::Exited { code: 3 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_connection_errors_are_human() {
    // No job is started: this test needs no root.
    let server = TestServer::start_unprivileged().await;
    let mut bad = tandem(&server, "admin");
    bad.args(["job", "start", "--memory", "12X", "--", "true"]);
    let out = run(bad).await;
    assert_eq!(out.status.code(), Some(2), "usage error");
    assert!(text(&out.stderr).contains("12X"), "{}", text(&out.stderr));

    let mut nowhere = Command::new(env!("CARGO_BIN_EXE_tandem"));
    nowhere
        .env_clear()
        .args(["--server", "127.0.0.1:1", "--certs-dir"])
        .arg(server.pki.path())
        .args(["job", "list"]);
    let out = run(nowhere).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("connection refused (is tandemd running?)"),
        "{err}"
    );
    assert!(!err.contains("Error {"), "no Debug dumps: {err}");

    let mut no_certs = Command::new(env!("CARGO_BIN_EXE_tandem"));
    no_certs.env_clear().args([
        "--server",
        &server.server(),
        "--certs-dir",
        "/nonexistent",
        "job",
        "list",
    ]);
    let out = run(no_certs).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent/ca.crt"),
        "{}",
        text(&out.stderr)
    );
}
