//! A daemon that died (kill -9) leaves job cgroups and overlay directories behind; the
//! next manager on the same state dir and cgroup parent kills and removes them.

mod common;
use common::*;
use tandem_worker::{InitProgram, JobManager, JobManagerConfig};

#[test]
fn a_new_manager_removes_what_a_crashed_one_left() {
    require_root();
    let parent = format!("tandem-test-{}", tandem_worker::JobId::new_random());
    let state = tempfile::tempdir_in("/var/tmp").unwrap();
    let config = || {
        let mut c = JobManagerConfig::new(
            state.path(),
            InitProgram::binary(env!("CARGO_BIN_EXE_tandem-init")),
        );
        c.cgroup_parent = parent.clone();
        c
    };
    let first = JobManager::new(config()).unwrap();
    let parents = first.cgroup_parent_paths();

    // What a crash leaves: a job cgroup with a live process in it, and an overlay upper
    // dir with the job's writes next to its output log.
    let leftover = "0b4d6f9e-0000-4000-8000-000000000000";
    let mut orphan = std::process::Command::new("/bin/sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    for p in &parents {
        std::fs::create_dir_all(p.join(leftover)).unwrap();
        std::fs::write(
            p.join(leftover).join("cgroup.procs"),
            orphan.id().to_string(),
        )
        .unwrap();
    }
    let job_dir = state.path().join("jobs").join(leftover);
    std::fs::create_dir_all(job_dir.join("upper/etc")).unwrap();
    std::fs::write(job_dir.join("upper/etc/passwd"), "written by the job").unwrap();
    std::fs::write(job_dir.join("output.log"), "kept").unwrap();
    let spec = tandem_worker::JobSpec::new("/bin/sh", ["-c", "sleep 1000"]);
    std::fs::write(
        job_dir.join("spec.json"),
        serde_json::to_vec(&spec).unwrap(),
    )
    .unwrap();
    drop(first);

    let second = JobManager::new(config()).unwrap();
    let status = orphan.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "the leftover process must be killed"
    );
    for p in &parents {
        assert!(
            !p.join(leftover).exists(),
            "leftover cgroup in {}",
            p.display()
        );
        let _ = std::fs::remove_dir(p);
    }
    assert!(
        !job_dir.join("upper").exists(),
        "leftover overlay upper dir"
    );
    assert_eq!(
        std::fs::read_to_string(job_dir.join("output.log")).unwrap(),
        "kept"
    );
    // The job it was running is listed as lost, with its output.
    let id: tandem_worker::JobId = leftover.parse().unwrap();
    assert_eq!(
        second.status(id).unwrap().state,
        tandem_worker::JobState::Lost
    );
}
