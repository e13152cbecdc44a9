//! Jobs report how their command ended: exit codes, signal deaths, timestamps, and the
//! environment and working directory they were given (and nothing else).

mod common;
use common::*;
use tandem_worker::{JobError, JobId, JobSpec, JobState};

#[tokio::test]
async fn exit_codes_are_reported() {
    let (manager, _dir) = manager();
    for code in [0, 1, 3, 255] {
        let id = manager.start(sh(&format!("exit {code}"))).await.unwrap();
        let status = within(30, "wait", manager.wait(id)).await.unwrap();
        assert_eq!(status.state, JobState::Exited { code });
        let created = status.created_at;
        let started = status.started_at.expect("started_at");
        let ended = status.ended_at.expect("ended_at");
        assert!(created <= started && started <= ended, "{status:?}");
    }
}

#[tokio::test]
async fn signal_deaths_are_reported() {
    let (manager, _dir) = manager();
    let id = manager.start(sh("kill -SEGV $$")).await.unwrap();
    let status = within(30, "wait", manager.wait(id)).await.unwrap();
    assert_eq!(
        status.state,
        JobState::Signaled {
            signal: libc::SIGSEGV
        }
    );
}

#[tokio::test]
async fn environment_is_explicit_and_cwd_is_honoured() {
    let (manager, _fixture) = manager();
    let spec = JobSpec::new("/usr/bin/env", [""; 0])
        .env("ONLY", "this")
        .cwd("/usr/share");
    let id = manager.start(spec).await.unwrap();
    assert_eq!(output_text(&manager, id).await, "ONLY=this\n");
    let id = manager.start(sh("pwd").cwd("/usr/share")).await.unwrap();
    assert_eq!(output_text(&manager, id).await, "/usr/share\n");

    let id = manager
        .start(sh("pwd; cat; echo cat-exited"))
        .await
        .unwrap();
    // stdin is /dev/null: cat ends at once instead of waiting for input.
    assert_eq!(output_text(&manager, id).await, "/\ncat-exited\n");
}

#[tokio::test]
async fn stdout_and_stderr_are_merged_in_order() {
    let (manager, _dir) = manager();
    let id = manager
        .start(sh("echo 1; echo 2 >&2; echo 3; echo 4 >&2"))
        .await
        .unwrap();
    assert_eq!(output_text(&manager, id).await, "1\n2\n3\n4\n");
}

#[tokio::test]
async fn list_and_status_know_the_job_and_unknown_ids_are_not_found() {
    let (manager, _dir) = manager();
    let spec = sh("exit 0").owner("alice").label("task", "disk-full");
    let id = manager.start(spec).await.unwrap();
    within(30, "wait", manager.wait(id)).await.unwrap();
    let listed = manager.list();
    let info = listed.iter().find(|i| i.id == id).expect("job listed");
    assert_eq!(info.spec.owner, "alice");
    assert_eq!(info.spec.labels["task"], "disk-full");
    assert_eq!(info.status.state, JobState::Exited { code: 0 });

    let unknown = JobId::new_random();
    assert!(matches!(manager.status(unknown), Err(JobError::NotFound(x)) if x == unknown));
    assert!(matches!(
        manager.output(unknown),
        Err(JobError::NotFound(_))
    ));
    assert!(matches!(
        manager.stop(unknown, std::time::Duration::ZERO).await,
        Err(JobError::NotFound(_))
    ));
}

#[tokio::test]
async fn invalid_specs_are_rejected_before_anything_runs() {
    let (manager, dir) = manager();
    let err = manager.start(JobSpec::new("", [""; 0])).await.unwrap_err();
    assert!(
        matches!(err, JobError::InvalidSpec(ref m) if m.starts_with("command")),
        "{err}"
    );
    let err = manager.start(sh("true").cwd("relative")).await.unwrap_err();
    assert!(
        matches!(err, JobError::InvalidSpec(ref m) if m.starts_with("cwd")),
        "{err}"
    );
    assert!(manager.list().is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join("jobs")).unwrap().count(),
        0
    );
}
