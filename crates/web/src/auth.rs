//! Logging a page in: the role's session token (from the link's fragment, posted once by
//! the page) is exchanged for a cookie scoped to the session's path. Tokens and cookies are
//! compared in constant time and never logged; failures are rate-limited per address with
//! the SSH front end's policy ([`FailureLimiter`]); every refusal is the same plain 403.
//!
//! * A live session's interviewer or observer token → a *live* cookie, valid while the
//!   session lives (every use checks it still does). The candidate's token is refused.
//! * An ended session's interviewer token → a *replay* cookie for its recording, valid
//!   for [`REPLAY_GRANT_TTL`].

use crate::{AppState, Peer, web_role};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tandem_session::{ParticipantRole, Session, SessionId, Sessions};

/// Largest login body: a token is 40 hex digits.
pub(crate) const MAX_LOGIN_BODY: usize = 256;
/// How long a replay cookie opens the recording.
pub(crate) const REPLAY_GRANT_TTL: Duration = Duration::from_secs(8 * 3600);
/// The cookie's name (its path says which session).
const COOKIE: &str = "tandem";

/// What a cookie grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The live page of a session that is still live.
    Live,
    /// The recording of an ended session.
    Replay,
}

/// One cookie handed out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grant {
    /// SHA-256 of the cookie's value (the value itself is kept by the browser only).
    digest: [u8; 32],
    pub(crate) session: SessionId,
    pub(crate) role: ParticipantRole,
    pub(crate) mode: Mode,
    issued: Instant,
}

/// The cookies handed out, bounded: the oldest gives way.
#[derive(Debug)]
pub(crate) struct Grants {
    grants: Mutex<Vec<Grant>>,
    max: usize,
    /// Failed logins by address.
    pub(crate) limiter: tandem_session::FailureLimiter,
}

impl Grants {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            grants: Mutex::new(Vec::new()),
            max: max.max(1),
            limiter: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Grant>> {
        self.grants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands out a cookie value for `session` as `role`.
    fn issue(
        &self,
        sessions: &Sessions,
        session: SessionId,
        role: ParticipantRole,
        mode: Mode,
    ) -> String {
        let value = random_hex();
        let grant = Grant {
            digest: digest(&value),
            session,
            role,
            mode,
            issued: Instant::now(),
        };
        let mut grants = self.lock();
        grants.retain(|g| still_valid(sessions, g));
        if grants.len() >= self.max {
            grants.remove(0);
        }
        grants.push(grant);
        value
    }

    /// The grant of the cookie `value` for session `id`, if still valid. Every stored
    /// digest is compared, in constant time, whatever matches.
    pub(crate) fn find(&self, sessions: &Sessions, id: SessionId, value: &str) -> Option<Grant> {
        let presented = digest(value);
        let mut found = None;
        for g in self.lock().iter() {
            let equal: bool = g.digest.ct_eq(&presented).into();
            if equal {
                found = Some(*g);
            }
        }
        found.filter(|g| g.session == id && still_valid(sessions, g))
    }
}

fn still_valid(sessions: &Sessions, grant: &Grant) -> bool {
    match grant.mode {
        Mode::Live => live_session(sessions, grant.session).is_some(),
        Mode::Replay => grant.issued.elapsed() < REPLAY_GRANT_TTL,
    }
}

/// The session if it is live (not ended).
pub(crate) fn live_session(sessions: &Sessions, id: SessionId) -> Option<Arc<Session>> {
    sessions.get(id).filter(|s| s.info().ended.is_none())
}

fn digest(text: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn random_hex() -> String {
    let mut bytes = [0u8; 20];
    // The OS random source failing is not recoverable: no secure cookie can be made.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the OS random number generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one answer to every failed login or unauthorised request.
pub(crate) fn refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CACHE_CONTROL, "no-store")],
        "refused\n",
    )
        .into_response()
}

/// `POST /s/<id>/login` with the token as the body.
pub(crate) async fn login(
    State(app): State<AppState>,
    Extension(Peer(peer)): Extension<Peer>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let grants = &app.grants;
    if grants.limiter.blocked(peer.ip()) {
        tracing::info!(%peer, "web login refused: too many failures from this address");
        return refused();
    }
    let token = std::str::from_utf8(&body).unwrap_or("").trim();
    let granted = id.parse::<SessionId>().ok().and_then(|id| {
        if let Some((session, role)) = app.sessions.by_token(token)
            && session.id == id
            && session.info().ended.is_none()
        {
            return web_role(role).map(|role| (id, role, Mode::Live));
        }
        app.sessions.replay_access(id, token).then_some((
            id,
            ParticipantRole::Interviewer,
            Mode::Replay,
        ))
    });
    let Some((id, role, mode)) = granted else {
        grants.limiter.failed(peer.ip());
        tracing::info!(%peer, "web login refused");
        return refused();
    };
    let value = grants.issue(&app.sessions, id, role, mode);
    tracing::info!(%peer, session = %id, %role, ?mode, "web login");
    let cookie = format!("{COOKIE}={value}; Path=/s/{id}/; HttpOnly; Secure; SameSite=Strict");
    let Ok(cookie) = HeaderValue::from_str(&cookie) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mode = match mode {
        Mode::Live => "live",
        Mode::Replay => "replay",
    };
    (
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Json(serde_json::json!({"mode": mode, "role": role})),
    )
        .into_response()
}

/// The grant a request's cookie carries for session `id`.
pub(crate) fn grant(app: &AppState, headers: &HeaderMap, id: &str) -> Option<Grant> {
    let id: SessionId = id.parse().ok()?;
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    app.grants.find(&app.sessions, id, value)
}

/// `GET /s/<id>/recording.cast`: an ended session's recording, for a replay cookie.
pub(crate) async fn recording(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(grant) = grant(&app, &headers, &id).filter(|g| g.mode == Mode::Replay) else {
        return refused();
    };
    let path = app.sessions.dir(grant.session).join("recording.cast");
    match tokio::fs::File::open(&path).await {
        Ok(file) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            // Streamed: a recording may be as large as the daemon's recording cap.
            Body::from_stream(tokio_util::io::ReaderStream::new(file)),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(session = %grant.session, error = %e, "cannot read the recording");
            (StatusCode::NOT_FOUND, "no recording\n").into_response()
        }
    }
}
