//! The expiry timer: one task per session that warns everybody 10 and 1 minutes before
//! the session's end (in their terminal's title, with a bell), follows extensions (a
//! warning an extension made pending again is given again), and ends the session when
//! its time is up.

use crate::Sessions;
use crate::session::Session;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Warnings before a session expires.
const WARNINGS: [Duration; 2] = [Duration::from_secs(600), Duration::from_secs(60)];

/// Warns 10 and 1 minutes before expiry and ends the session at expiry; follows
/// extensions.
pub(crate) async fn run(sessions: Sessions, session: Arc<Session>) {
    let mut info = session.watch();
    let mut warned: Vec<Duration> = Vec::new();
    loop {
        let current = info.borrow_and_update().clone();
        if current.ended.is_some() {
            return;
        }
        let now = SystemTime::now();
        let left = current.expires_at.duration_since(now).unwrap_or_default();
        if left.is_zero() {
            let _ = sessions.end(session.id, "time is up").await;
            return;
        }
        let (wake_in, next_warning) = next_step(left, &mut warned);
        tokio::select! {
            _ = tokio::time::sleep(wake_in) => {
                if let Some(w) = next_warning {
                    warned.push(w);
                    session.tell_everyone(&format!(
                        "{} left in this session",
                        humantime::format_duration(w)
                    ));
                    session.recorder.event(json!({"event": "warning", "left_s": w.as_secs()}));
                }
            }
            changed = info.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// The timer's next step when `left` remains and the warnings in `warned` were given:
/// how long to sleep, and the warning to give on waking (`None`: the end is due then).
/// Warnings that an extension made pending again are forgotten from `warned`.
fn next_step(left: Duration, warned: &mut Vec<Duration>) -> (Duration, Option<Duration>) {
    warned.retain(|w| *w >= left);
    let next_warning = WARNINGS
        .iter()
        .copied()
        .filter(|w| *w < left && !warned.contains(w))
        .max();
    let wake_in = match next_warning {
        Some(w) => left - w,
        None => left,
    };
    (wake_in, next_warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn the_first_warning_comes_ten_minutes_before_the_end() {
        let mut warned = Vec::new();
        assert_eq!(next_step(45 * MIN, &mut warned), (35 * MIN, Some(10 * MIN)));
    }

    #[test]
    fn after_the_ten_minute_warning_comes_the_one_minute_warning_then_the_end() {
        let mut warned = vec![10 * MIN];
        assert_eq!(next_step(10 * MIN, &mut warned), (9 * MIN, Some(MIN)));
        warned.push(MIN);
        assert_eq!(next_step(MIN, &mut warned), (MIN, None));
        assert_eq!(warned, [10 * MIN, MIN]);
    }

    #[test]
    fn a_short_session_gets_only_the_warnings_still_ahead() {
        let mut warned = Vec::new();
        assert_eq!(next_step(5 * MIN, &mut warned), (4 * MIN, Some(MIN)));
        assert_eq!(next_step(30 * Duration::from_secs(1), &mut warned).1, None);
    }

    #[test]
    fn an_extension_makes_given_warnings_pending_again() {
        let mut warned = vec![10 * MIN, MIN];
        assert_eq!(next_step(30 * MIN, &mut warned), (20 * MIN, Some(10 * MIN)));
        assert!(warned.is_empty());
        // An extension that leaves the 10-minute warning behind keeps it given.
        let mut warned = vec![10 * MIN, MIN];
        assert_eq!(next_step(5 * MIN, &mut warned), (4 * MIN, Some(MIN)));
        assert_eq!(warned, [10 * MIN]);
    }
}
