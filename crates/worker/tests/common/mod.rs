//! Shared helpers for the worker's integration tests. These tests run real jobs and need
//! root (a PID namespace per job); they fail loudly without it.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;
use tandem_worker::{InitProgram, JobId, JobManager, JobManagerConfig, JobSpec, OutputReader};

/// Panics with a clear message unless the test runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: jobs run in their own PID namespace (run `sudo cargo test`)"
    );
}

/// A manager with a temporary state dir, using the `tandem-init` binary of this package.
pub fn manager() -> (JobManager, Fixture) {
    manager_with(|_| {})
}

/// Like [`manager`], with a chance to adjust the config.
pub fn manager_with(adjust: impl FnOnce(&mut JobManagerConfig)) -> (JobManager, Fixture) {
    require_root();
    // Under /var/tmp, not /tmp: /tmp is a fresh tmpfs inside jobs anyway, so only a state
    // dir on the root filesystem shows that the state dir is hidden from jobs.
    let dir = tempfile::Builder::new()
        .prefix("tandem-test-")
        .tempdir_in("/var/tmp")
        .expect("temp state dir");
    let mut config = JobManagerConfig::new(
        dir.path(),
        InitProgram::binary(env!("CARGO_BIN_EXE_tandem-init")),
    );
    // Each test's manager has its own parent cgroup: managers clean up leftovers in theirs
    // at creation, which must not hit another test's running jobs.
    config.cgroup_parent = format!("tandem-test-{}", JobId::new_random());
    adjust(&mut config);
    let manager = JobManager::new(config).expect("job manager");
    let fixture = Fixture {
        state: dir,
        cgroup_parents: manager.cgroup_parent_paths(),
        manager: manager.clone(),
    };
    (manager, fixture)
}

/// Test resources: the state dir and the manager's cgroups (removed on drop).
pub struct Fixture {
    /// The manager's state directory (hidden inside jobs).
    pub state: tempfile::TempDir,
    /// `<own cgroup>/<test parent>` per hierarchy.
    pub cgroup_parents: Vec<std::path::PathBuf>,
    /// The manager, to kill what a test leaves running.
    manager: JobManager,
}

impl Fixture {
    /// The state directory.
    pub fn path(&self) -> &std::path::Path {
        self.state.path()
    }

    /// True if any cgroup directory of job `id` exists.
    pub fn cgroup_exists(&self, id: JobId) -> bool {
        self.cgroup_parents
            .iter()
            .any(|p| p.join(id.to_string()).exists())
    }
}

impl Drop for Fixture {
    /// A test that ends with jobs still running drops its runtime with them (as a crashed
    /// daemon would): kill them now and remove the cgroups their supervisors cannot.
    fn drop(&mut self) {
        self.manager.abort_all();
        self.manager.remove_cgroups_blocking(Duration::from_secs(5));
    }
}

/// A `sh -c SCRIPT` spec with a standard PATH.
pub fn sh(script: &str) -> JobSpec {
    JobSpec::new("/bin/sh", ["-c", script]).env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
}

/// Fails the test instead of hanging it when `fut` takes longer than `secs`.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: did not finish within {secs} s"),
    }
}

/// Reads output until `needle` has appeared; returns everything read so far.
pub async fn read_until(reader: &mut OutputReader, needle: &str) -> String {
    let mut seen = Vec::new();
    within(30, &format!("waiting for {needle:?} in output"), async {
        loop {
            if String::from_utf8_lossy(&seen).contains(needle) {
                return;
            }
            match reader.next_chunk().await.expect("read output") {
                Some(chunk) => seen.extend_from_slice(&chunk),
                None => panic!(
                    "output ended before {needle:?} appeared: {:?}",
                    String::from_utf8_lossy(&seen)
                ),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&seen).into_owned()
}

/// All of a job's output, as text.
pub async fn output_text(manager: &JobManager, id: JobId) -> String {
    let mut reader = manager.output(id).expect("output reader");
    let bytes = within(60, "reading output to the end", reader.read_to_end())
        .await
        .expect("read output");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Host pids of processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .collect()
}

/// Asserts that `pid`, once a child of this process, is gone (reaped, not a zombie).
pub fn assert_reaped(pid: u32) {
    if let Some((_, state)) = children_of_this_process()
        .into_iter()
        .find(|(p, _)| *p == pid)
    {
        panic!("job monitor {pid} is still a child of the test (state {state})");
    }
}

/// Pids of this process's children (zombies included).
pub fn children_of_this_process() -> Vec<(u32, char)> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name, which is in parentheses and may contain spaces.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split(' ');
            let state = fields.next()?.chars().next()?;
            let ppid: u32 = fields.next()?.parse().ok()?;
            (ppid == me).then_some((pid, state))
        })
        .collect()
}

/// True if `pid` is a warm slot's `tandem-init`, still waiting for a job: in a cgroup
/// named `warm-…` (a taken slot's cgroup is renamed to its job's id).
pub fn is_waiting_warm_init(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| {
        c.lines().any(|l| {
            l.rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with("warm-"))
        })
    })
}

/// A marker unique to one test run, to find a job's processes in the host's /proc.
pub fn unique_marker(name: &str) -> String {
    format!("tandem-test-{name}-{}", JobId::new_random())
}
