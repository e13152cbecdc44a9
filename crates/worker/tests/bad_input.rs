//! Bad input gets a clear error from `start` that names what is wrong, and leaves nothing
//! behind: no job, no cgroup, no mount, no state directory.

mod common;
use common::*;
use std::io::ErrorKind;
use tandem_worker::{JobError, JobManager, JobSpec, Limits};

fn assert_clean(manager: &JobManager, fixture: &Fixture) {
    assert!(
        manager.list().is_empty(),
        "a failed start must not be listed"
    );
    let jobs: Vec<_> = std::fs::read_dir(fixture.path().join("jobs"))
        .unwrap()
        .collect();
    assert!(jobs.is_empty(), "job directories left: {jobs:?}");
    for parent in &fixture.cgroup_parents {
        let left: Vec<_> = std::fs::read_dir(parent)
            .map(|d| {
                d.flatten()
                    // Warm slots (a cgroup with an idle tandem-init) are the manager's own.
                    .filter(|e| {
                        e.path().is_dir() && !e.file_name().to_string_lossy().starts_with("warm-")
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "cgroups left in {}: {left:?}",
            parent.display()
        );
    }
    let state = fixture.path().canonicalize().unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(state.to_str().unwrap()),
        "mount left behind"
    );
}

#[tokio::test]
async fn bad_limits_are_rejected_naming_the_field() {
    let (manager, fixture) = manager();
    let cases = [
        (
            Limits {
                cpu: Some(-0.5),
                ..Limits::default()
            },
            "limits.cpu",
        ),
        (
            Limits {
                cpu: Some(0.0),
                ..Limits::default()
            },
            "limits.cpu",
        ),
        (
            Limits {
                cpu: Some(1e6),
                ..Limits::default()
            },
            "limits.cpu",
        ),
        (
            Limits {
                memory: Some(0),
                ..Limits::default()
            },
            "limits.memory",
        ),
        (
            Limits {
                memory: Some(1 << 60),
                ..Limits::default()
            },
            "limits.memory",
        ),
        (
            Limits {
                pids: Some(0),
                ..Limits::default()
            },
            "limits.pids",
        ),
        (
            Limits {
                io_write_bps: Some(0),
                ..Limits::default()
            },
            "limits.io_write_bps",
        ),
    ];
    for (limits, field) in cases {
        let err = manager.start(sh("true").limits(limits)).await.unwrap_err();
        assert!(
            matches!(&err, JobError::InvalidSpec(m) if m.starts_with(field)),
            "{err} should name {field}"
        );
    }
    assert_clean(&manager, &fixture);
}

#[tokio::test]
async fn io_limits_need_a_block_device() {
    let io = Limits {
        io_read_bps: Some(1 << 20),
        ..Limits::default()
    };

    let (manager, fixture) = manager_with(|c| c.io_device = Some("/dev/null".into()));
    let err = manager
        .start(sh("true").limits(io.clone()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("/dev/null is not a block device"),
        "{err}"
    );
    assert_clean(&manager, &fixture);

    let (manager, fixture) = manager_with(|c| c.io_device = Some("/dev/no-such-disk".into()));
    let err = manager
        .start(sh("true").limits(io.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/dev/no-such-disk"), "{err}");
    assert_clean(&manager, &fixture);

    // A state dir on tmpfs has no disk under it.
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let manager = JobManager::new(tandem_worker::JobManagerConfig::new(
        shm.path(),
        tandem_worker::InitProgram::binary(env!("CARGO_BIN_EXE_tandem-init")),
    ))
    .unwrap();
    let err = manager.start(sh("true").limits(io)).await.unwrap_err();
    assert!(err.to_string().contains("not a block device"), "{err}");
    assert!(manager.list().is_empty());
}

#[tokio::test]
async fn bad_rootfs_mounts_and_commands_fail_cleanly() {
    let (manager, fixture) = manager();

    let err = manager
        .start(sh("true").rootfs_at("/no/such/rootfs"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, JobError::InvalidSpec(m) if m.starts_with("rootfs")),
        "{err}"
    );

    let err = manager
        .start(sh("true").bind("/no/such/source", "/x", true))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, JobError::InvalidSpec(m) if m.starts_with("binds[0].source")),
        "{err}"
    );

    let err = manager
        .start(sh("true").tmpfs("relative", 1 << 20))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, JobError::InvalidSpec(m) if m.starts_with("tmpfs[0].target")),
        "{err}"
    );

    // A rootfs without the command: the exec inside fails, and start says so.
    let empty_root = tempfile::tempdir_in("/var/tmp").unwrap();
    let err = manager
        .start(JobSpec::new("/bin/sh", ["-c", "true"]).rootfs_at(empty_root.path()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, JobError::Start { step, error } if step.contains("/bin/sh") && error.kind() == ErrorKind::NotFound),
        "{err}"
    );
    assert_clean(&manager, &fixture);
}

/// Re-runs this test binary as `nobody` for the case below. The binaries are copied to a
/// world-readable directory first: the checkout may be under a directory `nobody` cannot
/// enter.
#[test]
fn starting_a_job_without_root_says_what_is_missing() {
    require_root();
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let test_exe = dir.path().join("bad_input");
    let init = dir.path().join("tandem-init");
    // Copied by `cp`, not by this process: a descriptor open for writing here would be
    // inherited by a process another test forks at that moment, and the exec below would
    // fail with ETXTBSY ("text file busy") while that child holds it.
    for (from, to) in [
        (std::env::current_exe().unwrap(), &test_exe),
        (env!("CARGO_BIN_EXE_tandem-init").into(), &init),
    ] {
        let copied = std::process::Command::new("cp")
            .arg(&from)
            .arg(to)
            .status()
            .unwrap();
        assert!(copied.success(), "cp {from:?} {to:?}");
    }
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = std::process::Command::new(&test_exe)
        .args(["--exact", "as_nobody", "--nocapture", "--ignored"])
        .env("TANDEM_TEST_STATE", &state)
        .env("TANDEM_TEST_INIT", &init)
        .current_dir(dir.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

/// Runs only as the child of the test above (it is `ignored` so a normal run skips it).
#[tokio::test]
#[ignore = "run by starting_a_job_without_root_says_what_is_missing as uid 65534"]
async fn as_nobody() {
    let state = std::env::var("TANDEM_TEST_STATE").expect("started by the root test");
    let init = std::env::var("TANDEM_TEST_INIT").expect("started by the root test");
    assert!(!nix::unistd::geteuid().is_root());
    let manager = JobManager::new(tandem_worker::JobManagerConfig::new(
        state,
        tandem_worker::InitProgram::binary(init),
    ))
    .expect("a manager works without root");
    let err = manager.start(sh("true")).await.unwrap_err();
    assert!(
        matches!(&err, JobError::NotPermitted(m) if m.contains("root") && m.contains("CAP_SYS_ADMIN")),
        "{err}"
    );
}

trait RootfsExt {
    fn rootfs_at(self, path: impl Into<std::path::PathBuf>) -> Self;
}

impl RootfsExt for JobSpec {
    fn rootfs_at(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.rootfs = Some(path.into());
        self
    }
}
