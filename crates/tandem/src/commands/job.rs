//! `tandem job …`: start, status, list, stop, logs and attach. The clap model and the
//! runner are here; how a job is shown is in `job/view.rs`, the interactive terminal of
//! `attach` in `job/attach.rs`.

mod attach;
pub mod view;

use std::collections::HashMap;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use tandem_proto::v1::job_service_client::JobServiceClient;
use tandem_proto::v1::{
    JobStatusRequest, Limits, ListJobsRequest, LogsRequest, StartJobRequest, StopJobRequest,
};
use tokio_stream::StreamExt;

use self::attach::AttachEnd;
use self::view::JobView;
use super::parse_duration;
use crate::Global;
use crate::connect::{connect, status_error};
use crate::render::{self, Format, print};
use crate::terminal;

/// `tandem job …`.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Start a job; prints only its id
    #[command(after_help = "Examples:\n  \
        tandem job start -- sh -c 'echo hello'\n  \
        tandem job start --cpu 0.5 --memory 512M --pids 100 --io-write 10M/s -- make -j4\n  \
        id=$(tandem job start --tty --env TERM=xterm -- bash) && tandem job attach \"$id\"")]
    Start(Box<StartArgs>),
    /// Show one job's status
    Status {
        /// The job's id
        id: String,
    },
    /// List the jobs you may see (all jobs for admins), oldest first
    List,
    /// Stop a job (SIGTERM, then SIGKILL after the grace period) and print its final state
    Stop {
        /// The job's id
        id: String,
        /// Time between SIGTERM and SIGKILL (e.g. 500ms, 10s, 1m)
        #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
        grace: Duration,
    },
    /// Print a job's output (stdout and stderr merged, or the terminal's bytes) as is
    #[command(
        long_about = "Print a job's output (stdout and stderr merged, or the terminal's bytes).\n\n\
            The bytes are written to stdout exactly as received, without decoration, whatever \
            --output says. The exit status is 0 whatever state the job ended in."
    )]
    Logs {
        /// The job's id
        id: String,
        /// Keep printing new output until the job ends
        #[arg(short, long)]
        follow: bool,
        /// Start at this byte of the output
        #[arg(long, default_value_t = 0, value_name = "BYTES")]
        offset: u64,
    },
    /// Use a terminal job's terminal interactively; Ctrl-] detaches
    #[command(
        long_about = "Use a terminal job's terminal interactively (jobs started with --tty).\n\n\
            The job's output so far is replayed, so the screen is redrawn. Keys go to the job \
            (Ctrl-C included); Ctrl-] detaches and leaves the job running. When the job ends, \
            its final state is printed on stderr."
    )]
    Attach {
        /// The job's id
        id: String,
    },
}

/// `tandem job start` options.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// CPU limit in cores (0.5 = half a core)
    #[arg(long, value_parser = parse_cpu, value_name = "CORES", help_heading = "Limits")]
    cpu: Option<f64>,
    /// Memory limit (e.g. 512M, 1.5G, 1000MB); swap is capped too
    #[arg(long, value_parser = tandem_task::units::parse_size, allow_hyphen_values = true, value_name = "SIZE", help_heading = "Limits")]
    memory: Option<u64>,
    /// Limit on processes and threads
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pids: Option<u64>,
    /// Disk read bandwidth limit (e.g. 10M/s)
    #[arg(long, value_parser = tandem_task::units::parse_rate, allow_hyphen_values = true, value_name = "SIZE/s", help_heading = "Limits")]
    io_read: Option<u64>,
    /// Disk write bandwidth limit (e.g. 10M/s)
    #[arg(long, value_parser = tandem_task::units::parse_rate, allow_hyphen_values = true, value_name = "SIZE/s", help_heading = "Limits")]
    io_write: Option<u64>,
    /// Disk read operations per second limit
    #[arg(long, value_name = "N", help_heading = "Limits")]
    io_read_iops: Option<u64>,
    /// Disk write operations per second limit
    #[arg(long, value_name = "N", help_heading = "Limits")]
    io_write_iops: Option<u64>,
    /// Size of the job's writable layer (e.g. 512M); held in memory, so it counts towards --memory too [default: 1G]
    #[arg(long, value_parser = tandem_task::units::parse_size, allow_hyphen_values = true, value_name = "SIZE", help_heading = "Limits")]
    disk: Option<u64>,
    /// Add a capability to the sandbox's default set (repeatable): NET_ADMIN, NET_RAW, SYS_PTRACE, SYS_NICE, SYS_RESOURCE, IPC_LOCK, DAC_READ_SEARCH, LEASE
    #[arg(long = "cap", value_name = "NAME", help_heading = "Limits")]
    capabilities: Vec<String>,
    /// Run on a terminal the size of this one (24x80 without one); sets TERM=xterm-256color unless --env TERM=… is given
    #[arg(long)]
    tty: bool,
    /// Then print the job's output until it ends, as `logs -f` does, on the same connection (the id goes to stderr)
    #[arg(short, long)]
    follow: bool,
    /// Environment variable of the job (repeatable); the job inherits nothing else
    #[arg(long = "env", short = 'e', value_parser = parse_key_value, value_name = "KEY=VALUE")]
    env: Vec<(String, String)>,
    /// Label of the job (repeatable)
    #[arg(long = "label", short = 'l', value_parser = parse_key_value, value_name = "KEY=VALUE")]
    labels: Vec<(String, String)>,
    /// Absolute working directory inside the job [default: /]
    #[arg(long, value_name = "DIR")]
    workdir: Option<String>,
    /// Host name inside the job [default: job-<first 8 characters of the id>]
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// The program (looked up in PATH) and its arguments; put them after `--`
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Parses a CPU limit: a positive number of cores.
fn parse_cpu(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(cores) if cores.is_finite() && cores > 0.0 => Ok(cores),
        _ => Err("expected a positive number of cores, e.g. 0.5 or 2".to_string()),
    }
}

/// Parses `KEY=VALUE` (the value may be empty or contain `=`; the key may not be empty).
fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        Some(_) => Err("the key before '=' is empty (expected KEY=VALUE)".to_string()),
        None => Err("no '=' in it (expected KEY=VALUE)".to_string()),
    }
}

/// `tandem job …`.
pub async fn run(global: &Global, command: JobCommand) -> anyhow::Result<ExitCode> {
    let mut client = JobServiceClient::new(connect(global).await?);
    let status_err = |s: tonic::Status| status_error(global, &s);
    match command {
        JobCommand::Start(args) => {
            let follow = args.follow;
            let request = start_request(*args, terminal::terminal_size);
            let id = client
                .start(request)
                .await
                .map_err(status_err)?
                .into_inner()
                .job_id;
            if follow {
                eprintln!("{id}");
                print_logs(&mut client, global, id, 0, true).await?;
            } else {
                match global.output {
                    Format::Text => print(&format!("{id}\n"))?,
                    Format::Json => print(&render::json(&serde_json::json!({ "id": id }))?)?,
                }
            }
        }
        JobCommand::Status { id } => {
            let job = client
                .status(JobStatusRequest { job_id: id })
                .await
                .map_err(status_err)?
                .into_inner()
                .job;
            let job = job.context("the server's answer holds no job")?;
            match global.output {
                Format::Text => print(&view::status_text(&job))?,
                Format::Json => print(&render::json(&JobView::from(&job))?)?,
            }
        }
        JobCommand::List => {
            let jobs = client
                .list(ListJobsRequest {})
                .await
                .map_err(status_err)?
                .into_inner()
                .jobs;
            match global.output {
                Format::Text => print(&view::list_text(&jobs))?,
                Format::Json => {
                    let views: Vec<JobView> = jobs.iter().map(JobView::from).collect();
                    print(&render::json(&views)?)?
                }
            }
        }
        JobCommand::Stop { id, grace } => {
            let grace = prost_types::Duration::try_from(grace)
                .map_err(|_| anyhow!("--grace {grace:?} is too long"))?;
            let job = client
                .stop(StopJobRequest {
                    job_id: id,
                    grace: Some(grace),
                })
                .await
                .map_err(status_err)?
                .into_inner()
                .job;
            let job = job.context("the server's answer holds no job")?;
            match global.output {
                Format::Text => print(&format!("{}\n", view::summary(&job)))?,
                Format::Json => print(&render::json(&JobView::from(&job))?)?,
            }
        }
        JobCommand::Logs { id, follow, offset } => {
            print_logs(&mut client, global, id, offset, follow).await?;
        }
        JobCommand::Attach { id } => {
            match attach::attach(&mut client, &global.server, &id).await? {
                AttachEnd::Ended(job) => {
                    eprintln!("tandem: job {id} ended: {}", view::summary(&job));
                }
                AttachEnd::Detached => eprintln!(
                    "tandem: detached from job {id}; it keeps running (`tandem job attach {id}` to return)"
                ),
                AttachEnd::Interrupted => {
                    eprintln!("tandem: detached from job {id}; it keeps running")
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes job `id`'s output from `offset` to stdout as received (until it ends, if
/// `follow`).
async fn print_logs(
    client: &mut JobServiceClient<tonic::transport::Channel>,
    global: &Global,
    id: String,
    offset: u64,
    follow: bool,
) -> anyhow::Result<()> {
    let status_err = |s: tonic::Status| status_error(global, &s);
    let mut stream = client
        .logs(LogsRequest {
            job_id: id,
            offset,
            follow,
        })
        .await
        .map_err(status_err)?
        .into_inner();
    let mut stdout = io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(status_err)?;
        stdout.write_all(&chunk.data)?;
        stdout.flush()?;
    }
    Ok(())
}

/// The request for `tandem job start`; `terminal_size` asks the local terminal's size
/// (only called with `--tty`).
fn start_request(
    args: StartArgs,
    terminal_size: impl FnOnce() -> Option<tandem_proto::v1::TerminalSize>,
) -> StartJobRequest {
    let limits = Limits {
        cpu_cores: args.cpu,
        memory_bytes: args.memory,
        pids: args.pids,
        io_read_bytes_per_second: args.io_read,
        io_write_bytes_per_second: args.io_write,
        io_read_ops_per_second: args.io_read_iops,
        io_write_ops_per_second: args.io_write_iops,
        disk_bytes: args.disk,
    };
    let mut env: HashMap<String, String> = args.env.into_iter().collect();
    let terminal = args.tty.then(|| {
        env.entry("TERM".to_string())
            .or_insert_with(|| "xterm-256color".to_string());
        terminal_size().unwrap_or(terminal::DEFAULT_SIZE)
    });
    let mut command = args.command.into_iter();
    StartJobRequest {
        // clap requires at least one CMD value, so there is always a first one.
        command: command.next().unwrap_or_default(),
        args: command.collect(),
        env,
        working_dir: args.workdir.unwrap_or_default(),
        limits: (limits != Limits::default()).then_some(limits),
        terminal,
        labels: args.labels.into_iter().collect(),
        hostname: args.hostname.unwrap_or_default(),
        capabilities: args.capabilities,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::tests::parse;

    fn start_args(args: &[&str]) -> StartArgs {
        match parse(args).map(|cli| cli.command) {
            Ok(Command::Job(JobCommand::Start(start))) => *start,
            other => panic!("not a job start: {other:?}"),
        }
    }

    #[test]
    fn start_builds_the_request() {
        let args = start_args(&[
            "job",
            "start",
            "--memory",
            "512M",
            "--cpu",
            "0.5",
            "--io-write",
            "10M/s",
            "--env",
            "A=1=2",
            "-e",
            "B=",
            "--label",
            "task=x",
            "--workdir",
            "/tmp",
            "--",
            "sh",
            "-c",
            "echo hi",
        ]);
        let request = start_request(args, || panic!("no terminal wanted"));
        assert_eq!(request.command, "sh");
        assert_eq!(request.args, ["-c", "echo hi"]);
        assert_eq!(request.env["A"], "1=2");
        assert_eq!(request.env["B"], "");
        assert_eq!(request.labels["task"], "x");
        assert_eq!(request.working_dir, "/tmp");
        assert_eq!(request.terminal, None);
        let limits = request.limits.unwrap();
        assert_eq!(limits.memory_bytes, Some(512 << 20));
        assert_eq!(limits.cpu_cores, Some(0.5));
        assert_eq!(limits.io_write_bytes_per_second, Some(10 << 20));
        assert_eq!(limits.pids, None);
    }

    #[test]
    fn start_without_limits_or_dashes() {
        let args = start_args(&["job", "start", "ls", "-la", "/"]);
        let request = start_request(args, || None);
        assert_eq!(request.command, "ls");
        assert_eq!(request.args, ["-la", "/"]);
        assert_eq!(request.limits, None);
        assert!(request.env.is_empty());
    }

    #[test]
    fn tty_size_and_term() {
        let request = start_request(start_args(&["job", "start", "--tty", "bash"]), || None);
        assert_eq!(request.terminal, Some(terminal::DEFAULT_SIZE));
        assert_eq!(request.env["TERM"], "xterm-256color");
        let request = start_request(
            start_args(&["job", "start", "--tty", "--env", "TERM=vt100", "bash"]),
            || {
                Some(tandem_proto::v1::TerminalSize {
                    rows: 50,
                    cols: 132,
                })
            },
        );
        assert_eq!(
            request.terminal,
            Some(tandem_proto::v1::TerminalSize {
                rows: 50,
                cols: 132
            })
        );
        assert_eq!(request.env["TERM"], "vt100");
    }

    #[test]
    fn stop_grace() {
        match parse(&["job", "stop", "abc", "--grace", "1m30s"])
            .unwrap()
            .command
        {
            Command::Job(JobCommand::Stop { id, grace }) => {
                assert_eq!(id, "abc");
                assert_eq!(grace, Duration::from_secs(90));
            }
            other => panic!("{other:?}"),
        }
    }
}
