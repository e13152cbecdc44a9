//! The README's "Schedule an interview", end to end: the real tandemd and `tandem` CLI,
//! the real OpenSSH client, and a daemon killed with SIGKILL and started again between
//! the scheduling and the interview.
//!
//! Needs root: tandemd runs the session's sandbox (namespaces, cgroups).

mod common;
use common::tandem;
use tandem_testkit::{Daemon, SshClient};

/// `ssh -p PORT USER@HOST` from a printed command: the port and the user.
fn login(command: &str) -> (u16, String) {
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[0], "ssh", "{command}");
    (
        words[2].parse().unwrap(),
        words[3].split('@').next().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_interview_survives_a_restart_and_opens_on_time() {
    tandem_testkit::require_root();
    let dir = common::dir_with_hello_task(
        "tandem-schedule-",
        "name: hello\ntitle: Say hello\ndescription: |\n  Create /tmp/hello.\n\
         difficulty: easy\ntime_limit: 10m\nshell: /bin/bash --norc -i\nenv:\n  PS1: 'box$ '\n\
         check: |\n  test -f /tmp/hello\nsolution: |\n  touch /tmp/hello\n",
    );
    let mut daemon = Daemon::start(dir.path()).await;
    let grpc = daemon.grpc.clone();

    // Scheduled a day ahead: the invite is printed at once.
    let (code, out, err) = tandem(
        dir.path(),
        &grpc,
        &["session", "create", "--task", "hello", "--at", "+1d"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(scheduled)"), "{out}");
    assert!(out.contains("--- invite (for the candidate) ---"), "{out}");
    let candidate_line = out
        .lines()
        .find(|l| l.starts_with("candidate:"))
        .unwrap()
        .trim_start_matches("candidate:")
        .trim()
        .to_string();
    assert!(out.contains(&format!("    {candidate_line}\n")), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let (port, token) = login(&candidate_line);

    // Listed with its start; a login now is told when to come.
    let (_, list, _) = tandem(dir.path(), &grpc, &["session", "list"]).await;
    assert!(list.contains("scheduled: starts"), "{list}");
    let mut early = SshClient::spawn(port, &token, 80, 24, &[]);
    assert!(early.until_exit().await.contains("starts at"));

    // Moved to two hours from now: the same logins.
    let (code, out, err) = tandem(
        dir.path(),
        &grpc,
        &["session", "reschedule", &id, "--at", "+2h"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("the logins are the same"), "{out}");

    // A second one, cancelled: its login is dead.
    let (_, json, _) = tandem(
        dir.path(),
        &grpc,
        &[
            "-o", "json", "session", "create", "--task", "hello", "--at", "+3h",
        ],
    )
    .await;
    let other: serde_json::Value = serde_json::from_str(&json).unwrap();
    let other_id = other["id"].as_str().unwrap().to_string();
    let (other_port, other_token) = login(other["ssh"]["candidate"].as_str().unwrap());
    let (code, _, err) = tandem(dir.path(), &grpc, &["session", "cancel", &other_id]).await;
    assert_eq!(code, 0, "{err}");
    let mut dead = SshClient::spawn(other_port, &other_token, 80, 24, &[]);
    assert!(dead.until_exit().await.contains("Permission denied"));

    // The daemon dies and comes back; its window is now 3 h before a start: open at once.
    daemon.child.start_kill().unwrap();
    let _ = daemon.child.wait().await;
    let mut daemon = Daemon::start_with(dir.path(), &["--schedule-opens-before", "3h"]).await;
    let grpc = daemon.grpc.clone();
    daemon.wait_log("scheduled session restored").await;
    daemon.wait_log("session open").await;
    let ssh_port = {
        let (_, info, _) = tandem(dir.path(), &grpc, &["-o", "json", "server", "info"]).await;
        let info: serde_json::Value = serde_json::from_str(&info).unwrap();
        info["ssh_address"]
            .as_str()
            .unwrap()
            .rsplit_once(':')
            .unwrap()
            .1
            .parse::<u16>()
            .unwrap()
    };
    let mut cand = SshClient::spawn(ssh_port, &token, 80, 24, &[]);
    cand.expect("box$ ").await;
    cand.send("echo after-$((1+1))\r");
    cand.expect("after-2").await;
    let (_, list, _) = tandem(dir.path(), &grpc, &["-o", "json", "session", "list"]).await;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let states: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert!(states.contains(&(id.as_str(), "live")), "{states:?}");
    assert!(
        states.contains(&(other_id.as_str(), "cancelled")),
        "{states:?}"
    );
    daemon.child.start_kill().unwrap();
    let _ = daemon.child.wait().await;
}
