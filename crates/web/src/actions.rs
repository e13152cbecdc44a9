//! What an interviewer's page may do besides typing: lock, unlock, reset, end. The same
//! session verbs the CLI's `session lock|unlock|reset|end` use over gRPC, so the same
//! events are recorded (`lock`/`unlock`, the reset's and the end's), with `web
//! interviewer` where they name who. Observers may do none of it.

use crate::auth::{Mode, grant, refused};
use crate::live::same_origin;
use crate::{AppState, Peer};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tandem_session::ParticipantRole;

/// Who the session's events and end reason name for an action from a page.
const WHO: &str = "web interviewer";

/// `POST /s/<id>/action` with `lock`, `unlock`, `reset` or `end` as the body.
pub(crate) async fn action(
    State(app): State<AppState>,
    Extension(Peer(peer)): Extension<Peer>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // A form or script of another site cannot act with the interviewer's cookie.
    if !same_origin(&headers) {
        return refused();
    }
    let Some(grant) = grant(&app, &headers, &id)
        .filter(|g| g.mode == Mode::Live && g.role == ParticipantRole::Interviewer)
    else {
        return refused();
    };
    let Some(session) = app.sessions.get(grant.session) else {
        return refused();
    };
    let verb = std::str::from_utf8(&body).unwrap_or("").trim();
    tracing::info!(%peer, session = %session.id, action = verb, "web action");
    let done = match verb {
        "lock" | "unlock" => {
            session.set_locked(verb == "lock");
            Ok(())
        }
        "reset" => app.sessions.reset(session.id, WHO).await.map(|_| ()),
        "end" => {
            app.sessions
                .end(session.id, &format!("ended by {WHO}"))
                .await
        }
        _ => return (StatusCode::BAD_REQUEST, "unknown action\n").into_response(),
    };
    match done {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
    }
}
