//! All sessions of a daemon: creating them (a task instance, tokens, the recording; the
//! terminal pump in `pump.rs` and the expiry timer in `expiry.rs` are started here),
//! finding them from credentials, ending them, and their records on disk.

use crate::credentials::{Credentials, Key, MAX_KEYS_PER_ROLE, digest, hex, parse_key, unhex};
use crate::hub::Hub;
use crate::recording::{DEFAULT_RECORDING_CAP, Recorder};
use crate::schedule::{ClockStart, SCHEDULE_FILE, ScheduleTimes, Scheduled};
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

/// The interviewer token's SHA-256 (hex) in a session's directory, for the replay.
pub const REPLAY_DIGEST_FILE: &str = "replay.sha256";

/// How a no-show's end reason starts.
pub const NO_SHOW: &str = "no-show";
/// How a cancelled session's end reason starts.
pub const CANCELLED: &str = "cancelled";

/// The sessions of a daemon. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sessions {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// Task instances (and through them, the worker).
    pub(crate) instances: Instances,
    /// `<state>/sessions`.
    pub(crate) dir: PathBuf,
    /// Live sessions.
    pub(crate) live: RwLock<HashMap<SessionId, Arc<Session>>>,
    /// Sessions created ahead that have not opened.
    pub(crate) scheduled: RwLock<HashMap<SessionId, Arc<Scheduled>>>,
    /// The windows around scheduled starts.
    pub(crate) times: Mutex<ScheduleTimes>,
    /// Credentials of live sessions.
    pub(crate) credentials: RwLock<Vec<Credentials>>,
    /// Records of every session, live and past.
    pub(crate) records: RwLock<HashMap<SessionId, SessionRecord>>,
    /// Bumped whenever a record changes, for those who wait for one.
    pub(crate) records_changed: watch::Sender<u64>,
    /// Cap of each recording file of a new session.
    pub(crate) recording_cap: std::sync::atomic::AtomicU64,
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

    /// Sets the cap of each kind of the candidate's traffic in the recordings of sessions
    /// created from now on (see `recording.rs`: the session's own events have a budget
    /// of their own, at least [`DEFAULT_RECORDING_CAP`]).
    pub fn with_recording_cap(self, cap: u64) -> Self {
        self.inner
            .recording_cap
            .store(cap, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// The registered keys and the session length of `req`, checked.
    pub(crate) fn check_request(req: &CreateSession) -> Result<(Vec<Key>, Duration), SessionError> {
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
        let credentials = Credentials::new(id, &tokens, keys);
        self.keep_replay_digest(&credentials);
        self.write_credentials().push(credentials);
        Ok((session, tokens))
    }

    pub(crate) fn store_record(&self, dir: &Path, record: SessionRecord) {
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

    /// Makes `o` a live session: the recording, the hub, the pump and the expiry timer.
    pub(crate) fn open(
        &self,
        o: Opening<'_>,
        size: TerminalSize,
    ) -> Result<Arc<Session>, SessionError> {
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
            shell_swapped: tokio::sync::Notify::new(),
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
            progress: Mutex::default(),
            hint_writes: tokio::sync::Mutex::default(),
        });
        session.recorder.event(json!({
            "event": if scheduled.is_some() { "open" } else { "create" },
            "session": id.to_string(), "task": task.name, "by": created_by,
            "duration_s": duration.as_secs(), "warm": instance.warm,
            "hints": task.hints.len(),
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
        tokio::spawn(crate::timeline::auto_check(
            self.clone(),
            Arc::clone(&session),
        ));
        tracing::info!(session = %id, task = %task.name, by = %created_by, warm = instance.warm, "session open");
        Ok(session)
    }

    /// The session and role a token belongs to (live or scheduled). The token's digest
    /// is compared with every one, in constant time, whatever matches: the time taken says
    /// nothing about any token.
    pub(crate) fn token_owner(&self, token: &str) -> Option<(SessionId, ParticipantRole)> {
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

    /// Keeps the interviewer token's digest in the session's directory
    /// ([`REPLAY_DIGEST_FILE`], mode 0600): after the end, when its credentials are gone,
    /// the token still opens the recording ([`Self::replay_access`]).
    pub(crate) fn keep_replay_digest(&self, credentials: &Credentials) {
        let Some((_, d)) = credentials
            .digests
            .iter()
            .find(|(role, _)| *role == ParticipantRole::Interviewer)
        else {
            return;
        };
        let file = self.dir(credentials.session).join(REPLAY_DIGEST_FILE);
        if let Err(e) = tandem_fsutil::write_atomic(&file, hex(d).as_bytes(), 0o600) {
            tracing::warn!(session = %credentials.session, error = %e, "cannot keep the replay digest");
        }
    }

    /// Whether `token` is the interviewer token of session `id` and the session has ended:
    /// what opens its recording in a browser. Compared in constant time.
    pub fn replay_access(&self, id: SessionId, token: &str) -> bool {
        if self.record(id).is_none_or(|r| r.ended.is_none()) {
            return false;
        }
        let Some(stored) = std::fs::read_to_string(self.dir(id).join(REPLAY_DIGEST_FILE))
            .ok()
            .and_then(|text| unhex(text.trim()))
        else {
            return false;
        };
        stored.ct_eq(&digest(token)).into()
    }

    /// The live session and role a token grants.
    pub fn by_token(&self, token: &str) -> Option<(Arc<Session>, ParticipantRole)> {
        let (id, role) = self.token_owner(token)?;
        self.get(id).map(|s| (s, role))
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

    /// The live session whose sandbox or terminal (the candidate's shell) `job` is.
    pub fn session_of_job(&self, job: JobId) -> Option<SessionId> {
        self.inner
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .find(|s| s.instance().id == job || s.shell() == job)
            .map(|s| s.id)
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
        // The record says "ended" before anyone is told: a page told of the end logs in
        // for the replay at once, which needs the ended record.
        self.save(&session);
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
        session.shell_swapped.notify_one();
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
        // The hints revealed so far, for the candidate's `hint` in the new box.
        let hints = Self::hints_revealed(session);
        if hints > 0
            && let Err(e) = self.write_hints(session, hints).await
        {
            tracing::warn!(session = %session.id, error = %e, "the hints could not be put in the new box");
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

    pub(crate) fn read_credentials(&self) -> std::sync::RwLockReadGuard<'_, Vec<Credentials>> {
        self.inner
            .credentials
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn write_credentials(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Credentials>> {
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
pub(crate) struct Opening<'a> {
    pub(crate) id: SessionId,
    pub(crate) task: &'a Task,
    pub(crate) created_by: &'a str,
    pub(crate) created_at: SystemTime,
    pub(crate) duration: Duration,
    pub(crate) instance: Arc<Instance>,
    pub(crate) expires_at: SystemTime,
    pub(crate) started_at: Option<SystemTime>,
    /// The scheduled start and clock, for a scheduled session.
    pub(crate) scheduled: Option<(SystemTime, ClockStart)>,
}

fn write_record(dir: &Path, record: &SessionRecord) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    tandem_fsutil::write_atomic(&dir.join("session.json"), &json, 0o644)
}

/// Longest a session may last, and the furthest its end may lie ahead after extensions.
pub const MAX_SESSION_DURATION: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

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
