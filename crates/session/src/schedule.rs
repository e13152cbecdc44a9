//! Scheduled sessions: created ahead (tokens and commands at once, for the invite), opened
//! shortly before their start (the sandbox taken from the warm pool, or set up), with the
//! clock starting at the candidate's first login (or at the start), and a no-show when the
//! candidate does not come.
//!
//! A scheduled session that has not opened is a [`Scheduled`] (no sandbox, no recording
//! yet); its logins are answered with the start time. One task per scheduled session
//! ([`run`]) waits, on the monotonic clock, for the window to open (the start minus
//! [`ScheduleTimes::opens_before`]); a reschedule or a cancel wakes it. It then opens the
//! session ([`Sessions::open_scheduled`]) and ends. What a restart needs is on disk:
//! `session.json` (the record) and `schedule.json` (mode 0600: the task, the times, the
//! SHA-256 of each token and the registered keys); [`Sessions::restore_scheduled`] picks
//! them up.

use crate::expiry::Clock;
use crate::{ParticipantRole, SessionId, Sessions};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tandem_scenario::Task;
use tokio::sync::watch;

/// When a scheduled session's clock starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockStart {
    /// At the candidate's first login (the session ends as a no-show if that does not
    /// happen by the start plus [`ScheduleTimes::grace`]).
    #[default]
    FirstLogin,
    /// At the start, whoever is there.
    At,
}

/// A session's start, for [`CreateSession`](crate::CreateSession).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// The start.
    pub at: SystemTime,
    /// When the clock starts.
    pub clock: ClockStart,
}

/// The windows around a scheduled start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleTimes {
    /// The session opens (the box is made, logins are let in) this long before its start.
    pub opens_before: Duration,
    /// A candidate who has not logged in this long after the start is a no-show: the
    /// session ends and its sandbox is released.
    pub grace: Duration,
}

impl Default for ScheduleTimes {
    fn default() -> Self {
        Self {
            opens_before: Duration::from_secs(600),
            grace: Duration::from_secs(900),
        }
    }
}

/// Furthest ahead a session may be scheduled.
pub const MAX_SCHEDULE_AHEAD: Duration = Duration::from_secs(90 * 24 * 3600);

/// A session before it opens.
#[derive(Debug)]
pub(crate) struct Scheduled {
    pub(crate) id: SessionId,
    pub(crate) task: Arc<Task>,
    pub(crate) created_by: String,
    pub(crate) created_at: SystemTime,
    pub(crate) duration: Duration,
    pub(crate) clock: ClockStart,
    /// The start (moved by a reschedule) and whether it was cancelled.
    pub(crate) state: watch::Sender<ScheduledState>,
}

/// What a reschedule or a cancel changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScheduledState {
    pub(crate) at: SystemTime,
    pub(crate) cancelled: bool,
}

impl Scheduled {
    pub(crate) fn at(&self) -> SystemTime {
        self.state.borrow().at
    }
}

/// A login that came before its session opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upcoming {
    /// The session.
    pub session: SessionId,
    /// As whom.
    pub role: ParticipantRole,
    /// The start.
    pub starts_at: SystemTime,
    /// When logins are let in.
    pub opens_at: SystemTime,
}

impl Upcoming {
    /// What such a login is told, as terminal lines.
    pub fn message(&self, now: SystemTime) -> String {
        let starts = humantime::format_rfc3339_seconds(self.starts_at);
        let opens = humantime::format_rfc3339_seconds(self.opens_at);
        let wait = self
            .opens_at
            .duration_since(now)
            .map(|d| Duration::from_secs(d.as_secs().max(1)))
            .unwrap_or(Duration::from_secs(1));
        format!(
            "\r\nThis tandem interview starts at {starts} (UTC).\r\n\
             Its box opens at {opens}, in {}: log in again then.\r\n",
            humantime::format_duration(wait)
        )
    }
}

/// `schedule.json`: what a restart needs to bring a scheduled session back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScheduleFile {
    pub(crate) task: String,
    pub(crate) at: SystemTime,
    pub(crate) duration: Duration,
    pub(crate) clock: ClockStart,
    /// SHA-256 of each role's token, hex.
    pub(crate) token_digests: Vec<(ParticipantRole, String)>,
    /// Registered public key lines (`type base64 comment`), by role.
    pub(crate) keys: Vec<(ParticipantRole, String)>,
}

/// Waits for the window of `scheduled` to open (following reschedules), then opens it;
/// returns early when it is cancelled.
pub(crate) async fn run(sessions: Sessions, scheduled: Arc<Scheduled>) {
    let mut state = scheduled.state.subscribe();
    let clock = Clock::start();
    let opens_before = sessions.schedule_times().opens_before;
    loop {
        let current = state.borrow_and_update().clone();
        if current.cancelled {
            return;
        }
        let opens = current
            .at
            .checked_sub(opens_before)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let wait = opens.duration_since(clock.now()).unwrap_or_default();
        if wait.is_zero() {
            sessions.open_scheduled(scheduled).await;
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
