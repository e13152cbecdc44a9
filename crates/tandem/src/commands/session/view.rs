//! How `tandem session …` shows sessions, their participants and new sessions' logins:
//! for people and for scripts (JSON, see [`crate::render`] for the conventions).

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tandem_proto::v1::{
    CreateSessionResponse, Participant, SessionLogins, SessionSummary, ShowSessionResponse,
    TerminalSize,
};

use crate::render;

/// One login per role, as printed by `-o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoginsView {
    /// The candidate's.
    pub candidate: String,
    /// Interviewers' (they may type when the session is unlocked).
    pub interviewer: String,
    /// Observers' (they only watch).
    pub observer: String,
}

impl From<&SessionLogins> for LoginsView {
    fn from(l: &SessionLogins) -> Self {
        LoginsView {
            candidate: l.candidate.clone(),
            interviewer: l.interviewer.clone(),
            observer: l.observer.clone(),
        }
    }
}

/// A new session as printed by `session create -o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreatedView {
    /// The session's id.
    pub id: String,
    /// The task's name.
    pub task: String,
    /// When the session ends (RFC 3339).
    pub expires_at: Option<String>,
    /// The secret login tokens, one per role.
    pub tokens: LoginsView,
    /// The `ssh` command each person runs.
    pub ssh: LoginsView,
    /// The browser pages, when the daemon's web front end runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web: Option<WebView>,
}

/// A new session's browser pages (`web` in `session create -o json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebView {
    /// The interviewers' live page (and, after the end, the replay).
    pub interviewer: String,
    /// The observers' live page.
    pub observer: String,
}

impl From<&CreateSessionResponse> for CreatedView {
    fn from(created: &CreateSessionResponse) -> Self {
        let none = SessionSummary::default();
        let session = created.session.as_ref().unwrap_or(&none);
        let logins = SessionLogins::default();
        CreatedView {
            id: session.id.clone(),
            task: session.task.clone(),
            expires_at: render::timestamp(session.expires_at.as_ref()),
            tokens: LoginsView::from(created.tokens.as_ref().unwrap_or(&logins)),
            ssh: LoginsView::from(created.ssh.as_ref().unwrap_or(&logins)),
            web: created.web.as_ref().map(|w| WebView {
                interviewer: w.interviewer.clone(),
                observer: w.observer.clone(),
            }),
        }
    }
}

/// A session as printed by `session list -o json` (and the first fields of `session
/// show -o json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    /// The session's id.
    pub id: String,
    /// The task's name.
    pub task: String,
    /// The user who created it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: Option<String>,
    /// When it ends, or was due to end.
    pub expires_at: Option<String>,
    /// `scheduled`, `waiting` (open, the candidate not there yet), `live`, `no-show`,
    /// `cancelled` or `ended`.
    pub state: String,
    /// The scheduled start (RFC 3339), for a session created ahead.
    pub scheduled_at: Option<String>,
    /// When its clock started (RFC 3339).
    pub started_at: Option<String>,
    /// Why it ended; `null` while live.
    pub ended: Option<String>,
    /// Whether only the candidate may type.
    pub locked: bool,
    /// The task instance (sandbox job) id.
    pub instance_id: String,
}

impl From<&SessionSummary> for SessionView {
    fn from(s: &SessionSummary) -> Self {
        SessionView {
            id: s.id.clone(),
            task: s.task.clone(),
            created_by: s.created_by.clone(),
            created_at: render::timestamp(s.created_at.as_ref()),
            expires_at: render::timestamp(s.expires_at.as_ref()),
            state: state_name(s).to_string(),
            scheduled_at: render::timestamp(s.scheduled_at.as_ref()),
            started_at: render::timestamp(s.started_at.as_ref()),
            ended: (!s.ended.is_empty()).then(|| s.ended.clone()),
            locked: s.locked,
            instance_id: s.instance_id.clone(),
        }
    }
}

/// A terminal size as printed by `-o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeView {
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
}

impl From<&TerminalSize> for SizeView {
    fn from(t: &TerminalSize) -> Self {
        SizeView {
            cols: t.cols,
            rows: t.rows,
        }
    }
}

/// A connected participant as printed by `session show -o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParticipantView {
    /// Their number in the session (for `session role`).
    pub number: u64,
    /// `candidate`, `interviewer` or `observer`.
    pub role: String,
    /// Their name (a key's comment, or the role).
    pub name: String,
    /// `writer` or `observer`.
    pub access: String,
    /// Where they connect from; `null` when unknown.
    pub from: Option<String>,
    /// Since when (RFC 3339).
    pub connected_since: Option<String>,
    /// Their window's size.
    pub window: Option<SizeView>,
    /// How they logged in: `token` or `key`.
    pub via: String,
}

impl From<&Participant> for ParticipantView {
    fn from(p: &Participant) -> Self {
        ParticipantView {
            number: p.number,
            role: p.role.clone(),
            name: p.name.clone(),
            access: p.access.clone(),
            from: (!p.from.is_empty()).then(|| p.from.clone()),
            connected_since: render::timestamp(p.connected_since.as_ref()),
            window: p.window.as_ref().map(SizeView::from),
            via: p.via.clone(),
        }
    }
}

/// One session with who is connected, as printed by `session show -o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionDetailView {
    /// The summary fields.
    #[serde(flatten)]
    pub session: SessionView,
    /// The shared terminal's size; `null` once ended.
    pub terminal: Option<SizeView>,
    /// Who is connected, by number.
    pub participants: Vec<ParticipantView>,
}

impl From<&ShowSessionResponse> for SessionDetailView {
    fn from(show: &ShowSessionResponse) -> Self {
        SessionDetailView {
            session: SessionView::from(show.session.as_ref().unwrap_or(&SessionSummary::default())),
            terminal: show.terminal.as_ref().map(SizeView::from),
            participants: show
                .participants
                .iter()
                .map(ParticipantView::from)
                .collect(),
        }
    }
}

/// `session create` for people: the session, then one `ssh` command per role, then (when
/// keys were registered) the command for key logins.
pub fn created_text(created: &CreateSessionResponse, with_keys: bool, now: SystemTime) -> String {
    let none = SessionSummary::default();
    let session = created.session.as_ref().unwrap_or(&none);
    let logins = SessionLogins::default();
    let ssh = created.ssh.as_ref().unwrap_or(&logins);
    let mut text = match render::timestamp(session.scheduled_at.as_ref()) {
        Some(starts) => format!(
            "session {}  task {}  starts {starts}  (scheduled)\n",
            session.id, session.task
        ),
        None => format!(
            "session {}  task {}  ends {}\n",
            session.id,
            session.task,
            ends_text(session, now)
        ),
    };
    for (role, command) in [
        ("candidate:", &ssh.candidate),
        ("interviewer:", &ssh.interviewer),
        ("observer:", &ssh.observer),
    ] {
        text.push_str(&format!("{role:<14}{command}\n"));
    }
    if let Some(web) = &created.web {
        text.push_str(&format!(
            "in a browser:\n  interviewer: {}\n  observer:    {}\n",
            web.interviewer, web.observer
        ));
    }
    if with_keys && let Some(command) = key_login(&ssh.candidate, &session.id) {
        text.push_str(&format!("with a registered key: {command}\n"));
    }
    if let Some(invite) = invite_text(created) {
        text.push('\n');
        text.push_str(&invite);
    }
    text
}

/// The login for registered keys: a role's `ssh … TOKEN@HOST` command with the session
/// id as the user name.
fn key_login(command: &str, session_id: &str) -> Option<String> {
    let (before, login) = command.rsplit_once(' ')?;
    let (_token, host) = login.split_once('@')?;
    Some(format!("{before} {session_id}@{host}"))
}

/// The lines `session create` prints on stderr: what to do next.
pub fn created_hint(id: &str) -> String {
    format!(
        "each line is a secret login: give each person only their own\n\
         watch: tandem session show {id}\nend: tandem session end {id}\n"
    )
}

/// When a session ends: `TIME (in 45m)` while live; once ended, `TIME`, or `before TIME`
/// when it ended before it was due.
pub fn ends_text(session: &SessionSummary, now: SystemTime) -> String {
    if session.ended.is_empty() {
        return until_text(session.expires_at.as_ref(), now);
    }
    let Some(time) = render::timestamp(session.expires_at.as_ref()) else {
        return "-".to_string();
    };
    match session
        .expires_at
        .and_then(|t| SystemTime::try_from(t).ok())
    {
        Some(due) if due > now => format!("before {time}"),
        _ => time,
    }
}

/// A moment to come: `TIME (in 45m)`, `TIME (due)` once past, `-` when unknown.
pub fn until_text(at: Option<&prost_types::Timestamp>, now: SystemTime) -> String {
    let Some(time) = render::timestamp(at) else {
        return "-".to_string();
    };
    let left = at
        .and_then(|t| SystemTime::try_from(*t).ok())
        .and_then(|t| t.duration_since(now).ok())
        .filter(|left| !left.is_zero());
    match left {
        Some(left) => format!("{time} (in {})", left_text(left)),
        None => format!("{time} (due)"),
    }
}

/// Time left for people: whole seconds, whole minutes from 10 minutes on.
fn left_text(left: Duration) -> String {
    let mut secs = (left.as_millis() as u64).div_ceil(1000).max(1);
    if secs >= 600 {
        secs = (secs + 30) / 60 * 60;
    }
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// A session's state for people: `live`, `live, locked` or `ended: REASON`.
/// The server's state name (older servers send none: live or ended).
fn state_name(session: &SessionSummary) -> &str {
    match session.state.as_str() {
        "" if session.ended.is_empty() => "live",
        "" => "ended",
        state => state,
    }
}

fn state_text(session: &SessionSummary) -> String {
    let starts = || render::timestamp(session.scheduled_at.as_ref()).unwrap_or_default();
    match (state_name(session), session.locked) {
        ("scheduled", _) => format!("scheduled: starts {}", starts()),
        ("waiting", _) => format!("open: waiting for the candidate (start {})", starts()),
        ("live", false) => "live".to_string(),
        ("live", true) => "live, locked".to_string(),
        (_, _) => format!("ended: {}", session.ended),
    }
}

/// What to paste into a calendar invite for a scheduled session: when, and the command
/// for the candidate (interviewers get theirs separately).
pub fn invite_text(created: &CreateSessionResponse) -> Option<String> {
    let session = created.session.as_ref()?;
    let starts = render::timestamp(session.scheduled_at.as_ref())?;
    let candidate = &created.ssh.as_ref()?.candidate;
    Some(format!(
        "--- invite (for the candidate) ---\n\
         Your interview starts at {starts} (UTC). At that time, open a terminal and run:\n\n\
         \x20   {candidate}\n\n\
         You will get a Linux machine with a problem to solve; the interviewers see the same\n\
         screen. Nothing to install besides ssh. Until shortly before the start, the\n\
         command only tells you when to come back.\n\
         ---\n"
    ))
}

/// `session list` for people: a table with columns ID, TASK, CREATED BY, ENDS/ENDED,
/// STATE.
pub fn list_text(sessions: &[SessionSummary], now: SystemTime) -> String {
    let mut rows = vec![
        ["ID", "TASK", "CREATED BY", "STARTS", "ENDS/ENDED", "STATE"]
            .map(str::to_string)
            .to_vec(),
    ];
    for s in sessions {
        let waiting = matches!(state_name(s), "scheduled" | "waiting");
        rows.push(vec![
            s.id.clone(),
            s.task.clone(),
            s.created_by.clone(),
            if s.scheduled_at.is_some() && waiting {
                until_text(s.scheduled_at.as_ref(), now)
            } else {
                render::timestamp(s.started_at.as_ref()).unwrap_or_else(|| "-".to_string())
            },
            if waiting {
                "-".to_string()
            } else {
                ends_text(s, now)
            },
            state_text(s),
        ]);
    }
    render::table(&rows)
}

/// `session show` for people: aligned `key: value` lines, then who is connected.
pub fn show_text(show: &ShowSessionResponse, now: SystemTime) -> String {
    let none = SessionSummary::default();
    let s = show.session.as_ref().unwrap_or(&none);
    let mut lines = vec![
        ("id", s.id.clone()),
        ("task", s.task.clone()),
        ("created by", s.created_by.clone()),
        (
            "created",
            render::timestamp(s.created_at.as_ref()).unwrap_or_else(|| "-".to_string()),
        ),
        (
            if s.ended.is_empty() { "ends" } else { "ended" },
            ends_text(s, now),
        ),
        ("state", state_text(s)),
    ];
    if s.ended.is_empty() {
        lines.push((
            "typing",
            if s.locked {
                "the candidate only (locked)"
            } else {
                "the candidate and interviewers with writer access"
            }
            .to_string(),
        ));
    }
    lines.push(("instance", s.instance_id.clone()));
    if let Some(t) = &show.terminal {
        lines.push(("terminal", format!("{}x{}", t.cols, t.rows)));
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut text: String = lines
        .iter()
        .map(|(key, value)| format!("{:<width$} {value}\n", format!("{key}:")))
        .collect();
    text.push('\n');
    if show.participants.is_empty() {
        text.push_str("no one is connected\n");
        return text;
    }
    let mut rows = vec![
        [
            "#",
            "ROLE",
            "NAME",
            "ACCESS",
            "FROM",
            "CONNECTED SINCE",
            "WINDOW",
        ]
        .map(str::to_string)
        .to_vec(),
    ];
    for p in &show.participants {
        let dash = || "-".to_string();
        rows.push(vec![
            p.number.to_string(),
            p.role.clone(),
            p.name.clone(),
            p.access.clone(),
            if p.from.is_empty() {
                dash()
            } else {
                p.from.clone()
            },
            render::timestamp(p.connected_since.as_ref()).unwrap_or_else(dash),
            p.window
                .as_ref()
                .map_or_else(dash, |w| format!("{}x{}", w.cols, w.rows)),
        ]);
    }
    text.push_str(&render::table(&rows));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn ts(seconds: u64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: seconds as i64,
            nanos: 0,
        })
    }

    fn summary() -> SessionSummary {
        SessionSummary {
            id: "3f0c9a1e-0000-4000-8000-000000000001".into(),
            task: "disk-full".into(),
            created_by: "alice".into(),
            created_at: ts(NOW),
            expires_at: ts(NOW + 45 * 60),
            ended: String::new(),
            instance_id: "9b1d0000-0000-4000-8000-000000000002".into(),
            locked: false,
            state: "live".into(),
            scheduled_at: None,
            started_at: ts(NOW),
        }
    }

    fn logins(prefix: &str) -> SessionLogins {
        let login = |role: &str| format!("{prefix}{role}");
        SessionLogins {
            candidate: login("c"),
            interviewer: login("i"),
            observer: login("o"),
        }
    }

    fn created() -> CreateSessionResponse {
        CreateSessionResponse {
            session: Some(summary()),
            tokens: Some(logins("tok-")),
            ssh: Some(SessionLogins {
                candidate: "ssh -p 2222 tok-c@localhost".into(),
                interviewer: "ssh -p 2222 tok-i@localhost".into(),
                observer: "ssh -p 2222 tok-o@localhost".into(),
            }),
            web: None,
        }
    }

    #[test]
    fn create_json_shape() {
        let value = serde_json::to_value(CreatedView::from(&created())).unwrap();
        assert_eq!(
            value,
            json!({
                "id": "3f0c9a1e-0000-4000-8000-000000000001",
                "task": "disk-full",
                "expires_at": "2027-01-15T08:45:00Z",
                "tokens": {"candidate": "tok-c", "interviewer": "tok-i", "observer": "tok-o"},
                "ssh": {
                    "candidate": "ssh -p 2222 tok-c@localhost",
                    "interviewer": "ssh -p 2222 tok-i@localhost",
                    "observer": "ssh -p 2222 tok-o@localhost"
                }
            })
        );
    }

    #[test]
    fn create_text() {
        let text = created_text(&created(), false, now());
        assert_eq!(
            text,
            "session 3f0c9a1e-0000-4000-8000-000000000001  task disk-full  \
             ends 2027-01-15T08:45:00Z (in 45m)\n\
             candidate:    ssh -p 2222 tok-c@localhost\n\
             interviewer:  ssh -p 2222 tok-i@localhost\n\
             observer:     ssh -p 2222 tok-o@localhost\n"
        );
        let with_keys = created_text(&created(), true, now());
        assert!(with_keys.ends_with(
            "\nwith a registered key: ssh -p 2222 3f0c9a1e-0000-4000-8000-000000000001@localhost\n"
        ));
    }

    #[test]
    fn ends_and_time_left() {
        let mut s = summary();
        s.expires_at = ts(NOW + 90 * 60 + 10);
        assert_eq!(ends_text(&s, now()), "2027-01-15T09:30:10Z (in 1h 30m)");
        s.expires_at = ts(NOW + 75);
        assert!(ends_text(&s, now()).ends_with("(in 1m 15s)"));
        s.ended = "ended by alice".into();
        assert_eq!(ends_text(&s, now()), "before 2027-01-15T08:01:15Z");
        s.expires_at = ts(NOW - 5);
        assert_eq!(ends_text(&s, now()), "2027-01-15T07:59:55Z");
        s.expires_at = None;
        assert_eq!(ends_text(&s, now()), "-");
    }

    #[test]
    fn list_table_and_json() {
        let mut ended = summary();
        ended.id = "short".into();
        ended.ended = "time is up".into();
        ended.state = "ended".into();
        ended.expires_at = ts(NOW - 60);
        let mut scheduled = summary();
        scheduled.state = "scheduled".into();
        scheduled.scheduled_at = ts(NOW + 3600);
        scheduled.started_at = None;
        let text = list_text(&[summary(), ended.clone(), scheduled.clone()], now());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("ID "));
        let col = lines[0].find("STATE").unwrap();
        assert_eq!(&lines[1][col..], "live");
        assert_eq!(&lines[2][col..], "ended: time is up");
        assert_eq!(&lines[3][col..], "scheduled: starts 2027-01-15T09:00:00Z");
        let starts = lines[0].find("STARTS").unwrap();
        assert!(
            lines[3][starts..].starts_with("2027-01-15T09:00:00Z (in 1h)"),
            "{text}"
        );
        let value = serde_json::to_value(SessionView::from(&scheduled)).unwrap();
        assert_eq!(value["state"], "scheduled");
        assert_eq!(value["scheduled_at"], "2027-01-15T09:00:00Z");
        let value = serde_json::to_value(SessionView::from(&ended)).unwrap();
        assert_eq!(value["state"], "ended");
        assert_eq!(value["ended"], "time is up");
        assert_eq!(value["created_by"], "alice");
        let value = serde_json::to_value(SessionView::from(&summary())).unwrap();
        assert_eq!(value["ended"], serde_json::Value::Null);
    }

    #[test]
    fn show_participants() {
        let show = ShowSessionResponse {
            session: Some(summary()),
            terminal: Some(TerminalSize { rows: 24, cols: 80 }),
            participants: vec![Participant {
                number: 1,
                role: "candidate".into(),
                name: "bob@laptop".into(),
                access: "writer".into(),
                from: "10.0.0.7:51000".into(),
                connected_since: ts(NOW + 30),
                window: Some(TerminalSize {
                    rows: 40,
                    cols: 120,
                }),
                via: "key".into(),
            }],
        };
        let text = show_text(&show, now());
        assert!(text.contains("terminal:   80x24\n"), "{text}");
        assert!(text.contains("state:      live\n"), "{text}");
        let table: Vec<&str> = text.lines().skip_while(|l| !l.starts_with('#')).collect();
        assert_eq!(table.len(), 2, "{text}");
        assert!(table[0].ends_with("CONNECTED SINCE       WINDOW"), "{text}");
        assert!(table[1].starts_with("1  candidate  bob@laptop  writer  10.0.0.7:51000"));
        assert!(table[1].ends_with("2027-01-15T08:00:30Z  120x40"), "{text}");
        let value = serde_json::to_value(SessionDetailView::from(&show)).unwrap();
        assert_eq!(value["task"], "disk-full");
        assert_eq!(value["terminal"], json!({"cols": 80, "rows": 24}));
        assert_eq!(value["participants"][0]["window"]["cols"], 120);
        assert_eq!(value["participants"][0]["via"], "key");
        let empty = ShowSessionResponse {
            participants: vec![],
            ..show
        };
        assert!(show_text(&empty, now()).ends_with("\nno one is connected\n"));
    }
}
