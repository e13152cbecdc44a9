//! cgroup limits hold and are reported: memory (OOM kill), pids (fork bomb), CPU quota,
//! disk write bandwidth; a job OOMing does not disturb another.

mod common;
use common::*;
use std::time::{Duration, Instant};
use tandem_worker::{JobId, JobSpec, JobState, Limits};

const MIB: u64 = 1024 * 1024;

fn py(code: &str) -> JobSpec {
    JobSpec::new("/usr/bin/python3", ["-c", code]).env("PATH", "/usr/bin:/bin")
}

/// Reads `file` of job `id`'s cgroup in whichever hierarchy has it.
fn cgroup_file(fixture: &Fixture, id: JobId, file: &str) -> Option<String> {
    fixture
        .cgroup_parents
        .iter()
        .find_map(|p| std::fs::read_to_string(p.join(id.to_string()).join(file)).ok())
}

#[tokio::test]
async fn memory_limit_ends_in_oom_killed_with_the_peak() {
    let (manager, fixture) = manager();
    let limit = 64 * MIB;
    let spec = py("x = bytearray(b'x') * (512 << 20)").limits(Limits {
        memory: Some(limit),
        ..Limits::default()
    });
    let id = manager.start(spec).await.unwrap();
    let status = within(60, "wait", manager.wait(id)).await.unwrap();
    let JobState::OomKilled { memory_peak_bytes } = status.state else {
        panic!("expected oom_killed, got {status:?}");
    };
    let peak = memory_peak_bytes.expect("peak memory reported");
    assert!(
        peak > limit / 2 && peak <= limit,
        "peak {peak} vs limit {limit}"
    );
    assert!(status.usage.unwrap().oom_kills >= 1);
    assert!(!fixture.cgroup_exists(id));
}

#[tokio::test]
async fn a_job_started_while_another_is_ooming_is_unaffected() {
    let (manager, _fixture) = manager();
    // Half a core: the CPU-limit test runs beside this one and must not be starved.
    let limits = Limits {
        memory: Some(32 * MIB),
        cpu: Some(0.5),
        ..Limits::default()
    };
    let alloc = "python3 -c \"x = bytearray(b'x') * (256 << 20)\"";
    if manager.cgroup_version() == 1 {
        // v1 kills one process per OOM: this hog keeps OOMing, one python after another,
        // and says so after each kill (exit status 137 = SIGKILL).
        let hog = sh(&format!("while :; do {alloc}; echo killed-$?; done")).limits(limits);
        let hog = manager.start(hog).await.unwrap();
        read_until(&mut manager.output(hog).unwrap(), "killed-137").await;
        let calm = manager.start(sh("seq 1 100000 | tail -n 1")).await.unwrap();
        let status = within(60, "calm job", manager.wait(calm)).await.unwrap();
        assert_eq!(status.state, JobState::Exited { code: 0 });
        assert_eq!(output_text(&manager, calm).await, "100000\n");
        let hog_status = within(30, "stop hog", manager.stop(hog, Duration::ZERO))
            .await
            .unwrap();
        assert!(hog_status.usage.unwrap().oom_kills >= 1, "{hog_status:?}");
    } else {
        // v2 kills the whole job on its first OOM (memory.oom.group): keep the calm job
        // running across the hog's OOM instead; it waits on a FIFO the test opens after.
        let shared = tempfile::tempdir().unwrap();
        let fifo = shared.path().join("go");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let calm = manager
            .start(
                sh("seq 1 100000 > /tmp/n; echo ready; read x < /shared/go; tail -n 1 /tmp/n")
                    .bind(shared.path(), "/shared", false),
            )
            .await
            .unwrap();
        read_until(&mut manager.output(calm).unwrap(), "ready").await;
        let hog = manager.start(sh(alloc).limits(limits)).await.unwrap();
        let hog_status = within(60, "hog", manager.wait(hog)).await.unwrap();
        assert!(
            matches!(hog_status.state, JobState::OomKilled { .. }),
            "{hog_status:?}"
        );
        tokio::task::spawn_blocking(move || std::fs::write(fifo, "go\n"))
            .await
            .unwrap()
            .unwrap();
        let status = within(60, "calm job", manager.wait(calm)).await.unwrap();
        assert_eq!(status.state, JobState::Exited { code: 0 });
        assert!(output_text(&manager, calm).await.ends_with("100000\n"));
    }
}

#[tokio::test]
async fn pids_limit_contains_a_fork_bomb_and_the_job_still_stops() {
    let (manager, fixture) = manager();
    let spec = JobSpec::new(
        "/bin/bash",
        ["-c", "echo bombing; b() { while :; do b & done; }; b"],
    )
    .env("PATH", "/usr/bin:/bin")
    .limits(Limits {
        pids: Some(20),
        // Half a core: the CPU-limit test runs beside this one and must not be starved.
        cpu: Some(0.5),
        ..Limits::default()
    });
    let id = manager.start(spec).await.unwrap();
    let mut out = manager.output(id).unwrap();
    // bash reports the failing forks: the limit is being hit.
    read_until(&mut out, "Resource temporarily unavailable").await;
    let current: u64 = cgroup_file(&fixture, id, "pids.current")
        .expect("pids.current")
        .trim()
        .parse()
        .unwrap();
    assert!(
        current <= 22,
        "pids.current {current} exceeds 20 + tandem's 2"
    );
    let status = within(30, "stop", manager.stop(id, Duration::from_millis(500)))
        .await
        .unwrap();
    assert!(
        matches!(status.state, JobState::Stopped { .. }),
        "{status:?}"
    );
    assert!(!fixture.cgroup_exists(id));
}

#[tokio::test]
async fn cpu_limit_holds_a_busy_loop_to_its_quota() {
    let (manager, _fixture) = manager();
    let spec = sh("echo spinning; while :; do :; done").limits(Limits {
        cpu: Some(0.25),
        ..Limits::default()
    });
    let id = manager.start(spec).await.unwrap();
    read_until(&mut manager.output(id).unwrap(), "spinning").await;
    // A measurement window, not synchronisation: the cgroup's own CPU time over ≥ 2 s.
    let usage = |m: &tandem_worker::JobManager| m.status(id).unwrap().usage.unwrap().cpu_usec;
    let (u0, t0) = (usage(&manager), Instant::now());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (u1, t1) = (usage(&manager), Instant::now());
    let cores = (u1 - u0) as f64 / (t1 - t0).as_micros() as f64;
    manager.stop(id, Duration::ZERO).await.unwrap();
    assert!(
        (0.2..=0.3).contains(&cores),
        "busy loop used {cores:.3} cores with a 0.25 limit"
    );
}

#[tokio::test]
async fn write_bandwidth_limit_slows_direct_io() {
    let (manager, fixture) = manager();
    // A sandbox's own writes land in memory (its writable layer is a tmpfs); what reaches
    // the state dir's disk is a writable bind of a directory on it.
    let disk_dir = fixture.path().join("bound");
    std::fs::create_dir(&disk_dir).unwrap();
    let spec = sh("dd if=/dev/zero of=/disk/big bs=1M count=50 oflag=direct 2>&1 | tail -n 1")
        .bind(&disk_dir, "/disk", false)
        .limits(Limits {
            io_write_bps: Some(10 * MIB),
            ..Limits::default()
        });
    let started = Instant::now();
    let id = manager.start(spec).await.unwrap();
    let status = within(120, "dd", manager.wait(id)).await.unwrap();
    let took = started.elapsed();
    let text = output_text(&manager, id).await;
    assert_eq!(status.state, JobState::Exited { code: 0 }, "{text}");
    assert!(text.contains("52428800 bytes"), "{text}");
    assert!(
        took >= Duration::from_secs(4),
        "50 MiB at 10 MiB/s took only {took:?}: {text}"
    );
    let written = status.usage.unwrap().io_write_bytes.unwrap_or(0);
    assert!(written >= 50 * MIB, "io_write_bytes {written}");
}

#[tokio::test]
async fn a_job_that_asks_for_no_limits_gets_the_defaults() {
    let (manager, fixture) = manager();
    let id = manager
        .start(sh("echo started; exec sleep 1000"))
        .await
        .unwrap();
    read_until(&mut manager.output(id).unwrap(), "started").await;
    let info = manager.info(id).unwrap();
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pids = (pid_max / 16).min(4096);
    assert_eq!(info.spec.limits.pids, Some(pids));
    assert!(info.spec.limits.memory.is_some_and(|m| m <= 2 << 30));
    // The kernel enforces them: the job's cgroup has the pids limit (+2 for tandem-init).
    let pids_max = fixture
        .cgroup_parents
        .iter()
        .map(|p| p.join(id.to_string()).join("pids.max"))
        .find(|p| p.exists())
        .expect("a pids.max of the job's cgroup");
    assert_eq!(
        std::fs::read_to_string(pids_max).unwrap().trim(),
        (pids + 2).to_string()
    );
    manager.stop(id, Duration::ZERO).await.unwrap();
}

/// Where cgroup v1 and v2 differ: v1's OOM killer kills the one process that ran out
/// (the job goes on), v2 with `memory.oom.group` kills the whole job at once.
#[tokio::test]
async fn an_oom_kills_one_process_on_v1_and_the_whole_job_on_v2() {
    let (manager, _fixture) = manager();
    let spec =
        sh("python3 -c \"x = bytearray(b'x') * (256 << 20)\"; echo survived-$?; exec sleep 1000")
            .limits(Limits {
                memory: Some(32 * MIB),
                ..Limits::default()
            });
    let id = manager.start(spec).await.unwrap();
    if manager.cgroup_version() == 1 {
        read_until(&mut manager.output(id).unwrap(), "survived-137").await;
        let status = manager.stop(id, Duration::ZERO).await.unwrap();
        assert!(
            matches!(status.state, JobState::Stopped { .. }),
            "{status:?}"
        );
    } else {
        let status = within(60, "wait", manager.wait(id)).await.unwrap();
        assert!(
            matches!(status.state, JobState::OomKilled { .. }),
            "{status:?}"
        );
        assert!(!output_text(&manager, id).await.contains("survived"));
    }
}
