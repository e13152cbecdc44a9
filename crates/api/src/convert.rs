//! Between the worker's types and the API's messages, with input validation that names
//! the offending field of the request.

use std::time::{Duration, SystemTime};
use tandem_proto::v1 as pb;
use tandem_worker::{ExitOutcome, JobError, JobId, JobInfo, JobSpec, JobState, Limits, PtySize};
use tonic::Status;

/// Parses a job id, naming the field on error.
pub fn job_id(field: &str, text: &str) -> Result<JobId, Status> {
    text.parse()
        .map_err(|_| Status::invalid_argument(format!("{field}: {text:?} is not a job id")))
}

/// A start request as a worker spec owned by `owner`.
pub fn spec_from_request(req: pb::StartJobRequest, owner: &str) -> Result<JobSpec, Status> {
    let mut spec = JobSpec::new(req.command, req.args).owner(owner);
    spec.env = req.env.into_iter().collect();
    spec.labels = req.labels.into_iter().collect();
    if !req.working_dir.is_empty() {
        spec.cwd = Some(req.working_dir.into());
    }
    if !req.hostname.is_empty() {
        spec.hostname = Some(req.hostname);
    }
    if let Some(t) = req.terminal {
        spec.pty = Some(terminal_size("terminal", &t)?);
    }
    if let Some(l) = req.limits {
        spec.limits = Limits {
            cpu: l.cpu_cores,
            memory: l.memory_bytes,
            pids: l.pids,
            io_read_bps: l.io_read_bytes_per_second,
            io_write_bps: l.io_write_bytes_per_second,
            io_read_iops: l.io_read_ops_per_second,
            io_write_iops: l.io_write_ops_per_second,
            disk: l.disk_bytes,
        };
    }
    spec.capabilities = req.capabilities;
    spec.validate()
        .map_err(|m| Status::invalid_argument(api_field_names(&m)))?;
    Ok(spec)
}

/// Limits as the API shows them.
pub fn limits(l: &Limits) -> pb::Limits {
    pb::Limits {
        cpu_cores: l.cpu,
        memory_bytes: l.memory,
        pids: l.pids,
        io_read_bytes_per_second: l.io_read_bps,
        io_write_bytes_per_second: l.io_write_bps,
        io_read_ops_per_second: l.io_read_iops,
        io_write_ops_per_second: l.io_write_iops,
        disk_bytes: l.disk,
    }
}

/// A terminal size from the API, naming `field` when out of range.
/// A size beyond the largest terminal a job may have is clamped to it.
pub fn terminal_size(field: &str, t: &pb::TerminalSize) -> Result<PtySize, Status> {
    if t.rows == 0 || t.cols == 0 {
        return Err(Status::invalid_argument(format!(
            "{field}: {}x{} is not a terminal size (at least 1 row and 1 column)",
            t.cols, t.rows
        )));
    }
    Ok(PtySize::clamped(t.cols, t.rows))
}

/// The worker names its own fields; requests use the API's names.
fn api_field_names(message: &str) -> String {
    const NAMES: [(&str, &str); 10] = [
        ("limits.disk", "limits.disk_bytes"),
        ("limits.cpu", "limits.cpu_cores"),
        ("limits.memory", "limits.memory_bytes"),
        ("limits.io_read_bps", "limits.io_read_bytes_per_second"),
        ("limits.io_write_bps", "limits.io_write_bytes_per_second"),
        ("limits.io_read_iops", "limits.io_read_ops_per_second"),
        ("limits.io_write_iops", "limits.io_write_ops_per_second"),
        ("cwd", "working_dir"),
        ("pty", "terminal"),
        ("args[", "args["),
    ];
    for (worker, api) in NAMES {
        if let Some(rest) = message.strip_prefix(worker) {
            return format!("{api}{rest}");
        }
    }
    message.to_string()
}

/// A grace period from the API (default 10 s), naming the field when invalid.
pub fn grace(d: Option<prost_types::Duration>) -> Result<Duration, Status> {
    let Some(d) = d else {
        return Ok(tandem_worker::DEFAULT_STOP_GRACE);
    };
    if d.seconds < 0 || d.nanos < 0 || d.seconds > 3600 {
        return Err(Status::invalid_argument(format!(
            "grace: {}.{:09}s is outside 0s to 1h",
            d.seconds, d.nanos
        )));
    }
    Ok(Duration::new(d.seconds as u64, d.nanos as u32))
}

/// The worker's error as a gRPC status.
pub fn status_from(err: JobError) -> Status {
    match &err {
        JobError::NotFound(_) => Status::not_found(err.to_string()),
        JobError::InvalidSpec(m) => Status::invalid_argument(api_field_names(m)),
        JobError::InvalidSize(m) => Status::invalid_argument(format!("terminal: {m}")),
        JobError::Start { .. } | JobError::NoTerminal(_) | JobError::Ended(_) => {
            Status::failed_precondition(err.to_string())
        }
        JobError::NotPermitted(_) | JobError::Setup(_) | JobError::Cgroup(_) => {
            Status::failed_precondition(err.to_string())
        }
        JobError::Io { .. } => Status::internal(err.to_string()),
    }
}

fn timestamp(t: Option<SystemTime>) -> Option<prost_types::Timestamp> {
    t.map(prost_types::Timestamp::from)
}

/// A job as the API shows it.
pub fn job(info: &JobInfo) -> pb::Job {
    let spec = &info.spec;
    let status = &info.status;
    let mut job = pb::Job {
        id: info.id.to_string(),
        owner: spec.owner.clone(),
        command: spec.command.clone(),
        args: spec.args.clone(),
        labels: spec.labels.clone().into_iter().collect(),
        terminal: spec.pty.is_some(),
        limits: Some(limits(&spec.limits)),
        created_at: timestamp(Some(status.created_at)),
        started_at: timestamp(status.started_at),
        ended_at: timestamp(status.ended_at),
        output_bytes: status.output_bytes,
        output_dropped_bytes: status.output_dropped_bytes,
        usage: status.usage.map(|u| pb::ResourceUsage {
            cpu_usec: u.cpu_usec,
            cpu_user_usec: u.cpu_user_usec,
            cpu_system_usec: u.cpu_system_usec,
            memory_peak_bytes: u.memory_peak_bytes,
            io_read_bytes: u.io_read_bytes,
            io_write_bytes: u.io_write_bytes,
            oom_kills: u.oom_kills,
        }),
        ..pb::Job::default()
    };
    let outcome = |job: &mut pb::Job, o: ExitOutcome| match o {
        ExitOutcome::Code(c) => job.exit_code = Some(c),
        ExitOutcome::Signal(s) => job.signal = Some(s),
    };
    let state = match &status.state {
        JobState::Starting => pb::JobState::Starting,
        JobState::Running => pb::JobState::Running,
        JobState::Exited { code } => {
            job.exit_code = Some(*code);
            pb::JobState::Exited
        }
        JobState::Signaled { signal } => {
            job.signal = Some(*signal);
            pb::JobState::Signaled
        }
        JobState::Stopped { forced, outcome: o } => {
            job.stop_forced = *forced;
            outcome(&mut job, *o);
            pb::JobState::Stopped
        }
        JobState::OomKilled { .. } => {
            // The OOM killer's signal.
            job.signal = Some(9);
            pb::JobState::OomKilled
        }
        JobState::Failed { reason } => {
            job.failure_reason = reason.clone();
            pb::JobState::Failed
        }
        JobState::Lost => {
            job.failure_reason =
                "the daemon stopped while the job was running; its processes were killed".into();
            pb::JobState::Lost
        }
    };
    job.set_state(state);
    job
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_api_field() {
        let req = |f: &dyn Fn(&mut pb::StartJobRequest)| {
            let mut r = pb::StartJobRequest {
                command: "/bin/true".into(),
                ..Default::default()
            };
            f(&mut r);
            spec_from_request(r, "alice")
                .map(|_| ())
                .map_err(|s| s.message().to_string())
        };
        assert_eq!(req(&|_| {}), Ok(()));
        let err = req(&|r| r.command.clear()).unwrap_err();
        assert!(err.starts_with("command"), "{err}");
        let err = req(&|r| r.working_dir = "relative".into()).unwrap_err();
        assert!(err.starts_with("working_dir"), "{err}");
        let err = req(&|r| {
            r.limits = Some(pb::Limits {
                cpu_cores: Some(-1.0),
                ..Default::default()
            })
        })
        .unwrap_err();
        assert!(err.starts_with("limits.cpu_cores"), "{err}");
        let err = req(&|r| {
            r.limits = Some(pb::Limits {
                memory_bytes: Some(1),
                ..Default::default()
            })
        })
        .unwrap_err();
        assert!(err.starts_with("limits.memory_bytes"), "{err}");
        let err = req(&|r| r.terminal = Some(pb::TerminalSize { rows: 0, cols: 80 })).unwrap_err();
        assert!(err.starts_with("terminal"), "{err}");
        assert!(
            grace(Some(prost_types::Duration {
                seconds: -1,
                nanos: 0
            }))
            .is_err()
        );
        assert_eq!(grace(None).unwrap(), Duration::from_secs(10));
        assert!(
            job_id("job_id", "nope")
                .unwrap_err()
                .message()
                .starts_with("job_id")
        );
    }
}
