//! All sessions of a daemon: creating them (a task instance, tokens, the recording; the
//! terminal pump in `pump.rs` and the expiry timer in `expiry.rs` are started here),
//! finding them from credentials, ending them, and their records on disk.

use crate::hub::Hub;
use crate::recording::{DEFAULT_RECORDING_CAP, Recorder};
use crate::schedule::{
    ClockStart, MAX_SCHEDULE_AHEAD, Schedule, ScheduleFile, ScheduleTimes, Scheduled,
    ScheduledState, Upcoming,
};
use crate::session::{Session, SessionInfo};
use crate::{ParticipantRole, SessionError, SessionId, TerminalSize, Tokens};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;
use tandem_scenario::{Instance, Instances, Task};
use tandem_worker::JobId;
use tokio::sync::watch;

/// What `create` needs.
#[derive(Debug, Clone)]
pub struct CreateSession {
    /// The task to run.
    pub task: Arc<Task>,
    /// Who creates it (owner of the instance).
    pub created_by: String,
    /// How long it lasts; the task's time limit when `None`.
    pub duration: Option<Duration>,
    /// Public keys (`ssh-ed25519 AAAA… comment`) that log in as the candidate.
    pub candidate_keys: Vec<String>,
    /// Public keys that log in as interviewers.
    pub interviewer_keys: Vec<String>,
}

/// A public key registered for a session, in OpenSSH's `type base64` form.
#[derive(Debug, Clone)]
struct Key {
    /// `ssh-ed25519 AAAA…` (without the comment).
    key: String,
    /// The comment, used as the participant's name.
    name: String,
    role: ParticipantRole,
}

/// Credentials of one live or scheduled session. Tokens are kept only as SHA-256
/// digests (the tokens themselves are given out once, by `create`).
#[derive(Debug)]
struct Credentials {
    session: SessionId,
    digests: Vec<(ParticipantRole, [u8; 32])>,
    keys: Vec<Key>,
}

/// SHA-256 of a token.
fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Credentials {
    fn new(session: SessionId, tokens: &Tokens, keys: Vec<Key>) -> Self {
        Self {
            session,
            digests: tokens
                .all()
                .into_iter()
                .map(|(role, t)| (role, digest(t)))
                .collect(),
            keys,
        }
    }
}

/// The persisted summary of a session (`sessions/<id>/session.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Session id.
    pub id: SessionId,
    /// Task name.
    pub task: String,
    /// The instance (sandbox job) id; none before a scheduled session opens.
    pub instance: Option<JobId>,
    /// Creator.
    pub created_by: String,
    /// When.
    pub created_at: SystemTime,
    /// Expiry (last known).
    pub expires_at: SystemTime,
    /// Why it ended, once ended.
    pub ended: Option<String>,
    /// The scheduled start, for a session created ahead.
    #[serde(default)]
    pub scheduled_at: Option<SystemTime>,
    /// When its clock started (the candidate's first login, the start, or its creation);
    /// none while it waits.
    #[serde(default)]
    pub started_at: Option<SystemTime>,
    /// When a scheduled session's clock starts.
    #[serde(default)]
    pub clock: Option<ClockStart>,
}

impl SessionRecord {
    /// `scheduled` (not open yet), `waiting` (open, the clock not started), `live`,
    /// `no-show`, `cancelled` or `ended`.
    pub fn state(&self, open: bool) -> &'static str {
        match (&self.ended, open) {
            (Some(reason), _) if reason.starts_with(NO_SHOW) => "no-show",
            (Some(reason), _) if reason.starts_with(CANCELLED) => "cancelled",
            (Some(_), _) => "ended",
            (None, false) => "scheduled",
            (None, true) if self.started_at.is_none() => "waiting",
            (None, true) => "live",
        }
    }
}

/// How a no-show's end reason starts.
pub const NO_SHOW: &str = "no-show";
/// How a cancelled session's end reason starts.
pub const CANCELLED: &str = "cancelled";

/// The sessions of a daemon. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Task instances (and through them, the worker).
    instances: Instances,
    /// `<state>/sessions`.
    dir: PathBuf,
    /// Live sessions.
    live: RwLock<HashMap<SessionId, Arc<Session>>>,
    /// Sessions created ahead that have not opened.
    scheduled: RwLock<HashMap<SessionId, Arc<Scheduled>>>,
    /// The windows around scheduled starts.
    times: Mutex<ScheduleTimes>,
    /// Credentials of live sessions.
    credentials: RwLock<Vec<Credentials>>,
    /// Records of every session, live and past.
    records: RwLock<HashMap<SessionId, SessionRecord>>,
    /// Bumped whenever a record changes, for those who wait for one.
    records_changed: watch::Sender<u64>,
    /// Cap of each recording file of a new session.
    recording_cap: std::sync::atomic::AtomicU64,
}

impl Sessions {
    /// Sessions kept under `state_dir/sessions`. Sessions an earlier run left live are
    /// recorded as ended ("the daemon restarted"); their recordings stay readable.
    pub fn new(instances: Instances, state_dir: &Path) -> std::io::Result<Self> {
        let dir = state_dir.join("sessions");
        std::fs::create_dir_all(&dir)?;
        let mut records = HashMap::new();
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let file = entry.path().join("session.json");
            let Ok(text) = std::fs::read(&file) else {
                continue;
            };
            let Ok(mut record) = serde_json::from_slice::<SessionRecord>(&text) else {
                tracing::warn!(file = %file.display(), "unreadable session record");
                continue;
            };
            // A scheduled session whose clock has not started comes back (see
            // `restore_scheduled`); one that was under way has ended.
            let comes_back =
                record.started_at.is_none() && entry.path().join(SCHEDULE_FILE).is_file();
            if record.ended.is_none() && !comes_back {
                record.ended = Some("the daemon restarted during the session".into());
                let _ = write_record(&entry.path(), &record);
                for name in ["recording.cast", "events.jsonl"] {
                    let path = entry.path().join(name);
                    if let Err(e) = end_at_last_line(&path) {
                        tracing::warn!(file = %path.display(), error = %e, "cannot repair the recording");
                    }
                }
            }
            records.insert(record.id, record);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                instances,
                dir,
                live: RwLock::default(),
                scheduled: RwLock::default(),
                times: Mutex::new(ScheduleTimes::default()),
                credentials: RwLock::default(),
                records: RwLock::new(records),
                records_changed: watch::Sender::new(0),
                recording_cap: std::sync::atomic::AtomicU64::new(DEFAULT_RECORDING_CAP),
            }),
        })
    }

    /// Sets the cap of each recording file (`recording.cast`, `events.jsonl`) of sessions
    /// created from now on.
    pub fn with_recording_cap(self, cap: u64) -> Self {
        self.inner
            .recording_cap
            .store(cap, std::sync::atomic::Ordering::Relaxed);
        self
    }

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

    /// The registered keys and the session length of `req`, checked.
    fn check_request(req: &CreateSession) -> Result<(Vec<Key>, Duration), SessionError> {
        let mut keys = Vec::new();
        for (role, list) in [
            (ParticipantRole::Candidate, &req.candidate_keys),
            (ParticipantRole::Interviewer, &req.interviewer_keys),
        ] {
            if list.len() > MAX_KEYS_PER_ROLE {
                return Err(SessionError::InvalidArgument(format!(
                    "{role}_keys: {} keys is more than the {MAX_KEYS_PER_ROLE} allowed",
                    list.len()
                )));
            }
            for (i, line) in list.iter().enumerate() {
                keys.push(parse_key(line, role).map_err(|why| {
                    SessionError::InvalidArgument(format!("{role}_keys[{i}]: {why}"))
                })?);
            }
        }
        let duration = req.duration.unwrap_or(req.task.time_limit);
        if duration.is_zero() || duration > MAX_SESSION_DURATION {
            return Err(SessionError::InvalidArgument(
                "duration: must be between 1s and 24h".into(),
            ));
        }
        Ok((keys, duration))
    }

    /// Creates a session: starts a task instance (setup included, or a warm one taken),
    /// issues one token per role, and starts recording. Its clock starts now.
    pub async fn create(&self, req: CreateSession) -> Result<(Arc<Session>, Tokens), SessionError> {
        let (keys, duration) = Self::check_request(&req)?;
        let size = TerminalSize::default();
        let instance = self
            .inner
            .instances
            .start(Arc::clone(&req.task), &req.created_by, size.into())
            .await?;
        let id = SessionId::new_random();
        let now = SystemTime::now();
        let tokens = Tokens::generate();
        let session = self.open(
            Opening {
                id,
                task: &req.task,
                created_by: &req.created_by,
                created_at: now,
                duration,
                instance,
                expires_at: now + duration,
                started_at: Some(now),
                scheduled: None,
            },
            size,
        )?;
        self.write_credentials()
            .push(Credentials::new(id, &tokens, keys));
        Ok((session, tokens))
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

    fn store_record(&self, dir: &Path, record: SessionRecord) {
        if let Err(e) = write_record(dir, &record) {
            tracing::warn!(session = %record.id, error = %e, "cannot record the session");
        }
        self.inner
            .records
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(record.id, record);
        self.inner
            .records_changed
            .send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Waits until `done` holds for the record of `id`, checking it whenever a record
    /// changes (for tests and tools).
    pub async fn record_until(&self, id: SessionId, mut done: impl FnMut(&SessionRecord) -> bool) {
        let mut changed = self.inner.records_changed.subscribe();
        while !self.record(id).is_some_and(|r| done(&r)) {
            // The sender lives in `self.inner`: it cannot close while we hold `self`.
            let _ = changed.changed().await;
        }
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

    /// Makes `o` a live session: the recording, the hub, the pump and the expiry timer.
    fn open(&self, o: Opening<'_>, size: TerminalSize) -> Result<Arc<Session>, SessionError> {
        let Opening {
            id,
            task,
            created_by,
            created_at,
            duration,
            instance,
            expires_at,
            started_at,
            scheduled,
        } = o;
        let shell = instance
            .shell()
            .ok_or_else(|| SessionError::Internal("the instance has no shell".into()))?;
        let dir = self.inner.dir.join(id.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| SessionError::Internal(e.to_string()))?;
        let (recorder, _writer) = Recorder::start(
            &dir,
            size.cols,
            size.rows,
            &format!("tandem session {id}: {}", task.title),
            self.inner
                .recording_cap
                .load(std::sync::atomic::Ordering::Relaxed),
        )
        .map_err(|e| SessionError::Internal(format!("recording: {e}")))?;
        let session = Arc::new(Session {
            id,
            instance: Mutex::new(Arc::clone(&instance)),
            shell: Mutex::new(shell),
            resetting: AtomicBool::new(false),
            reset_notice: Mutex::new(None),
            created_by: created_by.to_string(),
            created_at,
            duration,
            scheduled_at: scheduled.map(|(at, _)| at),
            clock: scheduled.map(|(_, clock)| clock),
            info: watch::Sender::new(SessionInfo {
                expires_at,
                ended: None,
                started_at,
            }),
            locked: AtomicBool::new(false),
            hub: Hub::new(size.rows, size.cols),
            recorder,
            participants: Mutex::default(),
            next_number: AtomicU64::new(0),
            manager: self.inner.instances.manager().clone(),
        });
        session.recorder.event(json!({
            "event": if scheduled.is_some() { "open" } else { "create" },
            "session": id.to_string(), "task": task.name, "by": created_by,
            "duration_s": duration.as_secs(), "warm": instance.warm,
            "scheduled_at": scheduled.map(|(at, _)| humantime::format_rfc3339_seconds(at).to_string()),
        }));
        self.inner
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, Arc::clone(&session));
        self.save(&session);
        tokio::spawn(crate::pump::run(self.clone(), Arc::clone(&session)));
        tokio::spawn(crate::expiry::run(self.clone(), Arc::clone(&session)));
        tracing::info!(session = %id, task = %task.name, by = %created_by, warm = instance.warm, "session open");
        Ok(session)
    }

    /// The session and role a token belongs to (live or scheduled). The token's digest
    /// is compared with every one, in constant time, whatever matches: the time taken says
    /// nothing about any token.
    fn token_owner(&self, token: &str) -> Option<(SessionId, ParticipantRole)> {
        let presented = digest(token);
        let mut found = None;
        for c in self.read_credentials().iter() {
            for (role, stored) in &c.digests {
                let equal: bool = stored.ct_eq(&presented).into();
                if equal {
                    found = Some((c.session, *role));
                }
            }
        }
        found
    }

    /// The live session and role a token grants.
    pub fn by_token(&self, token: &str) -> Option<(Arc<Session>, ParticipantRole)> {
        let (id, role) = self.token_owner(token)?;
        self.get(id).map(|s| (s, role))
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
    fn cancel_scheduled(&self, id: SessionId, reason: &str) -> bool {
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

    /// The live session `session_id` and role for a public key (`type base64`), with the
    /// key's name, if the key is registered for it.
    pub fn by_key(
        &self,
        session_id: &str,
        key: &str,
    ) -> Option<(Arc<Session>, ParticipantRole, String)> {
        let id: SessionId = session_id.parse().ok()?;
        let found = self
            .read_credentials()
            .iter()
            .find(|c| c.session == id)?
            .keys
            .iter()
            .find(|k| k.key == key)
            .map(|k| (k.role, k.name.clone()))?;
        self.get(id).map(|s| (s, found.0, found.1))
    }

    /// Whether public keys are registered for `session_id` (so key auth is worth trying).
    pub fn has_keys(&self, session_id: &str) -> bool {
        let Ok(id) = session_id.parse::<SessionId>() else {
            return false;
        };
        self.read_credentials()
            .iter()
            .any(|c| c.session == id && !c.keys.is_empty())
    }

    /// A live session.
    pub fn get(&self, id: SessionId) -> Option<Arc<Session>> {
        self.inner
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Records of every session, live and past, oldest first.
    pub fn records(&self) -> Vec<SessionRecord> {
        let mut all: Vec<SessionRecord> = self
            .inner
            .records
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        all.sort_by_key(|r| r.created_at);
        all
    }

    /// The record of one session.
    pub fn record(&self, id: SessionId) -> Option<SessionRecord> {
        self.inner
            .records
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// The directory holding `recording.cast` and `events.jsonl` of a session.
    pub fn dir(&self, id: SessionId) -> PathBuf {
        self.inner.dir.join(id.to_string())
    }

    /// Moves a live session's expiry by `by`; the session may not end more than
    /// [`MAX_SESSION_DURATION`] from now.
    pub fn extend(&self, id: SessionId, by: Duration) -> Result<SystemTime, SessionError> {
        let session = self.get(id).ok_or(SessionError::NotFound(id))?;
        let latest = SystemTime::now() + MAX_SESSION_DURATION;
        let mut expires = None;
        session.info.send_if_modified(|info| {
            expires = info.expires_at.checked_add(by).filter(|e| *e <= latest);
            if let Some(e) = expires {
                info.expires_at = e;
            }
            expires.is_some()
        });
        let expires = expires.ok_or_else(|| {
            SessionError::InvalidArgument(format!(
                "by: the session would end more than {} from now",
                humantime::format_duration(MAX_SESSION_DURATION)
            ))
        })?;
        session
            .recorder
            .event(json!({"event": "extend", "by_s": by.as_secs()}));
        session.tell_everyone(&format!(
            "session extended by {}",
            humantime::format_duration(by)
        ));
        self.save(&session);
        Ok(expires)
    }

    /// Ends a live session: everybody is disconnected with `reason`, the sandbox is
    /// stopped, the recording closed. Ending an ended session does nothing.
    pub async fn end(&self, id: SessionId, reason: &str) -> Result<(), SessionError> {
        if self.cancel_scheduled(id, reason) {
            return Ok(());
        }
        let session = self
            .inner
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
        let Some(session) = session else {
            return if self.record(id).is_some() {
                Ok(())
            } else {
                Err(SessionError::NotFound(id))
            };
        };
        self.write_credentials().retain(|c| c.session != id);
        let _ = std::fs::remove_file(self.dir(id).join(SCHEDULE_FILE));
        session
            .info
            .send_modify(|info| info.ended = Some(reason.to_string()));
        let goodbye = Bytes::from(format!(
            "\r\n\x1b[0m[tandem] the session has ended: {reason}\r\n"
        ));
        // Output the pump pushes between these goodbyes and `close_all` still reaches the
        // clients, after the goodbye (tests/shared_terminal.rs allows for it).
        for p in session.participants() {
            p_notify(&p, goodbye.clone());
        }
        session.hub.close_all();
        session
            .recorder
            .event(json!({"event": "end", "reason": reason}));
        self.save(&session);
        let manager = self.inner.instances.manager();
        if let Err(e) = manager
            .stop(session.instance().id, Duration::from_secs(5))
            .await
        {
            tracing::warn!(session = %id, error = %e, "stopping the session's sandbox failed");
        }
        tracing::info!(session = %id, reason, "session ended");
        Ok(())
    }

    /// Swaps the sandbox of the live session `id` for a fresh instance of its task (a warm
    /// one when the pool has one), on the terminal's size. Participants stay connected:
    /// the shared terminal is cleared, says who reset it, and shows the new shell; the
    /// recording and the events note it. The old sandbox is stopped. One reset at a time.
    pub async fn reset(&self, id: SessionId, by: &str) -> Result<Arc<Instance>, SessionError> {
        let session = self.get(id).ok_or(SessionError::NotFound(id))?;
        if session.resetting.swap(true, Ordering::AcqRel) {
            return Err(SessionError::FailedPrecondition(
                "a reset of this session is already under way".into(),
            ));
        }
        let result = self.swap_instance(&session, by).await;
        session.resetting.store(false, Ordering::Release);
        result
    }

    async fn swap_instance(
        &self,
        session: &Arc<Session>,
        by: &str,
    ) -> Result<Arc<Instance>, SessionError> {
        let task = Arc::clone(&session.instance().task);
        session.tell_everyone(&format!("{by} is resetting the box"));
        let fresh = self
            .inner
            .instances
            .start(task, &session.created_by, session.terminal_size().into())
            .await?;
        let shell = fresh
            .shell()
            .ok_or_else(|| SessionError::Internal("the instance has no shell".into()))?;
        *session
            .reset_notice
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Bytes::from(format!(
            "\x1b[0m\x1b[H\x1b[2J[tandem] {by} reset the box: this is a fresh one\r\n"
        )));
        let old = std::mem::replace(
            &mut *session
                .instance
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            Arc::clone(&fresh),
        );
        *session
            .shell
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = shell;
        session.recorder.event(json!({
            "event": "reset", "by": by, "instance": fresh.id.to_string(), "warm": fresh.warm,
        }));
        self.save(session);
        // The pump follows the new shell once the old one's output has ended.
        let manager = self.inner.instances.manager();
        if let Err(e) = manager.stop(old.id, Duration::ZERO).await {
            tracing::warn!(session = %session.id, error = %e, "stopping the replaced sandbox failed");
        }
        // Ended meanwhile: `end` may have stopped the old sandbox, not this one.
        if session.info().ended.is_some() {
            let _ = manager.stop(fresh.id, Duration::ZERO).await;
            return Err(SessionError::NotFound(session.id));
        }
        session.tell_everyone(&format!("{by} reset the box"));
        tracing::info!(session = %session.id, %by, instance = %fresh.id, warm = fresh.warm, "session reset");
        Ok(fresh)
    }

    /// Ends every live session with `reason` (daemon shutdown).
    pub async fn end_all(&self, reason: &str) {
        let ids: Vec<SessionId> = self
            .inner
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        for id in ids {
            let _ = self.end(id, reason).await;
        }
    }

    /// Task instances (and through them, the worker).
    pub fn instances(&self) -> &Instances {
        &self.inner.instances
    }

    pub(crate) fn save(&self, session: &Session) {
        let info = session.info();
        let instance = session.instance();
        let record = SessionRecord {
            id: session.id,
            task: instance.task.name.clone(),
            instance: Some(instance.id),
            created_by: session.created_by.clone(),
            created_at: session.created_at,
            expires_at: info.expires_at,
            ended: info.ended,
            scheduled_at: session.scheduled_at,
            started_at: info.started_at,
            clock: session.clock,
        };
        self.store_record(&self.dir(session.id), record);
    }

    fn read_credentials(&self) -> std::sync::RwLockReadGuard<'_, Vec<Credentials>> {
        self.inner
            .credentials
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_credentials(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Credentials>> {
        self.inner
            .credentials
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn p_notify(p: &crate::Participant, bytes: Bytes) {
    p.notify(bytes);
}

/// Makes a file of JSON lines that a crashed daemon was writing end with a complete line:
/// a SIGKILL during a write of several pages stops it at a page boundary, which leaves
/// the last line torn, and a crash between two writes of the buffered writer can leave it
/// without its newline. A last line that parses gets its newline; one that does not is cut.
fn end_at_last_line(path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = file.metadata()?.len();
    // The start of the last line: after the last newline, searched from the end.
    let mut start = 0;
    let mut end = len;
    let mut block = vec![0u8; 64 << 10];
    while end > 0 {
        let from = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..(end - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            start = from + i as u64 + 1;
            break;
        }
        end = from;
    }
    if start == len {
        return Ok(());
    }
    let mut last = Vec::new();
    file.seek(SeekFrom::Start(start))?;
    file.read_to_end(&mut last)?;
    if serde_json::from_slice::<serde_json::Value>(&last).is_ok() {
        file.seek(SeekFrom::End(0))?;
        file.write_all(b"\n")
    } else {
        tracing::warn!(file = %path.display(), bytes = last.len(), "cut a torn last line of a recording");
        file.set_len(start)
    }
}

/// Writes `dir/session.json` atomically (mode 0644: it holds no secret).
/// A live session about to be made (see `Sessions::open`).
struct Opening<'a> {
    id: SessionId,
    task: &'a Task,
    created_by: &'a str,
    created_at: SystemTime,
    duration: Duration,
    instance: Arc<Instance>,
    expires_at: SystemTime,
    started_at: Option<SystemTime>,
    /// The scheduled start and clock, for a scheduled session.
    scheduled: Option<(SystemTime, ClockStart)>,
}

/// The file a scheduled session keeps until its clock starts.
const SCHEDULE_FILE: &str = "schedule.json";

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

fn write_record(dir: &Path, record: &SessionRecord) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    tandem_fsutil::write_atomic(&dir.join("session.json"), &json, 0o644)
}

/// Longest a session may last, and the furthest its end may lie ahead after extensions.
pub const MAX_SESSION_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Most public keys registered for one role of a session.
pub const MAX_KEYS_PER_ROLE: usize = 32;
/// Longest public key line (`type base64 comment`): an RSA key of 16384 bits is about
/// 2.8 KB of base64.
pub const MAX_KEY_LINE: usize = 8 * 1024;

/// `type base64 [comment]` → the key without its comment, and a name.
fn parse_key(line: &str, role: ParticipantRole) -> Result<Key, String> {
    if line.len() > MAX_KEY_LINE {
        return Err(format!(
            "{} bytes is longer than the {MAX_KEY_LINE} a public key line may have",
            line.len()
        ));
    }
    // The comment becomes the participant's name, shown in interviewers' title bars: no
    // escape sequences, no control characters.
    if let Some(c) = line
        .chars()
        .find(|c| c.is_control() && !matches!(c, ' ' | '\t' | '\n' | '\r'))
    {
        return Err(format!(
            "contains the control character {c:?} (a key line is printable text)"
        ));
    }
    let mut fields = line.split_whitespace();
    let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
        return Err("expected an OpenSSH public key: `ssh-ed25519 AAAA… comment`".into());
    };
    if !kind.starts_with("ssh-") && !kind.starts_with("ecdsa-") && !kind.starts_with("sk-") {
        return Err(format!("{kind:?} is not an SSH key type"));
    }
    if blob.len() < 16
        || !blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
    {
        return Err("the key data is not base64".into());
    }
    let comment: Vec<&str> = fields.collect();
    Ok(Key {
        key: format!("{kind} {blob}"),
        name: if comment.is_empty() {
            role.to_string()
        } else {
            comment.join(" ")
        },
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `default` cases unless PROPTEST_CASES asks for more (or fewer). (Unit tests: a
    /// failure is reported with its minimal input, not saved to a file.)
    fn cases(default: u32) -> ProptestConfig {
        let mut config = ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        if std::env::var_os("PROPTEST_CASES").is_none() {
            config.cases = default;
        }
        config
    }

    const KINDS: &[&str] = &[
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "sk-ssh-ed25519@openssh.com",
    ];

    proptest! {
        #![proptest_config(cases(2_000))]

        /// Whatever the line: an answer, never a panic; a key only of a known type with
        /// base64 data, bounded, and a name without control characters.
        #[test]
        fn any_line_is_answered(line in prop_oneof!["\\PC{0,200}", any::<String>(), "(ssh-|ecdsa-|sk-)[ -~]{0,100}"]) {
            if let Ok(key) = parse_key(&line, ParticipantRole::Interviewer) {
                prop_assert!(line.len() <= MAX_KEY_LINE);
                let (kind, blob) = key.key.split_once(' ').unwrap();
                prop_assert!(kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"));
                prop_assert!(blob.len() >= 16 && blob.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
                prop_assert!(!key.name.is_empty() && !key.name.chars().any(char::is_control));
            }
        }

        /// A well-formed line gives back its key and its comment (words joined by one
        /// space), or the role as the name without a comment.
        #[test]
        fn well_formed_lines_round_trip(
            kind in 0..KINDS.len(),
            blob in "[A-Za-z0-9+/]{16,600}={0,2}",
            comment in prop::collection::vec("[!-~]{1,12}", 0..4),
            spaces in " {1,3}|\t",
        ) {
            let line = format!("{}{spaces}{blob}{spaces}{}", KINDS[kind], comment.join(&spaces));
            let key = parse_key(&line, ParticipantRole::Candidate).unwrap();
            prop_assert_eq!(key.key, format!("{} {blob}", KINDS[kind]));
            let name = if comment.is_empty() { "candidate".to_string() } else { comment.join(" ") };
            prop_assert_eq!(key.name, name);
            prop_assert_eq!(key.role, ParticipantRole::Candidate);
        }

        /// An escape sequence or other control character anywhere is refused.
        #[test]
        fn control_characters_are_refused(
            blob in "[A-Za-z0-9+/]{16,64}",
            control in prop::sample::select(vec!['\x1b', '\x07', '\0', '\x7f', '\u{9b}', '\x08']),
            at in 0..3usize,
        ) {
            let mut parts = ["ssh-ed25519".to_string(), blob, "ivy@laptop".to_string()];
            parts[at].push(control);
            let err = parse_key(&parts.join(" "), ParticipantRole::Interviewer).unwrap_err();
            prop_assert!(err.contains("control character"), "{}", err);
        }
    }

    #[test]
    fn long_lines_are_refused() {
        let line = format!("ssh-ed25519 {}", "A".repeat(MAX_KEY_LINE));
        let err = parse_key(&line, ParticipantRole::Interviewer).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
        let ok = format!("ssh-rsa {} me", "A".repeat(2800));
        assert!(parse_key(&ok, ParticipantRole::Interviewer).is_ok());
    }

    fn repaired(content: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recording.cast");
        std::fs::write(&path, content).unwrap();
        end_at_last_line(&path).unwrap();
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn a_torn_last_line_is_cut_and_complete_lines_stay() {
        let good = b"{\"version\":2}\n[0.1,\"o\",\"a\"]\n";
        assert_eq!(repaired(good), good);
        let mut torn = good.to_vec();
        torn.extend_from_slice(b"[0.2,\"o\",\"hal");
        assert_eq!(repaired(&torn), good);
        // A torn line longer than the block searched backwards at once.
        let mut long = good.to_vec();
        long.extend_from_slice(b"[0.3,\"o\",\"");
        long.extend(std::iter::repeat_n(b'x', 200_000));
        assert_eq!(repaired(&long), good);
    }

    #[test]
    fn a_complete_last_line_without_its_newline_gets_it() {
        assert_eq!(repaired(b"{\"version\":2}"), b"{\"version\":2}\n");
        assert_eq!(
            repaired(b"{\"version\":2}\n[0.1,\"o\",\"a\"]"),
            b"{\"version\":2}\n[0.1,\"o\",\"a\"]\n"
        );
        assert_eq!(repaired(b"{\"vers"), b"");
        assert_eq!(repaired(b""), b"");
    }
}
