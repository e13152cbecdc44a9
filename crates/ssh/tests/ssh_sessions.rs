//! Interview sessions over SSH with the real OpenSSH client on pseudo-terminals.
//!
//! Needs root: every session runs a real sandbox (namespaces, cgroups) with its shell.

mod common;
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidate_and_interviewer_share_one_terminal() {
    let server = Server::start().await;
    let (session, tokens) = server.session(None).await;
    let mut cand = server.ssh(&tokens.candidate, 80, 24);
    let mut ivy = server.ssh(&tokens.interviewer, 80, 24);
    let mut obs = server.ssh(&tokens.observer, 80, 24);
    cand.expect("demo$ ").await;
    ivy.expect("demo$ ").await;
    obs.expect("demo$ ").await;

    cand.send("echo cand-$((20+1))\r");
    ivy.expect("cand-21").await;
    obs.expect("cand-21").await;
    ivy.send("echo ivy-$((20+2))\r");
    cand.expect("ivy-22").await;

    // The observer's typing goes nowhere; a lock silences the interviewer too.
    obs.send("echo obs-$((20+3))\r");
    session.set_locked(true, "test");
    ivy.send("echo locked-$((20+4))\r");
    cand.send("echo mark-$((20+5))\r");
    let seen = ivy.expect("mark-25").await;
    assert!(
        !seen.contains("obs-23"),
        "observer input reached the terminal"
    );
    assert!(
        !seen.contains("locked-24"),
        "locked interviewer input reached the terminal"
    );
    // Interviewers learn about the lock in their title bar; the candidate never sees it.
    assert!(seen.contains("terminal locked"), "{seen:?}");
    assert!(!cand.seen.contains("terminal locked"));
    assert!(!cand.seen.contains("joined as"));
    session.set_locked(false, "test");
    ivy.send("echo unlocked-$((20+6))\r");
    cand.expect("unlocked-26").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_sees_the_full_screen_app_and_sizes_follow_the_candidate() {
    let server = Server::start().await;
    let (_session, tokens) = server.session(None).await;
    let mut cand = server.ssh(&tokens.candidate, 100, 30);
    cand.expect("demo$ ").await;
    cand.send("stty size\r");
    cand.expect("30 100").await;

    cand.send("printf 'line one\\nline two\\n' > /tmp/f; vim -u NONE -n /tmp/f\r");
    // vim's status line, which the command line does not contain.
    cand.expect("2 lines, 18 bytes").await;
    // Joining now: the first screen shows vim with the file, drawn from the snapshot.
    let mut late = server.ssh(&tokens.observer, 100, 30);
    late.expect("2 lines, 18 bytes").await;
    let screen = late.screen.screen().contents();
    assert!(screen.contains("line one"), "{screen}");
    assert!(
        screen.lines().filter(|l| l.starts_with('~')).count() > 5,
        "{screen}"
    );
    cand.clear();
    cand.send("\x1b:q!\r");
    cand.expect("demo$ ").await;

    // An observer resizing changes nothing; the candidate resizing changes the terminal.
    late.resize(60, 20);
    cand.clear();
    cand.send("stty size\r");
    cand.expect("30 100").await;
    cand.resize(120, 40);
    cand.clear();
    // ssh forwards SIGWINCH asynchronously: ask until the new size shows.
    let mut seen = false;
    for _ in 0..50 {
        cand.send("stty size\r");
        let out = cand.expect("demo$ ").await;
        if out.contains("40 120") {
            seen = true;
            break;
        }
        cand.clear();
    }
    assert!(seen, "the candidate's resize did not reach the terminal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_client_does_not_delay_the_others() {
    let server = Server::start().await;
    let (_session, tokens) = server.session(None).await;
    let mut cand = server.ssh(&tokens.candidate, 80, 24);
    let mut obs = server.ssh(&tokens.observer, 80, 24);
    cand.expect("demo$ ").await;
    obs.expect("demo$ ").await;
    // The observer's ssh stops reading (its TCP window fills up).
    obs.pause(true);
    // ~8 MB: more than the client's SSH window and the TCP buffers can absorb.
    cand.send(
        "for i in $(seq 160000); do echo flood-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done\r",
    );
    cand.expect("flood-160000").await;
    cand.send("echo fast-$((30+3))\r");
    cand.expect("fast-33").await;
    // When it reads again it is resynced: it shows the current screen, not the backlog.
    obs.pause(false);
    obs.expect("fast-33").await;
    // The flood was 160000 lines of 51 bytes: about 8 MB.
    let flood = 160_000 * 51;
    assert!(
        obs.seen.len() < flood / 2,
        "the stopped client got the backlog ({} of ~{flood} bytes)",
        obs.seen.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_session_disconnects_everyone_and_keeps_the_recording() {
    let server = Server::start().await;
    let (session, tokens, mut cand, mut ivy) = server.candidate_and_interviewer().await;
    cand.send("echo recorded-$((40+2))\r");
    ivy.expect("recorded-42").await;

    server
        .sessions
        .end(session.id, "interview over")
        .await
        .unwrap();
    for client in [&mut cand, &mut ivy] {
        let out = client.until_exit().await;
        assert!(out.contains("session has ended: interview over"), "{out:?}");
    }

    // The token is dead now: a plain authentication failure.
    let mut again = server.ssh(&tokens.candidate, 80, 24);
    let out = again.until_exit().await;
    assert!(out.contains("Permission denied"), "{out:?}");
    assert!(!again.child.wait().await.unwrap().success());

    // Recording: asciicast v2 with the output and the candidate's input.
    let dir = server.sessions.dir(session.id);
    let cast = std::fs::read_to_string(dir.join("recording.cast")).unwrap();
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let events: Vec<serde_json::Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        events
            .iter()
            .any(|e| e[1] == "i" && e[2].as_str().unwrap().contains("recorded-"))
    );
    assert!(
        events
            .iter()
            .any(|e| e[1] == "o" && e[2].as_str().unwrap().contains("recorded-42"))
    );
    let times: Vec<f64> = events.iter().map(|e| e[0].as_f64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "event times must not go back"
    );

    // Nothing of the sandbox is left.
    let instance = session.instance().id;
    assert!(server.manager.status(instance).unwrap().state.is_finished());
    for parent in server.manager.cgroup_parent_paths() {
        assert!(!parent.join(instance.to_string()).exists(), "cgroup left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_disconnects_everyone_and_cleans_up() {
    let server = Server::start().await;
    let (session, tokens) = server.session(Some(Duration::from_secs(3))).await;
    let mut cand = server.ssh(&tokens.candidate, 80, 24);
    cand.expect("demo$ ").await;
    let out = cand.until_exit().await;
    assert!(out.contains("session has ended: time is up"), "{out:?}");
    let instance = session.instance().id;
    tokio::time::timeout(Duration::from_secs(20), server.manager.wait(instance))
        .await
        .unwrap()
        .unwrap();
    for parent in server.manager.cgroup_parent_paths() {
        assert!(!parent.join(instance.to_string()).exists(), "cgroup left");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&instance.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_are_refused() {
    let server = Server::start().await;
    let _ = server.session(None).await;
    let mut wrong = server.ssh(&"f".repeat(40), 80, 24);
    let out = wrong.until_exit().await;
    assert!(out.contains("Permission denied"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_public_key_logs_in_with_the_session_id() {
    let server = Server::start().await;
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ivy@laptop", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let (session, _tokens) = server
        .sessions
        .create(tandem_session::CreateSession {
            task: std::sync::Arc::clone(&server.task),
            created_by: "alice".into(),
            duration: None,
            candidate_keys: vec![],
            interviewer_keys: vec![public.trim().to_string()],
        })
        .await
        .unwrap();
    let key_arg = key.to_str().unwrap();
    let mut ivy = SshClient::spawn(
        server.port,
        &session.id.to_string(),
        80,
        24,
        &["-i", key_arg, "-o", "IdentitiesOnly=yes"],
    );
    ivy.expect("demo$ ").await;
    let names: Vec<String> = session
        .participants()
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(names, ["ivy@laptop"]);
    assert_eq!(
        session.participants()[0].role,
        tandem_session::ParticipantRole::Interviewer
    );

    // Another key is refused for the same session id.
    let other = keys.path().join("other");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    let mut intruder = SshClient::spawn(
        server.port,
        &session.id.to_string(),
        80,
        24,
        &["-i", other.to_str().unwrap(), "-o", "IdentitiesOnly=yes"],
    );
    let out = intruder.until_exit().await;
    assert!(out.contains("Permission denied"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exiting_the_shell_starts_a_new_one_in_the_same_box() {
    let server = Server::start().await;
    let (session, _, mut cand, mut ivy) = server.candidate_and_interviewer().await;
    cand.send("echo kept > /tmp/state; exit\r");
    ivy.expect("the shell exited; here is a new one").await;
    cand.expect("the shell exited; here is a new one").await;
    // Same sandbox: what the old shell wrote is still there; same session.
    ivy.clear();
    cand.send("cat /tmp/state\r");
    ivy.expect("\rkept\r\n").await;
    assert!(session.info().ended.is_none());
}

/// The candidate owns the sandbox's `/dev`: replacing the `/dev/ptmx` link with one to
/// `/dev/null` (a red team's finding) used to leave the next shell without a terminal and
/// end the session for good. The next shell's terminal comes from `/dev/pts/ptmx`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_dev_ptmx_does_not_take_the_next_shell_away() {
    let server = Server::start().await;
    let (session, _, cand, mut ivy) = server.candidate_and_interviewer().await;
    cand.send("ln -sfn /dev/null /dev/ptmx; exit\r");
    ivy.expect("the shell exited; here is a new one").await;
    ivy.clear();
    cand.send("readlink /dev/ptmx; tty\r");
    ivy.expect("\r/dev/null\r\n").await;
    ivy.expect("/dev/pts/").await;
    assert!(session.info().ended.is_none());
}

/// A shell that cannot start (the candidate removed `/bin`, where the task's shell is)
/// does not end the session: everyone is told, and an interviewer's reset brings a fresh
/// box with a shell to the same connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_new_shell_waits_for_a_reset() {
    let server = Server::start().await;
    let (session, _, mut cand, mut ivy) = server.candidate_and_interviewer().await;
    cand.send("rm /bin; exit\r");
    for client in [&mut cand, &mut ivy] {
        client.expect("an interviewer can reset the box").await;
    }
    assert!(session.info().ended.is_none());
    server.sessions.reset(session.id, "ivy").await.unwrap();
    for client in [&mut cand, &mut ivy] {
        client
            .expect("ivy reset the box: this is a fresh one")
            .await;
        client.expect("demo$ ").await;
    }
    ivy.clear();
    cand.send("echo back-$((1+1))\r");
    ivy.expect("back-2").await;
    server.sessions.end(session.id, "done").await.unwrap();
    let dir = server.sessions.dir(session.id);
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert!(events.contains(r#""event":"no_shell""#), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_swaps_the_box_and_everyone_stays_connected() {
    let server = Server::start_with(Options {
        warm: true,
        ..Options::default()
    })
    .await;
    let instances = server.sessions.instances().clone();
    let ready =
        |i: &tandem_scenario::Instances| i.pool_status("demo").is_some_and(|p| p.ready == 1);
    instances.pools_until(ready).await;
    let (session, tokens) = server.session(None).await;
    let old = session.instance();
    assert!(old.warm, "the session took the warm sandbox");
    let mut cand = server.ssh(&tokens.candidate, 90, 25);
    // Larger than the candidate's window: the raw stream (see clipped_view.rs).
    let mut ivy = server.ssh(&tokens.interviewer, 100, 30);
    cand.expect("demo$ ").await;
    ivy.expect("demo$ ").await;
    cand.send("touch /tmp/solved; echo dirty > /tmp/state; cat /tmp/state\r");
    ivy.expect("\rdirty\r\n").await;
    let check = instances.check(old.id).await.unwrap();
    assert_eq!(check.outcome, tandem_scenario::CheckOutcome::Passed);

    instances.pools_until(ready).await;
    let fresh = server.sessions.reset(session.id, "ivy").await.unwrap();
    assert!(fresh.warm, "the reset took the refilled warm sandbox");
    assert_ne!(fresh.id, old.id);
    assert_eq!(session.instance().id, fresh.id);
    for client in [&mut cand, &mut ivy] {
        client
            .expect("ivy reset the box: this is a fresh one")
            .await;
        client.expect("demo$ ").await;
    }
    // A fresh box: nothing the candidate did is there, the terminal keeps its size, the
    // same logins type into it, and checks run in it.
    ivy.clear();
    cand.send("cat /tmp/state 2>/dev/null || echo fresh-$((1+1)); stty size\r");
    ivy.expect("fresh-2").await;
    ivy.expect("25 90").await;
    let check = instances.check(session.instance().id).await.unwrap();
    assert_eq!(check.outcome, tandem_scenario::CheckOutcome::Failed);
    ivy.send("echo ivy-$((3+4))\r");
    cand.expect("ivy-7").await;

    // The old box is gone, cgroups and all.
    tokio::time::timeout(Duration::from_secs(20), server.manager.wait(old.id))
        .await
        .unwrap()
        .unwrap();
    for parent in server.manager.cgroup_parent_paths() {
        assert!(!parent.join(old.id.to_string()).exists(), "cgroup left");
    }
    // The events say who reset it, and the recording shows the notice.
    server.sessions.end(session.id, "done").await.unwrap();
    let dir = server.sessions.dir(session.id);
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let reset: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "reset")
        .collect();
    assert_eq!(reset.len(), 1, "{events}");
    assert_eq!(reset[0]["by"], "ivy");
    assert_eq!(reset[0]["warm"], true);
    assert_eq!(reset[0]["instance"], fresh.id.to_string());
    let cast = std::fs::read_to_string(dir.join("recording.cast")).unwrap();
    assert!(cast.contains("ivy reset the box"));
}
