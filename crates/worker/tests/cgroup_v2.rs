//! The cgroup v2 backend on this host's cgroup2 mount. On a pure v2 host that is
//! `/sys/fs/cgroup` with every controller; on a hybrid host (like CI's) it is the unified
//! hierarchy with no controllers bound, where creation, join-before-exec, usage,
//! `cgroup.kill` and removal still run for real, and a limit must be refused clearly.

mod common;
use common::*;
use std::time::Duration;
use tandem_worker::{CgroupError, CgroupVersion, JobError, JobState, Limits};

fn v2_mount() -> std::path::PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split(' ').nth(4).unwrap().into())
        })
        .next()
        .expect("this test needs a cgroup2 mount (pure v2 or hybrid)")
}

#[tokio::test]
async fn v2_backend_runs_kills_and_removes_job_cgroups() {
    let (manager, fixture) = manager_with(|c| c.cgroup_version = CgroupVersion::V2);
    assert_eq!(manager.cgroup_version(), 2);
    let parent = &fixture.cgroup_parents[0];
    assert!(
        parent.starts_with(v2_mount()),
        "{} is not on the cgroup2 mount",
        parent.display()
    );

    let id = manager
        .start(sh("trap '' TERM; echo ready; while :; do :; done"))
        .await
        .unwrap();
    read_until(&mut manager.output(id).unwrap(), "ready").await;
    // The monitor, init and the command were placed in the job's v2 cgroup before exec.
    let procs = std::fs::read_to_string(parent.join(id.to_string()).join("cgroup.procs")).unwrap();
    assert!(procs.lines().count() >= 3, "cgroup.procs: {procs:?}");
    let usage = manager.status(id).unwrap().usage.unwrap();
    assert!(usage.cpu_usec > 0, "cpu.stat usage: {usage:?}");

    // Grace 0: the kill goes through the cgroup (cgroup.kill on kernels ≥ 5.14).
    let status = within(30, "stop", manager.stop(id, Duration::ZERO))
        .await
        .unwrap();
    assert!(
        matches!(status.state, JobState::Stopped { forced: true, .. }),
        "{status:?}"
    );
    assert!(!fixture.cgroup_exists(id), "v2 job cgroup left behind");
}

#[tokio::test]
async fn v2_memory_limit_is_applied_or_refused_clearly() {
    let (manager, fixture) = manager_with(|c| c.cgroup_version = CgroupVersion::V2);
    let parent = fixture.cgroup_parents[0].clone();
    let own = parent.parent().unwrap();
    let delegated = std::fs::read_to_string(own.join("cgroup.controllers"))
        .unwrap()
        .split_whitespace()
        .any(|c| c == "memory");
    let limit = 64u64 << 20;
    let spec = sh("echo ready; exec sleep 1000").limits(Limits {
        memory: Some(limit),
        ..Limits::default()
    });
    match manager.start(spec).await {
        Ok(id) => {
            assert!(
                delegated,
                "started with a memory limit but no memory controller"
            );
            read_until(&mut manager.output(id).unwrap(), "ready").await;
            let max =
                std::fs::read_to_string(parent.join(id.to_string()).join("memory.max")).unwrap();
            assert_eq!(max.trim(), limit.to_string());
            manager.stop(id, Duration::ZERO).await.unwrap();
        }
        Err(err) => {
            assert!(!delegated, "memory is delegated, yet: {err}");
            assert!(
                matches!(
                    &err,
                    JobError::Cgroup(CgroupError::MissingController {
                        controller: "memory",
                        version: 2,
                        ..
                    })
                ) && err.to_string().contains("`memory` controller"),
                "{err}"
            );
            assert!(manager.list().is_empty());
        }
    }
}
