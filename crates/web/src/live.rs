//! The live page's WebSocket: one hub client per page. Server → page: binary messages are
//! the terminal's bytes (the late-joiner snapshot first), text messages JSON facts
//! (`size` before bytes drawn at a new size, `state` with the lock and the participants,
//! `timeline` with new timeline entries and the progress, `ended`). Page → server: text or binary messages are typed input, subject to the
//! session's role and lock rules (observers' is dropped there).

use crate::auth::{Mode, grant, live_session, refused};
use crate::timeline::Follower;
use crate::{AppState, Peer};
use axum::Extension;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem_session::{EVENTS_FILE, ParticipantRole, Session, SessionId, TerminalSize};
use tokio::time::Instant;

/// How often the page is told about participants and the lock, when they changed.
const STATE_EVERY: Duration = Duration::from_secs(1);
/// At most this often the page's timeline reads new events once it has caught up (a
/// burst of them, such as typing, is read in one go).
const TIMELINE_EVERY: Duration = Duration::from_millis(200);

/// `GET /s/<id>/ws`: a live cookie, from a page of this origin.
pub(crate) async fn websocket(
    State(app): State<AppState>,
    Extension(Peer(peer)): Extension<Peer>,
    Extension(proven): Extension<crate::Proven>,
    Path(id): Path<String>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Another site's page cannot open this socket with the visitor's cookie (SameSite
    // keeps it from being sent, and the origin must be ours anyway).
    if !same_origin(&headers) {
        return refused();
    }
    let Some(grant) = grant(&app, &headers, &id, &proven).filter(|g| g.mode == Mode::Live) else {
        return refused();
    };
    let Some(session) = live_session(&app.sessions, grant.session) else {
        return refused();
    };
    // Pages per session and role are bounded: each is a participant (joins and leaves on
    // the timeline, a hub queue).
    let Some(place) = app
        .sockets
        .take(session.id, grant.role, app.limits.max_pages)
    else {
        tracing::info!(%peer, session = %session.id, role = %grant.role, "web page refused: too many open");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many pages of this session are open with this link\n",
        )
            .into_response();
    };
    let shutdown = app.shutdown.clone();
    // Interviewers' notes are for interviewers.
    let timeline = Follower::new(
        app.sessions.dir(session.id).join(EVENTS_FILE),
        grant.role == ParticipantRole::Interviewer,
    );
    upgrade
        .max_message_size(app.limits.max_message)
        .max_frame_size(app.limits.max_message)
        .on_upgrade(move |socket| async move {
            let _place = place;
            run(socket, session, grant.role, peer, timeline, shutdown).await;
        })
}

/// The live pages open, by session and role.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sockets(Arc<Mutex<HashMap<(SessionId, ParticipantRole), usize>>>);

impl Sockets {
    /// A place for one more page of `session` as `role`, unless `max` are open; the place
    /// is given back when the returned guard drops.
    fn take(&self, session: SessionId, role: ParticipantRole, max: usize) -> Option<Place> {
        let mut open = self.lock();
        let count = open.entry((session, role)).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Place {
            sockets: self.clone(),
            key: (session, role),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(SessionId, ParticipantRole), usize>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One open page's place in [`Sockets`].
struct Place {
    sockets: Sockets,
    key: (SessionId, ParticipantRole),
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.sockets.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Whether the request's `Origin` is `https://` + its `Host`.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
    match (get(header::ORIGIN), get(header::HOST)) {
        (Some(origin), Some(host)) => origin.strip_prefix("https://") == Some(host),
        _ => false,
    }
}

/// One page's connection to the session, until the page goes, the session ends or the
/// daemon shuts down.
async fn run(
    socket: WebSocket,
    session: Arc<Session>,
    role: ParticipantRole,
    peer: SocketAddr,
    mut timeline: Follower,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    // The largest window: pages always get the raw stream and draw it at the terminal's
    // own size (the candidate's), never a clipped view.
    let window = TerminalSize {
        rows: TerminalSize::MAX_ROWS,
        cols: TerminalSize::MAX_COLS,
    };
    let client = Arc::new(session.join(role, &role.to_string(), "web", Some(peer), window));
    let (mut sink, mut stream) = socket.split();
    let output = Arc::clone(&client);
    // The sender: owned here, aborted when the page's side ends.
    let sender = tokio::spawn(async move {
        let mut size = None;
        let mut state = None;
        let mut tick = tokio::time::interval(STATE_EVERY);
        // The timeline: read from the start, then whenever the recorder wrote more.
        let mut written = output.session.events_written();
        let mut following = true;
        let mut unread = true;
        let mut next_read = Instant::now();
        loop {
            let bytes = tokio::select! {
                bytes = output.next_output() => bytes,
                _ = tick.tick() => {
                    let now = state_message(&output.session);
                    if state.as_ref() != Some(&now) {
                        if sink.send(Message::Text(Utf8Bytes::from(now.to_string()))).await.is_err() {
                            return;
                        }
                        state = Some(now);
                    }
                    continue;
                }
                changed = written.changed(), if following && !unread => {
                    // Closed: the recording ended; what it wrote last is still to read.
                    following = changed.is_ok();
                    unread = true;
                    continue;
                }
                _ = tokio::time::sleep_until(next_read), if unread => {
                    let upto = *written.borrow_and_update();
                    match timeline.step(upto).await {
                        Ok((message, more)) => {
                            if let Some(message) = message
                                && sink.send(Message::Text(Utf8Bytes::from(message.to_string()))).await.is_err()
                            {
                                return;
                            }
                            unread = more;
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "the page's timeline stops");
                            (following, unread) = (false, false);
                        }
                    }
                    // Catching up: the next step at once (the terminal's output, ready
                    // too, takes turns with it in this select); else not before long.
                    next_read = Instant::now() + if unread { Duration::ZERO } else { TIMELINE_EVERY };
                    continue;
                }
            };
            let Some(bytes) = bytes else { break };
            let now = output.session.terminal_size();
            if size != Some(now) {
                let message = json!({"type": "size", "cols": now.cols, "rows": now.rows});
                if sink
                    .send(Message::Text(Utf8Bytes::from(message.to_string())))
                    .await
                    .is_err()
                {
                    return;
                }
                size = Some(now);
            }
            if sink.send(Message::Binary(bytes)).await.is_err() {
                return;
            }
        }
        let reason = output
            .session
            .info()
            .ended
            .unwrap_or_else(|| "you were removed".into());
        let message = json!({"type": "ended", "reason": reason});
        let _ = sink
            .send(Message::Text(Utf8Bytes::from(message.to_string())))
            .await;
        let _ = sink.send(Message::Close(None)).await;
    });
    let abort = sender.abort_handle();
    tokio::select! {
        _ = async {
            while let Some(Ok(message)) = stream.next().await {
                match message {
                    Message::Text(text) => client.input(text.as_bytes()).await,
                    Message::Binary(bytes) => client.input(&bytes).await,
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
        } => {}
        _ = shutdown.wait_for(|s| *s) => {}
        _ = sender => return,
    }
    abort.abort();
}

/// The lock and the participants, as the page shows them.
fn state_message(session: &Session) -> serde_json::Value {
    let participants: Vec<_> = session
        .participants()
        .iter()
        .map(|p| json!({"number": p.number, "role": p.role, "name": p.name, "via": p.via}))
        .collect();
    json!({
        "type": "state", "locked": session.is_locked(), "participants": participants,
        "hints_total": session.instance().task.hints.len(),
    })
}
