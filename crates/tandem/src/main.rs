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
//!
//! Layout: this file holds the command line's top (global options, the commands,
//! dispatch, exit status); each command lives in `commands/` with its clap model, its
//! runner and its output; `render.rs` has what their outputs share, `connect.rs` the
//! connection to the server, `terminal.rs` the local terminal's size.
#![warn(missing_docs)]
// The one unsafe call (the terminal size ioctl) is allowed where it is, in `terminal.rs`.
#![deny(unsafe_code)]

mod commands;
mod connect;
mod render;
mod terminal;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser};
use tandem_client::ClientTls;

use crate::commands::certs::CertsCommand;
use crate::commands::job::JobCommand;
use crate::commands::server::ServerCommand;
use crate::commands::session::SessionCommand;
use crate::commands::task::TaskCommand;
use crate::render::Format;

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
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Start, inspect, follow, attach to and stop jobs
    #[command(subcommand)]
    Job(JobCommand),
    /// List, show, run and check task scenarios; validate task files
    #[command(
        subcommand,
        long_about = commands::task::LONG_ABOUT,
        after_help = commands::task::AFTER_HELP
    )]
    Task(TaskCommand),
    /// Create, watch, control and end interview sessions; save or replay their recordings
    #[command(
        subcommand,
        long_about = commands::session::LONG_ABOUT,
        after_help = commands::session::AFTER_HELP
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
        Command::Certs(command) => commands::certs::run(&global, command),
        Command::Health => commands::health::run(&global).await,
        Command::Job(command) => commands::job::run(&global, command).await,
        Command::Task(command) => commands::task::run(&global, command).await,
        Command::Session(command) => commands::session::run(&global, command).await,
        Command::Server(command) => commands::server::run(&global, command).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    /// `tandem ARGS…` as clap parses it.
    pub(crate) fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tandem").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
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
}
