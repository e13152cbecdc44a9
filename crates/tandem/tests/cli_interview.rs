//! The README's "Run an interview", end to end: the real tandemd, the `tandem` CLI, and
//! the real OpenSSH client for the candidate and an interviewer.
//!
//! Needs root: tandemd runs the session's sandbox (namespaces, cgroups).

mod common;
use common::tandem;
use tandem_testkit::{Daemon, SshClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interview_from_create_to_replay() {
    tandem_testkit::require_root();
    let dir = common::dir_with_hello_task(
        "tandem-interview-",
        "name: hello\ntitle: Say hello\ndescription: |\n  Create /tmp/hello.\n\
         difficulty: easy\ntime_limit: 10m\nshell: /bin/bash --norc -i\nenv:\n  PS1: 'box$ '\n\
         check: |\n  test -f /tmp/hello && echo hello exists || { echo no /tmp/hello yet; exit 1; }\n\
         solution: |\n  touch /tmp/hello\n",
    );
    let mut daemon = Daemon::start(dir.path()).await;
    let grpc = daemon.grpc.clone();
    // Every task keeps one sandbox set up ahead of time.
    daemon.wait_log("warm sandbox ready").await;
    let (_, out, _) = tandem(dir.path(), &grpc, &["task", "list"]).await;
    let lines: Vec<&str> = out.lines().collect();
    let col = lines[0].find("WARM").unwrap();
    assert_eq!(&lines[1][col..col + 3], "1/1", "{out}");

    let (code, out, err) = tandem(
        dir.path(),
        &grpc,
        &["-o", "json", "session", "create", "--task", "hello"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    // `ssh -p PORT TOKEN@HOST`: run exactly what a person would be told to run.
    let ssh_of = |role: &str| -> (u16, String) {
        let cmd = created["ssh"][role].as_str().unwrap();
        let words: Vec<&str> = cmd.split_whitespace().collect();
        assert_eq!(words[0], "ssh");
        let port = words[2].parse().unwrap();
        let user = words[3].split('@').next().unwrap().to_string();
        (port, user)
    };
    let (port, cand_user) = ssh_of("candidate");
    let (_, ivy_user) = ssh_of("interviewer");
    let mut cand = SshClient::spawn(port, &cand_user, 80, 24, &[]);
    let mut ivy = SshClient::spawn(port, &ivy_user, 80, 24, &[]);
    cand.expect("box$ ").await;
    ivy.expect("box$ ").await;

    let (_, out, _) = tandem(dir.path(), &grpc, &["session", "check", &id]).await;
    assert!(out.starts_with("failed\nno /tmp/hello yet"), "{out}");
    cand.send("touch /tmp/hello; echo made-$((1+1))\r");
    ivy.expect("made-2").await;
    let (_, out, _) = tandem(dir.path(), &grpc, &["-o", "json", "session", "check", &id]).await;
    let check: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(check["passed"], true, "{out}");
    // The interviewer learned the result in the title bar; the candidate did not.
    ivy.expect("check passed").await;
    assert!(!cand.seen.contains("check passed"));

    // A reset gives everyone a fresh box (the pool's, refilled after the create).
    daemon.wait_log("warm sandbox ready").await;
    let (code, out, err) =
        tandem(dir.path(), &grpc, &["-o", "json", "session", "reset", &id]).await;
    assert_eq!(code, 0, "{err}");
    let reset: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reset["instance"]["warm"], true, "{out}");
    for client in [&mut cand, &mut ivy] {
        client.expect("reset the box: this is a fresh one").await;
        client.expect("box$ ").await;
    }
    let (_, out, _) = tandem(dir.path(), &grpc, &["session", "check", &id]).await;
    assert!(out.starts_with("failed\nno /tmp/hello yet"), "{out}");

    let (_, out, _) = tandem(dir.path(), &grpc, &["session", "show", &id]).await;
    assert!(
        out.contains("candidate") && out.contains("interviewer"),
        "{out}"
    );
    let (code, _, err) = tandem(dir.path(), &grpc, &["session", "end", &id]).await;
    assert_eq!(code, 0, "{err}");
    cand.until_exit().await;
    let (code, cast, _) = tandem(dir.path(), &grpc, &["session", "recording", &id]).await;
    assert_eq!(code, 0);
    assert!(
        cast.lines().next().unwrap().contains("\"version\":2"),
        "{cast}"
    );
    assert!(cast.contains("made-2"));
    let (code, replay, _) = tandem(
        dir.path(),
        &grpc,
        &["session", "replay", &id, "--speed", "100"],
    )
    .await;
    assert_eq!(code, 0);
    assert!(replay.contains("made-2"));
    daemon.child.start_kill().unwrap();
    let _ = daemon.child.wait().await;
}
