//! How `tandem task …` (and `tandem session check`) show tasks, task instances and check
//! results: for people and for scripts (JSON, see [`crate::render`] for the conventions).

use std::time::Duration;

use serde::Serialize;
use tandem_proto::v1::{
    CheckOutcome, CheckTaskResponse, Difficulty, InstanceState, ShowTaskResponse, TaskInstance,
    TaskSummary, WarmPool,
};

use crate::render::{self, LimitsView};

/// A task as printed by `task list -o json` (and the first fields of `task show -o json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    /// The task's name (its directory's name).
    pub name: String,
    /// One line saying what is broken.
    pub title: String,
    /// `easy`, `medium`, `hard` (or `unknown`).
    pub difficulty: &'static str,
    /// The time the candidate has, in whole seconds; `null` when the server sent none.
    pub time_limit_seconds: Option<u64>,
    /// What the candidate is told at login.
    pub description: String,
    /// The task's warm pool; `null` when the server keeps none.
    pub warm: Option<WarmView>,
}

/// A task's warm pool as printed by `task list -o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WarmView {
    /// How many sandboxes the server keeps set up.
    pub target: u32,
    /// Set up and waiting.
    pub ready: u32,
    /// Being set up.
    pub starting: u32,
    /// Why the last setup failed, while the pool waits to try again.
    pub error: Option<String>,
    /// When it tries again (RFC 3339).
    pub retry_at: Option<String>,
}

impl From<&WarmPool> for WarmView {
    fn from(w: &WarmPool) -> Self {
        WarmView {
            target: w.target,
            ready: w.ready,
            starting: w.starting,
            error: (!w.error.is_empty()).then(|| w.error.clone()),
            retry_at: render::timestamp(w.retry_at.as_ref()),
        }
    }
}

/// A task with what interviewers need, as printed by `task show -o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDetailView {
    /// The summary fields.
    #[serde(flatten)]
    pub task: TaskView,
    /// Who the candidate is inside the sandbox.
    pub user: String,
    /// The sandbox's resource limits; `null` fields are unlimited.
    pub limits: LimitsView,
    /// Hints, in the order to give them.
    pub hints: Vec<String>,
    /// How to fix it.
    pub solution: String,
}

/// A task instance as printed by `task run -o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceView {
    /// The instance's id, which is also its sandbox job's id.
    pub id: String,
    /// The task's name.
    pub task: String,
    /// Who started it.
    pub owner: String,
    /// `setting_up`, `ready`, `failed`, `ended` (or `unknown`).
    pub state: &'static str,
    /// The candidate's shell, a terminal job.
    pub shell_job_id: String,
    /// The setup script's job; `null` when the task has no setup.
    pub setup_job_id: Option<String>,
    /// Why a `failed` instance failed.
    pub failure_reason: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
    /// Taken from the task's warm pool (set up before it was asked for).
    pub warm: bool,
}

/// A check's result as printed by `task check -o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckView {
    /// Whether the task is solved (the outcome is `passed`).
    pub passed: bool,
    /// `passed`, `failed`, `error` (or `unknown`).
    pub outcome: &'static str,
    /// The check's explanation, as is.
    pub output: String,
    /// How long the check ran, milliseconds.
    pub duration_ms: u64,
    /// The named conditions it reported: `{"name", "passed", "reason"}`.
    pub conditions: Vec<serde_json::Value>,
}

impl From<&TaskSummary> for TaskView {
    fn from(task: &TaskSummary) -> Self {
        TaskView {
            name: task.name.clone(),
            title: task.title.clone(),
            difficulty: difficulty_name(task.difficulty),
            time_limit_seconds: time_limit(task).map(|d| d.as_secs()),
            description: task.description.clone(),
            warm: task.warm.as_ref().map(WarmView::from),
        }
    }
}

impl From<&ShowTaskResponse> for TaskDetailView {
    fn from(show: &ShowTaskResponse) -> Self {
        TaskDetailView {
            task: TaskView::from(show.task.as_ref().unwrap_or(&TaskSummary::default())),
            user: show.user.clone(),
            limits: show
                .limits
                .as_ref()
                .map(LimitsView::from)
                .unwrap_or_default(),
            hints: show.hints.clone(),
            solution: show.solution.clone(),
        }
    }
}

impl From<&TaskInstance> for InstanceView {
    fn from(i: &TaskInstance) -> Self {
        let non_empty = |s: &String| (!s.is_empty()).then(|| s.clone());
        InstanceView {
            id: i.id.clone(),
            task: i.task.clone(),
            owner: i.owner.clone(),
            state: instance_state_name(i.state),
            shell_job_id: i.shell_job_id.clone(),
            setup_job_id: non_empty(&i.setup_job_id),
            failure_reason: non_empty(&i.failure_reason),
            created_at: render::timestamp(i.created_at.as_ref()),
            warm: i.warm,
        }
    }
}

impl From<&CheckTaskResponse> for CheckView {
    fn from(check: &CheckTaskResponse) -> Self {
        let outcome = CheckOutcome::try_from(check.outcome).unwrap_or(CheckOutcome::Unspecified);
        CheckView {
            passed: outcome == CheckOutcome::Passed,
            outcome: outcome_name(check.outcome),
            output: check.output.clone(),
            duration_ms: check.duration_ms,
            conditions: check
                .conditions
                .iter()
                .map(
                    |c| serde_json::json!({"name": c.name, "passed": c.passed, "reason": c.reason}),
                )
                .collect(),
        }
    }
}

/// The lower-case name of a protobuf `Difficulty` value.
pub fn difficulty_name(difficulty: i32) -> &'static str {
    match Difficulty::try_from(difficulty) {
        Ok(Difficulty::Easy) => "easy",
        Ok(Difficulty::Medium) => "medium",
        Ok(Difficulty::Hard) => "hard",
        Ok(Difficulty::Unspecified) | Err(_) => "unknown",
    }
}

/// The lower-case name of a protobuf `InstanceState` value.
pub fn instance_state_name(state: i32) -> &'static str {
    match InstanceState::try_from(state) {
        Ok(InstanceState::SettingUp) => "setting_up",
        Ok(InstanceState::Ready) => "ready",
        Ok(InstanceState::Failed) => "failed",
        Ok(InstanceState::Ended) => "ended",
        Ok(InstanceState::Unspecified) | Err(_) => "unknown",
    }
}

/// The lower-case name of a protobuf `CheckOutcome` value.
pub fn outcome_name(outcome: i32) -> &'static str {
    match CheckOutcome::try_from(outcome) {
        Ok(CheckOutcome::Passed) => "passed",
        Ok(CheckOutcome::Failed) => "failed",
        Ok(CheckOutcome::Error) => "error",
        Ok(CheckOutcome::Unspecified) | Err(_) => "unknown",
    }
}

/// A task's time limit, `None` when unset or negative.
fn time_limit(task: &TaskSummary) -> Option<Duration> {
    Duration::try_from(task.time_limit?).ok()
}

/// A time limit for people: `10m`, `1h 30m`, `-` when unknown.
fn time_limit_text(task: &TaskSummary) -> String {
    time_limit(task).map_or_else(
        || "-".to_string(),
        |d| humantime::format_duration(d).to_string(),
    )
}

/// `task list` for people: a table with columns NAME, DIFFICULTY, TIME LIMIT, WARM
/// (ready/target, `+n` setting up, `failing`), TITLE; then a line per failing pool.
pub fn list_text(tasks: &[TaskSummary]) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "DIFFICULTY".to_string(),
        "TIME LIMIT".to_string(),
        "WARM".to_string(),
        "TITLE".to_string(),
    ]];
    let mut failing = String::new();
    for task in tasks {
        rows.push([
            task.name.clone(),
            difficulty_name(task.difficulty).to_string(),
            time_limit_text(task),
            task.warm
                .as_ref()
                .map_or_else(|| "-".to_string(), warm_text),
            task.title.clone(),
        ]);
        if let Some(w) = task.warm.as_ref().filter(|w| !w.error.is_empty()) {
            let next = render::timestamp(w.retry_at.as_ref())
                .map(|at| format!("; next try {at}"))
                .unwrap_or_default();
            failing.push_str(&format!("{}: warm pool: {}{next}\n", task.name, w.error));
        }
    }
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    render::table(&rows) + &failing
}

/// A warm pool in a table cell: `1/2`, `0/1 +1`, `0/1 failing`, `off`.
fn warm_text(w: &WarmPool) -> String {
    if w.target == 0 {
        return "off".to_string();
    }
    let mut text = format!("{}/{}", w.ready, w.target);
    if w.starting > 0 {
        text.push_str(&format!(" +{}", w.starting));
    }
    if !w.error.is_empty() {
        text.push_str(" failing");
    }
    text
}

/// `task show` for people: aligned `key: value` lines, then the description, the
/// numbered hints and the solution as indented blocks.
pub fn show_text(show: &ShowTaskResponse) -> String {
    let none = TaskSummary::default();
    let task = show.task.as_ref().unwrap_or(&none);
    let lines = [
        ("name", task.name.clone()),
        ("title", task.title.clone()),
        ("difficulty", difficulty_name(task.difficulty).to_string()),
        ("time limit", time_limit_text(task)),
        ("user", show.user.clone()),
        ("limits", render::limits_text(show.limits.as_ref())),
    ];
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut text: String = lines
        .iter()
        .map(|(key, value)| format!("{:<width$} {value}\n", format!("{key}:")))
        .collect();
    text.push_str("\ndescription:\n");
    text.push_str(&indent(&task.description, "  ", "  "));
    text.push_str("\nhints:\n");
    if show.hints.is_empty() {
        text.push_str("  (none)\n");
    }
    for (n, hint) in show.hints.iter().enumerate() {
        let first = format!("  {}. ", n + 1);
        let rest = " ".repeat(first.len());
        text.push_str(&indent(hint, &first, &rest));
    }
    text.push_str("\nsolution:\n");
    text.push_str(&indent(&show.solution, "  ", "  "));
    text
}

/// `text` with `first` before its first line and `rest` before every other non-empty line,
/// ending with a newline.
fn indent(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::new();
    for (n, line) in text.trim_end().lines().enumerate() {
        if n == 0 {
            out.push_str(first);
        } else if !line.is_empty() {
            out.push_str(rest);
        }
        out.push_str(line);
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str(first.trim_end());
        out.push('\n');
    }
    out
}

/// `task check` for people: the outcome on the first line, then the check's output (with
/// a final newline added when it has none). The output often quotes what the candidate
/// made (a web page's body, a file), so control characters are shown as U+FFFD: escape
/// sequences must not redraw the interviewer's screen ("passed") or set its clipboard.
pub fn check_text(check: &CheckTaskResponse) -> String {
    let output = crate::render::terminal_safe(&check.output);
    let mut text = format!("{}\n{output}", outcome_name(check.outcome));
    if !output.is_empty() && !output.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// The lines `task run` prints on stderr: how to use the new instance.
pub fn run_hint(instance: &TaskInstance) -> String {
    format!(
        "shell: tandem job attach {}\ncheck: tandem task check {}\nstop: tandem job stop {}\n",
        instance.shell_job_id, instance.id, instance.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary() -> TaskSummary {
        TaskSummary {
            name: "disk-full".into(),
            title: "The disk is full".into(),
            difficulty: Difficulty::Medium as i32,
            time_limit: Some(prost_types::Duration {
                seconds: 1800,
                nanos: 0,
            }),
            description: "Writes fail.\nFind out why.".into(),
            warm: None,
        }
    }

    #[test]
    fn list_table_and_json() {
        let mut other = summary();
        other.name = "x".into();
        other.difficulty = 0;
        other.time_limit = None;
        let text = list_text(&[summary(), other]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAME "));
        assert!(lines[0].ends_with("TITLE"));
        let col = lines[0].find("TIME LIMIT").unwrap();
        assert_eq!(&lines[1][col..col + 3], "30m");
        assert_eq!(&lines[2][col..col + 1], "-");
        assert!(lines[1].contains("medium"));
        assert!(lines[2].contains("unknown"));
        assert_eq!(
            serde_json::to_value(TaskView::from(&summary())).unwrap(),
            json!({
                "name": "disk-full",
                "title": "The disk is full",
                "difficulty": "medium",
                "time_limit_seconds": 1800,
                "description": "Writes fail.\nFind out why.",
                "warm": null,
            })
        );
    }

    #[test]
    fn warm_pools_in_the_list() {
        let mut ready = summary();
        ready.warm = Some(WarmPool {
            target: 2,
            ready: 1,
            starting: 1,
            ..Default::default()
        });
        let mut failing = summary();
        failing.name = "bad".into();
        failing.warm = Some(WarmPool {
            target: 1,
            error: "setup failed: exited with code 1".into(),
            retry_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        });
        let mut off = summary();
        off.name = "off".into();
        off.warm = Some(WarmPool::default());
        let text = list_text(&[ready.clone(), failing.clone(), off]);
        let lines: Vec<&str> = text.lines().collect();
        let col = lines[0].find("WARM").unwrap();
        assert_eq!(&lines[1][col..col + 6], "1/2 +1");
        assert_eq!(&lines[2][col..col + 11], "0/1 failing");
        assert_eq!(&lines[3][col..col + 3], "off");
        assert_eq!(
            lines[4],
            "bad: warm pool: setup failed: exited with code 1; next try 2023-11-14T22:13:20Z"
        );
        assert_eq!(
            serde_json::to_value(TaskView::from(&failing)).unwrap()["warm"],
            json!({
                "target": 1,
                "ready": 0,
                "starting": 0,
                "error": "setup failed: exited with code 1",
                "retry_at": "2023-11-14T22:13:20Z",
            })
        );
        assert_eq!(
            serde_json::to_value(TaskView::from(&ready)).unwrap()["warm"]["error"],
            json!(null)
        );
    }

    #[test]
    fn show_text_and_json() {
        let show = ShowTaskResponse {
            task: Some(summary()),
            hints: vec!["Look at df.".into(), "Then at lsof:\nwho holds it?".into()],
            solution: "Kill the writer.\nTruncate the file.\n".into(),
            user: "candidate".into(),
            limits: Some(tandem_proto::v1::Limits {
                memory_bytes: Some(256 << 20),
                ..Default::default()
            }),
            setup: "setup".into(),
            check: "check".into(),
        };
        let expected = "\
name:       disk-full
title:      The disk is full
difficulty: medium
time limit: 30m
user:       candidate
limits:     memory 256 MiB

description:
  Writes fail.
  Find out why.

hints:
  1. Look at df.
  2. Then at lsof:
     who holds it?

solution:
  Kill the writer.
  Truncate the file.
";
        assert_eq!(show_text(&show), expected);
        let value = serde_json::to_value(TaskDetailView::from(&show)).unwrap();
        assert_eq!(value["name"], "disk-full");
        assert_eq!(value["time_limit_seconds"], 1800);
        assert_eq!(value["user"], "candidate");
        assert_eq!(value["limits"]["memory_bytes"], 256 << 20);
        assert_eq!(value["limits"]["pids"], serde_json::Value::Null);
        assert_eq!(value["hints"][1], "Then at lsof:\nwho holds it?");
        assert_eq!(value["solution"], "Kill the writer.\nTruncate the file.\n");
        assert_eq!(value.get("setup"), None);
    }

    #[test]
    fn instance_and_check() {
        let instance = TaskInstance {
            id: "i-1".into(),
            task: "disk-full".into(),
            owner: "alice".into(),
            state: InstanceState::Ready as i32,
            shell_job_id: "s-1".into(),
            setup_job_id: String::new(),
            failure_reason: String::new(),
            created_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            warm: true,
        };
        assert_eq!(
            serde_json::to_value(InstanceView::from(&instance)).unwrap(),
            json!({
                "id": "i-1",
                "task": "disk-full",
                "owner": "alice",
                "state": "ready",
                "shell_job_id": "s-1",
                "setup_job_id": null,
                "failure_reason": null,
                "created_at": "2023-11-14T22:13:20Z",
                "warm": true,
            })
        );
        assert_eq!(
            run_hint(&instance),
            "shell: tandem job attach s-1\ncheck: tandem task check i-1\nstop: tandem job stop i-1\n"
        );

        let check = CheckTaskResponse {
            outcome: CheckOutcome::Failed as i32,
            output: "FAIL port-free: port 8080 still held by pid 123".into(),
            duration_ms: 42,
            conditions: vec![tandem_proto::v1::CheckCondition {
                name: "port-free".into(),
                passed: false,
                reason: "port 8080 still held by pid 123".into(),
            }],
        };
        assert_eq!(
            check_text(&check),
            "failed\nFAIL port-free: port 8080 still held by pid 123\n"
        );
        assert_eq!(
            serde_json::to_value(CheckView::from(&check)).unwrap(),
            json!({
                "passed": false,
                "outcome": "failed",
                "output": "FAIL port-free: port 8080 still held by pid 123",
                "duration_ms": 42,
                "conditions": [{
                    "name": "port-free", "passed": false,
                    "reason": "port 8080 still held by pid 123",
                }],
            })
        );
        let passed = CheckTaskResponse {
            outcome: CheckOutcome::Passed as i32,
            output: String::new(),
            duration_ms: 1,
            conditions: Vec::new(),
        };
        assert_eq!(check_text(&passed), "passed\n");
        assert!(CheckView::from(&passed).passed);
        // What the red team's page body did: clear the screen, print a verdict, set the
        // title, write the clipboard. Shown as text, the escapes as U+FFFD.
        let spoof = CheckTaskResponse {
            outcome: CheckOutcome::Failed as i32,
            output: "got 500: \x1b[2J\x1b[Hpassed\r\n\x1b]0;passed\x07\x1b]52;c;eA==\x07".into(),
            ..passed.clone()
        };
        assert_eq!(
            check_text(&spoof),
            "failed\ngot 500: \u{fffd}[2J\u{fffd}[Hpassed\u{fffd}\n\u{fffd}]0;passed\u{fffd}\u{fffd}]52;c;eA==\u{fffd}\n"
        );
        let odd = CheckTaskResponse {
            outcome: 9,
            ..passed
        };
        assert_eq!(CheckView::from(&odd).outcome, "unknown");
        assert!(!CheckView::from(&odd).passed);
    }
}
