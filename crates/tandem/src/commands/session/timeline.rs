//! `session timeline` and `session report`: a session's timeline as a table, one JSON
//! document, or a self-contained report (Markdown, or HTML with its style inline).

use serde::Serialize;
use tandem_proto::v1::{SessionTimelineResponse, TimelineEntry, TimelineMoment};

use crate::render;

/// One timeline entry, as `-o json` shows it.
#[derive(Debug, Serialize)]
pub struct EntryView {
    /// RFC 3339, milliseconds.
    pub time: Option<String>,
    /// Seconds since the session's recording started.
    pub offset_s: f64,
    /// What happened (see the proto's `TimelineEntry.kind`).
    pub kind: String,
    /// Who.
    pub by: String,
    /// The line shown.
    pub text: String,
    /// A command's exit status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// A command's working directory.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cwd: String,
    /// How long a command ran, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// A check's or condition's result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
    /// A condition's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// A condition's progress, as `-o json` shows it.
#[derive(Debug, Serialize)]
pub struct ConditionView {
    /// The condition.
    pub name: String,
    /// Whether the last check passed it.
    pub passing: bool,
    /// When it first passed.
    pub first_passed: Option<String>,
    /// Seconds into the session when it first passed.
    pub first_passed_offset_s: Option<f64>,
}

/// `session timeline -o json`: one document.
#[derive(Debug, Serialize)]
pub struct TimelineView {
    /// The session's id.
    pub id: String,
    /// Its task.
    pub task: String,
    /// When it started and ended.
    pub started: Option<String>,
    /// When it ended.
    pub ended: Option<String>,
    /// Why it ended.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub end_reason: String,
    /// Conditions and when each first passed.
    pub conditions: Vec<ConditionView>,
    /// When the whole task first passed.
    pub solved: Option<String>,
    /// Seconds into the session when the task first passed.
    pub solved_offset_s: Option<f64>,
    /// Hints revealed, of how many.
    pub hints_revealed: u32,
    /// The task's hints.
    pub hints_total: u32,
    /// Every entry in time order.
    pub entries: Vec<EntryView>,
}

fn time(m: Option<&TimelineMoment>) -> Option<String> {
    let ts = m?.time.as_ref()?;
    let t = std::time::SystemTime::try_from(*ts).ok()?;
    Some(humantime::format_rfc3339_millis(t).to_string())
}

impl From<&SessionTimelineResponse> for TimelineView {
    fn from(t: &SessionTimelineResponse) -> Self {
        let session = t.session.clone().unwrap_or_default();
        TimelineView {
            id: session.id,
            task: session.task,
            started: time(t.started.as_ref()),
            ended: time(t.ended.as_ref()),
            end_reason: t.end_reason.clone(),
            conditions: t
                .conditions
                .iter()
                .map(|c| ConditionView {
                    name: c.name.clone(),
                    passing: c.passing,
                    first_passed: time(c.first_passed.as_ref()),
                    first_passed_offset_s: c.first_passed.as_ref().map(|m| m.offset_s),
                })
                .collect(),
            solved: time(t.solved.as_ref()),
            solved_offset_s: t.solved.as_ref().map(|m| m.offset_s),
            hints_revealed: t.hints_revealed,
            hints_total: t.hints_total,
            entries: t
                .entries
                .iter()
                .map(|e| EntryView {
                    time: time(e.at.as_ref()),
                    offset_s: e.at.as_ref().map_or(0.0, |m| m.offset_s),
                    kind: e.kind.clone(),
                    by: e.by.clone(),
                    text: e.text.clone(),
                    exit_code: e.exit_code,
                    cwd: e.cwd.clone(),
                    duration_s: e.duration_s,
                    passed: e.passed,
                    name: e.name.clone(),
                })
                .collect(),
        }
    }
}

/// `12:34` (minutes and seconds into the session) or `1:02:03`.
fn clock(offset_s: f64) -> String {
    let s = offset_s.max(0.0) as u64;
    match s / 3600 {
        0 => format!("{:02}:{:02}", s / 60, s % 60),
        h => format!("{h}:{:02}:{:02}", s / 60 % 60, s % 60),
    }
}

/// One line of what an entry says (a command with its status and directory).
fn entry_text(e: &TimelineEntry) -> String {
    match (e.kind.as_str(), e.exit_code) {
        ("command", Some(code)) if e.cwd.is_empty() => format!("$ {}  → exit {code}", e.text),
        ("command", Some(code)) => format!("$ {}  → exit {code}  (in {})", e.text, e.cwd),
        ("command", None) => format!("$ {}  (did not finish)", e.text),
        _ => e.text.clone(),
    }
}

/// `session timeline`: a table, time into the session first.
pub fn timeline_text(t: &SessionTimelineResponse) -> String {
    let mut rows = vec![vec![
        "AT".to_string(),
        "WHAT".to_string(),
        "WHO".to_string(),
        "".to_string(),
    ]];
    for e in &t.entries {
        rows.push(vec![
            clock(e.at.as_ref().map_or(0.0, |m| m.offset_s)),
            e.kind.clone(),
            e.by.clone(),
            one_line(&entry_text(e)),
        ]);
    }
    let mut out = render::table(&rows);
    out.push_str(&progress_text(t));
    render::terminal_safe(&out)
}

fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if text.lines().nth(1).is_some() {
        format!("{line} …")
    } else {
        line.to_string()
    }
}

/// Conditions, solved, hints: a few lines under the table.
fn progress_text(t: &SessionTimelineResponse) -> String {
    let mut out = String::new();
    for c in &t.conditions {
        out.push_str(&match &c.first_passed {
            Some(m) => format!(
                "condition {}: first passed at {}{}\n",
                c.name,
                clock(m.offset_s),
                if c.passing { "" } else { " (fails now)" }
            ),
            None => format!("condition {}: never passed\n", c.name),
        });
    }
    out.push_str(&match &t.solved {
        Some(m) => format!("solved at {}\n", clock(m.offset_s)),
        None => "not solved\n".to_string(),
    });
    out.push_str(&format!(
        "hints: {} of {} revealed\n",
        t.hints_revealed, t.hints_total
    ));
    out
}

/// People: each name that joined, with their role.
fn people(t: &SessionTimelineResponse) -> Vec<String> {
    let mut people: Vec<String> = Vec::new();
    for e in t.entries.iter().filter(|e| e.kind == "join") {
        let name = e.by.rsplit_once(" (#").map_or(e.by.as_str(), |(n, _)| n);
        let role = e.text.strip_prefix("joined as ").unwrap_or(&e.text);
        let who = format!("{name} ({role})");
        if !people.contains(&who) {
            people.push(who);
        }
    }
    people
}

fn duration_text(t: &SessionTimelineResponse) -> String {
    match (&t.started, &t.ended) {
        (Some(s), Some(e)) => clock(e.offset_s - s.offset_s),
        (Some(_), None) => "still live".into(),
        _ => "unknown".into(),
    }
}

/// `session report --format md`.
pub fn report_markdown(t: &SessionTimelineResponse) -> String {
    render::terminal_safe(&markdown(t))
}

fn markdown(t: &SessionTimelineResponse) -> String {
    let session = t.session.clone().unwrap_or_default();
    let mut out = format!("# Interview report: {}\n\n", session.task);
    out.push_str(&format!("- Session: `{}`\n", session.id));
    out.push_str(&format!(
        "- Started: {}\n",
        time(t.started.as_ref()).unwrap_or_else(|| "?".into())
    ));
    out.push_str(&format!("- Duration: {}\n", duration_text(t)));
    if !t.end_reason.is_empty() {
        out.push_str(&format!("- Ended: {}\n", t.end_reason));
    }
    out.push_str(&format!("- People: {}\n", people(t).join(", ")));
    out.push_str(&format!(
        "- Solved: {}\n",
        t.solved
            .as_ref()
            .map_or("no".to_string(), |m| format!("after {}", clock(m.offset_s)))
    ));
    out.push_str(&format!(
        "- Hints used: {} of {}\n",
        t.hints_revealed, t.hints_total
    ));
    if !t.conditions.is_empty() {
        out.push_str("\n## Conditions\n\n| condition | first passed | now |\n|---|---|---|\n");
        for c in &t.conditions {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                md(&c.name),
                c.first_passed
                    .as_ref()
                    .map_or("never".to_string(), |m| clock(m.offset_s)),
                if c.passing { "passes" } else { "fails" }
            ));
        }
    }
    let section = |title: &str, kinds: &[&str]| -> String {
        let entries: Vec<&TimelineEntry> = t
            .entries
            .iter()
            .filter(|e| kinds.contains(&e.kind.as_str()))
            .collect();
        if entries.is_empty() {
            return String::new();
        }
        let mut s = format!("\n## {title}\n\n| at | who | what |\n|---|---|---|\n");
        for e in entries {
            s.push_str(&format!(
                "| {} | {} | {} |\n",
                clock(e.at.as_ref().map_or(0.0, |m| m.offset_s)),
                md(&e.by),
                md(&e.text)
            ));
        }
        s
    };
    out.push_str(&section("Hints", &["hint"]));
    out.push_str(&section("Notes", &["note"]));
    let commands: Vec<&TimelineEntry> = t.entries.iter().filter(|e| e.kind == "command").collect();
    if !commands.is_empty() {
        out.push_str(
            "\n## Commands\n\n| at | who | command | exit | directory |\n|---|---|---|---|---|\n",
        );
        for e in commands {
            out.push_str(&format!(
                "| {} | {} | `{}` | {} | {} |\n",
                clock(e.at.as_ref().map_or(0.0, |m| m.offset_s)),
                md(&e.by),
                e.text.replace('`', "'").replace('|', "\\|"),
                e.exit_code.map_or("-".to_string(), |c| c.to_string()),
                md(&e.cwd)
            ));
        }
    }
    out.push_str("\n## Timeline\n\n| at | what | who | |\n|---|---|---|---|\n");
    for e in &t.entries {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            clock(e.at.as_ref().map_or(0.0, |m| m.offset_s)),
            e.kind,
            md(&e.by),
            md(&one_line(&entry_text(e)))
        ));
    }
    out
}

/// Text in a Markdown table cell.
fn md(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

/// `session report --format html`: one file, no external resources.
pub fn report_html(t: &SessionTimelineResponse) -> String {
    render::terminal_safe(&html_page(t))
}

fn html_page(t: &SessionTimelineResponse) -> String {
    let session = t.session.clone().unwrap_or_default();
    let mut out = String::from("<!doctype html>\n<html><head><meta charset=\"utf-8\">\n");
    out.push_str(&format!(
        "<title>Interview report: {}</title>\n",
        html(&session.task)
    ));
    out.push_str(
        "<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em}\
         table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;\
         padding:.2em .5em;text-align:left;vertical-align:top}code{font:13px monospace}\
         .pass{color:#070}.fail{color:#a00}.note{background:#ffd}</style></head><body>\n",
    );
    out.push_str(&format!(
        "<h1>Interview report: {}</h1>\n<ul>\n",
        html(&session.task)
    ));
    let item = |k: &str, v: &str| format!("<li><b>{k}</b>: {}</li>\n", html(v));
    out.push_str(&item("Session", &session.id));
    out.push_str(&item(
        "Started",
        &time(t.started.as_ref()).unwrap_or_else(|| "?".into()),
    ));
    out.push_str(&item("Duration", &duration_text(t)));
    if !t.end_reason.is_empty() {
        out.push_str(&item("Ended", &t.end_reason));
    }
    out.push_str(&item("People", &people(t).join(", ")));
    out.push_str(&item(
        "Solved",
        &t.solved
            .as_ref()
            .map_or("no".to_string(), |m| format!("after {}", clock(m.offset_s))),
    ));
    out.push_str(&item(
        "Hints used",
        &format!("{} of {}", t.hints_revealed, t.hints_total),
    ));
    out.push_str("</ul>\n");
    if !t.conditions.is_empty() {
        out.push_str("<h2>Conditions</h2>\n<table><tr><th>condition</th><th>first passed</th><th>now</th></tr>\n");
        for c in &t.conditions {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>\n",
                html(&c.name),
                c.first_passed
                    .as_ref()
                    .map_or("never".to_string(), |m| clock(m.offset_s)),
                if c.passing { "pass" } else { "fail" },
                if c.passing { "passes" } else { "fails" }
            ));
        }
        out.push_str("</table>\n");
    }
    out.push_str(
        "<h2>Timeline</h2>\n<table><tr><th>at</th><th>what</th><th>who</th><th></th></tr>\n",
    );
    for e in &t.entries {
        let class = match (e.kind.as_str(), e.passed) {
            ("note", _) => " class=\"note\"",
            (_, Some(true)) => " class=\"pass\"",
            (_, Some(false)) => " class=\"fail\"",
            _ => "",
        };
        let what = if e.kind == "command" {
            format!("<code>{}</code>", html(&entry_text(e)))
        } else {
            html(&e.text).replace('\n', "<br>")
        };
        out.push_str(&format!(
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{what}</td></tr>\n",
            clock(e.at.as_ref().map_or(0.0, |m| m.offset_s)),
            html(&e.kind),
            html(&e.by),
        ));
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

/// Text in HTML.
fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset_s: f64) -> Option<TimelineMoment> {
        Some(TimelineMoment {
            time: Some(prost_types::Timestamp {
                seconds: 1_800_000_000 + offset_s as i64,
                nanos: 0,
            }),
            offset_s,
        })
    }

    fn sample() -> SessionTimelineResponse {
        SessionTimelineResponse {
            entries: vec![
                TimelineEntry {
                    at: at(1.0),
                    kind: "join".into(),
                    by: "cand (#1)".into(),
                    text: "joined as candidate".into(),
                    ..Default::default()
                },
                TimelineEntry {
                    at: at(65.0),
                    kind: "command".into(),
                    by: "cand (#1)".into(),
                    text: "cat <x> | wc".into(),
                    exit_code: Some(1),
                    cwd: "/root".into(),
                    ..Default::default()
                },
                TimelineEntry {
                    at: at(70.0),
                    kind: "note".into(),
                    by: "ivy".into(),
                    text: "good & <fast>".into(),
                    ..Default::default()
                },
            ],
            solved: at(90.0),
            started: at(0.0),
            ..Default::default()
        }
    }

    #[test]
    fn reports_escape_what_people_typed() {
        let t = sample();
        let html = report_html(&t);
        assert!(html.contains("<code>$ cat &lt;x&gt; | wc  → exit 1  (in /root)</code>"));
        assert!(html.contains("good &amp; &lt;fast&gt;"));
        assert!(!html.contains("<fast>"));
        let md = report_markdown(&t);
        assert!(
            md.contains("| 01:05 | cand (#1) | `cat <x> \\| wc` | 1 | /root |"),
            "{md}"
        );
        assert!(md.contains("- People: cand (candidate)"), "{md}");
        assert!(md.contains("- Solved: after 01:30"), "{md}");
        let text = timeline_text(&t);
        assert!(text.contains("01:05"), "{text}");
        assert!(text.contains("solved at 01:30"), "{text}");
    }

    #[test]
    fn nothing_the_candidate_printed_reaches_the_readers_terminal() {
        let mut t = sample();
        for e in &mut t.entries {
            e.cwd = "/root\x1b]0;pwned\x07\x1b[2J".into();
            e.text = format!("{}\u{9b}31m\u{202e}gnp.exe", e.text);
        }
        for out in [timeline_text(&t), report_markdown(&t), report_html(&t)] {
            assert!(
                !out.chars()
                    .any(|c| c == '\x1b' || c == '\x07' || c == '\u{9b}'),
                "{out:?}"
            );
            assert!(out.contains('\u{FFFD}'), "{out:?}");
        }
    }
}
