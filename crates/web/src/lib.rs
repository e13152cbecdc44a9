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
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tandem_session::{ParticipantRole, Sessions};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

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
    /// Connections at once; beyond, a new one is closed at accept.
    pub max_connections: usize,
    /// Time for the TLS handshake, and for a request's headers.
    pub handshake_timeout: Duration,
    /// Largest WebSocket message (typed input, pasted text) a page may send.
    pub max_message: usize,
    /// Cookies handed out and not yet expired, at most (the oldest makes room).
    pub max_grants: usize,
}

impl Default for WebLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            handshake_timeout: Duration::from_secs(10),
            max_message: 64 * 1024,
            max_grants: 4096,
        }
    }
}

/// What every request handler shares.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) sessions: Sessions,
    pub(crate) grants: Arc<auth::Grants>,
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
        .route(
            "/s/{id}/action",
            post(actions::action).layer(axum::extract::DefaultBodyLimit::max(actions::MAX_BODY)),
        )
        .route("/s/{id}/timeline", get(timeline::timeline))
        .route("/s/{id}/recording.cast", get(auth::recording))
        .route("/assets/{name}", get(pages::asset))
        .layer(axum::extract::DefaultBodyLimit::max(auth::MAX_LOGIN_BODY))
        .with_state(state)
}

/// The participant role a page may have: interviewers and observers, never the candidate.
pub(crate) fn web_role(role: ParticipantRole) -> Option<ParticipantRole> {
    (role != ParticipantRole::Candidate).then_some(role)
}

/// Serves HTTPS on `listener` until `shutdown` turns true; then open connections and
/// WebSockets close. Each connection has its own task (TLS handshake, HTTP/1.1, upgrades),
/// owned by this function.
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
        grants: Arc::new(auth::Grants::new(limits.max_grants)),
        limits,
        shutdown: shutdown.clone(),
    };
    let app = router(state);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
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
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "web connection refused: too many connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone().layer(axum::Extension(Peer(peer)));
        let mut stop = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
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
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// Bytes of a request's head (request line and headers) hyper buffers, at most.
const MAX_HTTP_BUFFER: usize = 16 * 1024;

/// The address a request came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);
