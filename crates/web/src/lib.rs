//! tandem's web front end: interviewers and observers follow a session's shared terminal in
//! a browser, and interviewers replay ended sessions. A third kind of hub client next to
//! SSH; it owns no session state (that lives in `tandem-session`).
//!
//! * HTTPS only: TLS 1.3 with the server certificate of tandem's PKI (`tls.rs`).
//! * Login (`auth.rs`): a page link carries the role's session token in its fragment
//!   (`/s/<id>/#<token>`, never sent in a request line or logged); the page posts it once
//!   and gets a cookie scoped to that session's path (HttpOnly, Secure, SameSite=Strict).
//!   The candidate's token is refused: candidates use `ssh`.
//! * Live (`live.rs`): one WebSocket per page joins the session's hub with the raw stream
//!   (the late-joiner snapshot first) and the candidate's terminal size; input goes
//!   through the session's role and lock rules, like SSH's.
//! * Actions (`actions.rs`): an interviewer's page checks, reveals a hint, takes a note,
//!   locks, unlocks, resets and ends the session with the verbs the CLI uses.
//! * Timeline (`timeline.rs`): a live page follows the session's timeline as its events
//!   are written; the replay page gets an ended session's whole timeline.
//! * Pages and assets (`pages.rs`): xterm.js and asciinema-player, vendored from npm and
//!   embedded in the binary; nothing is loaded from elsewhere.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod actions;
mod auth;
mod live;
mod pages;
mod timeline;
mod tls;

pub use tls::server_config;

use axum::Router;
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tandem_session::{ParticipantRole, Sessions};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Why the web front end could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The server certificate or key is missing or unreadable.
    #[error(transparent)]
    Pki(#[from] tandem_pki::PkiError),
    /// rustls refused the certificate or key.
    #[error("web TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The web front end's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebLimits {
    /// Connections at once; beyond, a new one takes the place of the oldest that has not
    /// logged in (or is closed at accept if every one has).
    pub max_connections: usize,
    /// Live pages (WebSockets) open at once per session and role.
    pub max_pages: usize,
    /// Time for the TLS handshake, for a request's headers, and for its body.
    pub handshake_timeout: Duration,
    /// Largest WebSocket message (typed input, pasted text) a page may send.
    pub max_message: usize,
}

impl Default for WebLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_pages: 32,
            handshake_timeout: Duration::from_secs(10),
            max_message: 64 * 1024,
        }
    }
}

/// What every request handler shares.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) sessions: Sessions,
    pub(crate) grants: Arc<auth::Grants>,
    /// Live pages open, by session and role (bounded: [`WebLimits::max_pages`]).
    pub(crate) sockets: live::Sockets,
    pub(crate) limits: WebLimits,
    /// Turns true at shutdown: open WebSockets close.
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// The routes (see the crate's header).
fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/s/{id}/", get(pages::live))
        .route("/s/{id}/replay", get(pages::replay))
        .route("/s/{id}/login", post(auth::login))
        .route("/s/{id}/ws", get(live::websocket))
        .route("/s/{id}/action", post(actions::action))
        .route("/s/{id}/timeline", get(timeline::timeline))
        .route("/s/{id}/recording.cast", get(auth::recording))
        .route("/assets/{name}", get(pages::asset))
        .with_state(state)
}

/// The participant role a page may have: interviewers and observers, never the candidate.
pub(crate) fn web_role(role: ParticipantRole) -> Option<ParticipantRole> {
    (role != ParticipantRole::Candidate).then_some(role)
}

/// Serves HTTPS on `listener` until `shutdown` turns true; then open connections and
/// WebSockets close. Each connection has its own task (TLS handshake, HTTP/1.1, upgrades),
/// owned by this function.
///
/// At most `max_connections` at once. When all are taken, a new connection takes the
/// place of the oldest one that has not yet shown a valid login or cookie ([`Proven`]),
/// as the SSH front door does: idle or trickling connections cannot keep interviewers
/// out, and a connection in use is never cut for a newcomer.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    sessions: Sessions,
    limits: WebLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let state = AppState {
        sessions,
        grants: Arc::new(auth::Grants::new()),
        sockets: Default::default(),
        limits,
        shutdown: shutdown.clone(),
    };
    let app = router(state);
    let mut connections = tokio::task::JoinSet::new();
    let mut open: HashMap<tokio::task::Id, Open> = HashMap::new();
    let mut refusals = Refusals::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            Some(done) = connections.join_next_with_id(), if !connections.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                open.remove(&id);
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a web connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.len() >= limits.max_connections {
            let oldest = open
                .iter()
                .filter(|(_, o)| !o.proven.is_set())
                .min_by_key(|(_, o)| o.accepted)
                .map(|(id, _)| *id);
            match oldest.and_then(|id| open.remove(&id)) {
                Some(evicted) => evicted.abort.abort(),
                None => {
                    refusals.refused(peer, limits.max_connections);
                    continue;
                }
            }
        }
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let proven = Proven::default();
        let app = app
            .clone()
            .layer(axum::Extension(Peer(peer)))
            .layer(axum::Extension(proven.clone()));
        let mut stop = shutdown.clone();
        let abort = connections.spawn(async move {
            let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "web TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "web TLS handshake timed out");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.handshake_timeout)
                .max_buf_size(MAX_HTTP_BUFFER)
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "web connection ended");
                    }
                }
                _ = stop.wait_for(|s| *s) => {}
            }
        });
        open.insert(
            abort.id(),
            Open {
                accepted: Instant::now(),
                proven,
                abort,
            },
        );
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// A connection `serve` keeps track of.
struct Open {
    accepted: Instant,
    proven: Proven,
    abort: tokio::task::AbortHandle,
}

/// Set once a request on the connection logged in or showed a valid cookie: from then on
/// the connection is not made room from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Proven(Arc<AtomicBool>);

impl Proven {
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Connections refused because every place is taken by proven ones: logged at most once
/// every [`REFUSALS_LOGGED_EVERY`], with how many.
#[derive(Default)]
struct Refusals {
    since_logged: u64,
    logged: Option<Instant>,
}

const REFUSALS_LOGGED_EVERY: Duration = Duration::from_secs(10);

impl Refusals {
    fn refused(&mut self, peer: SocketAddr, max: usize) {
        self.since_logged += 1;
        if self
            .logged
            .is_none_or(|t| t.elapsed() >= REFUSALS_LOGGED_EVERY)
        {
            tracing::warn!(%peer, max, refused = self.since_logged,
                "web connections refused: every place is taken by logged-in pages");
            self.since_logged = 0;
            self.logged = Some(Instant::now());
        }
    }
}

/// Bytes of a request's head (request line and headers) hyper buffers, at most.
const MAX_HTTP_BUFFER: usize = 16 * 1024;

/// The address a request came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);
