//! Scheduled interviews over SSH with the real OpenSSH client: logins before the window
//! are told the start; at the window the box is there; the clock starts at the
//! candidate's first login; a candidate who never comes is a no-show; reschedule keeps the
//! logins and cancel ends them.
//!
//! Needs root: an opened session runs a real sandbox (namespaces, cgroups).

mod common;
use common::*;
use std::time::{Duration, SystemTime};
use tandem_session::{ClockStart, ScheduleTimes};

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_logins_are_told_the_start_and_the_clock_starts_with_the_candidate() {
    let server = Server::start_with(Options {
        schedule: Some(ScheduleTimes {
            opens_before: Duration::from_secs(2),
            grace: Duration::from_secs(600),
        }),
        ..Options::default()
    })
    .await;
    // An hour ahead, so that the logins below are early however slow the machine is.
    let at = SystemTime::now() + Duration::from_secs(3600);
    let duration = Duration::from_secs(1800);
    let (record, tokens) = server.schedule(at, ClockStart::FirstLogin, duration);
    assert_eq!(record.state(false), "scheduled");
    assert_eq!(record.instance, None);

    // Before the window: the start, then the connection closes (exit status 1).
    let mut early = server.ssh(&tokens.candidate, 80, 24);
    let out = early.until_exit().await;
    assert!(
        out.contains(&format!("This tandem interview starts at {}", rfc3339(at))),
        "{out:?}"
    );
    assert!(!early.child.wait().await.unwrap().success());
    // So is an interviewer; a wrong token is simply refused.
    let out = server.ssh(&tokens.interviewer, 80, 24).until_exit().await;
    assert!(out.contains("starts at"), "{out:?}");
    let out = server.ssh(&"e".repeat(40), 80, 24).until_exit().await;
    assert!(out.contains("Permission denied"), "{out:?}");
    assert!(server.sessions.get(record.id).is_none(), "not open yet");

    // Moved to 3 s from now, its window (2 s before) opens in a second.
    server
        .sessions
        .reschedule(record.id, SystemTime::now() + Duration::from_secs(3))
        .unwrap();
    // The window opens (2 s before the start): the box is there, waiting.
    server
        .sessions
        .record_until(record.id, |r| r.instance.is_some())
        .await;
    let session = server.sessions.get(record.id).unwrap();
    assert_eq!(session.info().started_at, None);
    let mut ivy = server.ssh(&tokens.interviewer, 80, 24);
    ivy.expect("demo$ ").await;
    ivy.expect("waiting for the candidate").await;
    assert_eq!(
        session.info().started_at,
        None,
        "interviewers do not start it"
    );

    let before = SystemTime::now();
    let mut cand = server.ssh(&tokens.candidate, 80, 24);
    cand.expect("demo$ ").await;
    let info = session.info();
    let started = info
        .started_at
        .expect("the clock started at the candidate's login");
    assert!(started >= before, "{started:?} < {before:?}");
    assert_eq!(info.expires_at, started + duration);
    ivy.expect("the candidate is here").await;
    cand.send("echo in-$((40+2))\r");
    ivy.expect("in-42").await;
    // The record says so too, and the events have the arrival.
    server
        .sessions
        .record_until(record.id, |r| r.started_at == Some(started))
        .await;
    server.sessions.end(record.id, "done").await.unwrap();
    let events =
        std::fs::read_to_string(server.sessions.dir(record.id).join("events.jsonl")).unwrap();
    assert!(events.contains("\"candidate_arrived\""), "{events}");
    assert!(events.contains("\"open\""), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_who_never_comes_is_a_no_show_and_the_box_is_released() {
    let server = Server::start_with(Options {
        schedule: Some(ScheduleTimes {
            opens_before: Duration::from_secs(1),
            grace: Duration::from_secs(2),
        }),
        ..Options::default()
    })
    .await;
    let at = SystemTime::now() + Duration::from_secs(2);
    let (record, _tokens) = server.schedule(at, ClockStart::FirstLogin, Duration::from_secs(600));
    server
        .sessions
        .record_until(record.id, |r| r.instance.is_some())
        .await;
    let instance = server.sessions.record(record.id).unwrap().instance.unwrap();
    server
        .sessions
        .record_until(record.id, |r| r.ended.is_some())
        .await;
    let ended = server.sessions.record(record.id).unwrap();
    assert_eq!(ended.state(false), "no-show", "{ended:?}");
    assert!(ended.started_at.is_none());
    tokio::time::timeout(Duration::from_secs(20), server.manager.wait(instance))
        .await
        .unwrap()
        .unwrap();
    for parent in server.manager.cgroup_parent_paths() {
        assert!(!parent.join(instance.to_string()).exists(), "cgroup left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reschedule_keeps_the_logins_and_cancel_ends_them() {
    let server = Server::start().await;
    let first = SystemTime::now() + Duration::from_secs(3600);
    let (record, tokens) = server.schedule(first, ClockStart::At, Duration::from_secs(600));
    let out = server.ssh(&tokens.candidate, 80, 24).until_exit().await;
    assert!(out.contains(&rfc3339(first)), "{out:?}");

    let later = first + Duration::from_secs(86_400);
    let moved = server.sessions.reschedule(record.id, later).unwrap();
    assert_eq!(moved.scheduled_at, Some(later));
    let out = server.ssh(&tokens.candidate, 80, 24).until_exit().await;
    assert!(out.contains(&rfc3339(later)), "{out:?}");
    // A start in the past is refused.
    let err = server
        .sessions
        .reschedule(record.id, SystemTime::now() - Duration::from_secs(1))
        .unwrap_err();
    assert!(err.to_string().starts_with("at: "), "{err}");

    server
        .sessions
        .end(record.id, "cancelled by alice")
        .await
        .unwrap();
    let cancelled = server.sessions.record(record.id).unwrap();
    assert_eq!(cancelled.state(false), "cancelled");
    let out = server.ssh(&tokens.candidate, 80, 24).until_exit().await;
    assert!(out.contains("Permission denied"), "{out:?}");
    assert!(
        !server
            .sessions
            .dir(record.id)
            .join("schedule.json")
            .exists()
    );
}
