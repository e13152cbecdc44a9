//! Jobs survive a daemon restart: a new manager on the same state dir serves finished
//! jobs' status and full output, and marks jobs that were running as `lost`.

mod common;
use common::*;
use std::time::Duration;
use tandem_worker::{InitProgram, JobManager, JobManagerConfig, JobState};

#[test]
fn a_new_manager_serves_earlier_jobs_and_marks_running_ones_lost() {
    let (first, fixture) = manager();
    // The first "daemon" runs on its own runtime, which is then torn down without letting
    // any of its tasks run again: like a kill -9, nothing gets to record a final status.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (finished, running) = runtime.block_on(async {
        let finished = first.start(sh("echo kept output; exit 5")).await.unwrap();
        first.wait(finished).await.unwrap();
        let running = first
            .start(sh("echo partial; exec sleep 1000"))
            .await
            .unwrap();
        read_until(&mut first.output(running).unwrap(), "partial").await;
        (finished, running)
    });
    runtime.shutdown_background();
    drop(first);

    let mut config = JobManagerConfig::new(
        fixture.path(),
        InitProgram::binary(env!("CARGO_BIN_EXE_tandem-init")),
    );
    config.cgroup_parent = fixture
        .cgroup_parents
        .first()
        .and_then(|p| p.file_name())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let second = JobManager::new(config).unwrap();
        let status = second.status(finished).unwrap();
        assert_eq!(status.state, JobState::Exited { code: 5 });
        assert!(status.ended_at.is_some());
        let text = second
            .output(finished)
            .unwrap()
            .read_to_end()
            .await
            .unwrap();
        assert_eq!(text, b"kept output\n");

        let status = second.status(running).unwrap();
        assert_eq!(status.state, JobState::Lost);
        let text = second.output(running).unwrap().read_to_end().await.unwrap();
        assert_eq!(text, b"partial\n");
        // Stopping a lost job answers at once with its status.
        let stopped = within(
            5,
            "stop lost job",
            second.stop(running, Duration::from_secs(1)),
        )
        .await
        .unwrap();
        assert_eq!(stopped.state, JobState::Lost);
        assert_eq!(second.list().len(), 2);
        // The lost job's processes and cgroup are gone.
        assert!(!fixture.cgroup_exists(running));
    });
}
