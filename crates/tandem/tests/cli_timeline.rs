//! The interview as a timeline, end to end: the real tandemd, the `tandem` CLI and the
//! real OpenSSH client for the candidate and an interviewer. Commands with their authors
//! and exit statuses, a two-condition task checked automatically, hints the candidate
//! reads with `hint`, a private note, the timeline, the report and the recording's
//! markers.
//!
//! Needs root: tandemd runs the session's sandbox (namespaces, cgroups).

mod common;
use common::tandem;
use serde_json::Value;
use tandem_testkit::{Daemon, SshClient};

const TASK: &str = "\
name: two-parts
title: Two files
description: |
  Create /tmp/a, then /tmp/b.
difficulty: easy
time_limit: 10m
hostname: box
warm: 0
auto_check: 5s
check: |
  ok=0
  if test -f /tmp/a; then echo 'PASS file-a'; else echo 'FAIL file-a: no /tmp/a'; ok=1; fi
  if test -f /tmp/b; then echo 'PASS file-b'; else echo 'FAIL file-b: no /tmp/b'; ok=1; fi
  exit $ok
hints:
  - Look in /tmp.
  - touch /tmp/a /tmp/b
solution: |
  touch /tmp/a /tmp/b
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_shows_who_did_what_and_when_each_part_worked() {
    tandem_testkit::require_root();
    let dir = tempfile::Builder::new()
        .prefix("tandem-timeline-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let task = dir.path().join("tasks/two-parts");
    std::fs::create_dir_all(&task).unwrap();
    std::fs::write(task.join("task.yaml"), TASK).unwrap();
    let mut daemon = Daemon::start(dir.path()).await;
    let grpc = daemon.grpc.clone();
    let (code, out, err) = tandem(
        dir.path(),
        &grpc,
        &["-o", "json", "session", "create", "--task", "two-parts"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let ssh_of = |role: &str| -> (u16, String) {
        let words: Vec<&str> = created["ssh"][role]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect();
        (
            words[2].parse().unwrap(),
            words[3].split('@').next().unwrap().to_string(),
        )
    };
    let (port, cand_user) = ssh_of("candidate");
    let (_, ivy_user) = ssh_of("interviewer");
    let mut cand = SshClient::spawn(port, &cand_user, 100, 30, &[]);
    let mut ivy = SshClient::spawn(port, &ivy_user, 100, 30, &[]);
    cand.expect("root@box:").await;
    ivy.expect("root@box:").await;

    // Three commands of the candidate's, one failing.
    cand.send("ls /nonexistent\r");
    cand.expect("No such file or directory").await;
    cand.send("touch /tmp/a; echo a-$((1+1))\r");
    cand.expect("a-2").await;
    // The automatic check notices the first part (the interviewer's title bar says so).
    ivy.expect("(1/2 conditions)").await;
    cand.send("echo c-$((2+1))\r");
    cand.expect("c-3").await;

    // Hints, in order; the candidate reads them with `hint`.
    let (code, out, err) = tandem(dir.path(), &grpc, &["session", "hint", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("hint 1/2 revealed"), "{out}");
    cand.send("hint\r");
    cand.expect("Hint 1: Look in /tmp.").await;
    let (code, out, err) = tandem(dir.path(), &grpc, &["session", "hint", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("touch /tmp/a /tmp/b"), "{out}");
    let (code, _, err) = tandem(dir.path(), &grpc, &["session", "hint", &id]).await;
    assert_ne!(code, 0);
    assert!(err.contains("every hint of task two-parts is out"), "{err}");
    cand.clear();
    cand.send("hint | tail -1 | tr a-z A-Z\r");
    cand.expect("HINT 2: TOUCH /TMP/A /TMP/B").await;

    // A private note; then the interviewer types the second fix.
    let note = "candidate-missed-the-second-file";
    let (code, _, err) = tandem(dir.path(), &grpc, &["session", "note", &id, note]).await;
    assert_eq!(code, 0, "{err}");
    ivy.send("touch /tmp/b; echo b-$((1+1))\r");
    ivy.expect("b-2").await;
    ivy.expect("check passed (2/2 conditions)").await;

    // One way into the session's terminal: its creator cannot attach to its shell job
    // (typing around the lock and the recording) nor stop its sandbox around `end`.
    let (code, out, err) = tandem(dir.path(), &grpc, &["-o", "json", "job", "list"]).await;
    assert_eq!(code, 0, "{err}");
    let jobs: Value = serde_json::from_str(&out).unwrap();
    let shell = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["labels"]["role"] == "shell" && j["state"] == "running")
        .unwrap_or_else(|| panic!("no running shell job: {out}"));
    let shell = shell["id"].as_str().unwrap();
    let (code, _, err) = tandem(dir.path(), &grpc, &["job", "attach", shell]).await;
    assert_ne!(code, 0);
    assert!(err.contains(&format!("belongs to session {id}")), "{err}");
    let instance = created["instance_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (code, out, err) = tandem(dir.path(), &grpc, &["-o", "json", "session", "show", &id]).await;
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    let instance = shown["instance_id"]
        .as_str()
        .map_or(instance, str::to_string);
    let (code, _, err) = tandem(dir.path(), &grpc, &["job", "stop", &instance]).await;
    assert_ne!(code, 0);
    assert!(err.contains(&format!("belongs to session {id}")), "{err}");
    cand.send("echo still-$((4+4))\r");
    cand.expect("still-8").await;
    // A reset keeps the revealed hints: the new box has them too.
    let (code, _, err) = tandem(dir.path(), &grpc, &["session", "reset", &id]).await;
    assert_eq!(code, 0, "{err}");
    cand.expect("reset the box: this is a fresh one").await;
    cand.expect("root@box:").await;
    cand.send("hint | grep -c '^Hint'\r");
    cand.expect("\r2\r\n").await;
    // Its prompt: the command is recorded by then.
    cand.expect("root@box:").await;

    let (code, _, err) = tandem(dir.path(), &grpc, &["session", "end", &id]).await;
    assert_eq!(code, 0, "{err}");
    cand.until_exit().await;
    assert!(!cand.seen.contains(note), "the candidate saw the note");
    assert!(
        !cand.seen.contains("\x1b]6973;"),
        "the candidate saw a command mark"
    );
    assert!(
        !cand.seen.contains("conditions)"),
        "the candidate saw a check"
    );

    let (code, out, err) = tandem(
        dir.path(),
        &grpc,
        &["-o", "json", "session", "timeline", &id],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let timeline: Value = serde_json::from_str(&out).unwrap();
    let entries = timeline["entries"].as_array().unwrap();
    let commands: Vec<(&str, &str, i64)> = entries
        .iter()
        .filter(|e| e["kind"] == "command")
        .map(|e| {
            (
                e["text"].as_str().unwrap(),
                // "name (#n)": the numbers follow who connected first.
                e["by"].as_str().unwrap().split(" (#").next().unwrap(),
                e["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        commands,
        [
            ("ls /nonexistent", "candidate", 2),
            ("touch /tmp/a; echo a-$((1+1))", "candidate", 0),
            ("echo c-$((2+1))", "candidate", 0),
            ("hint", "candidate", 0),
            ("hint | tail -1 | tr a-z A-Z", "candidate", 0),
            ("touch /tmp/b; echo b-$((1+1))", "interviewer", 0),
            ("echo still-$((4+4))", "candidate", 0),
            ("hint | grep -c '^Hint'", "candidate", 0),
        ],
        "{out}"
    );
    // The shell starts in the sandbox's root directory.
    assert!(
        entries
            .iter()
            .all(|e| e["kind"] != "command" || e["cwd"] == "/"),
        "{out}"
    );
    // Each part's first pass, in order, then the whole task.
    let first = |name: &str| {
        timeline["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["first_passed_offset_s"].as_f64())
            .unwrap_or_else(|| panic!("{name} never passed: {out}"))
    };
    let (a, b) = (first("file-a"), first("file-b"));
    let solved = timeline["solved_offset_s"].as_f64().unwrap();
    assert!(a < b && b <= solved, "{a} {b} {solved}");
    let hints: Vec<&str> = entries
        .iter()
        .filter(|e| e["kind"] == "hint")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        hints,
        ["hint 1/2: Look in /tmp.", "hint 2/2: touch /tmp/a /tmp/b"]
    );
    assert_eq!(timeline["hints_revealed"], 2);
    assert!(
        entries
            .iter()
            .any(|e| e["kind"] == "note" && e["text"] == note)
    );
    // Time order.
    let offsets: Vec<f64> = entries
        .iter()
        .map(|e| e["offset_s"].as_f64().unwrap())
        .collect();
    assert!(offsets.is_sorted(), "{offsets:?}");

    let (code, text, _) = tandem(dir.path(), &grpc, &["session", "timeline", &id]).await;
    assert_eq!(code, 0);
    assert!(text.contains("$ ls /nonexistent  → exit 2"), "{text}");
    let (code, report, _) = tandem(
        dir.path(),
        &grpc,
        &["session", "report", &id, "--format", "html"],
    )
    .await;
    assert_eq!(code, 0);
    assert!(report.contains(note), "{report}");
    assert!(report.contains("Hints used</b>: 2 of 2"), "{report}");
    assert!(report.contains("ls /nonexistent  → exit 2"), "{report}");
    let (code, report, _) = tandem(dir.path(), &grpc, &["session", "report", &id]).await;
    assert_eq!(code, 0);
    assert!(report.contains("| file-a |"), "{report}");
    let ivy_line = report
        .lines()
        .find(|l| l.contains("`touch /tmp/b"))
        .unwrap();
    assert!(ivy_line.contains("| interviewer (#"), "{report}");

    // The recording: markers for checks, hints and the note; no command marks; the note
    // never as terminal output; and asciinema still plays it.
    let (code, cast, _) = tandem(dir.path(), &grpc, &["session", "recording", &id]).await;
    assert_eq!(code, 0);
    // (Not "6973" alone: event times have six decimals.)
    assert!(
        !cast.contains("\\u001b]6973;"),
        "a command mark reached the recording"
    );
    let mut markers = Vec::new();
    for line in cast.lines().skip(1) {
        let event: Value = serde_json::from_str(line).unwrap();
        let data = event[2].as_str().unwrap();
        match event[1].as_str().unwrap() {
            "m" => markers.push(data.to_string()),
            "o" => assert!(!data.contains(note), "the note was terminal output"),
            _ => {}
        }
    }
    assert!(
        markers
            .iter()
            .any(|m| m.starts_with("check passed (2/2 conditions) [auto]")),
        "{markers:?}"
    );
    assert!(
        markers.iter().any(|m| m.starts_with("hint 2/2")),
        "{markers:?}"
    );
    assert!(markers.iter().any(|m| m.contains(note)), "{markers:?}");
    let file = dir.path().join("interview.cast");
    std::fs::write(&file, &cast).unwrap();
    // `asciinema cat` opens /dev/tty: give it one (util-linux's `script`).
    let played = tokio::process::Command::new("script")
        .args([
            "-qec",
            &format!("asciinema cat {}", file.display()),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("asciinema (apt install asciinema)");
    assert!(played.status.success(), "{played:?}");
    assert!(String::from_utf8_lossy(&played.stdout).contains("c-3"));
    // tandem's own player skips the markers.
    let (code, replay, err) = tandem(
        dir.path(),
        &grpc,
        &[
            "session",
            "replay",
            &id,
            "--speed",
            "100",
            "--max-idle",
            "100ms",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(replay.contains("c-3") && !replay.contains(note));
    daemon.child.start_kill().unwrap();
    let _ = daemon.child.wait().await;
}
