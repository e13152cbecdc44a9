//! Stopping jobs: graceful SIGTERM, escalation to SIGKILL after the grace period,
//! idempotence, and stop racing a natural exit.

mod common;
use common::*;
use std::time::{Duration, Instant};
use tandem_worker::{ExitOutcome, JobState};

#[tokio::test]
async fn stop_terminates_gracefully_within_grace() {
    let (manager, _dir) = manager();
    let id = manager
        .start(sh("echo ready; exec sleep 1000"))
        .await
        .unwrap();
    read_until(&mut manager.output(id).unwrap(), "ready").await;
    let status = within(30, "stop", manager.stop(id, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(
        status.state,
        JobState::Stopped {
            forced: false,
            outcome: ExitOutcome::Signal(libc::SIGTERM)
        }
    );
}

#[tokio::test]
async fn stop_escalates_to_sigkill_when_sigterm_is_ignored() {
    let (manager, _dir) = manager();
    let id = manager
        .start(sh("trap '' TERM; echo ready; while :; do sleep 1; done"))
        .await
        .unwrap();
    read_until(&mut manager.output(id).unwrap(), "ready").await;
    let grace = Duration::from_millis(700);
    let started = Instant::now();
    let status = within(30, "stop", manager.stop(id, grace)).await.unwrap();
    let took = started.elapsed();
    assert_eq!(
        status.state,
        JobState::Stopped {
            forced: true,
            outcome: ExitOutcome::Signal(libc::SIGKILL)
        }
    );
    assert!(
        took >= grace,
        "killed after {took:?}, before the grace of {grace:?}"
    );
}

#[tokio::test]
async fn stop_is_idempotent_and_keeps_the_earliest_deadline() {
    let (manager, _dir) = manager();
    let id = manager
        .start(sh("trap '' TERM; echo ready; while :; do sleep 1; done"))
        .await
        .unwrap();
    read_until(&mut manager.output(id).unwrap(), "ready").await;
    // A long stop first, then a short one: the short deadline wins.
    let long = tokio::spawn({
        let m = manager.clone();
        async move { m.stop(id, Duration::from_secs(3600)).await }
    });
    let short = within(
        30,
        "short stop",
        manager.stop(id, Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let long = within(30, "long stop", long).await.unwrap().unwrap();
    assert_eq!(short, long);
    assert!(matches!(
        short.state,
        JobState::Stopped { forced: true, .. }
    ));
    // Stopping an ended job returns its final status unchanged.
    assert_eq!(manager.stop(id, Duration::ZERO).await.unwrap(), short);
}

/// Stop racing a natural exit: the job either exited on its own (status says exit 7) or
/// the stop's SIGTERM reached it while alive (status says stopped, with what happened).
/// Never a lost exit, a failure, or a forced kill (the grace is long).
#[tokio::test]
async fn stop_racing_exit_never_loses_the_exit_status() {
    let (manager, _dir) = manager();
    let (mut natural, mut stopped) = (0, 0);
    for _ in 0..200 {
        let id = manager.start(sh("exit 7")).await.unwrap();
        let status = within(30, "stop", manager.stop(id, Duration::from_secs(30)))
            .await
            .unwrap();
        match status.state {
            JobState::Exited { code: 7 } => natural += 1,
            JobState::Stopped {
                forced: false,
                outcome: ExitOutcome::Signal(libc::SIGTERM) | ExitOutcome::Code(7),
            } => stopped += 1,
            other => panic!("stop racing exit gave {other:?}"),
        }
        assert_eq!(manager.wait(id).await.unwrap().state, status.state);
        assert_reaped(status.pid.expect("pid"));
    }
    eprintln!("200 races: {natural} natural exits, {stopped} stops");
}

/// A stop sent once the job's output has ended (what `tandem job logs -f` followed by
/// `tandem job stop` does, and the suites' "wait for the end" helper): the command was
/// already exiting on its own, so the job exited with its own code, never "stopped". Its
/// output closes in the kernel's exit path, after the process is marked as exiting and
/// before init is told, which is the window the stop lands in. Two busy jobs make the
/// window longer, as on a loaded machine.
#[tokio::test]
async fn a_stop_after_the_output_ended_reports_the_natural_exit() {
    let (manager, _dir) = manager();
    let mut busy = Vec::new();
    for _ in 0..2 {
        busy.push(manager.start(sh("while :; do :; done")).await.unwrap());
    }
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..100 {
        let id = manager.start(sh("echo out; exit 7")).await.unwrap();
        let mut out = manager.output(id).unwrap();
        within(30, "output end", out.read_to_end()).await.unwrap();
        let status = within(30, "stop", manager.stop(id, Duration::from_secs(30)))
            .await
            .unwrap();
        *seen.entry(format!("{:?}", status.state)).or_insert(0) += 1;
    }
    for id in busy {
        manager.stop(id, Duration::ZERO).await.unwrap();
    }
    assert_eq!(
        seen,
        [(format!("{:?}", JobState::Exited { code: 7 }), 100)].into(),
        "states after 100 stops that came after the output's end"
    );
}
