//! The expiry timer: one task per session that warns everybody 10 and 1 minutes before
//! the session's end (in their terminal's title, with a bell), follows extensions (a
//! warning an extension made pending again is given again), and ends the session when
//! its time is up.
//!
//! The timer reads the wall clock once, when it starts, and then counts on the monotonic
//! clock ([`Clock`]): setting the host's clock (by hand, NTP stepping it, a VM resumed
//! with an old clock) neither ends a session early nor makes it overrun. Expiry times are
//! still wall-clock times, for people and records.

use crate::Sessions;
use crate::session::Session;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Warnings before a session expires.
const WARNINGS: [Duration; 2] = [Duration::from_secs(600), Duration::from_secs(60)];

/// Warns 10 and 1 minutes before expiry and ends the session at expiry; follows
/// extensions.
pub(crate) async fn run(sessions: Sessions, session: Arc<Session>) {
    let mut info = session.watch();
    let mut warned: Vec<Duration> = Vec::new();
    let clock = Clock::start();
    let mut started = session.info().started_at;
    loop {
        let current = info.borrow_and_update().clone();
        if current.ended.is_some() {
            return;
        }
        if current.started_at != started {
            // The candidate arrived: the record says when the clock started.
            started = current.started_at;
            sessions.save(&session);
        }
        let left = time_left(current.expires_at, clock.now());
        if left.is_zero() {
            let reason = if current.started_at.is_some() {
                "time is up".to_string()
            } else {
                format!("{}: the candidate did not log in", crate::NO_SHOW)
            };
            let _ = sessions.end(session.id, &reason).await;
            return;
        }
        // No warnings while waiting for the candidate: the end then is a no-show time.
        let (wake_in, next_warning) = if current.started_at.is_some() {
            next_step(left, &mut warned)
        } else {
            (left, None)
        };
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

/// The wall clock as the timer sees it: read once, then advanced by the monotonic clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// The wall clock when the timer started.
    wall: SystemTime,
    /// The monotonic clock then.
    start: Instant,
}

impl Clock {
    pub(crate) fn start() -> Self {
        Self {
            wall: SystemTime::now(),
            start: Instant::now(),
        }
    }

    /// Now.
    pub(crate) fn now(&self) -> SystemTime {
        self.at(Instant::now())
    }

    /// The time at monotonic instant `instant`: what the wall clock says since does not
    /// count.
    fn at(&self, instant: Instant) -> SystemTime {
        self.wall + instant.saturating_duration_since(self.start)
    }
}

/// Time left at `now` before `expires_at` (zero once it is due).
fn time_left(expires_at: SystemTime, now: SystemTime) -> Duration {
    expires_at.duration_since(now).unwrap_or_default()
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
    fn a_jump_of_the_wall_clock_neither_ends_a_session_early_nor_makes_it_overrun() {
        // The host's clock cannot be changed in a test without disturbing everything else
        // on the machine; the jumped wall times are values here.
        let start = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = Clock { wall, start };
        let expires_at = wall + 30 * MIN;
        // One minute later (monotonic), the wall clock was set two hours ahead: read
        // again, it would end the session now, 29 minutes early.
        let ahead = wall + MIN + 120 * MIN;
        assert_eq!(time_left(expires_at, ahead), Duration::ZERO);
        // Set two hours back, it would let the session run two more hours.
        let back = (wall + MIN) - 120 * MIN;
        assert_eq!(time_left(expires_at, back), 149 * MIN);
        // The timer reads its clock, which counts only the minute that passed.
        assert_eq!(time_left(expires_at, clock.at(start + MIN)), 29 * MIN);
        assert_eq!(
            time_left(expires_at, clock.at(start + 30 * MIN)),
            Duration::ZERO
        );
        // And the warnings follow it: the 10-minute one comes 19 minutes from then.
        let mut warned = Vec::new();
        assert_eq!(
            next_step(time_left(expires_at, clock.at(start + MIN)), &mut warned),
            (19 * MIN, Some(10 * MIN))
        );
    }

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
