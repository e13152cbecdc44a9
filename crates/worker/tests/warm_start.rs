//! Warm starts (a slot's `tandem-init` already waits in a cgroup, which is renamed to the
//! job's): the job's processes are in the job's cgroup, under its limits, before the
//! command runs; slots go away on shutdown and are cleaned up after a crash, and another
//! daemon's slots are left alone. Needs root; the warm path needs cgroup v1 (on v2 the
//! same assertions check the cold path).

mod common;
use common::*;
use std::time::Duration;
use tandem_worker::{JobManagerConfig, JobState, Limits};

/// The cgroup path of `pid` in every v1 hierarchy the worker uses (`version` 1), or in
/// the v2 one, from the host.
fn cgroups_of(pid: u32, version: u8) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter(|l| {
            let controllers = l.split(':').nth(1).unwrap_or("");
            if version == 2 {
                return controllers.is_empty();
            }
            ["cpu", "cpuacct", "memory", "pids", "blkio", "freezer"]
                .iter()
                .any(|c| controllers.split(',').any(|x| x == *c))
        })
        .map(|l| l.splitn(3, ':').nth(2).unwrap_or("").to_string())
        .collect()
}

/// `pid` and every process below it.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let ppid = stat[stat.rfind(')')? + 2..]
                .split(' ')
                .nth(1)?
                .parse()
                .ok()?;
            Some((p, ppid))
        })
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found
}

async fn job_is_in_its_cgroup_under_its_limits(warm_slots: usize) {
    let (manager, fixture) = manager_with(|c: &mut JobManagerConfig| c.warm_slots = warm_slots);
    let ready = manager.warm_slots_ready().await;
    if manager.cgroup_version() == 1 {
        assert_eq!(ready, warm_slots, "warm slots prepared");
    }
    // The command's first act: fork beyond its pids limit. With pids 4 (+ init and
    // monitor), python and at most 3 of its 8 children can run.
    let spec = tandem_worker::JobSpec::new(
        "/usr/bin/python3",
        [
            "-c",
            "import os, time\n\
             for i in range(8):\n    \
                 try:\n        \
                     if os.fork() == 0:\n            time.sleep(1000)\n    \
                 except OSError:\n        pass\n\
             print('started', flush=True)\n\
             time.sleep(1000)\n",
        ],
    )
    .limits(Limits {
        pids: Some(4),
        memory: Some(96 << 20),
        ..Limits::default()
    });
    let id = manager.start(spec).await.unwrap();
    read_until(&mut manager.output(id).unwrap(), "started").await;
    let id_text = id.to_string();

    // Every process of the job (monitor, init, python, its children) is in the job's
    // cgroup in every hierarchy, named by the job id.
    let monitor = manager.status(id).unwrap().pid.expect("monitor pid");
    let cmdline =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{monitor}/cmdline")).unwrap())
            .into_owned();
    assert_eq!(
        cmdline.contains(tandem_worker::init::WARM_ARG),
        warm_slots > 0 && manager.cgroup_version() == 1,
        "the monitor is a warm slot's init exactly when there are warm slots: {cmdline:?}"
    );
    let pids = descendants(monitor);
    assert!(pids.len() >= 3, "monitor, init and python: {pids:?}");
    for &pid in &pids {
        let paths = cgroups_of(pid, manager.cgroup_version());
        assert!(!paths.is_empty());
        for path in paths {
            assert!(
                path.ends_with(&format!("/{id_text}")),
                "process {pid} is in cgroup {path}, not the job's"
            );
        }
    }
    // The limits are the job's, and they held: the job has at most pids.max processes.
    let (pids_max, memory_limit) = fixture
        .cgroup_parents
        .iter()
        .map(|p| p.join(&id_text))
        .fold((None, None), |(pm, ml), dir| {
            (
                pm.or_else(|| std::fs::read_to_string(dir.join("pids.max")).ok()),
                ml.or_else(|| std::fs::read_to_string(dir.join("memory.limit_in_bytes")).ok())
                    .or_else(|| std::fs::read_to_string(dir.join("memory.max")).ok()),
            )
        });
    assert_eq!(
        pids_max.unwrap().trim(),
        "6",
        "4 for the job + init + monitor"
    );
    assert_eq!(memory_limit.unwrap().trim(), (96u64 << 20).to_string());
    assert!(
        pids.len() <= 6,
        "{} processes under a pids limit of 4 (+ init and monitor): {pids:?}",
        pids.len()
    );
    let status = manager.stop(id, Duration::from_secs(5)).await.unwrap();
    assert!(status.state.is_finished());
    assert!(!fixture.cgroup_exists(id));
}

#[tokio::test]
async fn a_warm_started_job_is_in_its_cgroup_under_its_limits() {
    job_is_in_its_cgroup_under_its_limits(2).await;
}

#[tokio::test]
async fn a_cold_started_job_is_in_its_cgroup_under_its_limits() {
    job_is_in_its_cgroup_under_its_limits(0).await;
}

fn warm_cgroups(parents: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    parents
        .iter()
        .flat_map(|p| std::fs::read_dir(p).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("warm-"))
        })
        .collect()
}

#[tokio::test]
async fn shutdown_removes_the_warm_slots_and_their_processes() {
    let (manager, fixture) = manager();
    if manager.cgroup_version() != 1 {
        return;
    }
    assert_eq!(manager.warm_slots_ready().await, 2);
    let waiting = warm_cgroups(&fixture.cgroup_parents);
    assert!(!waiting.is_empty());
    let inits: Vec<u32> = waiting
        .iter()
        .flat_map(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    assert!(!inits.is_empty(), "a warm init waits in each slot");
    manager.shutdown(Duration::from_secs(1)).await;
    assert!(
        warm_cgroups(&fixture.cgroup_parents).is_empty(),
        "warm cgroups left"
    );
    for pid in inits {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "warm init {pid} still runs"
        );
    }
    assert!(
        !fixture
            .path()
            .join("warm")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}

#[tokio::test]
async fn a_crashed_managers_warm_slots_are_removed_and_another_daemons_are_kept() {
    let (first, fixture) = manager_with(|c| c.warm_slots = 0);
    if first.cgroup_version() != 1 {
        return;
    }
    // What a crash leaves: a marked warm cgroup with a process inside; and another
    // daemon's (no marker in this state dir), which must be left alone.
    let parents = fixture.cgroup_parents.clone();
    let ours = "warm-00000000-0000-4000-8000-00000000000a";
    let theirs = "warm-00000000-0000-4000-8000-00000000000b";
    let mut orphan = std::process::Command::new("/bin/sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    for p in &parents {
        std::fs::create_dir_all(p.join(ours)).unwrap();
        std::fs::create_dir_all(p.join(theirs)).unwrap();
        std::fs::write(p.join(ours).join("cgroup.procs"), orphan.id().to_string()).unwrap();
    }
    std::fs::create_dir_all(fixture.path().join("warm").join(ours)).unwrap();
    drop(first);

    let config = {
        let mut c = JobManagerConfig::new(
            fixture.path(),
            tandem_worker::InitProgram::binary(env!("CARGO_BIN_EXE_tandem-init")),
        );
        c.cgroup_parent = parents[0].file_name().unwrap().to_string_lossy().into();
        c.warm_slots = 0;
        c
    };
    let second = tandem_worker::JobManager::new(config).unwrap();
    let status = orphan.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "the process in the marked warm cgroup must be killed"
    );
    for p in &parents {
        assert!(!p.join(ours).exists(), "marked warm cgroup left");
        assert!(
            p.join(theirs).exists(),
            "another daemon's warm cgroup removed"
        );
        std::fs::remove_dir(p.join(theirs)).unwrap();
    }
    assert!(!fixture.path().join("warm").join(ours).exists());
    // The manager still starts jobs.
    let id = second.start(sh("exit 3")).await.unwrap();
    assert_eq!(
        second.wait(id).await.unwrap().state,
        JobState::Exited { code: 3 }
    );
}
