//! Every job is isolated: its own PID, network, UTS, IPC, mount and cgroup namespaces, a
//! copy-on-write root, and nothing left on the host when it ends.

mod common;
use common::*;
use std::time::Duration;
use tandem_worker::{JobId, JobState};

/// Runs a script to completion and returns (state, output).
async fn run(
    manager: &tandem_worker::JobManager,
    spec: tandem_worker::JobSpec,
) -> (JobState, String) {
    let id = manager.start(spec).await.expect("start");
    let text = output_text(manager, id).await;
    let status = within(60, "wait", manager.wait(id)).await.unwrap();
    (status.state, text)
}

#[tokio::test]
async fn pid_namespace_shows_only_the_jobs_processes() {
    let (manager, _f) = manager();
    let (state, text) = run(
        &manager,
        sh("echo ppid=$PPID; ps -e -o pid=,comm= | sort -n"),
    )
    .await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("ppid=1"),
        "the command's parent is the job's init"
    );
    let procs: Vec<(u32, String)> = lines
        .map(|l| {
            let (pid, comm) = l.trim().split_once(' ').unwrap();
            (pid.parse().unwrap(), comm.trim().to_string())
        })
        .collect();
    assert_eq!(procs[0].0, 1, "{procs:?}");
    assert_eq!(procs[1], (2, "sh".to_string()), "{procs:?}");
    // Besides init and sh: only the pipeline's ps and sort.
    let others: Vec<&str> = procs[2..].iter().map(|(_, c)| c.as_str()).collect();
    assert!(
        others
            .iter()
            .all(|c| *c == "ps" || *c == "sort" || *c == "sh"),
        "foreign processes visible: {procs:?}"
    );
}

#[tokio::test]
async fn network_namespace_has_only_loopback_and_no_way_to_the_host() {
    let (manager, _f) = manager();
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    host.set_nonblocking(true).unwrap();
    let port = host.local_addr().unwrap().port();
    let script = format!(
        "ip -o link | cut -d: -f2,3 | cut -d' ' -f2,3; \
         (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo host-reachable || echo host-unreachable; \
         python3 -c \"import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); \
socket.create_connection(s.getsockname()); print('loopback-works')\""
    );
    let (state, text) = run(
        &manager,
        JobSpec::new("/bin/bash", ["-c", &script]).env("PATH", "/usr/sbin:/usr/bin:/bin"),
    )
    .await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "lo: <LOOPBACK,UP,LOWER_UP>", "{text}");
    assert_eq!(lines[1..], ["host-unreachable", "loopback-works"], "{text}");
    assert_eq!(
        host.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the host listener must not have been reached"
    );
}

#[tokio::test]
async fn every_namespace_differs_from_the_hosts() {
    let (manager, _f) = manager();
    let kinds = ["pid", "mnt", "net", "uts", "ipc", "cgroup"];
    let script = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}"))
        .collect::<Vec<_>>()
        .join("; ");
    let (_, text) = run(&manager, sh(&script)).await;
    for (kind, inside) in kinds.iter().zip(text.lines()) {
        let host = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        assert_ne!(inside, host.to_str().unwrap(), "{kind} namespace is shared");
        assert!(inside.starts_with(kind), "{inside}");
    }
    // The job's cgroup namespace hides where its cgroup is on the host.
    let (_, text) = run(&manager, sh("cat /proc/self/cgroup")).await;
    assert!(text.lines().all(|l| l.ends_with(":/")), "{text}");
}

#[tokio::test]
async fn hostname_is_the_jobs_own() {
    let (manager, _f) = manager();
    let id = manager.start(sh("hostname")).await.unwrap();
    let text = output_text(&manager, id).await;
    assert_eq!(text.trim(), format!("job-{}", &id.to_string()[..8]));
    let (_, text) = run(&manager, sh("hostname").hostname_as("web-01")).await;
    assert_eq!(text.trim(), "web-01");
    let host = nix::unistd::gethostname().unwrap();
    assert_ne!(host.to_str().unwrap(), "web-01");
}

#[tokio::test]
async fn root_filesystem_is_copy_on_write_and_hides_the_state_dir() {
    let (manager, fixture) = manager();
    let marker = unique_marker("cow");
    let host_hostname = std::fs::read("/etc/hostname").unwrap();
    let host_tmp = std::env::temp_dir().join(&marker);
    std::fs::write(&host_tmp, "host secret").unwrap();
    let state = fixture.path().canonicalize().unwrap();
    assert!(
        !state.starts_with("/tmp"),
        "the state dir must be on the root filesystem"
    );
    let script = format!(
        "echo changed > /etc/hostname && cat /etc/hostname; \
         echo new > /etc/{marker} && cat /etc/{marker}; \
         rm /usr/bin/tac && echo removed-tac; \
         test -e /tmp/{marker} && echo host-tmp-visible || echo host-tmp-hidden; \
         test -e {state} && echo state-visible || echo state-absent; \
         mkdir -p {state} && touch {state}/x && echo inside-only",
        state = state.display()
    );
    let (state_, text) = run(&manager, sh(&script)).await;
    assert_eq!(state_, JobState::Exited { code: 0 }, "{text}");
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "changed",
            "new",
            "removed-tac",
            "host-tmp-hidden",
            "state-absent",
            "inside-only"
        ]
    );
    // Nothing reached the host.
    assert_eq!(std::fs::read("/etc/hostname").unwrap(), host_hostname);
    assert!(!std::path::Path::new(&format!("/etc/{marker}")).exists());
    assert!(std::path::Path::new("/usr/bin/tac").exists());
    assert!(
        !state.join("x").exists(),
        "a write inside reached the state dir"
    );
    std::fs::remove_file(host_tmp).unwrap();
}

#[tokio::test]
async fn bind_and_tmpfs_mounts_from_the_spec() {
    let (manager, _f) = manager();
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("task.txt"), "task file\n").unwrap();
    let spec = sh(
        "cat /task/task.txt; { echo hi > /task/out; } 2>/dev/null || echo read-only; \
                   echo written > /rw/out; \
                   { head -c 2000000 /dev/zero > /data/fill; } 2>/dev/null || echo data-full",
    )
    .bind(shared.path(), "/task", true)
    .bind(shared.path(), "/rw", false)
    .tmpfs("/data", 1024 * 1024);
    let (state, text) = run(&manager, spec).await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["task file", "read-only", "data-full"]
    );
    assert_eq!(
        std::fs::read_to_string(shared.path().join("out")).unwrap(),
        "written\n"
    );
}

#[tokio::test]
async fn a_finished_job_leaves_no_cgroup_mount_or_overlay_behind() {
    let (manager, fixture) = manager();
    let id = manager
        .start(sh("echo ready; exec sleep 1000"))
        .await
        .unwrap();
    read_until(&mut manager.output(id).unwrap(), "ready").await;
    assert!(fixture.cgroup_exists(id), "the running job has a cgroup");
    let status = within(30, "stop", manager.stop(id, Duration::from_millis(200)))
        .await
        .unwrap();
    assert!(
        matches!(status.state, JobState::Stopped { .. }),
        "{status:?}"
    );
    assert_nothing_left(&fixture, id);
    // The output stays readable.
    assert_eq!(output_text(&manager, id).await, "ready\n");
}

/// No cgroup, no mount mentioning the job, only the output log in its directory.
pub fn assert_nothing_left(fixture: &Fixture, id: JobId) {
    assert!(!fixture.cgroup_exists(id), "cgroup of {id} left behind");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&id.to_string()),
        "mount of {id} left behind"
    );
    let dir = fixture.path().join("jobs").join(id.to_string());
    let mut left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["output.log", "spec.json", "status.json"],
        "job directory should hold only the log and the job's records"
    );
}

trait HostnameExt {
    fn hostname_as(self, name: &str) -> Self;
}

impl HostnameExt for tandem_worker::JobSpec {
    fn hostname_as(mut self, name: &str) -> Self {
        self.hostname = Some(name.into());
        self
    }
}

use tandem_worker::JobSpec;
