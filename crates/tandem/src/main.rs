//! `tandem`: the command-line client of tandemd.
//!
//! Runs, watches and stops jobs over tandemd's gRPC API (mutual TLS with a client
//! certificate), attaches to job terminals, lists, shows, runs and checks task scenarios,
//! validates task files locally, creates and manages interview sessions (a task instance
//! shared over SSH) and replays their recordings, and makes the certificates that the API
//! needs.
//! Every command prints text for people or, with `-o json`, one JSON document for
//! scripts. Exit status: 0 success, 1 the server refused or could not be reached (the
//! reason on stderr as `tandem: …`), 2 a usage error.
#![warn(missing_docs)]
// The one unsafe call (the terminal size ioctl) is allowed where it is, in `attach.rs`.
#![deny(unsafe_code)]

mod attach;
mod certs;
mod output;
mod replay;
mod sessions;
mod tasks;

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use tandem_client::{ClientError, ClientTls};
use tandem_proto::v1::job_service_client::JobServiceClient;
use tandem_proto::v1::server_service_client::ServerServiceClient;
use tandem_proto::v1::session_service_client::SessionServiceClient;
use tandem_proto::v1::task_service_client::TaskServiceClient;
use tandem_proto::v1::{
    CheckTaskRequest, CreateSessionRequest, EndSessionRequest, ExtendSessionRequest,
    JobStatusRequest, Limits, ListJobsRequest, ListSessionsRequest, ListTasksRequest, LogsRequest,
    RecordingRequest, RunTaskRequest, ServerInfoRequest, SessionCheckRequest, SetAccessRequest,
    SetLockRequest, ShowSessionRequest, ShowTaskRequest, StartJobRequest, StopJobRequest,
};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::attach::AttachEnd;
use crate::certs::RoleArg;
use crate::output::{Format, JobView};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    propagate_version = true,
    about = "Run and share isolated Linux jobs and interview sessions on a tandemd server",
    long_about = "Run and share isolated Linux jobs and interview sessions on a tandemd server.\n\n\
        Talks to tandemd over mutual TLS: the client certificate names the user and the role. \
        Make certificates with `tandem certs init` first.\n\n\
        An interview session is an instance of a task (a broken box to fix) shared over SSH: \
        `tandem session create` prints one `ssh` command per role (candidate, interviewer, \
        observer). The tokens in them are secrets: give each person only their own. \
        Everything on the shared terminal is recorded; `tandem session replay ID` plays it \
        back, and `tandem session recording ID > file.cast` saves it for `asciinema play \
        file.cast`.\n\n\
        Exit status: 0 success, 1 the server said no or could not be reached, 2 usage error.",
    after_help = "Examples:\n  \
        tandem certs init\n  \
        id=$(tandem job start --memory 512M -- sh -c 'echo hello; sleep 60')\n  \
        tandem job logs -f \"$id\"\n  \
        tandem job stop \"$id\"\n  \
        tandem -o json job list\n  \
        tandem task validate tasks/\n  \
        session=$(tandem -o json session create --task disk-full --duration 45m | jq -r .id)\n  \
        tandem session replay \"$session\" --speed 2 --max-idle 2s"
)]
struct Cli {
    /// Connection and output options, valid with every command.
    #[command(flatten)]
    global: Global,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
struct Global {
    /// tandemd's address
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        hide_env_values = true,
        env = "TANDEM_SERVER",
        default_value = "127.0.0.1:50051",
        value_name = "HOST:PORT"
    )]
    server: String,
    /// Directory with ca.crt and the user's NAME.crt / NAME.key
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        hide_env_values = true,
        env = "TANDEM_CERTS_DIR",
        default_value = "certs",
        value_name = "DIR"
    )]
    certs_dir: PathBuf,
    /// Whose certificate to use from the certificates directory
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        hide_env_values = true,
        env = "TANDEM_USER",
        default_value = "admin",
        value_name = "NAME"
    )]
    user: String,
    /// Client certificate [default: DIR/NAME.crt]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "FILE"
    )]
    cert: Option<PathBuf>,
    /// Client private key [default: DIR/NAME.key]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "FILE"
    )]
    key: Option<PathBuf>,
    /// CA certificate the server's certificate must be signed by [default: DIR/ca.crt]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "FILE"
    )]
    ca: Option<PathBuf>,
    /// Output format: text (for people) or json (one JSON document, for scripts)
    #[arg(
        short = 'o',
        long,
        global = true,
        help_heading = "Global options",
        hide_possible_values = true,
        value_enum,
        default_value_t = Format::Text,
        value_name = "FORMAT"
    )]
    output: Format,
}

impl Global {
    /// The certificate files to connect with: the directory's files for the user, each
    /// replaced by an explicit `--cert`, `--key` or `--ca`.
    fn tls(&self) -> ClientTls {
        let mut tls = ClientTls::from_dir(&self.certs_dir, &self.user);
        if let Some(cert) = &self.cert {
            tls.cert = cert.clone();
        }
        if let Some(key) = &self.key {
            tls.key = key.clone();
        }
        if let Some(ca) = &self.ca {
            tls.ca = ca.clone();
        }
        tls
    }
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Start, inspect, follow, attach to and stop jobs
    #[command(subcommand)]
    Job(JobCommand),
    /// List, show, run and check task scenarios; validate task files
    #[command(
        subcommand,
        long_about = "List, show, run and check task scenarios; validate task files.\n\n\
            A task is a broken box to fix. Tasks live in the server's tasks directory \
            (tandemd --tasks-dir, `<name>/task.yaml` each); `list`, `show`, `run` and `check` \
            ask the server, `validate` checks task files here, without a server.\n\n\
            `run` starts an instance of a task: a sandbox of its own, with the task's setup \
            done and the candidate's shell running in it as a terminal job. The instance's \
            id is a job id: `tandem task check ID` runs the task's check in the sandbox, \
            `tandem job attach SHELL-ID` opens the shell, and `tandem job stop ID` ends the \
            instance.",
        after_help = "Examples:\n  \
            tandem task validate tasks/\n  \
            tandem task list\n  \
            id=$(tandem task run disk-full)\n  \
            tandem -o json task check \"$id\" | jq .passed\n  \
            tandem job stop \"$id\""
    )]
    Task(TaskCommand),
    /// Create, watch, control and end interview sessions; save or replay their recordings
    #[command(
        subcommand,
        long_about = "Create, watch, control and end interview sessions; save or replay their \
            recordings.\n\n\
            A session is an instance of a task (its own sandbox, setup done) whose terminal is \
            shared over SSH by the candidate and the interviewers, for a limited time (the \
            task's time limit unless --duration says otherwise). `create` prints one `ssh` \
            command per role: candidate, interviewer (may type while the session is unlocked) \
            and observer (only watches). The tokens in these commands are secrets, valid until \
            the session ends: give each person only their own. With --candidate-key or \
            --interviewer-key, the owners of those public keys log in with the session id as \
            the user name instead.\n\n\
            `check` runs the task's check; its result goes to you, never to the candidate's \
            screen. `end` disconnects everyone and stops the sandbox; the recording stays. \
            `replay` plays the recording in this terminal; `recording` writes it (asciicast \
            v2) to stdout, to keep it or play it with `asciinema play file.cast`.",
        after_help = "Examples:\n  \
            tandem session create --task disk-full --duration 45m --candidate-key bob.pub\n  \
            id=$(tandem -o json session create --task disk-full | jq -r .id)\n  \
            tandem session show \"$id\"\n  \
            tandem session lock \"$id\"\n  \
            tandem session role \"$id\" 2 observer\n  \
            tandem session extend \"$id\" 15m\n  \
            tandem session check \"$id\"\n  \
            tandem session end \"$id\"\n  \
            tandem session recording \"$id\" > interview.cast && asciinema play interview.cast\n  \
            tandem session replay \"$id\" --speed 2 --max-idle 2s"
    )]
    Session(SessionCommand),
    /// Show facts about the server (SSH host key fingerprint, SSH address, version)
    #[command(subcommand)]
    Server(ServerCommand),
    /// Make the certificates for mutual TLS (local files, no server needed)
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Ask the server whether it is serving (exit status 0 only when it is)
    Health,
}

/// `tandem job …`.
#[derive(Debug, Subcommand)]
enum JobCommand {
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

/// `tandem task …`.
#[derive(Debug, Subcommand)]
enum TaskCommand {
    /// List the tasks the server offers
    List,
    /// Show a task with what interviewers need: limits, hints and the solution
    Show {
        /// The task's name
        name: String,
    },
    /// Start an instance of a task; prints only its id
    #[command(
        long_about = "Start an instance of a task: its own sandbox, with the task's setup \
            done and the candidate's shell running (on a terminal the size of this one, \
            80x24 without one). Waits until the setup has finished, which may take a while.\n\n\
            Prints only the instance's id on stdout (a job id: `tandem job stop ID` ends the \
            instance); how to open the shell, check and stop goes to stderr. When the setup \
            fails, its output is printed on stderr and the exit status is 1."
    )]
    Run {
        /// The task's name
        name: String,
    },
    /// Run a task's check in an instance: prints passed, failed or error, then its output
    #[command(long_about = "Run a task's check in an instance's sandbox.\n\n\
            Prints `passed`, `failed` or `error` (the check could not run or did not \
            finish) on the first line, then the check's output as is. The exit status is 0 \
            whenever the server answered, whatever the outcome: scripts should read \
            `.passed` from `-o json`. It is 1 only when the server refused or could not be \
            reached.")]
    Check {
        /// The instance's id (as printed by `tandem task run`)
        id: String,
    },
    /// Check task files here, without a server; prints every problem as file:line:column
    #[command(
        long_about = "Check task files here, without a server or certificates.\n\n\
            Each PATH is a task directory, its task.yaml, or a directory of task directories \
            (such as tasks/: every subdirectory with a task.yaml is checked). Every problem is \
            printed on stderr as `file:line:column: message`, and `ok: NAME (PATH)` on stdout \
            for each valid task. With -o json, one document: \
            {\"tasks\": [{\"path\", \"name\", \"ok\", \"errors\": [{\"file\", \"line\", \
            \"column\", \"message\"}]}]}.\n\n\
            The exit status is 1 when any task has a problem, 0 otherwise."
    )]
    Validate {
        /// A task directory, a task.yaml, or a directory of task directories
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
}

/// `tandem session …`.
#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// Create a session of a task; prints the `ssh` command for each role
    #[command(
        long_about = "Create a session: an instance of a task, set up, whose terminal \
        is shared over SSH. Waits until the task's setup has finished, which may take a \
        while.\n\n\
        Prints the session's id and end, then the `ssh` command for each role (candidate, \
        interviewer, observer); with keys given, also the command for their owners (the \
        session id as the user name). The tokens are secrets: give each person only their \
        own. With -o json: {\"id\", \"task\", \"expires_at\", \"tokens\": {\"candidate\", \
        \"interviewer\", \"observer\"}, \"ssh\": {…the same roles}}."
    )]
    Create {
        /// The task's name (see `tandem task list`)
        #[arg(long, value_name = "NAME")]
        task: String,
        /// How long the session lasts (e.g. 45m, 1h30m) [default: the task's time limit]
        #[arg(long, value_parser = parse_positive_duration, value_name = "DURATION")]
        duration: Option<Duration>,
        /// File of OpenSSH public keys (one a line) that may log in as the candidate (repeatable)
        #[arg(long = "candidate-key", value_name = "FILE.pub")]
        candidate_keys: Vec<PathBuf>,
        /// File of OpenSSH public keys (one a line) that may log in as interviewers (repeatable)
        #[arg(long = "interviewer-key", value_name = "FILE.pub")]
        interviewer_keys: Vec<PathBuf>,
    },
    /// List the sessions you created (all sessions for admins), live and ended
    List,
    /// Show a session and who is connected to it
    Show {
        /// The session's id
        id: String,
    },
    /// End a session: disconnect everyone and stop its sandbox (the recording stays)
    End {
        /// The session's id
        id: String,
    },
    /// Move a session's end later; prints the new end
    Extend {
        /// The session's id
        id: String,
        /// How much longer (e.g. 15m, 1h)
        #[arg(value_parser = parse_positive_duration, value_name = "DURATION")]
        by: Duration,
    },
    /// Make a connected participant an observer (input ignored) or a writer
    Role {
        /// The session's id
        id: String,
        /// The participant's number (the # column of `tandem session show`)
        participant: u64,
        /// observer or writer
        #[arg(value_enum)]
        access: AccessArg,
    },
    /// Lock a session: only the candidate types
    Lock {
        /// The session's id
        id: String,
    },
    /// Unlock a session: interviewers with writer access type too
    Unlock {
        /// The session's id
        id: String,
    },
    /// Run the task's check: prints passed, failed or error, then its output
    #[command(
        long_about = "Run the task's check in the session's sandbox. The result is \
        shown to you and logged, never on the candidate's screen.\n\n\
        Prints `passed`, `failed` or `error` (the check could not run or did not finish) on \
        the first line, then the check's output as is. The exit status is 0 whenever the \
        server answered, whatever the outcome: scripts should read `.passed` from -o json."
    )]
    Check {
        /// The session's id
        id: String,
    },
    /// Write the session's recording (asciicast v2) to stdout, byte for byte
    #[command(
        long_about = "Write the session's recording (asciicast v2) to stdout, byte \
        for byte, whatever --output says: `tandem session recording ID > file.cast`, then \
        `asciinema play file.cast` or `tandem session replay`. A live session's recording \
        holds what happened so far."
    )]
    Recording {
        /// The session's id
        id: String,
    },
    /// Play the session's recording in this terminal; Ctrl-C stops
    #[command(
        long_about = "Play the session's recording in this terminal: the terminal \
        output, at the pace it happened (what was typed shows through the terminal's echo). \
        Ctrl-C stops. The bytes go to stdout whatever --output says.\n\n\
        Pauses longer than --max-idle (or the recording's idle_time_limit) are cut to it, \
        then every time is divided by --speed."
    )]
    Replay {
        /// The session's id
        id: String,
        /// Play this many times faster (0.5 = half speed)
        #[arg(long, default_value_t = 1.0, value_parser = parse_speed, value_name = "FACTOR")]
        speed: f64,
        /// Cut longer pauses of the recording to this (e.g. 2s) [default: the recording's idle_time_limit, if any]
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        max_idle: Option<Duration>,
    },
}

/// A participant's access, as `tandem session role` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AccessArg {
    /// Watches only: input is ignored
    Observer,
    /// May type (when the session is unlocked, for interviewers)
    Writer,
}

impl AccessArg {
    /// The API's name for it.
    fn name(self) -> &'static str {
        match self {
            AccessArg::Observer => "observer",
            AccessArg::Writer => "writer",
        }
    }
}

/// `tandem server …`.
#[derive(Debug, Subcommand)]
enum ServerCommand {
    /// Show the SSH host key fingerprint (to check on first login), the SSH address and the version
    Info,
}

/// `tandem job start` options.
#[derive(Debug, Args)]
struct StartArgs {
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

/// `tandem certs …`.
#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Make a new CA, the server certificate and the admin client certificate
    #[command(long_about = "Make a new CA (ca.crt, ca.key), the server certificate \
        (server.crt, server.key) for the given host names and addresses, and the first \
        client certificate (admin.crt, admin.key). Existing files are kept unless --force \
        is given; with --force, certificates issued by the old CA stop working.")]
    Init {
        /// Directory to write to [default: the --certs-dir directory]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Host names and IP addresses the server certificate is valid for
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "localhost,127.0.0.1",
            value_name = "HOST,..."
        )]
        hosts: Vec<String>,
        /// Replace existing files
        #[arg(long)]
        force: bool,
        /// Days the CA certificate is valid
        #[arg(long, default_value_t = tandem_pki::Validity::default().ca_days, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
        ca_days: u32,
        /// Days the server and admin certificates are valid
        #[arg(long, default_value_t = tandem_pki::Validity::default().leaf_days, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
        days: u32,
    },
    /// Issue a client certificate NAME.crt / NAME.key signed by the CA
    Issue {
        /// The user name (the certificate's CN): A-Z a-z 0-9 . _ -
        name: String,
        /// What the user may do
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Directory with the CA [default: the --certs-dir directory]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Replace existing files
        #[arg(long)]
        force: bool,
        /// Days the certificate is valid (never beyond the CA's expiry)
        #[arg(long, default_value_t = tandem_pki::Validity::default().leaf_days, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
        days: u32,
    },
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

/// Parses a duration such as `10s`, `1m30s` or `500ms`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (expected e.g. 500ms, 10s, 1m30s)"))
}

/// Parses a duration longer than zero, such as `45m` or `1h30m`.
fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero (e.g. 15m, 1h30m)".to_string()),
        Err(e) => Err(format!("{e} (expected e.g. 45m, 1h30m)")),
    }
}

/// Parses a replay speed: a positive factor.
fn parse_speed(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(speed) if speed.is_finite() && speed > 0.0 => Ok(speed),
        _ => Err("expected a positive factor, e.g. 2 or 0.5".to_string()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tandem: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // A closed stdout (`tandem job logs ID | head`) is not worth a complaint.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tandem: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `err` is, or was caused by, writing to a closed pipe.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Runs a parsed command.
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Certs(command) => run_certs(&global, command),
        Command::Health => run_health(&global).await,
        Command::Job(command) => run_job(&global, command).await,
        Command::Task(TaskCommand::Validate { paths }) => run_validate(&global, &paths),
        Command::Task(command) => run_task(&global, command).await,
        Command::Session(command) => run_session(&global, command).await,
        Command::Server(ServerCommand::Info) => run_server_info(&global).await,
    }
}

/// `tandem certs …`.
fn run_certs(global: &Global, command: CertsCommand) -> anyhow::Result<ExitCode> {
    let written = match command {
        CertsCommand::Init {
            dir,
            hosts,
            force,
            ca_days,
            days,
        } => {
            let validity = tandem_pki::Validity {
                ca_days,
                leaf_days: days,
            };
            let dir = dir.unwrap_or_else(|| global.certs_dir.clone());
            certs::init(&dir, &hosts, force, validity)?
        }
        CertsCommand::Issue {
            name,
            role,
            dir,
            force,
            days,
        } => {
            let validity = tandem_pki::Validity {
                leaf_days: days,
                ..tandem_pki::Validity::default()
            };
            let dir = dir.unwrap_or_else(|| global.certs_dir.clone());
            certs::issue(&dir, &name, role, force, validity)?
        }
    };
    print(&certs::render(&written, global.output)?)?;
    if global.output == Format::Text {
        eprintln!("{}", written.hint);
    }
    Ok(ExitCode::SUCCESS)
}

/// `tandem health`.
async fn run_health(global: &Global) -> anyhow::Result<ExitCode> {
    let channel = connect(global).await?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|s| status_error(global, &s))?
        .into_inner();
    let status = ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown);
    let name = status.as_str_name();
    match global.output {
        Format::Text => print(&format!("{name}\n"))?,
        Format::Json => print(&output::json(&serde_json::json!({ "status": name }))?)?,
    }
    Ok(if status == ServingStatus::Serving {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `tandem job …`.
async fn run_job(global: &Global, command: JobCommand) -> anyhow::Result<ExitCode> {
    let mut client = JobServiceClient::new(connect(global).await?);
    let status_err = |s: tonic::Status| status_error(global, &s);
    match command {
        JobCommand::Start(args) => {
            let request = start_request(*args, attach::terminal_size);
            let id = client
                .start(request)
                .await
                .map_err(status_err)?
                .into_inner()
                .job_id;
            match global.output {
                Format::Text => print(&format!("{id}\n"))?,
                Format::Json => print(&output::json(&serde_json::json!({ "id": id }))?)?,
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
                Format::Text => print(&output::status_text(&job))?,
                Format::Json => print(&output::json(&JobView::from(&job))?)?,
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
                Format::Text => print(&output::list_text(&jobs))?,
                Format::Json => {
                    let views: Vec<JobView> = jobs.iter().map(JobView::from).collect();
                    print(&output::json(&views)?)?
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
                Format::Text => print(&format!("{}\n", output::summary(&job)))?,
                Format::Json => print(&output::json(&JobView::from(&job))?)?,
            }
        }
        JobCommand::Logs { id, follow, offset } => {
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
        }
        JobCommand::Attach { id } => {
            match attach::attach(&mut client, &global.server, &id).await? {
                AttachEnd::Ended(job) => {
                    eprintln!("tandem: job {id} ended: {}", output::summary(&job));
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

/// `tandem task validate` (local, so no connection and no certificates).
fn run_validate(global: &Global, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let results = tasks::validate(paths);
    let invalid = results.iter().filter(|r| !r.errors.is_empty()).count();
    match global.output {
        Format::Text => {
            for result in &results {
                for problem in &result.errors {
                    eprintln!("{problem}");
                }
                if let (Some(name), true) = (&result.name, result.errors.is_empty()) {
                    print(&format!("ok: {name} ({})\n", result.path.display()))?;
                }
            }
            if invalid > 0 {
                eprintln!(
                    "tandem: {invalid} of {} tasks failed validation",
                    results.len()
                );
            }
        }
        Format::Json => print(&output::json(&tasks::ValidateView::new(&results))?)?,
    }
    Ok(if invalid > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `tandem task …` except `validate`: the commands that ask the server.
async fn run_task(global: &Global, command: TaskCommand) -> anyhow::Result<ExitCode> {
    let mut client = TaskServiceClient::new(connect(global).await?);
    let status_err = |s: tonic::Status| status_error(global, &s);
    match command {
        TaskCommand::List => {
            let list = client
                .list(ListTasksRequest {})
                .await
                .map_err(status_err)?
                .into_inner()
                .tasks;
            match global.output {
                Format::Text => print(&tasks::list_text(&list))?,
                Format::Json => {
                    let views: Vec<tasks::TaskView> =
                        list.iter().map(tasks::TaskView::from).collect();
                    print(&output::json(&views)?)?
                }
            }
        }
        TaskCommand::Show { name } => {
            let show = client
                .show(ShowTaskRequest { name })
                .await
                .map_err(status_err)?
                .into_inner();
            if show.task.is_none() {
                bail!("the server's answer holds no task");
            }
            match global.output {
                Format::Text => print(&tasks::show_text(&show))?,
                Format::Json => print(&output::json(&tasks::TaskDetailView::from(&show))?)?,
            }
        }
        TaskCommand::Run { name } => {
            if global.output == Format::Text && io::stderr().is_terminal() {
                eprintln!("tandem: setting up task {name:?} (this may take a while)…");
            }
            let instance = client
                .run(RunTaskRequest {
                    name,
                    terminal: attach::terminal_size(),
                })
                .await
                .map_err(status_err)?
                .into_inner()
                .instance;
            let instance = instance.context("the server's answer holds no instance")?;
            match global.output {
                Format::Text => {
                    print(&format!("{}\n", instance.id))?;
                    eprint!("{}", tasks::run_hint(&instance));
                }
                Format::Json => print(&output::json(&tasks::InstanceView::from(&instance))?)?,
            }
        }
        TaskCommand::Check { id } => {
            let check = client
                .check(CheckTaskRequest { instance_id: id })
                .await
                .map_err(status_err)?
                .into_inner();
            match global.output {
                Format::Text => print(&tasks::check_text(&check))?,
                Format::Json => print(&output::json(&tasks::CheckView::from(&check))?)?,
            }
        }
        TaskCommand::Validate { paths } => return run_validate(global, &paths),
    }
    Ok(ExitCode::SUCCESS)
}

/// `tandem session …`.
async fn run_session(global: &Global, command: SessionCommand) -> anyhow::Result<ExitCode> {
    // Key files are read before connecting, so that a bad one is reported first.
    let mut keys = (Vec::new(), Vec::new());
    if let SessionCommand::Create {
        candidate_keys,
        interviewer_keys,
        ..
    } = &command
    {
        for file in candidate_keys {
            keys.0.extend(sessions::read_keys("--candidate-key", file)?);
        }
        for file in interviewer_keys {
            keys.1
                .extend(sessions::read_keys("--interviewer-key", file)?);
        }
    }
    let mut client = SessionServiceClient::new(connect(global).await?);
    let status_err = |s: tonic::Status| status_error(global, &s);
    let json =
        |value: serde_json::Value| print(&output::json(&value)?).map_err(anyhow::Error::from);
    match command {
        SessionCommand::Create { task, duration, .. } => {
            let duration = duration
                .map(|d| {
                    prost_types::Duration::try_from(d)
                        .map_err(|_| anyhow!("--duration {d:?} is too long"))
                })
                .transpose()?;
            if global.output == Format::Text && io::stderr().is_terminal() {
                eprintln!("tandem: setting up a session of task {task:?} (this may take a while)…");
            }
            let with_keys = !keys.0.is_empty() || !keys.1.is_empty();
            let created = client
                .create(CreateSessionRequest {
                    task,
                    duration,
                    candidate_keys: keys.0,
                    interviewer_keys: keys.1,
                })
                .await
                .map_err(status_err)?
                .into_inner();
            let id = created
                .session
                .as_ref()
                .map(|s| s.id.clone())
                .context("the server's answer holds no session")?;
            match global.output {
                Format::Text => {
                    print(&sessions::created_text(
                        &created,
                        with_keys,
                        std::time::SystemTime::now(),
                    ))?;
                    if io::stderr().is_terminal() {
                        eprint!("{}", sessions::created_hint(&id));
                    }
                }
                Format::Json => print(&output::json(&sessions::CreatedView::from(&created))?)?,
            }
        }
        SessionCommand::List => {
            let list = client
                .list(ListSessionsRequest {})
                .await
                .map_err(status_err)?
                .into_inner()
                .sessions;
            match global.output {
                Format::Text => print(&sessions::list_text(&list, std::time::SystemTime::now()))?,
                Format::Json => {
                    let views: Vec<sessions::SessionView> =
                        list.iter().map(sessions::SessionView::from).collect();
                    print(&output::json(&views)?)?
                }
            }
        }
        SessionCommand::Show { id } => {
            let show = client
                .show(ShowSessionRequest { id })
                .await
                .map_err(status_err)?
                .into_inner();
            if show.session.is_none() {
                bail!("the server's answer holds no session");
            }
            match global.output {
                Format::Text => print(&sessions::show_text(&show, std::time::SystemTime::now()))?,
                Format::Json => print(&output::json(&sessions::SessionDetailView::from(&show))?)?,
            }
        }
        SessionCommand::End { id } => {
            client
                .end(EndSessionRequest { id: id.clone() })
                .await
                .map_err(status_err)?;
            match global.output {
                Format::Text => print(&format!("session {id} ended\n"))?,
                Format::Json => json(serde_json::json!({ "id": id, "ended": true }))?,
            }
        }
        SessionCommand::Extend { id, by } => {
            let by_proto = prost_types::Duration::try_from(by)
                .map_err(|_| anyhow!("the duration {by:?} is too long"))?;
            let expires_at = client
                .extend(ExtendSessionRequest {
                    id: id.clone(),
                    by: Some(by_proto),
                })
                .await
                .map_err(status_err)?
                .into_inner()
                .expires_at;
            match global.output {
                Format::Text => print(&format!(
                    "session {id} now ends {}\n",
                    sessions::until_text(expires_at.as_ref(), std::time::SystemTime::now())
                ))?,
                Format::Json => json(serde_json::json!({
                    "id": id,
                    "expires_at": output::timestamp(expires_at.as_ref()),
                }))?,
            }
        }
        SessionCommand::Role {
            id,
            participant,
            access,
        } => {
            client
                .set_access(SetAccessRequest {
                    id: id.clone(),
                    participant,
                    access: access.name().to_string(),
                })
                .await
                .map_err(status_err)?;
            match global.output {
                Format::Text => print(&format!(
                    "participant #{participant} of session {id} is now {}\n",
                    match access {
                        AccessArg::Observer => "an observer (input ignored)",
                        AccessArg::Writer => "a writer",
                    }
                ))?,
                Format::Json => json(serde_json::json!({
                    "id": id,
                    "participant": participant,
                    "access": access.name(),
                }))?,
            }
        }
        SessionCommand::Lock { id } => set_lock(global, &mut client, id, true).await?,
        SessionCommand::Unlock { id } => set_lock(global, &mut client, id, false).await?,
        SessionCommand::Check { id } => {
            let check = client
                .check(SessionCheckRequest { id })
                .await
                .map_err(status_err)?
                .into_inner();
            match global.output {
                Format::Text => print(&tasks::check_text(&check))?,
                Format::Json => print(&output::json(&tasks::CheckView::from(&check))?)?,
            }
        }
        SessionCommand::Recording { id } => {
            let mut stream = client
                .recording(RecordingRequest { id })
                .await
                .map_err(status_err)?
                .into_inner();
            let mut stdout = io::stdout().lock();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(status_err)?;
                stdout.write_all(&chunk.data)?;
            }
            stdout.flush()?;
        }
        SessionCommand::Replay {
            id,
            speed,
            max_idle,
        } => {
            let mut stream = client
                .recording(RecordingRequest { id: id.clone() })
                .await
                .map_err(status_err)?
                .into_inner();
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(&chunk.map_err(status_err)?.data);
            }
            let cast = replay::parse(&bytes)
                .with_context(|| format!("the recording of session {id} is not asciicast v2"))?;
            let max_idle = max_idle.or_else(|| {
                cast.header
                    .idle_time_limit
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
            });
            if let (Some(width), Some(height), Some(here)) = (
                cast.header.width,
                cast.header.height,
                io::stdout()
                    .is_terminal()
                    .then(attach::terminal_size)
                    .flatten(),
            ) && (width > u64::from(here.cols) || height > u64::from(here.rows))
            {
                eprintln!(
                    "tandem: the recording is {width}x{height}, this terminal {}x{}: \
                     enlarge it for a faithful replay",
                    here.cols, here.rows
                );
            }
            // Ctrl-C's default action ends the process; nothing needs restoring.
            replay::play(&replay::frames(&cast, speed, max_idle), &mut io::stdout()).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tandem session lock` / `unlock`.
async fn set_lock(
    global: &Global,
    client: &mut SessionServiceClient<Channel>,
    id: String,
    locked: bool,
) -> anyhow::Result<()> {
    client
        .set_lock(SetLockRequest {
            id: id.clone(),
            locked,
        })
        .await
        .map_err(|s| status_error(global, &s))?;
    match global.output {
        Format::Text if locked => {
            print(&format!("session {id} locked: only the candidate types\n"))?
        }
        Format::Text => print(&format!(
            "session {id} unlocked: interviewers with writer access type too\n"
        ))?,
        Format::Json => print(&output::json(
            &serde_json::json!({ "id": id, "locked": locked }),
        )?)?,
    }
    Ok(())
}

/// `tandem server info`.
async fn run_server_info(global: &Global) -> anyhow::Result<ExitCode> {
    let info = ServerServiceClient::new(connect(global).await?)
        .info(ServerInfoRequest {})
        .await
        .map_err(|s| status_error(global, &s))?
        .into_inner();
    match global.output {
        Format::Text => print(&sessions::server_text(&info))?,
        Format::Json => print(&output::json(&sessions::ServerView::from(&info))?)?,
    }
    Ok(ExitCode::SUCCESS)
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
        terminal_size().unwrap_or(attach::DEFAULT_SIZE)
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

/// Connects to the server with the configured certificates.
async fn connect(global: &Global) -> anyhow::Result<Channel> {
    let config = tandem_client::client_config(&global.tls()).map_err(|e| {
        let hint = match &e {
            ClientError::Pki(tandem_pki::PkiError::Io { error, .. })
                if error.kind() == io::ErrorKind::NotFound =>
            {
                " (make certificates with `tandem certs init`, or choose them with \
                 --certs-dir and --user, or --cert, --key and --ca)"
            }
            _ => "",
        };
        anyhow!("{e}{hint}")
    })?;
    tandem_client::connect(&global.server, config)
        .await
        .map_err(|e| anyhow!("{e}"))
}

/// A failed call as an error with a human message.
fn status_error(global: &Global, status: &tonic::Status) -> anyhow::Error {
    anyhow!(tandem_client::describe_status(&global.server, status))
}

/// Writes `text` to stdout and flushes it.
fn print(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tandem").chain(args.iter().copied()))
    }

    fn start_args(args: &[&str]) -> StartArgs {
        match parse(args).map(|cli| cli.command) {
            Ok(Command::Job(JobCommand::Start(start))) => *start,
            other => panic!("not a job start: {other:?}"),
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
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
        assert_eq!(request.terminal, Some(attach::DEFAULT_SIZE));
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
    fn usage_errors() {
        for args in [
            &["job", "start", "--memory", "12X", "sh"][..],
            &["job", "start", "--memory", "-1M", "sh"],
            &["job", "start", "--memory=", "sh"],
            &["job", "start", "--io-read", "fast", "sh"],
            &["job", "start", "--env", "NOEQUALS", "sh"],
            &["job", "start", "--label", "=v", "sh"],
            &["job", "start", "--cpu", "0", "sh"],
            &["job", "start"],
            &["job", "stop", "x", "--grace", "soon"],
            &["certs", "issue", "bob", "--role", "root"],
            &["certs", "init", "--days", "0"],
            &["-o", "yaml", "job", "list"],
        ] {
            let err = parse(args).expect_err(&args.join(" "));
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert_ne!(err.kind(), ErrorKind::DisplayHelp);
        }
        let err = parse(&["job", "start", "--memory", "12X", "sh"]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("--memory"), "{message}");
        assert!(message.contains("12X"), "{message}");
    }

    #[test]
    fn global_flags_anywhere() {
        let cli = parse(&[
            "job", "list", "-o", "json", "--server", "h:1", "--user", "bob",
        ])
        .unwrap();
        assert_eq!(cli.global.output, Format::Json);
        assert_eq!(cli.global.server, "h:1");
        let tls = cli.global.tls();
        assert_eq!(tls.cert, PathBuf::from("certs/bob.crt"));
        assert_eq!(tls.ca, PathBuf::from("certs/ca.crt"));
        let cli = parse(&["--cert", "/x.crt", "--certs-dir", "/d", "job", "list"]).unwrap();
        let tls = cli.global.tls();
        assert_eq!(tls.cert, PathBuf::from("/x.crt"));
        assert_eq!(tls.key, PathBuf::from("/d/admin.key"));
    }

    #[test]
    fn session_commands_parse() {
        match parse(&[
            "session",
            "create",
            "--task",
            "disk-full",
            "--duration",
            "1h30m",
            "--candidate-key",
            "a.pub",
            "--candidate-key",
            "b.pub",
            "--interviewer-key",
            "i.pub",
        ])
        .unwrap()
        .command
        {
            Command::Session(SessionCommand::Create {
                task,
                duration,
                candidate_keys,
                interviewer_keys,
            }) => {
                assert_eq!(task, "disk-full");
                assert_eq!(duration, Some(Duration::from_secs(5400)));
                assert_eq!(candidate_keys, [PathBuf::from("a.pub"), "b.pub".into()]);
                assert_eq!(interviewer_keys, [PathBuf::from("i.pub")]);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["session", "extend", "s1", "15m"]).unwrap().command {
            Command::Session(SessionCommand::Extend { id, by }) => {
                assert_eq!(id, "s1");
                assert_eq!(by, Duration::from_secs(900));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["session", "role", "s1", "2", "observer"])
            .unwrap()
            .command
        {
            Command::Session(SessionCommand::Role {
                participant,
                access,
                ..
            }) => {
                assert_eq!(participant, 2);
                assert_eq!(access.name(), "observer");
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "session",
            "replay",
            "s1",
            "--speed",
            "2",
            "--max-idle",
            "2s",
        ])
        .unwrap()
        .command
        {
            Command::Session(SessionCommand::Replay {
                speed, max_idle, ..
            }) => {
                assert_eq!(speed, 2.0);
                assert_eq!(max_idle, Some(Duration::from_secs(2)));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["session", "replay", "s1"]).unwrap().command {
            Command::Session(SessionCommand::Replay {
                speed, max_idle, ..
            }) => {
                assert_eq!(speed, 1.0);
                assert_eq!(max_idle, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["-o", "json", "server", "info"]).unwrap().command,
            Command::Server(ServerCommand::Info)
        ));
    }

    #[test]
    fn session_usage_errors_name_the_flag() {
        for (args, names) in [
            (
                &["session", "create", "--task", "t", "--duration", "45x"][..],
                "--duration",
            ),
            (
                &["session", "create", "--task", "t", "--duration", "0s"],
                "--duration",
            ),
            (&["session", "create", "--duration", "45m"], "--task"),
            (&["session", "extend", "s1", "soon"], "DURATION"),
            (&["session", "extend", "s1", "0m"], "DURATION"),
            (&["session", "role", "s1", "2", "admin"], "ACCESS"),
            (&["session", "role", "s1", "two", "writer"], "PARTICIPANT"),
            (&["session", "replay", "s1", "--speed", "0"], "--speed"),
            (&["session", "replay", "s1", "--speed", "fast"], "--speed"),
            (
                &["session", "replay", "s1", "--max-idle", "2"],
                "--max-idle",
            ),
            (&["session", "show"], "ID"),
        ] {
            let err = parse(args).expect_err(&args.join(" "));
            assert_eq!(err.exit_code(), 2, "{args:?}");
            let message = err.to_string();
            assert!(message.contains(names), "{args:?}: {message}");
        }
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
