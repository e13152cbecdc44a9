//! A command that cannot be exec'd makes `start` fail with the OS error, not a job that
//! "exited 127", and leaves nothing behind.

mod common;
use common::*;
use std::io::ErrorKind;
use tandem_worker::{JobError, JobSpec};

async fn assert_nothing_left(manager: &tandem_worker::JobManager, state: &std::path::Path) {
    // A start refills the warm slots afterwards: let that finish (its init is the
    // manager's own, waiting in a `warm-…` cgroup), then look.
    manager.warm_slots_ready().await;
    assert!(manager.list().is_empty(), "failed job must not be listed");
    let left: Vec<_> = std::fs::read_dir(state.join("jobs")).unwrap().collect();
    assert!(left.is_empty(), "job directory left behind: {left:?}");
    // The manager's own waiting warm inits are not the job's.
    let children: Vec<_> = children_of_this_process()
        .into_iter()
        .filter(|(pid, _)| !is_waiting_warm_init(*pid))
        .collect();
    assert!(children.is_empty(), "processes left behind: {children:?}");
}

#[tokio::test]
async fn exec_failures_are_reported_by_start() {
    let (manager, state) = manager();

    let err = manager
        .start(JobSpec::new("/no/such/binary", [""; 0]))
        .await
        .unwrap_err();
    let JobError::Start { step, error } = &err else {
        panic!("expected a start error, got {err:?}")
    };
    assert_eq!(error.kind(), ErrorKind::NotFound, "{err}");
    assert!(step.contains("/no/such/binary"), "{err}");

    let err = manager
        .start(JobSpec::new("no-such-command-anywhere", [""; 0]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, JobError::Start { error, step } if error.kind() == ErrorKind::NotFound && step.contains("PATH")),
        "{err}"
    );

    // A file that exists in the job's root but is not executable.
    let err = manager
        .start(JobSpec::new("/etc/passwd", [""; 0]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, JobError::Start { error, .. } if error.kind() == ErrorKind::PermissionDenied),
        "{err}"
    );

    let err = manager
        .start(sh("true").cwd("/no/such/dir"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, JobError::Start { step, error } if step.contains("change directory") && error.kind() == ErrorKind::NotFound),
        "{err}"
    );
    assert!(err.to_string().contains("/no/such/dir"), "{err}");

    assert_nothing_left(&manager, state.path()).await;
}
