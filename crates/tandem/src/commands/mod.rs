//! One module per command: each owns its clap model (the subcommand enum and its
//! arguments' parsers), its runner (`run`: the call to the server, or the local work) and
//! its output for people and for scripts. What several commands share is in
//! [`crate::render`], [`crate::connect`] and [`crate::terminal`].

pub mod certs;
pub mod health;
pub mod job;
pub mod server;
pub mod session;
pub mod task;

use std::time::Duration;

/// Parses a duration such as `10s`, `1m30s` or `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (expected e.g. 500ms, 10s, 1m30s)"))
}
