//! The pages and their assets, all embedded in the binary: xterm.js and asciinema-player
//! (vendored from npm under `assets/vendor/`, with their licences) and tandem's own page
//! scripts and style. Pages carry no secrets (the token stays in the link's fragment) and
//! a content security policy that allows only this origin.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Scripts, styles and connections from this origin only; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
/// The replay page's: the same, and WebAssembly (asciinema-player's terminal emulator is
/// compiled to WebAssembly, embedded in its script).
const REPLAY_CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
                   style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `(name, content type, bytes)` of every asset.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "xterm.js",
        JS,
        include_bytes!("../assets/vendor/xterm/xterm.js"),
    ),
    (
        "xterm.css",
        CSS,
        include_bytes!("../assets/vendor/xterm/xterm.css"),
    ),
    (
        "asciinema-player.min.js",
        JS,
        include_bytes!("../assets/vendor/asciinema-player/asciinema-player.min.js"),
    ),
    (
        "asciinema-player.css",
        CSS,
        include_bytes!("../assets/vendor/asciinema-player/asciinema-player.css"),
    ),
    ("tandem.css", CSS, include_bytes!("../assets/tandem.css")),
    ("live.js", JS, include_bytes!("../assets/live.js")),
    ("replay.js", JS, include_bytes!("../assets/replay.js")),
    ("timeline.js", JS, include_bytes!("../assets/timeline.js")),
];
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

fn page(html: &'static str, csp: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(csp),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        html,
    )
        .into_response()
}

/// `GET /`: what this is.
pub(crate) async fn index() -> Response {
    page(include_str!("../assets/index.html"), CSP)
}

/// `GET /s/<id>/`: the live page (it logs in with the token in its fragment).
pub(crate) async fn live(Path(_id): Path<String>) -> Response {
    page(include_str!("../assets/live.html"), CSP)
}

/// `GET /s/<id>/replay`: the replay page.
pub(crate) async fn replay(Path(_id): Path<String>) -> Response {
    page(include_str!("../assets/replay.html"), REPLAY_CSP)
}

/// `GET /assets/<name>`.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}
