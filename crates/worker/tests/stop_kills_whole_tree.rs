//! A job's whole process tree dies with it, including daemonized grandchildren
//! (setsid + double fork), whether the job is stopped or its command just exits; and
//! readers are never left hanging on output a grandchild keeps open.

mod common;
use common::*;
use std::time::Duration;
use tandem_worker::JobState;

/// A script that starts a daemon (double fork + setsid, stdout still open) whose command
/// line carries `marker`, waits until it runs, then runs `then`.
fn daemonizing_script(marker: &str, then: &str) -> String {
    // The daemon is the only process with an argument that *starts* with ": MARKER" (see
    // `daemon_pids`); the job's main shell only contains it in the middle of its script.
    // It then blocks opening a FIFO nobody writes, without ever forking (a fork would be a
    // second process with the same command line for a moment).
    format!(
        "dir=$(mktemp -d); mkfifo $dir/up $dir/never; \
         (setsid sh -c ': {marker}; echo daemon-up > '$dir/up'; read x < '$dir/never &); \
         read x < $dir/up; echo daemon-started; {then}"
    )
}

#[tokio::test]
async fn stop_kills_daemonized_grandchildren() {
    let (manager, _dir) = manager();
    let marker = unique_marker("stop-tree");
    let id = manager
        .start(sh(&daemonizing_script(&marker, "exec sleep 1000")))
        .await
        .unwrap();
    read_until(&mut manager.output(id).unwrap(), "daemon-started").await;
    assert_eq!(
        daemon_pids(&marker).len(),
        1,
        "the daemon should be running"
    );

    let status = within(30, "stop", manager.stop(id, Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(
        matches!(status.state, JobState::Stopped { .. }),
        "{status:?}"
    );
    assert_eq!(
        daemon_pids(&marker),
        Vec::<u32>::new(),
        "daemon survived stop"
    );
    assert_reaped(status.pid.expect("pid"));
}

#[tokio::test]
async fn natural_exit_kills_grandchildren_and_readers_end() {
    let (manager, _dir) = manager();
    let marker = unique_marker("exit-tree");
    let id = manager
        .start(sh(&daemonizing_script(&marker, "echo main-done; exit 4")))
        .await
        .unwrap();
    // The daemon still has stdout open when the main process exits: the reader must end.
    let text = output_text(&manager, id).await;
    assert_eq!(text, "daemon-started\nmain-done\n");
    let status = manager.wait(id).await.unwrap();
    assert_eq!(status.state, JobState::Exited { code: 4 });
    assert_eq!(
        daemon_pids(&marker),
        Vec::<u32>::new(),
        "daemon survived exit"
    );
    assert_reaped(status.pid.expect("pid"));
}

/// Host pids of the daemon started by [`daemonizing_script`].
fn daemon_pids(marker: &str) -> Vec<u32> {
    processes_with(&format!("\0: {marker};"))
}
