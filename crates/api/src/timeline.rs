//! A session's timeline (`tandem_session::Timeline`) on the wire.

use tandem_proto::v1 as pb;
use tandem_session::{Moment, Timeline};

fn moment(m: Moment) -> pb::TimelineMoment {
    pb::TimelineMoment {
        time: Some(m.time.into()),
        offset_s: m.offset,
    }
}

/// The `Timeline` RPC's answer for `session` (its summary) with `hints_total` hints.
pub(crate) fn response(
    session: pb::SessionSummary,
    timeline: Timeline,
    hints_total: u32,
) -> pb::SessionTimelineResponse {
    let (ended, end_reason) = match timeline.ended {
        Some((at, reason)) => (Some(moment(at)), reason),
        None => (None, String::new()),
    };
    pb::SessionTimelineResponse {
        session: Some(session),
        entries: timeline
            .entries
            .into_iter()
            .map(|e| pb::TimelineEntry {
                at: Some(moment(e.at)),
                kind: e.kind,
                by: e.by,
                text: e.text,
                exit_code: e.exit_code,
                cwd: e.cwd,
                duration_s: e.duration,
                passed: e.passed,
                name: e.name,
            })
            .collect(),
        conditions: timeline
            .conditions
            .into_iter()
            .map(|c| pb::ConditionProgress {
                name: c.name,
                passing: c.passing,
                first_passed: c.first_passed.map(moment),
            })
            .collect(),
        solved: timeline.solved.map(moment),
        hints_revealed: timeline.hints_revealed as u32,
        hints_total,
        started: timeline.started.map(moment),
        ended,
        end_reason,
    }
}
