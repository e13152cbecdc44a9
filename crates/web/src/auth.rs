//! Logging a page in: the role's session token (from the link's fragment, posted once by
//! the page) is exchanged for a cookie scoped to the session's path. Tokens are compared in
//! constant time and never logged; failures are rate-limited per address with the SSH
//! front end's policy ([`FailureLimiter`]); every refusal is the same plain 403. A login
//! from another site's page (a foreign `Origin`) is refused before it is looked at, so no
//! site can spend a visitor's failed logins.
//!
//! * A live session's interviewer or observer token → a *live* cookie, valid while the
//!   session lives (every use checks it still does). The candidate's token is refused.
//! * An ended session's interviewer token → a *replay* cookie for its recording, valid
//!   for [`REPLAY_GRANT_TTL`].
//!
//! A cookie says what it grants (session, role, mode, when issued) and carries an
//! HMAC-SHA256 of that under a key made at the daemon's start: nothing is stored per
//! cookie, so no number of logins can push anyone else's cookie out, and a restart
//! retires every cookie (pages log in again with their link).
//!
//! [`FailureLimiter`]: tandem_session::FailureLimiter

use crate::{AppState, Peer, web_role};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
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

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Replay => "replay",
        }
    }
}

/// What a valid cookie grants.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grant {
    pub(crate) session: SessionId,
    pub(crate) role: ParticipantRole,
    pub(crate) mode: Mode,
}

/// Issues and checks cookies; counts failed logins.
#[derive(Debug)]
pub(crate) struct Grants {
    /// The daemon's cookie key (random, in memory only).
    key: ring::hmac::Key,
    /// Failed logins by address.
    pub(crate) limiter: tandem_session::FailureLimiter,
}

impl Grants {
    pub(crate) fn new() -> Self {
        // The OS random source failing is not recoverable: no secure cookie can be made.
        #[allow(clippy::expect_used)]
        let key =
            ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
                .expect("the OS random number generator works");
        Self {
            key,
            limiter: Default::default(),
        }
    }

    /// A cookie value granting `role` in `session` in `mode`, issued now.
    fn issue(&self, session: SessionId, role: ParticipantRole, mode: Mode) -> String {
        self.sign(session, role, mode, unix_now())
    }

    fn sign(&self, session: SessionId, role: ParticipantRole, mode: Mode, issued: u64) -> String {
        let claims = format!("{session}.{role}.{}.{issued}", mode.as_str());
        let tag = ring::hmac::sign(&self.key, claims.as_bytes());
        format!("{claims}.{}", hex(tag.as_ref()))
    }

    /// What the cookie `value` grants for session `id`, if it is ours, for that session,
    /// and still valid (a live grant's session still live, a replay grant not expired).
    pub(crate) fn find(&self, sessions: &Sessions, id: SessionId, value: &str) -> Option<Grant> {
        let (grant, issued) = self.claims(value)?;
        let valid = grant.session == id
            && match grant.mode {
                Mode::Live => live_session(sessions, grant.session).is_some(),
                Mode::Replay => replay_fresh(issued, unix_now()),
            };
        valid.then_some(grant)
    }

    /// What a cookie of ours says, and when it was issued; None for anything else.
    fn claims(&self, value: &str) -> Option<(Grant, u64)> {
        let (claims, tag) = value.rsplit_once('.')?;
        let tag = unhex(tag)?;
        // Constant time (ring's verify).
        ring::hmac::verify(&self.key, claims.as_bytes(), &tag).ok()?;
        let mut parts = claims.split('.');
        let session: SessionId = parts.next()?.parse().ok()?;
        let role = match parts.next()? {
            "interviewer" => ParticipantRole::Interviewer,
            "observer" => ParticipantRole::Observer,
            _ => return None,
        };
        let mode = match parts.next()? {
            "live" => Mode::Live,
            "replay" => Mode::Replay,
            _ => return None,
        };
        let issued: u64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some((
            Grant {
                session,
                role,
                mode,
            },
            issued,
        ))
    }
}

/// Whether a replay cookie issued at `issued` still opens the recording at `now`.
fn replay_fresh(issued: u64, now: u64) -> bool {
    issued <= now && now - issued < REPLAY_GRANT_TTL.as_secs()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The session if it is live (not ended).
pub(crate) fn live_session(sessions: &Sessions, id: SessionId) -> Option<Arc<Session>> {
    sessions.get(id).filter(|s| s.info().ended.is_none())
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

/// A request body of at most `limit` bytes, arriving within the connection's time limit
/// (a client that sends headers and then trickles or withholds the body does not keep its
/// connection: 408), or the refusal to answer with.
pub(crate) async fn read_body(app: &AppState, body: Body, limit: usize) -> Result<Bytes, Response> {
    match tokio::time::timeout(
        app.limits.handshake_timeout,
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => {
            Err((StatusCode::PAYLOAD_TOO_LARGE, "the request is too large\n").into_response())
        }
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "the request's body did not come\n",
        )
            .into_response()),
    }
}

/// `POST /s/<id>/login` with the token as the body.
pub(crate) async fn login(
    State(app): State<AppState>,
    Extension(Peer(peer)): Extension<Peer>,
    Extension(proven): Extension<crate::Proven>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Another site's page posting a guess in a visitor's browser: refused unread and not
    // counted, so no site can spend the visitor's failed logins.
    if headers.contains_key(header::ORIGIN) && !crate::live::same_origin(&headers) {
        return refused();
    }
    let body = match read_body(&app, body, MAX_LOGIN_BODY).await {
        Ok(body) => body,
        Err(response) => return response,
    };
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
    proven.set();
    let value = grants.issue(id, role, mode);
    tracing::info!(%peer, session = %id, %role, ?mode, "web login");
    let cookie = format!("{COOKIE}={value}; Path=/s/{id}/; HttpOnly; Secure; SameSite=Strict");
    let Ok(cookie) = HeaderValue::from_str(&cookie) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mode = mode.as_str();
    (
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Json(serde_json::json!({"mode": mode, "role": role})),
    )
        .into_response()
}

/// The grant a request's cookie carries for session `id`; a valid one proves the
/// connection (see [`crate::Proven`]).
pub(crate) fn grant(
    app: &AppState,
    headers: &HeaderMap,
    id: &str,
    proven: &crate::Proven,
) -> Option<Grant> {
    let id: SessionId = id.parse().ok()?;
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    let grant = app.grants.find(&app.sessions, id, value)?;
    proven.set();
    Some(grant)
}

/// `GET /s/<id>/recording.cast`: an ended session's recording, for a replay cookie.
pub(crate) async fn recording(
    State(app): State<AppState>,
    Extension(proven): Extension<crate::Proven>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(grant) = grant(&app, &headers, &id, &proven).filter(|g| g.mode == Mode::Replay) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_says_what_it_grants_only_if_ours_and_untampered() {
        let grants = Grants::new();
        let id: SessionId = "00000000-0000-4000-8000-00000000000a".parse().unwrap();
        let cookie = grants.issue(id, ParticipantRole::Observer, Mode::Live);
        let (grant, issued) = grants.claims(&cookie).unwrap();
        assert_eq!(
            (grant.session, grant.role, grant.mode),
            (id, ParticipantRole::Observer, Mode::Live)
        );
        assert!(issued.abs_diff(unix_now()) < 5);
        // An observer's cookie made an interviewer's, or a live one a replay: refused.
        for (from, to) in [(".observer.", ".interviewer."), (".live.", ".replay.")] {
            let forged = cookie.replace(from, to);
            assert_ne!(forged, cookie);
            assert!(grants.claims(&forged).is_none(), "{forged}");
        }
        // Another daemon's (or a restarted one's) cookie, a cut or padded tag, junk.
        assert!(Grants::new().claims(&cookie).is_none());
        assert!(grants.claims(&cookie[..cookie.len() - 2]).is_none());
        assert!(grants.claims(&format!("{cookie}00")).is_none());
        for junk in ["", ".", "a.b.c.d.e", "x".repeat(5000).as_str()] {
            assert!(grants.claims(junk).is_none(), "{junk}");
        }
        // Replay cookies last their time, and none comes from the future.
        let hour = 3600;
        assert!(replay_fresh(1000 * hour, 1000 * hour + 7 * hour));
        assert!(!replay_fresh(1000 * hour, 1000 * hour + 8 * hour));
        assert!(!replay_fresh(1000 * hour + 60, 1000 * hour));
    }
}
