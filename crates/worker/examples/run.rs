//! Runs one command as a tandem job, streams its output, and stops it cleanly on Ctrl-C.
//!
//! ```text
//! sudo cargo run -p tandem-worker --example run -- [--state-dir DIR] [--grace SECS] [--pty] -- CMD [ARG...]
//! ```
//!
//! The example re-executes itself as `tandem-init` (see `InitProgram::reexec_self`), so it
//! needs no other binary. Ctrl-C reaches only this program (jobs run in their own session);
//! it asks the worker to stop the job: SIGTERM, then SIGKILL after the grace period.

use std::io::Write;
use std::time::Duration;
use tandem_worker::{InitProgram, JobManager, JobManagerConfig, JobSpec, JobState, PtySize};

fn main() {
    // Before any thread exists: tandem-init forks, which is only sound single-threaded.
    if std::env::args().nth(1).as_deref() == Some(tandem_worker::INIT_ARG) {
        tandem_worker::init::main();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("run: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(run()) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("run: {e}");
            std::process::exit(1);
        }
    }
}

async fn run() -> Result<i32, Box<dyn std::error::Error>> {
    let mut state_dir = std::env::temp_dir().join("tandem-run-example");
    let mut grace = Duration::from_secs(10);
    let mut pty = false;
    let mut args = std::env::args().skip(1);
    let mut command = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--state-dir" => state_dir = args.next().ok_or("--state-dir needs a value")?.into(),
            "--grace" => {
                let secs: f64 = args.next().ok_or("--grace needs seconds")?.parse()?;
                grace = Duration::try_from_secs_f64(secs)?;
            }
            "--pty" => pty = true,
            "--" => {
                command.extend(args.by_ref());
            }
            other if other.starts_with("--") => return Err(format!("unknown flag {other}").into()),
            _ => {
                command.push(arg);
                command.extend(args.by_ref());
            }
        }
    }
    let (program, rest) = command
        .split_first()
        .ok_or("usage: run [--state-dir DIR] [--grace SECS] [--pty] -- CMD [ARG...]")?;

    let manager = JobManager::new(JobManagerConfig::new(
        &state_dir,
        InitProgram::reexec_self(),
    ))?;
    let mut spec = JobSpec::new(program.clone(), rest.iter().cloned()).owner("example");
    for key in ["PATH", "TERM", "LANG", "HOME"] {
        if let Ok(value) = std::env::var(key) {
            spec = spec.env(key, value);
        }
    }
    if pty {
        spec = spec.pty(PtySize::default());
    }
    let id = manager.start(spec).await?;
    eprintln!("run: job {id} started (Ctrl-C stops it, grace {grace:?})");

    let mut output = manager.output(id)?;
    let mut stdout = std::io::stdout();
    let mut stopping = false;
    loop {
        tokio::select! {
            chunk = output.next_chunk() => match chunk? {
                Some(bytes) => {
                    stdout.write_all(&bytes)?;
                    stdout.flush()?;
                }
                None => break,
            },
            _ = tokio::signal::ctrl_c(), if !stopping => {
                stopping = true;
                eprintln!("\nrun: stopping job {id}");
                let manager = manager.clone();
                // The stop completes on its own; the output loop keeps draining meanwhile.
                tokio::spawn(async move { manager.stop(id, grace).await });
            }
        }
    }
    let status = manager.wait(id).await?;
    eprintln!("run: job {id} ended: {:?}", status.state);
    Ok(match status.state {
        JobState::Exited { code } => code,
        JobState::Signaled { signal } => 128 + signal,
        _ => 1,
    })
}
