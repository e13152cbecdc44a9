//! `tandem task …`: list, show, run and check tasks on the server, and validate task
//! files here. The clap model and the runners are here; how tasks, instances and check
//! results are shown is in `task/view.rs`, the local validation in `task/validate.rs`.

pub mod validate;
pub mod view;

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use tandem_proto::v1::task_service_client::TaskServiceClient;
use tandem_proto::v1::{CheckTaskRequest, ListTasksRequest, RunTaskRequest, ShowTaskRequest};

use crate::Global;
use crate::connect::{connect, status_error};
use crate::render::{self, Format, print};
use crate::terminal;

/// `tandem task --help`: what tasks and instances are.
pub const LONG_ABOUT: &str = "List, show, run and check task scenarios; validate task files.\n\n\
    A task is a broken box to fix. Tasks live in the server's tasks directory \
    (tandemd --tasks-dir, `<name>/task.yaml` each); `list`, `show`, `run` and `check` \
    ask the server, `validate` checks task files here, without a server.\n\n\
    `run` starts an instance of a task: a sandbox of its own, with the task's setup \
    done and the candidate's shell running in it as a terminal job. The instance's \
    id is a job id: `tandem task check ID` runs the task's check in the sandbox, \
    `tandem job attach SHELL-ID` opens the shell, and `tandem job stop ID` ends the \
    instance.";

/// The examples under `tandem task --help`.
pub const AFTER_HELP: &str = "Examples:\n  \
    tandem task validate tasks/\n  \
    tandem task list\n  \
    id=$(tandem task run disk-full)\n  \
    tandem -o json task check \"$id\" | jq .passed\n  \
    tandem job stop \"$id\"";

/// `tandem task …`.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
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

/// `tandem task …`: `validate` works here, without a connection or certificates; the
/// other commands ask the server.
pub async fn run(global: &Global, command: TaskCommand) -> anyhow::Result<ExitCode> {
    match command {
        TaskCommand::Validate { paths } => run_validate(global, &paths),
        command => run_remote(global, command).await,
    }
}

/// `tandem task validate` (local, so no connection and no certificates).
fn run_validate(global: &Global, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let results = validate::validate(paths);
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
        Format::Json => print(&render::json(&validate::ValidateView::new(&results))?)?,
    }
    Ok(if invalid > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `tandem task …` except `validate`: the commands that ask the server.
async fn run_remote(global: &Global, command: TaskCommand) -> anyhow::Result<ExitCode> {
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
                Format::Text => print(&view::list_text(&list))?,
                Format::Json => {
                    let views: Vec<view::TaskView> =
                        list.iter().map(view::TaskView::from).collect();
                    print(&render::json(&views)?)?
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
                Format::Text => print(&view::show_text(&show))?,
                Format::Json => print(&render::json(&view::TaskDetailView::from(&show))?)?,
            }
        }
        TaskCommand::Run { name } => {
            if global.output == Format::Text && io::stderr().is_terminal() {
                eprintln!("tandem: setting up task {name:?} (this may take a while)…");
            }
            let instance = client
                .run(RunTaskRequest {
                    name,
                    terminal: terminal::terminal_size(),
                })
                .await
                .map_err(status_err)?
                .into_inner()
                .instance;
            let instance = instance.context("the server's answer holds no instance")?;
            match global.output {
                Format::Text => {
                    print(&format!("{}\n", instance.id))?;
                    eprint!("{}", view::run_hint(&instance));
                }
                Format::Json => print(&render::json(&view::InstanceView::from(&instance))?)?,
            }
        }
        TaskCommand::Check { id } => {
            let check = client
                .check(CheckTaskRequest { instance_id: id })
                .await
                .map_err(status_err)?
                .into_inner();
            match global.output {
                Format::Text => print(&view::check_text(&check))?,
                Format::Json => print(&render::json(&view::CheckView::from(&check))?)?,
            }
        }
        TaskCommand::Validate { paths } => return run_validate(global, &paths),
    }
    Ok(ExitCode::SUCCESS)
}
