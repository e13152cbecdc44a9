//! `tandem session …`: create, list, show, end, extend, role, lock, unlock, check,
//! hint, note, timeline, report, recording and replay. The clap model, the key files' reading and the runners are here;
//! how sessions and participants are shown is in `session/view.rs`, the player of
//! `replay` in `session/replay.rs`.

mod keys;
mod replay;
pub mod timeline;
pub mod view;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use tandem_proto::v1::session_service_client::SessionServiceClient;
use tandem_proto::v1::{
    ClockStart, CreateSessionRequest, EndSessionRequest, ExtendSessionRequest, ListSessionsRequest,
    RecordingRequest, RescheduleSessionRequest, ResetSessionRequest, SessionCheckRequest,
    SessionHintRequest, SessionNoteRequest, SessionTimelineRequest, SetAccessRequest,
    SetLockRequest, ShowSessionRequest,
};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::parse_duration;
use super::task::view as task_view;
use crate::Global;
use crate::connect::{connect, status_error};
use crate::render::{self, Format, print};
use crate::terminal;

use self::keys::read_keys;

/// `tandem session --help`: what a session is and what each command does.
pub const LONG_ABOUT: &str = "Create, watch, control and end interview sessions; save or replay their \
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
    v2) to stdout, to keep it or play it with `asciinema play file.cast`.";

/// The examples under `tandem session --help`.
pub const AFTER_HELP: &str = "Examples:\n  \
    tandem session create --task disk-full --duration 45m --candidate-key bob.pub\n  \
    id=$(tandem -o json session create --task disk-full | jq -r .id)\n  \
    tandem session show \"$id\"\n  \
    tandem session lock \"$id\"\n  \
    tandem session role \"$id\" 2 observer\n  \
    tandem session extend \"$id\" 15m\n  \
    tandem session check \"$id\"\n  \
    tandem session hint \"$id\"\n  \
    tandem session note \"$id\" \"found the held file quickly\"\n  \
    tandem session timeline \"$id\"\n  \
    tandem session report \"$id\" --format html > report.html\n  \
    tandem session end \"$id\"\n  \
    tandem session recording \"$id\" > interview.cast && asciinema play interview.cast\n  \
    tandem session replay \"$id\" --speed 2 --max-idle 2s";

/// `tandem session …`.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
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
        /// Schedule it: the start in UTC (2026-12-03T14:00Z) or from now (+2h, +3d); prints
        /// an invite to paste into the calendar
        #[arg(long, value_parser = parse_start, value_name = "TIME")]
        at: Option<SystemTime>,
        /// When a scheduled session's clock starts: at the candidate's first login (a
        /// no-show ends it 15 minutes after the start) or at the start
        #[arg(long, value_enum, default_value_t = ClockArg::FirstLogin, requires = "at")]
        clock: ClockArg,
    },
    /// Cancel a scheduled session (its logins stop working); same as `end`
    Cancel {
        /// The session's id
        id: String,
    },
    /// Move the start of a scheduled session; its logins stay the same
    Reschedule {
        /// The session's id
        id: String,
        /// The new start (as for `create --at`)
        #[arg(long, value_parser = parse_start, value_name = "TIME")]
        at: SystemTime,
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
    /// Swap a session's sandbox for a fresh copy of its task (instant from the warm pool);
    /// everyone stays connected and sees the new shell
    Reset {
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
    /// Reveal the task's next hint to the candidate (who reads it with `hint` in the box)
    #[command(
        long_about = "Reveal the task's next hint (gentle to explicit, as the task \
        lists them) to the candidate. Their title bar says a hint is out; they read every \
        revealed hint with the `hint` command in the box, whenever they like, so nothing \
        lands in the middle of what they are typing. The timeline records when and by whom. \
        Prints the hint's number and text; fails when every hint is out."
    )]
    Hint {
        /// The session's id
        id: String,
    },
    /// Stamp a private note on the session's timeline (never shown to the candidate)
    Note {
        /// The session's id
        id: String,
        /// The note
        text: String,
    },
    /// Show what happened in the session, in time order
    #[command(
        long_about = "Show the session's timeline, live or ended: commands (who typed \
        them, exit status, directory), checks and condition changes, hints, notes, joins and \
        leaves, access and lock changes, resets, the end; then when each condition and the \
        whole task first passed and how many hints were used. Times are minutes:seconds \
        into the session. With -o json: one document."
    )]
    Timeline {
        /// The session's id
        id: String,
    },
    /// Write a self-contained report of the session (Markdown or HTML) to stdout
    Report {
        /// The session's id
        id: String,
        /// md or html
        #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
        format: ReportFormat,
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

/// The format of `tandem session report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Markdown
    Md,
    /// One HTML file, style inline
    Html,
}

/// A participant's access, as `tandem session role` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessArg {
    /// Watches only: input is ignored
    Observer,
    /// May type (when the session is unlocked, for interviewers)
    Writer,
}

impl AccessArg {
    /// The API's name for it.
    pub fn name(self) -> &'static str {
        match self {
            AccessArg::Observer => "observer",
            AccessArg::Writer => "writer",
        }
    }
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

/// When a scheduled session's clock starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClockArg {
    /// At the candidate's first login
    FirstLogin,
    /// At the scheduled start
    At,
}

/// A start: RFC 3339 in UTC (`2026-12-03T14:00Z`, seconds optional) or `+DURATION` from
/// now (`+2h`).
pub fn parse_start(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    if let Some(ahead) = text.strip_prefix('+') {
        let ahead = humantime::parse_duration(ahead)
            .map_err(|e| format!("{text:?}: {e} (e.g. +2h, +3d)"))?;
        return SystemTime::now()
            .checked_add(ahead)
            .ok_or_else(|| format!("{text:?} is too far ahead"));
    }
    let bad = || format!("{text:?} is not a time: use UTC, as 2026-12-03T14:00Z, or +2h");
    let utc = text
        .strip_suffix(['Z', 'z'])
        .ok_or_else(|| format!("{}; a time zone other than Z is not understood", bad()))?;
    // People leave out the seconds.
    let (day, clock) = utc.split_once(['T', 't', ' ']).ok_or_else(bad)?;
    let clock = match clock.matches(':').count() {
        1 => format!("{clock}:00"),
        _ => clock.to_string(),
    };
    humantime::parse_rfc3339(&format!("{day}T{clock}Z")).map_err(|_| bad())
}

/// `tandem session …`.
pub async fn run(global: &Global, command: SessionCommand) -> anyhow::Result<ExitCode> {
    // Key files are read before connecting, so that a bad one is reported first.
    let mut keys = (Vec::new(), Vec::new());
    if let SessionCommand::Create {
        candidate_keys,
        interviewer_keys,
        ..
    } = &command
    {
        for file in candidate_keys {
            keys.0.extend(read_keys("--candidate-key", file)?);
        }
        for file in interviewer_keys {
            keys.1.extend(read_keys("--interviewer-key", file)?);
        }
    }
    let mut client = SessionServiceClient::new(connect(global).await?);
    let status_err = |s: tonic::Status| status_error(global, &s);
    let json =
        |value: serde_json::Value| print(&render::json(&value)?).map_err(anyhow::Error::from);
    match command {
        SessionCommand::Create {
            task,
            duration,
            at,
            clock,
            ..
        } => {
            let duration = duration
                .map(|d| {
                    prost_types::Duration::try_from(d)
                        .map_err(|_| anyhow!("--duration {d:?} is too long"))
                })
                .transpose()?;
            if at.is_none() && global.output == Format::Text && io::stderr().is_terminal() {
                eprintln!("tandem: starting a session of task {task:?}…");
            }
            let with_keys = !keys.0.is_empty() || !keys.1.is_empty();
            let created = client
                .create(CreateSessionRequest {
                    task,
                    duration,
                    candidate_keys: keys.0,
                    interviewer_keys: keys.1,
                    at: at.map(Into::into),
                    clock: match clock {
                        ClockArg::FirstLogin => ClockStart::FirstLogin,
                        ClockArg::At => ClockStart::At,
                    } as i32,
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
                    print(&view::created_text(
                        &created,
                        with_keys,
                        std::time::SystemTime::now(),
                    ))?;
                    if io::stderr().is_terminal() {
                        eprint!("{}", view::created_hint(&id));
                    }
                }
                Format::Json => print(&render::json(&view::CreatedView::from(&created))?)?,
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
                Format::Text => print(&view::list_text(&list, std::time::SystemTime::now()))?,
                Format::Json => {
                    let views: Vec<view::SessionView> =
                        list.iter().map(view::SessionView::from).collect();
                    print(&render::json(&views)?)?
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
                Format::Text => print(&view::show_text(&show, std::time::SystemTime::now()))?,
                Format::Json => print(&render::json(&view::SessionDetailView::from(&show))?)?,
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
        SessionCommand::Cancel { id } => {
            client
                .end(EndSessionRequest { id: id.clone() })
                .await
                .map_err(status_err)?;
            match global.output {
                Format::Text => print(&format!("session {id} cancelled\n"))?,
                Format::Json => json(serde_json::json!({ "id": id, "cancelled": true }))?,
            }
        }
        SessionCommand::Reschedule { id, at } => {
            let session = client
                .reschedule(RescheduleSessionRequest {
                    id: id.clone(),
                    at: Some(at.into()),
                })
                .await
                .map_err(status_err)?
                .into_inner()
                .session
                .unwrap_or_default();
            match global.output {
                Format::Text => print(&format!(
                    "session {id} now starts {} (the logins are the same)\n",
                    render::timestamp(session.scheduled_at.as_ref()).unwrap_or_default()
                ))?,
                Format::Json => print(&render::json(&view::SessionView::from(&session))?)?,
            }
        }
        SessionCommand::Reset { id } => {
            let instance = client
                .reset(ResetSessionRequest { id: id.clone() })
                .await
                .map_err(status_err)?
                .into_inner()
                .instance
                .unwrap_or_default();
            match global.output {
                Format::Text => print(&format!(
                    "session {id} reset: new sandbox {}{}\n",
                    instance.id,
                    if instance.warm {
                        " (from the warm pool)"
                    } else {
                        ""
                    }
                ))?,
                Format::Json => json(serde_json::json!({
                    "id": id,
                    "instance": crate::commands::task::view::InstanceView::from(&instance),
                }))?,
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
                    view::until_text(expires_at.as_ref(), std::time::SystemTime::now())
                ))?,
                Format::Json => json(serde_json::json!({
                    "id": id,
                    "expires_at": render::timestamp(expires_at.as_ref()),
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
                Format::Text => print(&task_view::check_text(&check))?,
                Format::Json => print(&render::json(&task_view::CheckView::from(&check))?)?,
            }
        }
        SessionCommand::Hint { id } => {
            let hint = client
                .hint(SessionHintRequest { id: id.clone() })
                .await
                .map_err(status_err)?
                .into_inner();
            match global.output {
                Format::Text => print(&format!(
                    "hint {}/{} revealed to the candidate (`hint` in the box shows it):\n{}\n",
                    hint.number,
                    hint.total,
                    hint.text.trim_end()
                ))?,
                Format::Json => json(serde_json::json!({
                    "id": id, "number": hint.number, "total": hint.total, "text": hint.text,
                }))?,
            }
        }
        SessionCommand::Note { id, text } => {
            client
                .note(SessionNoteRequest {
                    id: id.clone(),
                    text,
                })
                .await
                .map_err(status_err)?;
            match global.output {
                Format::Text => print(&format!("noted on session {id}'s timeline\n"))?,
                Format::Json => json(serde_json::json!({ "id": id, "noted": true }))?,
            }
        }
        SessionCommand::Timeline { id } => {
            let t = client
                .timeline(SessionTimelineRequest { id })
                .await
                .map_err(status_err)?
                .into_inner();
            match global.output {
                Format::Text => print(&timeline::timeline_text(&t))?,
                Format::Json => print(&render::json(&timeline::TimelineView::from(&t))?)?,
            }
        }
        SessionCommand::Report { id, format } => {
            let t = client
                .timeline(SessionTimelineRequest { id })
                .await
                .map_err(status_err)?
                .into_inner();
            print(&match format {
                ReportFormat::Md => timeline::report_markdown(&t),
                ReportFormat::Html => timeline::report_html(&t),
            })?;
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
                    .then(terminal::terminal_size)
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
        Format::Json => print(&render::json(
            &serde_json::json!({ "id": id, "locked": locked }),
        )?)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::commands::server::ServerCommand;
    use crate::tests::parse;

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
                at,
                clock,
            }) => {
                assert_eq!(task, "disk-full");
                assert_eq!(duration, Some(Duration::from_secs(5400)));
                assert_eq!(candidate_keys, [PathBuf::from("a.pub"), "b.pub".into()]);
                assert_eq!(interviewer_keys, [PathBuf::from("i.pub")]);
                assert_eq!((at, clock), (None, ClockArg::FirstLogin));
            }
            other => panic!("{other:?}"),
        }
        // A --clock without --at is a usage error.
        assert!(parse(&["session", "create", "--task", "t", "--clock", "at"]).is_err());
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
    fn starts_are_utc_times_or_from_now() {
        let at = |text: &str| {
            parse_start(text).map(|t| humantime::format_rfc3339_seconds(t).to_string())
        };
        assert_eq!(at("2026-12-03T14:00Z").unwrap(), "2026-12-03T14:00:00Z");
        assert_eq!(at("2026-12-03 14:00:30Z").unwrap(), "2026-12-03T14:00:30Z");
        let err = at("2026-12-03T14:00+01:00").unwrap_err();
        assert!(err.contains("time zone other than Z"), "{err}");
        assert!(at("tomorrow").is_err());
        assert!(at("2026-13-03T14:00Z").is_err());
        let ahead = parse_start("+2h")
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap();
        assert!(ahead > Duration::from_secs(7190) && ahead <= Duration::from_secs(7200));
        assert!(parse_start("+soon").unwrap_err().contains("e.g. +2h"));
    }
}
