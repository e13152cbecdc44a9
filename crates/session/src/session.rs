//! One interview session: a task instance, its participants, the shared terminal and the
//! recording.

use crate::hub::{ClientQueue, Hub, Slot};
use crate::recording::Recorder;
use crate::{ParticipantRole, SessionId, TerminalSize};
use bytes::Bytes;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tandem_scenario::Instance;
use tandem_worker::{JobId, JobManager};
use tokio::sync::watch;

/// Whether a participant's typing reaches the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParticipantAccess {
    /// Types into the shared terminal (unless the session is locked, for non-candidates).
    Writer,
    /// Watches only; input is dropped.
    Observer,
}

/// Someone connected to a session (one SSH connection).
#[derive(Debug)]
pub struct Participant {
    /// Number within the session (1, 2, …), stable for its connection.
    pub number: u64,
    /// Who they are: the token's or key's role.
    pub role: ParticipantRole,
    /// A name for lists and the event log (the key's comment, or the role).
    pub name: String,
    /// Where they connect from.
    pub from: Option<SocketAddr>,
    /// How they authenticated (`token` or `key`).
    pub via: &'static str,
    /// When they joined.
    pub joined_at: SystemTime,
    /// Whether their input goes to the terminal (changeable while connected).
    access: Mutex<ParticipantAccess>,
    /// Their window size.
    size: Mutex<TerminalSize>,
    /// Their delivery slot.
    slot: Arc<Slot>,
}

impl Participant {
    /// Current access.
    pub fn access(&self) -> ParticipantAccess {
        *self
            .access
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Their window size.
    pub fn size(&self) -> TerminalSize {
        *self
            .size
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues bytes for this participant only.
    pub(crate) fn notify(&self, bytes: Bytes) {
        self.slot.notify(bytes);
    }
}

/// Mutable facts about a session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// When it ends (while it waits for the candidate: when it ends as a no-show).
    pub expires_at: SystemTime,
    /// Ended (and why).
    pub ended: Option<String>,
    /// When its clock started; none while a scheduled session waits for the candidate.
    pub started_at: Option<SystemTime>,
}

/// An interview session.
#[derive(Debug)]
pub struct Session {
    /// Its id (also the SSH user name for public-key logins).
    pub id: SessionId,
    /// The task instance it runs (replaced by a reset).
    pub(crate) instance: Mutex<Arc<Instance>>,
    /// The shared terminal: the instance's current shell job (replaced when it exits, and
    /// by a reset).
    pub(crate) shell: Mutex<JobId>,
    /// A reset is under way (one at a time).
    pub(crate) resetting: AtomicBool,
    /// What the terminal shows when it switches to a reset's new shell.
    pub(crate) reset_notice: Mutex<Option<Bytes>>,
    /// A reset replaced `shell`: wakes the pump when it waits without a shell.
    pub(crate) shell_swapped: tokio::sync::Notify,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: SystemTime,
    /// How long it lasts once its clock starts.
    pub duration: std::time::Duration,
    /// The start it was scheduled for, if it was.
    pub scheduled_at: Option<SystemTime>,
    /// When a scheduled session's clock starts.
    pub clock: Option<crate::ClockStart>,
    /// Expiry and end.
    pub(crate) info: watch::Sender<SessionInfo>,
    /// Only the candidate may type.
    pub(crate) locked: AtomicBool,
    /// The terminal fan-out.
    pub(crate) hub: Hub,
    /// Recording.
    pub(crate) recorder: Recorder,
    /// Connected participants.
    pub(crate) participants: Mutex<Vec<Arc<Participant>>>,
    /// Next participant number.
    pub(crate) next_number: AtomicU64,
    /// The worker (input, resize).
    pub(crate) manager: JobManager,
    /// Checks' conditions, first passes, hints revealed (see `timeline.rs`).
    pub(crate) progress: Mutex<crate::timeline::Progress>,
    /// One write of the hints file at a time (held across the write job, not network IO),
    /// so two hints revealed at once cannot leave the shorter list last.
    pub(crate) hint_writes: tokio::sync::Mutex<()>,
}

/// A participant's connection to the shared terminal. Dropping it leaves the session.
#[derive(Debug)]
pub struct Client {
    /// The session.
    pub session: Arc<Session>,
    /// Who this is.
    pub participant: Arc<Participant>,
    /// Its queue (one reader at a time: the transport's sender task).
    queue: tokio::sync::Mutex<ClientQueue>,
}

impl Session {
    /// The task instance the session runs now.
    pub fn instance(&self) -> Arc<Instance> {
        Arc::clone(
            &self
                .instance
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The shared terminal's job (the candidate's current shell).
    pub fn shell(&self) -> JobId {
        *self
            .shell
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Current expiry and end state.
    pub fn info(&self) -> SessionInfo {
        self.info.borrow().clone()
    }

    /// Watches expiry and end.
    pub fn watch(&self) -> watch::Receiver<SessionInfo> {
        self.info.subscribe()
    }

    /// Bytes of the session's `events.jsonl` written so far; changes as events are
    /// written, closes when the recording ends (see [`crate::TimelineReader`]).
    pub fn events_written(&self) -> watch::Receiver<u64> {
        self.recorder.events_written()
    }

    /// Whether only the candidate may type.
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Acquire)
    }

    /// The connected participants.
    pub fn participants(&self) -> Vec<Arc<Participant>> {
        self.lock_participants().clone()
    }

    /// The terminal's size (rows, cols).
    pub fn terminal_size(&self) -> TerminalSize {
        let (rows, cols) = self.hub.size();
        TerminalSize { rows, cols }
    }

    fn lock_participants(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Participant>>> {
        self.participants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Joins the shared terminal as `role`. The first bytes the client gets are a snapshot
    /// of the current screen.
    pub fn join(
        self: &Arc<Self>,
        role: ParticipantRole,
        name: &str,
        via: &'static str,
        from: Option<SocketAddr>,
        size: TerminalSize,
    ) -> Client {
        let queue = self.hub.join_with_window(Some((size.rows, size.cols)));
        let participant = Arc::new(Participant {
            number: self.next_number.fetch_add(1, Ordering::Relaxed) + 1,
            role,
            name: name.to_string(),
            from,
            via,
            joined_at: SystemTime::now(),
            access: Mutex::new(if role == ParticipantRole::Observer {
                ParticipantAccess::Observer
            } else {
                ParticipantAccess::Writer
            }),
            size: Mutex::new(size),
            slot: Arc::clone(&queue.slot),
        });
        self.lock_participants().push(Arc::clone(&participant));
        if role == ParticipantRole::Candidate {
            self.candidate_arrived();
        } else if self.info().started_at.is_none() {
            participant.slot.notify(Bytes::from_static(
                b"\x1b]2;tandem: waiting for the candidate: the clock starts when they log in\x07",
            ));
        }
        self.recorder.event(json!({
            "event": "join", "participant": participant.number, "name": participant.name,
            "role": role, "via": via, "from": from.map(|a| a.to_string()),
        }));
        tracing::info!(session = %self.id, participant = participant.number, %role, name, via, "participant joined");
        self.tell_interviewers(&format!(
            "{} joined as {role} (#{})",
            participant.name, participant.number
        ));
        let client = Client {
            session: Arc::clone(self),
            participant,
            queue: tokio::sync::Mutex::new(queue),
        };
        client.resize(size);
        client
    }

    /// The candidate logged in: a waiting session's clock starts now.
    fn candidate_arrived(&self) {
        let now = SystemTime::now();
        let started = self.info.send_if_modified(|info| {
            if info.started_at.is_some() {
                return false;
            }
            info.started_at = Some(now);
            info.expires_at = now + self.duration;
            true
        });
        if started {
            self.recorder.event(json!({
                "event": "candidate_arrived", "clock_s": self.duration.as_secs(),
            }));
            tracing::info!(session = %self.id, "the candidate arrived: the clock started");
            self.tell_interviewers(&format!(
                "the candidate is here: {} from now",
                humantime::format_duration(self.duration)
            ));
        }
    }

    /// Sends a status line to interviewers and observers (in their terminal's title, which
    /// does not touch the shared screen) and never to the candidate.
    pub fn tell_interviewers(&self, message: &str) {
        let title = Bytes::from(format!("\x1b]2;tandem: {}\x07", title_text(message)));
        for p in self.lock_participants().iter() {
            if p.role != ParticipantRole::Candidate {
                p.slot.notify(title.clone());
            }
        }
    }

    /// Sends a line to everybody (time warnings): in the title, with a bell.
    pub fn tell_everyone(&self, message: &str) {
        let title = Bytes::from(format!("\x1b]2;tandem: {}\x07\x07", title_text(message)));
        for p in self.lock_participants().iter() {
            p.slot.notify(title.clone());
        }
    }

    /// Changes a participant's access (`by`: who, for the events); returns false if no
    /// such participant.
    pub fn set_access(&self, number: u64, access: ParticipantAccess, by: &str) -> bool {
        let found = self
            .lock_participants()
            .iter()
            .find(|p| p.number == number)
            .cloned();
        let Some(p) = found else {
            return false;
        };
        *p.access
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = access;
        self.recorder.event(json!({
            "event": "access", "participant": number, "name": p.name, "access": access,
            "set_by": by,
        }));
        self.tell_interviewers(
            &format!("{} (#{number}) is now a {access:?}", p.name).to_lowercase(),
        );
        true
    }

    /// Locks (only the candidate types) or unlocks the terminal (`by`: who, for the
    /// events).
    pub fn set_locked(&self, locked: bool, by: &str) {
        self.locked.store(locked, Ordering::Release);
        self.recorder
            .event(json!({"event": if locked { "lock" } else { "unlock" }, "by": by}));
        self.tell_interviewers(if locked {
            "terminal locked: only the candidate types"
        } else {
            "terminal unlocked"
        });
    }

    fn leave(&self, participant: &Arc<Participant>) {
        self.hub.leave(&participant.slot);
        self.lock_participants()
            .retain(|p| !Arc::ptr_eq(p, participant));
        self.recorder.event(json!({
            "event": "leave", "participant": participant.number, "name": participant.name,
        }));
        tracing::info!(session = %self.id, participant = participant.number, "participant left");
        self.tell_interviewers(&format!(
            "{} (#{}) left",
            participant.name, participant.number
        ));
    }
}

impl Client {
    /// The next bytes to show this participant; `None` when the session has ended (or
    /// the participant was removed) and everything queued was delivered.
    pub async fn next_output(&self) -> Option<Bytes> {
        self.queue.lock().await.next(&self.session.hub).await
    }

    /// Input typed by this participant: reaches the terminal if their access allows it
    /// (observers never; others only while unlocked; the candidate always).
    pub async fn input(&self, data: &[u8]) {
        let p = &self.participant;
        let allowed = match p.role {
            ParticipantRole::Candidate => true,
            _ => p.access() == ParticipantAccess::Writer && !self.session.is_locked(),
        };
        if !allowed || data.is_empty() {
            return;
        }
        // Before the write: the shell may start the command before the write returns.
        self.session.typed(p, data);
        if self
            .session
            .manager
            .write_input(self.session.shell(), data)
            .await
            .is_ok()
        {
            self.session.recorder.input(p.number, &p.name, data);
        }
    }

    /// This participant's window changed. The terminal follows the candidate's size;
    /// others keep theirs: a smaller window gets a clipped view that follows the cursor.
    pub fn resize(&self, size: TerminalSize) {
        let p = &self.participant;
        *p.size
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = size;
        if p.role == ParticipantRole::Candidate
            && size != self.session.terminal_size()
            && self
                .session
                .manager
                .resize(self.session.shell(), size.into())
                .is_ok()
        {
            self.session.hub.resize(size.rows, size.cols);
            self.session.recorder.resize(size.cols, size.rows);
            self.session.recorder.event(json!({
                "event": "resize", "participant": p.number, "cols": size.cols, "rows": size.rows,
            }));
        }
        // A smaller window sees the part of the screen around the cursor (the hub's
        // clipped view, with a line saying what is hidden); a larger one the raw stream.
        self.session.hub.set_window(&p.slot, size.rows, size.cols);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.session.leave(&self.participant);
    }
}

/// `message` fit for a terminal title: control characters (a BEL or ESC would end the
/// title and start a sequence of the sender's choosing; a check's first line can be the
/// candidate's text) become U+FFFD.
fn title_text(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_cannot_be_ended_early() {
        assert_eq!(
            title_text("check failed: x\x07\x1b]52;c;eA==\x1b\\ok\n"),
            "check failed: x\u{fffd}\u{fffd}]52;c;eA==\u{fffd}\\ok\u{fffd}"
        );
    }
}
