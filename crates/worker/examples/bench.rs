//! Worker benchmarks: job start latency, concurrent starts, output throughput, memory per
//! reader. Run with `bench/worker.sh` (release build, as root); results go in
//! `docs/BENCHMARKS.md`.

use std::time::{Duration, Instant};
use tandem_worker::{InitProgram, JobManager, JobManagerConfig, JobSpec, JobState};

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

fn spec(cmd: &str, args: &[&str]) -> JobSpec {
    JobSpec::new(cmd, args.iter().copied()).env("PATH", "/usr/bin:/bin")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let state = tempfile::tempdir()?;
    let mut config = JobManagerConfig::new(state.path(), InitProgram::reexec_self());
    config.output_cap = 1 << 30;
    let manager = JobManager::new(config)?;

    // 1. Sequential: start() until it returns (command exec'd), and start to exit observed.
    let n = 100;
    let mut to_running = Vec::new();
    let mut to_exit = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let id = manager.start(spec("/bin/true", &[])).await?;
        to_running.push(t.elapsed());
        let status = manager.wait(id).await?;
        to_exit.push(t.elapsed());
        assert_eq!(status.state, JobState::Exited { code: 0 });
    }
    to_running.sort();
    to_exit.sort();
    println!(
        "| start() of /bin/true, sequential ×{n} | p50 {} · p99 {} |",
        ms(percentile(&to_running, 0.5)),
        ms(percentile(&to_running, 0.99))
    );
    println!(
        "| start() → exit observed, /bin/true ×{n} | p50 {} · p99 {} |",
        ms(percentile(&to_exit, 0.5)),
        ms(percentile(&to_exit, 0.99))
    );

    // 2. 100 jobs started concurrently, until all have exited.
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

    // 3. Output throughput: 256 MiB through the pipe, log and one reader.
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

    // 4. Memory per reader: 1000 followers parked on a live job.
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
    Ok(())
}
