//! The state machine of a job and the status snapshot callers see.

use crate::cgroup::ResourceUsage;
use crate::spec::{JobId, JobSpec};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::SystemTime;

pub use crate::protocol::ExitOutcome;

/// Where a job is in its life: `starting → running → one of the final states`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// `start` is setting the job up.
    Starting,
    /// The command was exec'd and has not ended.
    Running,
    /// The command exited on its own with this code.
    Exited {
        /// Exit code, 0–255.
        code: i32,
    },
    /// A signal killed the command, not sent by a stop.
    Signaled {
        /// Signal number.
        signal: i32,
    },
    /// A stop ended the job.
    Stopped {
        /// True when the grace period ran out and the job was killed; false when the
        /// command ended after the stop signal on its own terms.
        forced: bool,
        /// How the main process ended (on `forced`, always SIGKILL).
        outcome: ExitOutcome,
    },
    /// The kernel's OOM killer killed the job for exceeding its memory limit.
    OomKilled {
        /// Peak memory of the job, where the cgroup version reports it.
        memory_peak_bytes: Option<u64>,
    },
    /// The daemon stopped (crashed, or was killed) while the job was running; its
    /// processes were killed when the next daemon started. The output up to then is kept.
    Lost,
    /// The job could not run or its supervision broke; the reason says why.
    Failed {
        /// Human-readable cause including the OS error.
        reason: String,
    },
}

impl JobState {
    /// True for every state a job can no longer leave.
    pub fn is_finished(&self) -> bool {
        !matches!(self, Self::Starting | Self::Running)
    }
}

/// A snapshot of a job's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// Current state.
    pub state: JobState,
    /// Host pid of the job's `tandem-init` monitor (the worker's child for this job).
    /// For operators' eyes: the worker never signals pids, and after the job ends the
    /// number may belong to another process.
    pub pid: Option<u32>,
    /// When `start` was called.
    pub created_at: SystemTime,
    /// When the command was exec'd.
    pub started_at: Option<SystemTime>,
    /// When the job's last process was gone.
    pub ended_at: Option<SystemTime>,
    /// Bytes stored in the output log (including a truncation marker, if any).
    pub output_bytes: u64,
    /// Output bytes dropped because the log reached its cap.
    pub output_dropped_bytes: u64,
    /// Resources used: live while running, final once ended (`None` while starting).
    pub usage: Option<ResourceUsage>,
}

impl JobStatus {
    pub(crate) fn new(now: SystemTime) -> Self {
        Self {
            state: JobState::Starting,
            pid: None,
            created_at: now,
            started_at: None,
            ended_at: None,
            output_bytes: 0,
            output_dropped_bytes: 0,
            usage: None,
        }
    }
}

/// A job as [`JobManager::list`](crate::JobManager::list) shows it.
#[derive(Debug, Clone)]
pub struct JobInfo {
    /// The job's id.
    pub id: JobId,
    /// What it runs.
    pub spec: Arc<JobSpec>,
    /// Its status.
    pub status: JobStatus,
}

/// What the supervisor knows when a job's monitor has exited: the input of
/// [`final_state`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Ending {
    /// How init reported the main process ended, and whether a stop signal reached it
    /// while it was alive. `None`: init reported nothing (it was killed, or it crashed).
    pub exited: Option<(ExitOutcome, bool)>,
    /// A stop was requested.
    pub stop_requested: bool,
    /// The stop's grace period ran out and the job was killed.
    pub killed: bool,
    /// OOM kills in the job's own cgroup (`None` for a command run in another job's
    /// sandbox: it shares that cgroup, so the count is not its own).
    pub oom_kills: Option<u64>,
    /// Peak memory of the job's own cgroup, where known.
    pub memory_peak_bytes: Option<u64>,
    /// For a command in another job's sandbox: that sandbox ended or is being stopped.
    pub sandbox_gone: bool,
    /// How the monitor itself ended, for the message when init reported nothing.
    pub monitor: String,
}

/// The final state of a job: the one decision table of stop versus exit versus OOM.
///
/// * A stop that reached a live command reports `stopped` with the real outcome (the
///   code it exited with from its TERM handler, or the signal); `forced` when the grace
///   ran out and SIGKILL ended it.
/// * An OOM kill (the cgroup counted one, the job was not killed by a stop, and the main
///   process died of SIGKILL or init vanished) reports `oom_killed`.
/// * A command whose sandbox went away under it reports `stopped` when a signal ended it.
/// * Otherwise the command's own exit code or signal; `failed` when nothing was reported.
pub(crate) fn final_state(e: &Ending) -> JobState {
    let oom = e.oom_kills.is_some_and(|n| n > 0)
        && !e.killed
        && matches!(
            e.exited,
            None | Some((ExitOutcome::Signal(libc::SIGKILL), _))
        );
    match (e.exited, e.stop_requested) {
        (Some((outcome, true)), true) => JobState::Stopped {
            forced: e.killed && outcome == ExitOutcome::Signal(libc::SIGKILL),
            outcome,
        },
        _ if oom => JobState::OomKilled {
            memory_peak_bytes: e.memory_peak_bytes,
        },
        (Some((outcome @ ExitOutcome::Signal(signal), _)), false) if e.sandbox_gone => {
            JobState::Stopped {
                forced: signal == libc::SIGKILL,
                outcome,
            }
        }
        (Some((ExitOutcome::Code(code), _)), _) => JobState::Exited { code },
        (Some((ExitOutcome::Signal(signal), _)), _) => JobState::Signaled { signal },
        (None, true) => JobState::Stopped {
            forced: true,
            outcome: ExitOutcome::Signal(libc::SIGKILL),
        },
        (None, false) if e.sandbox_gone => JobState::Stopped {
            forced: true,
            outcome: ExitOutcome::Signal(libc::SIGKILL),
        },
        (None, false) => JobState::Failed {
            reason: format!(
                "tandem-init ended without reporting an exit ({})",
                e.monitor
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KILL: ExitOutcome = ExitOutcome::Signal(libc::SIGKILL);
    const TERM: ExitOutcome = ExitOutcome::Signal(libc::SIGTERM);

    fn ending() -> Ending {
        Ending {
            oom_kills: Some(0),
            monitor: "exit status: 0".into(),
            ..Ending::default()
        }
    }

    #[test]
    fn natural_exits_keep_their_code_or_signal() {
        let e = Ending {
            exited: Some((ExitOutcome::Code(3), false)),
            ..ending()
        };
        assert_eq!(final_state(&e), JobState::Exited { code: 3 });
        let e = Ending {
            exited: Some((TERM, false)),
            ..ending()
        };
        assert_eq!(
            final_state(&e),
            JobState::Signaled {
                signal: libc::SIGTERM
            }
        );
    }

    #[test]
    fn an_exit_that_beat_the_stop_signal_is_a_natural_exit() {
        // Stop requested, but the signal never reached the command: it had already exited.
        let e = Ending {
            exited: Some((ExitOutcome::Code(0), false)),
            stop_requested: true,
            ..ending()
        };
        assert_eq!(final_state(&e), JobState::Exited { code: 0 });
    }

    #[test]
    fn a_stop_reports_the_real_outcome_and_whether_it_was_forced() {
        let graceful = Ending {
            exited: Some((ExitOutcome::Code(7), true)),
            stop_requested: true,
            ..ending()
        };
        assert_eq!(
            final_state(&graceful),
            JobState::Stopped {
                forced: false,
                outcome: ExitOutcome::Code(7)
            }
        );
        let forced = Ending {
            exited: Some((KILL, true)),
            stop_requested: true,
            killed: true,
            ..ending()
        };
        assert_eq!(
            final_state(&forced),
            JobState::Stopped {
                forced: true,
                outcome: KILL
            }
        );
        // Killed after the grace, but init reported a TERM death: not forced.
        let term = Ending {
            exited: Some((TERM, true)),
            killed: true,
            ..forced.clone()
        };
        assert_eq!(
            final_state(&term),
            JobState::Stopped {
                forced: false,
                outcome: TERM
            }
        );
        let silent = Ending {
            exited: None,
            ..forced
        };
        assert_eq!(
            final_state(&silent),
            JobState::Stopped {
                forced: true,
                outcome: KILL
            }
        );
    }

    #[test]
    fn oom_is_reported_only_for_a_sigkill_or_a_vanished_init() {
        let oom = Ending {
            exited: Some((KILL, false)),
            oom_kills: Some(1),
            memory_peak_bytes: Some(64 << 20),
            ..ending()
        };
        assert_eq!(
            final_state(&oom),
            JobState::OomKilled {
                memory_peak_bytes: Some(64 << 20)
            }
        );
        let vanished = Ending {
            exited: None,
            ..oom.clone()
        };
        assert!(matches!(final_state(&vanished), JobState::OomKilled { .. }));
        // A child was OOM-killed, but the main process exited with a code: not an OOM kill.
        let survived = Ending {
            exited: Some((ExitOutcome::Code(1), false)),
            ..oom.clone()
        };
        assert_eq!(final_state(&survived), JobState::Exited { code: 1 });
        // The stop's kill is not the OOM killer.
        let stopped = Ending {
            stop_requested: true,
            killed: true,
            exited: Some((KILL, true)),
            ..oom.clone()
        };
        assert!(matches!(
            final_state(&stopped),
            JobState::Stopped { forced: true, .. }
        ));
        // A joined command never reports the sandbox's OOM kills as its own.
        let joined = Ending {
            oom_kills: None,
            ..oom
        };
        assert_eq!(
            final_state(&joined),
            JobState::Signaled {
                signal: libc::SIGKILL
            }
        );
    }

    #[test]
    fn a_command_whose_sandbox_ended_is_stopped() {
        let e = Ending {
            exited: Some((TERM, false)),
            sandbox_gone: true,
            oom_kills: None,
            ..ending()
        };
        assert_eq!(
            final_state(&e),
            JobState::Stopped {
                forced: false,
                outcome: TERM
            }
        );
        let e = Ending {
            exited: None,
            sandbox_gone: true,
            oom_kills: None,
            ..ending()
        };
        assert_eq!(
            final_state(&e),
            JobState::Stopped {
                forced: true,
                outcome: KILL
            }
        );
        // It exited with a code on its own while the sandbox went: a natural exit.
        let e = Ending {
            exited: Some((ExitOutcome::Code(0), false)),
            sandbox_gone: true,
            ..ending()
        };
        assert_eq!(final_state(&e), JobState::Exited { code: 0 });
    }

    #[test]
    fn nothing_reported_and_nothing_asked_is_a_failure() {
        let e = Ending {
            monitor: "signal: 9 (SIGKILL)".into(),
            ..ending()
        };
        match final_state(&e) {
            JobState::Failed { reason } => assert!(reason.contains("signal: 9"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
