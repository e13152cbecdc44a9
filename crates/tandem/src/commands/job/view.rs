//! How `tandem job …` shows jobs: for people (`key: value` lines, a table, a one-line
//! summary) and for scripts (JSON, see [`crate::render`] for the conventions).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tandem_proto::v1::{Job, JobState, ResourceUsage};

use crate::render::{LimitsView, command_line, format_bytes, limits_text, table, timestamp};

/// A job as printed by `-o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// `starting`, `running`, `exited`, `signaled`, `stopped`, `oom_killed`, `failed`,
    /// `lost` (or `unknown` for a state this client does not know).
    pub state: &'static str,
    /// Exit code, when the command exited.
    pub exit_code: Option<i32>,
    /// Signal number, when a signal ended the command.
    pub signal: Option<i32>,
    /// Whether a stop had to kill the job after the grace period.
    pub stop_forced: bool,
    /// Why a `failed` job failed.
    pub failure_reason: Option<String>,
    /// The user who started the job.
    pub owner: String,
    /// The program.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The job's labels, sorted by key.
    pub labels: BTreeMap<String, String>,
    /// Whether the job runs on a terminal.
    pub terminal: bool,
    /// When the job was created (RFC 3339).
    pub created_at: Option<String>,
    /// When its command started.
    pub started_at: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Bytes in the output log.
    pub output_bytes: u64,
    /// Output bytes dropped beyond the output cap.
    pub output_dropped_bytes: u64,
    /// Resource usage, when the server reported it.
    pub usage: Option<UsageView>,
    /// Resource limits; `null` fields are unlimited.
    pub limits: LimitsView,
}

/// Resource usage as printed by `-o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageView {
    /// CPU time, microseconds.
    pub cpu_usec: u64,
    /// CPU time in user mode, microseconds.
    pub cpu_user_usec: u64,
    /// CPU time in kernel mode, microseconds.
    pub cpu_system_usec: u64,
    /// Peak memory, bytes.
    pub memory_peak_bytes: Option<u64>,
    /// Bytes read from disk.
    pub io_read_bytes: Option<u64>,
    /// Bytes written to disk.
    pub io_write_bytes: Option<u64>,
    /// OOM kills in the job.
    pub oom_kills: u64,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        JobView {
            id: job.id.clone(),
            state: state_name(job.state),
            exit_code: job.exit_code,
            signal: job.signal,
            stop_forced: job.stop_forced,
            failure_reason: (!job.failure_reason.is_empty()).then(|| job.failure_reason.clone()),
            owner: job.owner.clone(),
            command: job.command.clone(),
            args: job.args.clone(),
            labels: job
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            terminal: job.terminal,
            created_at: timestamp(job.created_at.as_ref()),
            started_at: timestamp(job.started_at.as_ref()),
            ended_at: timestamp(job.ended_at.as_ref()),
            output_bytes: job.output_bytes,
            output_dropped_bytes: job.output_dropped_bytes,
            usage: job.usage.as_ref().map(UsageView::from),
            limits: job
                .limits
                .as_ref()
                .map(LimitsView::from)
                .unwrap_or_default(),
        }
    }
}

impl From<&ResourceUsage> for UsageView {
    fn from(u: &ResourceUsage) -> Self {
        UsageView {
            cpu_usec: u.cpu_usec,
            cpu_user_usec: u.cpu_user_usec,
            cpu_system_usec: u.cpu_system_usec,
            memory_peak_bytes: u.memory_peak_bytes,
            io_read_bytes: u.io_read_bytes,
            io_write_bytes: u.io_write_bytes,
            oom_kills: u.oom_kills,
        }
    }
}

/// The lower-case name of a protobuf `JobState` value (`unknown` for values this client
/// does not know).
pub fn state_name(state: i32) -> &'static str {
    match JobState::try_from(state) {
        Ok(JobState::Starting) => "starting",
        Ok(JobState::Running) => "running",
        Ok(JobState::Exited) => "exited",
        Ok(JobState::Signaled) => "signaled",
        Ok(JobState::Stopped) => "stopped",
        Ok(JobState::OomKilled) => "oom_killed",
        Ok(JobState::Failed) => "failed",
        Ok(JobState::Lost) => "lost",
        Ok(JobState::Unspecified) | Err(_) => "unknown",
    }
}

/// One line saying how a job stands or ended, e.g. `exited, code 3` or
/// `stopped after the grace period, signal 9 (SIGKILL)`.
pub fn summary(job: &Job) -> String {
    let state = state_name(job.state);
    let outcome = match (job.exit_code, job.signal) {
        (Some(code), _) => Some(format!("code {code}")),
        (None, Some(signal)) => Some(format!("signal {}", signal_text(signal))),
        (None, None) => None,
    };
    match JobState::try_from(job.state) {
        Ok(JobState::Stopped) => {
            let how = if job.stop_forced {
                "stopped after the grace period"
            } else {
                "stopped"
            };
            match outcome {
                Some(outcome) => format!("{how}, {outcome}"),
                None => how.to_string(),
            }
        }
        Ok(JobState::OomKilled) => match job.usage.as_ref().and_then(|u| u.memory_peak_bytes) {
            Some(peak) => format!("oom_killed, peak memory {}", format_bytes(peak)),
            None => state.to_string(),
        },
        Ok(JobState::Failed) if !job.failure_reason.is_empty() => {
            format!("failed: {}", job.failure_reason)
        }
        Ok(JobState::Lost) => "lost (tandemd restarted while it ran)".to_string(),
        _ => match outcome {
            Some(outcome) => format!("{state}, {outcome}"),
            None => state.to_string(),
        },
    }
}

/// `job status` for people: aligned `key: value` lines.
pub fn status_text(job: &Job) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("id", job.id.clone()),
        ("state", state_name(job.state).to_string()),
    ];
    if let Some(code) = job.exit_code {
        lines.push(("exit code", code.to_string()));
    }
    if let Some(signal) = job.signal {
        lines.push(("signal", signal_text(signal)));
    }
    if job.stop_forced {
        lines.push((
            "stop forced",
            "yes (killed after the grace period)".to_string(),
        ));
    }
    if !job.failure_reason.is_empty() {
        lines.push(("failure reason", job.failure_reason.clone()));
    }
    lines.push(("owner", job.owner.clone()));
    lines.push(("command", command_line(&job.command, &job.args)));
    lines.push((
        "terminal",
        if job.terminal { "yes" } else { "no" }.to_string(),
    ));
    if !job.labels.is_empty() {
        let labels: BTreeMap<_, _> = job.labels.iter().collect();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(("labels", labels.join(", ")));
    }
    lines.push(("limits", limits_text(job.limits.as_ref())));
    for (key, time) in [
        ("created", &job.created_at),
        ("started", &job.started_at),
        ("ended", &job.ended_at),
    ] {
        if let Some(time) = timestamp(time.as_ref()) {
            lines.push((key, time));
        }
    }
    let mut output = job.output_bytes.to_string();
    if job.output_bytes >= 1024 {
        output.push_str(&format!(" ({})", format_bytes(job.output_bytes)));
    }
    if job.output_dropped_bytes > 0 {
        output.push_str(&format!(
            ", {} dropped beyond the output cap",
            format_bytes(job.output_dropped_bytes)
        ));
    }
    lines.push(("output bytes", output));
    if let Some(usage) = &job.usage {
        lines.push((
            "cpu time",
            format!(
                "{} (user {}, system {})",
                cpu_text(usage.cpu_usec),
                cpu_text(usage.cpu_user_usec),
                cpu_text(usage.cpu_system_usec)
            ),
        ));
        if let Some(peak) = usage.memory_peak_bytes {
            lines.push(("memory peak", format_bytes(peak)));
        }
        if let Some(read) = usage.io_read_bytes {
            lines.push(("disk read", format_bytes(read)));
        }
        if let Some(written) = usage.io_write_bytes {
            lines.push(("disk written", format_bytes(written)));
        }
        if usage.oom_kills > 0 {
            lines.push(("oom kills", usage.oom_kills.to_string()));
        }
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    lines
        .iter()
        .map(|(key, value)| format!("{:<width$} {value}\n", format!("{key}:")))
        .collect()
}

/// `job list` for people: a table with columns ID, STATE, OWNER, CREATED, COMMAND.
pub fn list_text(jobs: &[Job]) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "STATE".to_string(),
        "OWNER".to_string(),
        "CREATED".to_string(),
        "COMMAND".to_string(),
    ]];
    for job in jobs {
        rows.push([
            job.id.clone(),
            state_name(job.state).to_string(),
            job.owner.clone(),
            timestamp(job.created_at.as_ref()).unwrap_or_else(|| "-".to_string()),
            command_line(&job.command, &job.args),
        ]);
    }
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    table(&rows)
}

/// Microseconds of CPU time as seconds: `1.234s`.
fn cpu_text(usec: u64) -> String {
    format!("{:.3}s", Duration::from_micros(usec).as_secs_f64())
}

/// A signal number with its name when it has one: `9 (SIGKILL)`.
pub fn signal_text(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(sig) => format!("{signal} ({})", sig.as_str()),
        Err(_) => signal.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tandem_proto::v1::Limits;

    fn job() -> Job {
        Job {
            id: "0b9a1f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b".into(),
            owner: "alice".into(),
            command: "sh".into(),
            args: vec!["-c".into(), "echo it's here; exit 3".into()],
            labels: [("task".to_string(), "nginx-502".to_string())].into(),
            terminal: false,
            limits: Some(Limits {
                memory_bytes: Some(512 << 20),
                cpu_cores: Some(0.5),
                ..Limits::default()
            }),
            state: JobState::Exited as i32,
            exit_code: Some(3),
            signal: None,
            stop_forced: false,
            failure_reason: String::new(),
            created_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 500_000_000,
            }),
            started_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_001,
                nanos: 0,
            }),
            ended_at: None,
            output_bytes: 12,
            output_dropped_bytes: 0,
            usage: None,
        }
    }

    #[test]
    fn state_names() {
        let names: Vec<&str> = (0..=9).map(state_name).collect();
        assert_eq!(
            names,
            [
                "unknown",
                "starting",
                "running",
                "exited",
                "signaled",
                "stopped",
                "oom_killed",
                "failed",
                "lost",
                "unknown"
            ]
        );
    }

    #[test]
    fn json_shape() {
        let value = serde_json::to_value(JobView::from(&job())).unwrap();
        assert_eq!(
            value,
            json!({
                "id": "0b9a1f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
                "state": "exited",
                "exit_code": 3,
                "signal": null,
                "stop_forced": false,
                "failure_reason": null,
                "owner": "alice",
                "command": "sh",
                "args": ["-c", "echo it's here; exit 3"],
                "labels": {"task": "nginx-502"},
                "terminal": false,
                "created_at": "2023-11-14T22:13:20Z",
                "started_at": "2023-11-14T22:13:21Z",
                "ended_at": null,
                "output_bytes": 12,
                "output_dropped_bytes": 0,
                "usage": null,
                "limits": {
                    "cpu_cores": 0.5,
                    "memory_bytes": 536870912,
                    "pids": null,
                    "io_read_bytes_per_second": null,
                    "io_write_bytes_per_second": null,
                    "io_read_ops_per_second": null,
                    "io_write_ops_per_second": null
                }
            })
        );
    }

    #[test]
    fn json_failed_oom_and_usage() {
        let mut failed = job();
        failed.state = JobState::Failed as i32;
        failed.exit_code = None;
        failed.failure_reason = "exec /bin/nope: No such file or directory".into();
        failed.limits = None;
        let value = serde_json::to_value(JobView::from(&failed)).unwrap();
        assert_eq!(value["state"], "failed");
        assert_eq!(value["exit_code"], serde_json::Value::Null);
        assert_eq!(
            value["failure_reason"],
            "exec /bin/nope: No such file or directory"
        );
        assert_eq!(value["limits"]["memory_bytes"], serde_json::Value::Null);

        let mut oom = job();
        oom.state = JobState::OomKilled as i32;
        oom.exit_code = None;
        oom.signal = Some(9);
        oom.usage = Some(ResourceUsage {
            cpu_usec: 1_500_000,
            memory_peak_bytes: Some(64 << 20),
            oom_kills: 1,
            ..ResourceUsage::default()
        });
        let value = serde_json::to_value(JobView::from(&oom)).unwrap();
        assert_eq!(value["state"], "oom_killed");
        assert_eq!(value["signal"], 9);
        assert_eq!(value["usage"]["memory_peak_bytes"], 64 << 20);
        assert_eq!(value["usage"]["io_read_bytes"], serde_json::Value::Null);
        assert_eq!(value["usage"]["oom_kills"], 1);
        assert_eq!(summary(&oom), "oom_killed, peak memory 64 MiB");
    }

    #[test]
    fn summaries() {
        assert_eq!(summary(&job()), "exited, code 3");
        let mut j = job();
        j.state = JobState::Stopped as i32;
        j.exit_code = None;
        j.signal = Some(9);
        j.stop_forced = true;
        assert_eq!(
            summary(&j),
            "stopped after the grace period, signal 9 (SIGKILL)"
        );
        j.state = JobState::Signaled as i32;
        j.stop_forced = false;
        j.signal = Some(15);
        assert_eq!(summary(&j), "signaled, signal 15 (SIGTERM)");
        j.state = JobState::Running as i32;
        j.signal = None;
        assert_eq!(summary(&j), "running");
        j.state = JobState::Failed as i32;
        j.failure_reason = "no such command".into();
        assert_eq!(summary(&j), "failed: no such command");
    }

    #[test]
    fn status_lines() {
        let text = status_text(&job());
        let expected = "\
id:           0b9a1f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b
state:        exited
exit code:    3
owner:        alice
command:      sh -c 'echo it'\\''s here; exit 3'
terminal:     no
labels:       task=nginx-502
limits:       cpu 0.5 cores, memory 512 MiB
created:      2023-11-14T22:13:20Z
started:      2023-11-14T22:13:21Z
output bytes: 12
";
        assert_eq!(text, expected);
    }

    #[test]
    fn table() {
        let mut second = job();
        second.id = "short".into();
        second.owner = "admin".into();
        second.state = JobState::Running as i32;
        second.created_at = None;
        second.command = "bash".into();
        second.args = vec![];
        let text = list_text(&[job(), second]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID "));
        assert!(lines[0].ends_with("COMMAND"));
        // Columns line up: STATE starts at the same place on every line.
        let col = lines[0].find("STATE").unwrap();
        assert_eq!(&lines[1][col..col + 6], "exited");
        assert_eq!(&lines[2][col..col + 7], "running");
        assert!(lines[2].ends_with("  bash"));
        assert_eq!(list_text(&[]).lines().count(), 1);
    }
}
