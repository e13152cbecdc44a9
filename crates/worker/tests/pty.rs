//! PTY jobs: a real terminal (echo, controlling TTY), input, resize with SIGWINCH, and EOF
//! when the job ends.

mod common;
use common::*;
use tandem_worker::{JobError, JobSpec, JobState, PtySize};

#[tokio::test]
async fn terminal_echoes_input_and_resize_reaches_the_child() {
    let (manager, _dir) = manager();
    let script = "trap 'echo got-winch' WINCH; echo size=$(stty size); \
                  read line; echo \"line=$line\"; echo size=$(stty size)";
    let spec = JobSpec::new("/bin/bash", ["-c", script])
        .env("PATH", "/usr/bin:/bin")
        .pty(PtySize { rows: 24, cols: 80 });
    let id = manager.start(spec).await.unwrap();
    let mut out = manager.output(id).unwrap();
    read_until(&mut out, "size=24 80").await;

    manager
        .resize(
            id,
            PtySize {
                rows: 40,
                cols: 120,
            },
        )
        .unwrap();
    manager.write_input(id, b"hello\n").await.unwrap();
    let rest = read_until(&mut out, "size=40 120").await;
    // The terminal echoed the typed line (with CRLF from the line discipline), the child
    // read it, got SIGWINCH, and sees the new size.
    assert!(rest.contains("hello\r\n"), "{rest:?}");
    assert!(rest.contains("line=hello"), "{rest:?}");
    assert!(rest.contains("got-winch"), "{rest:?}");

    // EIO on the master after exit is the end of output, not an error.
    assert!(out.read_to_end().await.is_ok());
    let status = within(30, "wait", manager.wait(id)).await.unwrap();
    assert_eq!(status.state, JobState::Exited { code: 0 });
    assert!(matches!(
        manager.write_input(id, b"x").await,
        Err(JobError::Ended(_))
    ));
}

#[tokio::test]
async fn the_terminal_is_the_controlling_tty() {
    let (manager, _dir) = manager();
    // /dev/tty opens the controlling terminal (ENXIO without one): the line only reaches
    // the output if the job's terminal is its controlling TTY.
    let spec =
        sh("tty; { echo via-controlling-tty >/dev/tty; } >/dev/null 2>&1").pty(PtySize::default());
    let id = manager.start(spec).await.unwrap();
    let text = output_text(&manager, id).await;
    assert!(text.starts_with("/dev/pts/"), "{text:?}");
    assert!(text.contains("via-controlling-tty"), "{text:?}");
    assert_eq!(
        manager.wait(id).await.unwrap().state,
        JobState::Exited { code: 0 }
    );
}

#[tokio::test]
async fn stop_hangs_up_an_interactive_shell() {
    let (manager, _dir) = manager();
    // An interactive bash ignores SIGTERM; the stop's SIGHUP ends it without escalation.
    let spec = JobSpec::new("/bin/bash", ["--norc", "-i"])
        .env("PS1", "prompt$ ")
        .pty(PtySize::default());
    let id = manager.start(spec).await.unwrap();
    read_until(&mut manager.output(id).unwrap(), "prompt$ ").await;
    let status = within(
        30,
        "stop",
        manager.stop(id, std::time::Duration::from_secs(20)),
    )
    .await
    .unwrap();
    assert!(
        matches!(status.state, JobState::Stopped { forced: false, .. }),
        "{status:?}"
    );
}

#[tokio::test]
async fn terminal_calls_on_a_pipe_job_are_refused() {
    let (manager, _dir) = manager();
    let id = manager.start(sh("exec sleep 1000")).await.unwrap();
    assert!(matches!(
        manager.write_input(id, b"x").await,
        Err(JobError::NoTerminal(_))
    ));
    assert!(matches!(
        manager.resize(id, PtySize::default()),
        Err(JobError::NoTerminal(_))
    ));
    assert!(matches!(
        manager.resize(id, PtySize { rows: 0, cols: 0 }),
        Err(JobError::InvalidSize(_))
    ));
    manager.stop(id, std::time::Duration::ZERO).await.unwrap();
}

/// The terminal reader of a real PTY job: output written before it exists and while it
/// catches up with the log reaches it exactly once and in order, it goes live once caught
/// up, and the output log is byte-exact beside it. Needs root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_reader_sees_every_byte_once_and_the_log_stays_exact() {
    let (manager, _dir) = manager();
    let script = "stty -echo; echo before; seq 1 2000; read go; seq 1 200000; echo mid; \
                  read again; echo end";
    let spec = JobSpec::new("/bin/bash", ["-c", script])
        .env("PATH", "/usr/bin:/bin")
        .pty(PtySize::default());
    let id = manager.start(spec).await.unwrap();
    read_until(&mut manager.output(id).unwrap(), "\r\n2000\r\n").await;

    // Output already in the log; the rest comes while the reader catches up.
    let mut terminal = manager.terminal(id).unwrap();
    manager.write_input(id, b"go\n").await.unwrap();
    let mut seen = Vec::new();
    let mut live_at_end = false;
    within(60, "reading the terminal", async {
        let mut asked = false;
        while let Some(chunk) = terminal.next_chunk().await.unwrap() {
            seen.extend_from_slice(&chunk);
            if !asked && seen.ends_with(b"mid\r\n") {
                // Nothing more comes until this input: the reader catches up and goes
                // live, so what follows is handed over directly.
                asked = true;
                manager.write_input(id, b"again\n").await.unwrap();
            }
            if seen.ends_with(b"end\r\n") {
                live_at_end = terminal.is_live();
            }
        }
    })
    .await;
    assert!(live_at_end, "the reader was live when the last line came");
    let log = within(
        30,
        "reading the log",
        manager.output(id).unwrap().read_to_end(),
    )
    .await
    .unwrap();
    assert!(seen == log, "the terminal saw exactly the log's bytes");
    let text = String::from_utf8(log).unwrap();
    let expected: String = std::iter::once("before".to_string())
        .chain((1..=2000).map(|i| i.to_string()))
        .chain((1..=200_000).map(|i| i.to_string()))
        .chain(["mid".to_string(), "end".to_string()])
        .map(|line| line + "\r\n")
        .collect();
    assert!(text == expected, "the log holds every line once, in order");
}
