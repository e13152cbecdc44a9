//! A candidate cannot blind the session's record (red-team finding N3): a paste far past
//! the recording cap, over a real OpenSSH client, still leaves every later check, note,
//! hint and the end in `events.jsonl` and on the timeline, with the cut shown there.
//!
//! Needs root: the session runs a real sandbox (namespaces, cgroups) with its shell.

mod common;
use common::*;
use std::time::Duration;

/// Waits (failing after `limit`, a guard against a hang, not a measure) until the
/// session's `events.jsonl` holds `needle`, following its writer's flushes.
async fn events_hold(
    written: &mut tokio::sync::watch::Receiver<u64>,
    path: &std::path::Path,
    needle: &str,
) {
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.contains(needle) {
                return true;
            }
            if written.changed().await.is_err() {
                return std::fs::read_to_string(path)
                    .unwrap_or_default()
                    .contains(needle);
            }
        }
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "{needle} never reached {}",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paste_past_the_cap_leaves_the_sessions_own_events_recorded() {
    let cap = 64 << 10;
    let server = Server::start_with(Options {
        recording_cap: Some(cap),
        task_extra: "hints: [look in /tmp]\n",
        ..Options::default()
    })
    .await;
    let (session, tokens) = server.session(None).await;
    let id = session.id;
    let events = server.sessions.dir(id).join(tandem_session::EVENTS_FILE);
    let mut written = session.events_written();
    let mut cand = server.ssh(&tokens.candidate, 80, 24);
    cand.expect("demo$ ").await;
    // What the red team did: the shell reads raw and silent, the candidate pastes.
    cand.send("stty raw -echo; echo RE''ADY; cat > /dev/null\r");
    cand.expect("READY").await;
    let paste: Vec<u8> = (0..16 * cap)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect();
    cand.type_all(&paste).await;
    // Until the typed input reached its cap in the events (and, before N3 was fixed, the
    // whole event log did).
    events_hold(&mut written, &events, r#""event":"events_cut""#).await;

    // The interviewer goes on: each of these is recorded whatever the candidate does.
    server.sessions.check(id, "ivy").await.unwrap();
    server
        .sessions
        .note(id, "ivy", "pasted a lot after the first minute")
        .unwrap();
    server.sessions.hint(id, "ivy").await.unwrap();
    cand.type_all(b"more after the hint").await;
    server.sessions.end(id, "ended by ivy").await.unwrap();
    events_hold(&mut written, &events, r#""event":"end""#).await;

    let timeline = server.sessions.timeline(id).unwrap();
    let has = |kind: &str, by: &str, text: &str| {
        timeline
            .entries
            .iter()
            .any(|e| e.kind == kind && e.by.contains(by) && e.text.contains(text))
    };
    assert!(has("check", "ivy", "failed"), "{:#?}", timeline.entries);
    assert!(
        has("note", "ivy", "pasted a lot"),
        "{:#?}",
        timeline.entries
    );
    assert!(
        has("hint", "ivy", "look in /tmp"),
        "{:#?}",
        timeline.entries
    );
    assert!(has("end", "", "ended by ivy"), "{:#?}", timeline.entries);
    assert!(
        has("events_cut", "", "typed input"),
        "{:#?}",
        timeline.entries
    );
    assert!(
        has("recording_cut", "", "recording.cast"),
        "{:#?}",
        timeline.entries
    );
    assert_eq!(timeline.ended.as_ref().unwrap().1, "ended by ivy");
    assert_eq!(timeline.hints_revealed, 1);

    // The typed input kept is within the cap; nothing typed after the cut is there.
    let text = std::fs::read_to_string(&events).unwrap();
    let inputs: usize = text
        .lines()
        .filter(|l| l.contains(r#""event":"input""#))
        .map(|l| l.len() + 1)
        .sum();
    assert!(inputs as u64 <= cap, "{inputs} bytes of input events");
    assert!(!text.contains("more after the hint"));
    assert_eq!(text.matches(r#""event":"events_cut""#).count(), 1, "{text}");
    assert_eq!(text.matches(r#""of":"input""#).count(), 1, "{text}");
    // The cast's markers outlive its cap too.
    let cast = std::fs::read_to_string(server.sessions.dir(id).join("recording.cast")).unwrap();
    assert_eq!(cast.matches("the recording stops here").count(), 1);
    for marker in [
        "check failed [ivy]",
        "note [ivy]: pasted a lot",
        "hint 1/1 [ivy]",
    ] {
        assert!(cast.contains(marker), "no {marker:?} in the cast");
    }
}
