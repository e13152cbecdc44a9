//! Worker benchmarks, run by `bench/worker.sh` (release build, as root); results go in
//! `docs/BENCHMARKS.md`.
//!
//! 1. Start latency, interleaved round by round in one process: an isolated `/bin/true`
//!    started from a warm slot and cold (no slot), beside `bwrap --unshare-all`, `crun run`
//!    (when `CRUN_BUNDLE` names a bundle) and a plain fork+exec.
//! 2. 100 concurrent starts, output throughput, memory per parked follower.
//! 3. Many idle isolated jobs (`BENCH_IDLE`, default 1000): time to start and to stop them
//!    all, this process's RSS and the host's memory per job, and that nothing is left.
//!
//! 4. Only with `BENCH_ONLY=v2` (on the cgroup2 mount: a pure v2 host, or a hybrid host's
//!    unified hierarchy): cold starts on cgroup v2, the monitor cloned into its cgroup
//!    (`clone3(CLONE_INTO_CGROUP)`) against joining it between fork and exec (a migration),
//!    interleaved with bwrap.
//!
//! `BENCH_ROUNDS` (default 100) sets the rounds of 1 and 4; `BENCH_ONLY=start|misc|idle|v2`
//! runs one part.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tandem_worker::{CgroupVersion, InitProgram, JobManager, JobManagerConfig, JobSpec, JobState};

fn main() {
    if std::env::args().nth(1).as_deref() == Some(tandem_worker::INIT_ARG) {
        tandem_worker::init::main();
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

type Error = Box<dyn std::error::Error>;

fn spec(cmd: &str, args: &[&str]) -> JobSpec {
    JobSpec::new(cmd, args.iter().copied()).env("PATH", "/usr/bin:/bin")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Durations of one measure, for its median and p99.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }
    fn p50(&self) -> Duration {
        self.percentile(0.5)
    }
    fn summary(&self) -> String {
        format!("p50 {} · p99 {}", ms(self.p50()), ms(self.percentile(0.99)))
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(a: &Samples, b: &Samples) -> String {
    format!(
        "{:.2}×",
        a.p50().as_secs_f64() / b.p50().as_secs_f64().max(1e-9)
    )
}

fn rss_kib() -> u64 {
    proc_kib("/proc/self/status", "VmRSS:")
}

fn mem_available_kib() -> u64 {
    proc_kib("/proc/meminfo", "MemAvailable:")
}

fn proc_kib(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A manager on a fresh state dir under /var/tmp (where a daemon's state would be: on
/// this host /tmp's ext4 block group is full of recently deleted inodes from builds, and
/// every file created there costs ~0.8 ms in `recently_deleted`).
fn manager(name: &str, warm_slots: usize) -> Result<(JobManager, tempfile::TempDir), Error> {
    manager_with(name, |c| c.warm_slots = warm_slots)
}

fn manager_with(
    name: &str,
    adjust: impl FnOnce(&mut JobManagerConfig),
) -> Result<(JobManager, tempfile::TempDir), Error> {
    let state = tempfile::Builder::new()
        .prefix("tandem-bench-")
        .tempdir_in("/var/tmp")?;
    let mut config = JobManagerConfig::new(state.path(), InitProgram::reexec_self());
    config.output_cap = 1 << 30;
    config.cgroup_parent = format!("tandem-bench-{name}-{}", std::process::id());
    adjust(&mut config);
    Ok((JobManager::new(config)?, state))
}

fn bwrap_true() -> Result<Duration, Error> {
    run_to_exit(Command::new("bwrap").args([
        "--unshare-all",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "/bin/true",
    ]))
}

/// Runs `cmd` to completion; its wall time.
fn run_to_exit(cmd: &mut Command) -> Result<Duration, Error> {
    let t = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()?;
    let elapsed = t.elapsed();
    if !status.success() {
        return Err(format!("{cmd:?} failed: {status}").into());
    }
    Ok(elapsed)
}

/// A tandem start of `/bin/true`: (start() returned = command exec'd, exit observed).
async fn tandem_true(manager: &JobManager) -> Result<(Duration, Duration), Error> {
    let t = Instant::now();
    let id = manager.start(spec("/bin/true", &[])).await?;
    let running = t.elapsed();
    let status = manager.wait(id).await?;
    let exited = t.elapsed();
    if status.state != (JobState::Exited { code: 0 }) {
        return Err(format!("/bin/true ended {:?}", status.state).into());
    }
    Ok((running, exited))
}

async fn run() -> Result<(), Error> {
    let only = std::env::var("BENCH_ONLY").ok();
    let wants = |part: &str| only.as_deref().is_none_or(|o| o == part);
    println!("| measure | result |");
    println!("|---|---|");
    if wants("start") {
        start_latency().await?;
    }
    if wants("misc") {
        misc().await?;
    }
    if wants("idle") {
        idle_jobs().await?;
    }
    if only.as_deref() == Some("v2") {
        v2_start().await?;
    }
    Ok(())
}

/// Part 4: cold starts on cgroup v2, cloned into the cgroup vs joined by a migration.
async fn v2_start() -> Result<(), Error> {
    let rounds = env_usize("BENCH_ROUNDS", 100);
    let v2 = |clone: bool| {
        move |c: &mut JobManagerConfig| {
            c.cgroup_version = CgroupVersion::V2;
            c.warm_slots = 0;
            c.clone_into_cgroup = clone;
        }
    };
    let (cloned, _cloned_state) = manager_with("v2clone", v2(true))?;
    let (joined, _joined_state) = manager_with("v2join", v2(false))?;
    let (mut clone_run, mut clone_exit) = (Samples::default(), Samples::default());
    let (mut join_run, mut join_exit) = (Samples::default(), Samples::default());
    let mut bwrap = Samples::default();
    for _ in 0..rounds {
        let (r, e) = tandem_true(&cloned).await?;
        clone_run.push(r);
        clone_exit.push(e);
        bwrap.push(bwrap_true()?);
        let (r, e) = tandem_true(&joined).await?;
        join_run.push(r);
        join_exit.push(e);
    }
    println!(
        "| cgroup v2, cold, **cloned into its cgroup** (`clone3`): `start()` returned, ×{rounds} | {} · **{} of bwrap** |",
        clone_run.summary(),
        ratio(&clone_run, &bwrap)
    );
    println!(
        "| cgroup v2, cold, cloned: `start()` → exit observed | {} · {} of bwrap |",
        clone_exit.summary(),
        ratio(&clone_exit, &bwrap)
    );
    println!(
        "| cgroup v2, cold, **joined before exec** (a migration): `start()` returned | {} · {} of bwrap |",
        join_run.summary(),
        ratio(&join_run, &bwrap)
    );
    println!(
        "| cgroup v2, cold, joined: `start()` → exit observed | {} · {} of bwrap |",
        join_exit.summary(),
        ratio(&join_exit, &bwrap)
    );
    println!(
        "| `bwrap --unshare-all …` (same rounds), to exit | {} |",
        bwrap.summary()
    );
    for m in [cloned, joined] {
        m.shutdown(Duration::from_secs(1)).await;
        m.remove_cgroups_blocking(Duration::from_secs(5));
    }
    Ok(())
}

/// Part 1: every round runs each contender once, in the same order.
async fn start_latency() -> Result<(), Error> {
    let rounds = env_usize("BENCH_ROUNDS", 100);
    let (warm, _warm_state) = manager("warm", 2)?;
    let (cold, _cold_state) = manager("cold", 0)?;
    let crun = std::env::var_os("CRUN_BUNDLE");
    let (mut warm_run, mut warm_exit) = (Samples::default(), Samples::default());
    let (mut cold_run, mut cold_exit) = (Samples::default(), Samples::default());
    let (mut bwrap, mut crun_run, mut fork_exec) =
        (Samples::default(), Samples::default(), Samples::default());
    let mut slot_ready = 0;
    for round in 0..rounds {
        // A start takes a slot when one is ready, as it is when starts are not back to
        // back; the refill after a start runs here, untimed.
        if warm.warm_slots_ready().await > 0 {
            slot_ready += 1;
        }
        let (r, e) = tandem_true(&warm).await?;
        warm_run.push(r);
        warm_exit.push(e);
        bwrap.push(bwrap_true()?);
        let (r, e) = tandem_true(&cold).await?;
        cold_run.push(r);
        cold_exit.push(e);
        if let Some(bundle) = &crun {
            crun_run.push(run_to_exit(
                Command::new("crun")
                    .arg("run")
                    .arg("--bundle")
                    .arg(bundle)
                    .arg(format!("tandem-bench-{}-{round}", std::process::id())),
            )?);
        }
        fork_exec.push(run_to_exit(&mut Command::new("/bin/true"))?);
    }
    println!(
        "| isolated `/bin/true`, warm slot: `start()` returned (command exec'd), ×{rounds} ({slot_ready} took a slot) | {} · **{} of bwrap** |",
        warm_run.summary(),
        ratio(&warm_run, &bwrap)
    );
    println!(
        "| isolated `/bin/true`, warm slot: `start()` → exit observed | {} · {} of bwrap |",
        warm_exit.summary(),
        ratio(&warm_exit, &bwrap)
    );
    println!(
        "| isolated `/bin/true`, cold (no slot): `start()` returned | {} · {} of bwrap |",
        cold_run.summary(),
        ratio(&cold_run, &bwrap)
    );
    println!(
        "| isolated `/bin/true`, cold: `start()` → exit observed | {} · {} of bwrap |",
        cold_exit.summary(),
        ratio(&cold_exit, &bwrap)
    );
    println!(
        "| `bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc /bin/true`, to exit | {} |",
        bwrap.summary()
    );
    if crun.is_some() {
        println!(
            "| `crun run` (minimal bundle, read-only bind of `/`), to exit | {} · warm start {} of crun |",
            crun_run.summary(),
            ratio(&warm_run, &crun_run)
        );
    }
    println!(
        "| plain fork+exec of `/bin/true`, to exit | {} · warm start {} of it |",
        fork_exec.summary(),
        ratio(&warm_run, &fork_exec)
    );
    for m in [warm, cold] {
        m.shutdown(Duration::from_secs(1)).await;
        m.remove_cgroups_blocking(Duration::from_secs(5));
    }
    Ok(())
}

/// Part 2: concurrency, throughput, followers.
async fn misc() -> Result<(), Error> {
    let (manager, _state) = manager("misc", 2)?;
    let n = 100;
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let m = manager.clone();
        set.spawn(async move {
            let id = m.start(spec("/bin/true", &[])).await?;
            m.wait(id).await
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    println!(
        "| {n} jobs started concurrently, all exited | {} total |",
        ms(t.elapsed())
    );

    // Output throughput: 256 MiB through the pipe, log and one reader.
    let size = 256u64 << 20;
    let t = Instant::now();
    let id = manager
        .start(spec(
            "/usr/bin/head",
            &["-c", &size.to_string(), "/dev/zero"],
        ))
        .await?;
    let mut reader = manager.output(id)?;
    let mut got = 0u64;
    while let Some(chunk) = reader.next_chunk().await? {
        got += chunk.len() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "| output throughput, 256 MiB, cap raised, 1 follower | {:.0} MiB/s |",
        (got >> 20) as f64 / secs
    );

    // Memory per reader: 1000 followers parked on a live job.
    let id = manager
        .start(spec("/bin/sh", &["-c", "echo x; exec sleep 1000"]))
        .await?;
    let mut probe = manager.output(id)?;
    probe.next_chunk().await?;
    let before = rss_kib();
    let readers = 1000;
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let mut r = manager.output(id)?;
        tasks.push(tokio::spawn(async move {
            let _ = r.next_chunk().await;
            r.next_chunk().await.map(|c| c.map(|b| b.len()))
        }));
    }
    // Let every follower read its first chunk and park.
    for _ in 0..50 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let after = rss_kib();
    println!(
        "| memory per parked follower (RSS delta / {readers}) | {:.1} KiB |",
        (after.saturating_sub(before)) as f64 / readers as f64
    );
    manager.stop(id, Duration::from_secs(1)).await?;
    for t in tasks {
        let _ = t.await;
    }
    manager.shutdown(Duration::from_secs(1)).await;
    manager.remove_cgroups_blocking(Duration::from_secs(5));
    Ok(())
}

/// Part 3: many idle isolated jobs at once.
async fn idle_jobs() -> Result<(), Error> {
    let count = env_usize("BENCH_IDLE", 1000);
    let parallel = 4;
    let (manager, state) = manager("idle", 2)?;
    let state_path = state.path().canonicalize()?;
    let parents = manager.cgroup_parent_paths();
    manager.warm_slots_ready().await;
    let (rss_before, avail_before) = (rss_kib(), mem_available_kib());

    let t = Instant::now();
    let mut ids = Vec::with_capacity(count);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..count {
        if set.len() >= parallel
            && let Some(r) = set.join_next().await
        {
            ids.push(r??);
        }
        let m = manager.clone();
        set.spawn(async move { m.start(spec("/bin/sleep", &["100000"])).await });
    }
    while let Some(r) = set.join_next().await {
        ids.push(r??);
    }
    let started = t.elapsed();
    let (rss_after, avail_after) = (rss_kib(), mem_available_kib());
    let running = manager
        .list()
        .iter()
        .filter(|j| j.status.state == JobState::Running)
        .count();

    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for id in ids {
        let m = manager.clone();
        set.spawn(async move { m.stop(id, Duration::ZERO).await });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let stopped = t.elapsed();
    manager.shutdown(Duration::from_secs(1)).await;

    // Nothing left: no process below this one, no cgroup, no mount of the state dir.
    let me = std::process::id();
    let children = std::fs::read_dir("/proc")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rfind(')')
                    .is_some_and(|i| s[i + 2..].split(' ').nth(1) == Some(me.to_string().as_str()))
            })
        })
        .count();
    let cgroups: usize = parents
        .iter()
        .map(|p| {
            std::fs::read_dir(p)
                .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
                .unwrap_or(0)
        })
        .sum();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .filter(|l| l.contains(state_path.to_str().unwrap_or("?")))
        .count();
    manager.remove_cgroups_blocking(Duration::from_secs(5));

    println!(
        "| {count} idle isolated jobs (`sleep`), {parallel} starts at a time: all running | {:.2} s ({} per job), {running} running |",
        started.as_secs_f64(),
        ms(started / count as u32)
    );
    println!(
        "| memory per idle job: this process's RSS / host MemAvailable | {:.1} KiB / {:.0} KiB |",
        rss_after.saturating_sub(rss_before) as f64 / count as f64,
        avail_before.saturating_sub(avail_after) as f64 / count as f64
    );
    println!(
        "| stop all {count} at once (SIGKILL, no grace) until every supervisor is done | {:.2} s |",
        stopped.as_secs_f64()
    );
    println!(
        "| left after stop + shutdown: processes / cgroups / mounts | {children} / {cgroups} / {mounts} |"
    );
    Ok(())
}
