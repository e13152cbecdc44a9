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

use crate::credentials::{Credentials, hex, parse_key, unhex};
use crate::expiry::Clock;
use crate::registry::Opening;
use crate::{
    CreateSession, NO_SHOW, ParticipantRole, SessionError, SessionId, SessionRecord, Sessions,
    TerminalSize, Tokens,
};
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
impl Sessions {
    /// Sets the windows around scheduled starts (of sessions opened from now on).
    pub fn with_schedule_times(self, times: ScheduleTimes) -> Self {
        *self
            .inner
            .times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = times;
        self
    }

    /// The windows around scheduled starts.
    pub fn schedule_times(&self) -> ScheduleTimes {
        *self
            .inner
            .times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates a session that starts at `schedule.at`: its tokens now (for the invite),
    /// its box shortly before the start (see `schedule.rs`). Logins before then are told
    /// the start time.
    pub fn schedule(
        &self,
        req: CreateSession,
        schedule: Schedule,
    ) -> Result<(SessionRecord, Tokens), SessionError> {
        let (keys, duration) = Self::check_request(&req)?;
        check_start(schedule.at)?;
        let id = SessionId::new_random();
        let dir = self.inner.dir.join(id.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| SessionError::Internal(e.to_string()))?;
        let tokens = Tokens::generate();
        let credentials = Credentials::new(id, &tokens, keys);
        let scheduled = Arc::new(Scheduled {
            id,
            task: Arc::clone(&req.task),
            created_by: req.created_by.clone(),
            created_at: SystemTime::now(),
            duration,
            clock: schedule.clock,
            state: watch::Sender::new(ScheduledState {
                at: schedule.at,
                cancelled: false,
            }),
        });
        self.write_schedule_file(&scheduled, &credentials)?;
        let record = self.scheduled_record(&scheduled);
        self.store_record(&dir, record.clone());
        self.keep_replay_digest(&credentials);
        self.write_credentials().push(credentials);
        self.inner
            .scheduled
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, Arc::clone(&scheduled));
        tokio::spawn(crate::schedule::run(self.clone(), scheduled));
        tracing::info!(session = %id, task = %req.task.name, by = %req.created_by,
            at = %humantime::format_rfc3339_seconds(schedule.at), "session scheduled");
        Ok((record, tokens))
    }

    fn scheduled_record(&self, s: &Scheduled) -> SessionRecord {
        SessionRecord {
            id: s.id,
            task: s.task.name.clone(),
            instance: None,
            created_by: s.created_by.clone(),
            created_at: s.created_at,
            expires_at: s.at() + s.duration,
            ended: None,
            scheduled_at: Some(s.at()),
            started_at: None,
            clock: Some(s.clock),
        }
    }

    fn write_schedule_file(
        &self,
        s: &Scheduled,
        credentials: &Credentials,
    ) -> Result<(), SessionError> {
        let file = ScheduleFile {
            task: s.task.name.clone(),
            at: s.at(),
            duration: s.duration,
            clock: s.clock,
            token_digests: credentials
                .digests
                .iter()
                .map(|(role, d)| (*role, hex(d)))
                .collect(),
            keys: credentials
                .keys
                .iter()
                .map(|k| (k.role, format!("{} {}", k.key, k.name)))
                .collect(),
        };
        let json =
            serde_json::to_vec_pretty(&file).map_err(|e| SessionError::Internal(e.to_string()))?;
        tandem_fsutil::write_atomic(&self.dir(s.id).join(SCHEDULE_FILE), &json, 0o600)
            .map_err(|e| SessionError::Internal(format!("schedule: {e}")))
    }

    /// Opens a scheduled session whose window has come: its box (a warm one when there
    /// is one), its recording, its clock (at the start, or at the candidate's first
    /// login: until then the session ends as a no-show at the start plus the grace).
    pub(crate) async fn open_scheduled(&self, scheduled: Arc<Scheduled>) {
        let id = scheduled.id;
        let size = TerminalSize::default();
        let started = self
            .inner
            .instances
            .start(
                Arc::clone(&scheduled.task),
                &scheduled.created_by,
                size.into(),
            )
            .await;
        let still = self
            .inner
            .scheduled
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
        let instance = match (started, still) {
            (Ok(instance), Some(_)) => instance,
            (Ok(instance), None) => {
                // Cancelled meanwhile.
                let _ = self
                    .inner
                    .instances
                    .manager()
                    .stop(instance.id, Duration::ZERO)
                    .await;
                return;
            }
            (Err(e), _) => {
                tracing::warn!(session = %id, error = %e, "a scheduled session could not open");
                self.write_credentials().retain(|c| c.session != id);
                let mut record = self.scheduled_record(&scheduled);
                record.ended = Some(format!("the box could not be made: {e}"));
                self.store_record(&self.dir(id), record);
                return;
            }
        };
        let at = scheduled.at();
        let grace = self.schedule_times().grace;
        let (expires_at, started_at) = match scheduled.clock {
            ClockStart::At => (at + scheduled.duration, Some(at)),
            ClockStart::FirstLogin => (at + grace, None),
        };
        let opened = self.open(
            Opening {
                id,
                task: &scheduled.task,
                created_by: &scheduled.created_by,
                created_at: scheduled.created_at,
                duration: scheduled.duration,
                instance,
                expires_at,
                started_at,
                scheduled: Some((at, scheduled.clock)),
            },
            size,
        );
        if let Err(e) = opened {
            tracing::warn!(session = %id, error = %e, "a scheduled session could not open");
        }
    }

    /// The scheduled, not yet open, session a token belongs to: when it starts.
    pub fn upcoming_by_token(&self, token: &str) -> Option<Upcoming> {
        let (id, role) = self.token_owner(token)?;
        self.upcoming(id, role)
    }

    /// The scheduled, not yet open, session `session_id` a registered key belongs to.
    pub fn upcoming_by_key(&self, session_id: &str, key: &str) -> Option<Upcoming> {
        let id: SessionId = session_id.parse().ok()?;
        let role = self
            .read_credentials()
            .iter()
            .find(|c| c.session == id)?
            .keys
            .iter()
            .find(|k| k.key == key)?
            .role;
        self.upcoming(id, role)
    }

    fn upcoming(&self, id: SessionId, role: ParticipantRole) -> Option<Upcoming> {
        let scheduled = self.get_scheduled(id)?;
        let starts_at = scheduled.at();
        Some(Upcoming {
            session: id,
            role,
            starts_at,
            opens_at: starts_at
                .checked_sub(self.schedule_times().opens_before)
                .unwrap_or(starts_at),
        })
    }

    fn get_scheduled(&self, id: SessionId) -> Option<Arc<Scheduled>> {
        self.inner
            .scheduled
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Moves the start of a scheduled session that has not opened; its logins stay valid.
    pub fn reschedule(&self, id: SessionId, at: SystemTime) -> Result<SessionRecord, SessionError> {
        let Some(scheduled) = self.get_scheduled(id) else {
            return Err(match self.record(id) {
                Some(r) if r.ended.is_none() => SessionError::FailedPrecondition(format!(
                    "session {id} has opened: end it and schedule another"
                )),
                Some(_) => SessionError::FailedPrecondition(format!("session {id} has ended")),
                None => SessionError::NotFound(id),
            });
        };
        check_start(at)?;
        scheduled.state.send_modify(|s| s.at = at);
        let credentials = self.read_credentials();
        if let Some(c) = credentials.iter().find(|c| c.session == id) {
            self.write_schedule_file(&scheduled, c)?;
        }
        drop(credentials);
        let record = self.scheduled_record(&scheduled);
        self.store_record(&self.dir(id), record.clone());
        tracing::info!(session = %id, at = %humantime::format_rfc3339_seconds(at), "session rescheduled");
        Ok(record)
    }

    /// Cancels a scheduled session that has not opened: its logins stop working.
    pub(crate) fn cancel_scheduled(&self, id: SessionId, reason: &str) -> bool {
        let removed = self
            .inner
            .scheduled
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
        let Some(scheduled) = removed else {
            return false;
        };
        scheduled.state.send_modify(|s| s.cancelled = true);
        self.write_credentials().retain(|c| c.session != id);
        let _ = std::fs::remove_file(self.dir(id).join(SCHEDULE_FILE));
        let mut record = self.scheduled_record(&scheduled);
        record.ended = Some(reason.to_string());
        self.store_record(&self.dir(id), record);
        tracing::info!(session = %id, reason, "scheduled session cancelled");
        true
    }

    /// Brings back the scheduled sessions an earlier run left (their `schedule.json`):
    /// their logins work again and they open when due (at once if their window is open).
    /// One whose task is gone, or whose no-show time has passed, is ended.
    pub fn restore_scheduled(&self, catalog: &tandem_scenario::Catalog) {
        let pending: Vec<SessionRecord> = self
            .records()
            .into_iter()
            .filter(|r| r.ended.is_none() && self.get(r.id).is_none())
            .filter(|r| self.get_scheduled(r.id).is_none())
            .collect();
        for mut record in pending {
            let dir = self.dir(record.id);
            let file = std::fs::read(dir.join(SCHEDULE_FILE))
                .ok()
                .and_then(|b| serde_json::from_slice::<ScheduleFile>(&b).ok());
            let task = file.as_ref().and_then(|f| catalog.get(&f.task));
            let (Some(file), Some(task)) = (file, task) else {
                record.ended =
                    Some("the daemon restarted; the session could not be restored".into());
                self.store_record(&dir, record);
                continue;
            };
            if SystemTime::now() > file.at + self.schedule_times().grace
                && file.clock == ClockStart::FirstLogin
            {
                record.ended = Some(format!("{NO_SHOW}: the candidate did not log in"));
                self.store_record(&dir, record);
                let _ = std::fs::remove_file(dir.join(SCHEDULE_FILE));
                continue;
            }
            let keys = file
                .keys
                .iter()
                .filter_map(|(role, line)| parse_key(line, *role).ok())
                .collect();
            let digests = file
                .token_digests
                .iter()
                .filter_map(|(role, d)| Some((*role, unhex(d)?)))
                .collect();
            let scheduled = Arc::new(Scheduled {
                id: record.id,
                task,
                created_by: record.created_by.clone(),
                created_at: record.created_at,
                duration: file.duration,
                clock: file.clock,
                state: watch::Sender::new(ScheduledState {
                    at: file.at,
                    cancelled: false,
                }),
            });
            self.write_credentials().push(Credentials {
                session: record.id,
                digests,
                keys,
            });
            self.store_record(&dir, self.scheduled_record(&scheduled));
            self.inner
                .scheduled
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(record.id, Arc::clone(&scheduled));
            tracing::info!(session = %record.id, "scheduled session restored");
            tokio::spawn(crate::schedule::run(self.clone(), scheduled));
        }
    }
}

/// The file a scheduled session keeps until its clock starts.
pub(crate) const SCHEDULE_FILE: &str = "schedule.json";

/// A start must lie ahead, and not too far.
fn check_start(at: SystemTime) -> Result<(), SessionError> {
    let now = SystemTime::now();
    if at <= now {
        return Err(SessionError::InvalidArgument(format!(
            "at: {} is not in the future",
            humantime::format_rfc3339_seconds(at)
        )));
    }
    if at > now + MAX_SCHEDULE_AHEAD {
        return Err(SessionError::InvalidArgument(format!(
            "at: a session may be scheduled at most {} ahead",
            humantime::format_duration(MAX_SCHEDULE_AHEAD)
        )));
    }
    Ok(())
}
