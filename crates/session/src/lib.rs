//! Interview sessions: a task instance shared by a candidate and interviewers. Knows
//! neither SSH nor gRPC; both transports use it.
//!
//! * [`Sessions`] creates sessions (a task instance, one token per role, the recording,
//!   the expiry timer), finds them from a token or a registered public key, extends and
//!   ends them.
//! * A [`Session`] fans its terminal out to every connected [`Client`] (each with its own
//!   bounded queue; slow clients are resynced with a screen snapshot, never waited for),
//!   routes input by role and lock, makes the terminal follow the candidate's window, and
//!   records everything (asciicast v2 + an events log).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod credentials;
mod expiry;
mod hub;
mod limit;
mod marks;
mod pump;
mod recording;
mod registry;
mod schedule;
mod session;
mod timeline;
mod viewport;

pub use credentials::{MAX_KEY_LINE, MAX_KEYS_PER_ROLE};
pub use hub::CLIENT_QUEUE;
pub use limit::FailureLimiter;
pub use recording::{DEFAULT_RECORDING_CAP, MAX_INPUT_EVENT_BYTES, session_cap};
pub use registry::{
    CANCELLED, CreateSession, MAX_SESSION_DURATION, NO_SHOW, REPLAY_DIGEST_FILE, SessionRecord,
    Sessions,
};
pub use schedule::{ClockStart, MAX_SCHEDULE_AHEAD, Schedule, ScheduleTimes, Upcoming};
pub use session::{Client, Participant, ParticipantAccess, Session, SessionInfo};
pub use timeline::{
    AUTO, ConditionProgress, EVENTS_FILE, HINTS_FILE, MAX_CHECK_OUTPUT_EVENT_BYTES, MAX_NOTE_BYTES,
    MAX_REASON_EVENT_BYTES, Moment, RevealedHint, Timeline, TimelineEntry, TimelineReader,
};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Who a participant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParticipantRole {
    /// Solves the task; the terminal follows their window; always types.
    Candidate,
    /// Watches and may type (unless locked); sees status lines.
    Interviewer,
    /// Watches only.
    Observer,
}

impl fmt::Display for ParticipantRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Candidate => "candidate",
            Self::Interviewer => "interviewer",
            Self::Observer => "observer",
        })
    }
}

/// The size of a terminal: a participant's window or the shared terminal. Transports
/// (SSH) speak this type; the session converts it to the worker's `PtySize` only where it
/// resizes or starts the shell's terminal, so transports need not know the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    /// Rows (lines), at least 1.
    pub rows: u16,
    /// Columns, at least 1.
    pub cols: u16,
}

impl TerminalSize {
    /// Widest terminal a session models (see [`TerminalSize::clamped`]).
    pub const MAX_COLS: u16 = tandem_worker::MAX_TERMINAL_COLS;
    /// Tallest terminal a session models.
    pub const MAX_ROWS: u16 = tandem_worker::MAX_TERMINAL_ROWS;

    /// A client's window size as the session uses it: at least 1×1 and at most
    /// [`MAX_COLS`](Self::MAX_COLS) × [`MAX_ROWS`](Self::MAX_ROWS), so the session's screen
    /// model (a cell per position) stays bounded whatever a client claims.
    pub fn clamped(cols: u32, rows: u32) -> Self {
        let size = tandem_worker::PtySize::clamped(cols, rows);
        Self {
            rows: size.rows,
            cols: size.cols,
        }
    }
}

impl Default for TerminalSize {
    /// 24 rows of 80 columns, as a terminal without a size would have.
    fn default() -> Self {
        Self { rows: 24, cols: 80 }
    }
}

impl From<TerminalSize> for tandem_worker::PtySize {
    fn from(size: TerminalSize) -> Self {
        Self {
            rows: size.rows,
            cols: size.cols,
        }
    }
}

/// A session's id: a random UUID (also the SSH user name for public-key logins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(uuid::Uuid);

impl SessionId {
    /// A fresh random id.
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for SessionId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

/// One login token per role: 160 random bits from the OS, as 40 hex digits (valid SSH
/// user names). Valid until the session ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Logs in as the candidate.
    pub candidate: String,
    /// Logs in as an interviewer.
    pub interviewer: String,
    /// Logs in as an observer.
    pub observer: String,
}

impl Tokens {
    pub(crate) fn generate() -> Self {
        Self {
            candidate: token(),
            interviewer: token(),
            observer: token(),
        }
    }

    pub(crate) fn all(&self) -> [(ParticipantRole, &str); 3] {
        [
            (ParticipantRole::Candidate, &self.candidate),
            (ParticipantRole::Interviewer, &self.interviewer),
            (ParticipantRole::Observer, &self.observer),
        ]
    }
}

fn token() -> String {
    let mut bytes = [0u8; 20];
    // The OS random source failing is not recoverable: no secure token can be made.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the OS random number generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No such live session.
    #[error("session {0} not found")]
    NotFound(SessionId),
    /// Bad input; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// Not now (e.g. a reset already under way).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Starting the task instance failed.
    #[error(transparent)]
    Scenario(#[from] tandem_scenario::ScenarioError),
    /// Something of the daemon's own failed.
    #[error("{0}")]
    Internal(String),
}
