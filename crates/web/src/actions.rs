//! What an interviewer's page may do besides typing: check, hint, note, lock, unlock,
//! reset, end. The same session verbs the CLI's `session check|hint|note|lock|unlock|
//! reset|end` use over gRPC, so the same events are recorded (the check with its
//! conditions, the hint, the note, `lock`/`unlock`, the reset's and the end's), with `web
//! interviewer` where they name who. Observers may do none of it.

use crate::auth::{Mode, grant, refused};
use crate::live::same_origin;
use crate::{AppState, Peer};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tandem_scenario::ScenarioError;
use tandem_session::{MAX_NOTE_BYTES, ParticipantRole, SessionError};

/// Who the session's events and end reason name for an action from a page.
const WHO: &str = "web interviewer";

/// Largest action body: `note`, a line end and the longest note.
pub(crate) const MAX_BODY: usize = MAX_NOTE_BYTES + 16;

/// `POST /s/<id>/action` with `check`, `hint`, `lock`, `unlock`, `reset` or `end` as the
/// body, or `note`, a line end and the note's text. A check answers with its result, a
/// hint with the hint, in JSON; the others with 204.
pub(crate) async fn action(
    State(app): State<AppState>,
    Extension(Peer(peer)): Extension<Peer>,
    Extension(proven): Extension<crate::Proven>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let mut response = act(app, peer, proven, id, headers, body).await;
    // Results (a check's output, a hint) are nobody's cache's.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

async fn act(
    app: AppState,
    peer: std::net::SocketAddr,
    proven: crate::Proven,
    id: String,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    // A form or script of another site cannot act with the interviewer's cookie.
    if !same_origin(&headers) {
        return refused();
    }
    let Some(grant) = grant(&app, &headers, &id, &proven)
        .filter(|g| g.mode == Mode::Live && g.role == ParticipantRole::Interviewer)
    else {
        return refused();
    };
    let Some(session) = app.sessions.get(grant.session) else {
        return refused();
    };
    let body = match crate::auth::read_body(&app, body, MAX_BODY).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Ok(body) = std::str::from_utf8(&body) else {
        return (StatusCode::BAD_REQUEST, "the action is not UTF-8\n").into_response();
    };
    let (verb, text) = body.split_once('\n').unwrap_or((body, ""));
    let verb = verb.trim();
    tracing::info!(%peer, session = %session.id, action = verb, "web action");
    let sessions = &app.sessions;
    let done = match verb {
        "check" => {
            return match sessions.check(session.id, WHO).await {
                Ok(result) => {
                    let conditions: Vec<_> = result
                        .conditions
                        .iter()
                        .map(|c| json!({"name": c.name, "passed": c.passed, "reason": c.reason}))
                        .collect();
                    axum::Json(json!({
                        "outcome": result.outcome.to_string(), "output": result.output,
                        "duration_ms": result.duration.as_millis() as u64,
                        "conditions": conditions,
                    }))
                    .into_response()
                }
                Err(e) => failed(e),
            };
        }
        "hint" => {
            return match sessions.hint(session.id, WHO).await {
                Ok(hint) => axum::Json(hint).into_response(),
                Err(e) => failed(e),
            };
        }
        "note" => sessions.note(session.id, WHO, text),
        "lock" | "unlock" => {
            session.set_locked(verb == "lock", WHO);
            Ok(())
        }
        "reset" => sessions.reset(session.id, WHO).await.map(|_| ()),
        "end" => sessions.end(session.id, &format!("ended by {WHO}")).await,
        _ => return (StatusCode::BAD_REQUEST, "unknown action\n").into_response(),
    };
    match done {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failed(e),
    }
}

/// A refused or failed action: the status says which, the body why.
fn failed(e: SessionError) -> Response {
    let status = match &e {
        SessionError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        SessionError::NotFound(_) => StatusCode::NOT_FOUND,
        SessionError::FailedPrecondition(_) => StatusCode::CONFLICT,
        SessionError::Scenario(
            ScenarioError::NotRunning(_)
            | ScenarioError::SetupFailed { .. }
            | ScenarioError::Write { .. },
        ) => StatusCode::CONFLICT,
        SessionError::Scenario(ScenarioError::NotFound(_) | ScenarioError::NoSuchTask(_)) => {
            StatusCode::NOT_FOUND
        }
        SessionError::Scenario(_) | SessionError::Internal(_) => {
            tracing::warn!(error = %e, "a web action failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    (status, format!("{e}\n")).into_response()
}
