//! The shared terminal without a transport, one behaviour per test: tokens, fan-out, who
//! may type (by role, lock and access), late joiners' snapshot, the terminal following
//! the candidate's window, slow clients resynced without delaying others, the end, and
//! the recording.
//!
//! These tests need root: each session runs a real sandbox (namespaces, cgroups) with a
//! real shell in it. The hub's rules on their own are unit-tested without root in
//! `src/hub.rs`.

use std::sync::Arc;
use std::time::Duration;
use tandem_scenario::Instances;
use tandem_session::{
    Client, CreateSession, ParticipantAccess, ParticipantRole, Session, Sessions, TerminalSize,
    Tokens,
};
use tandem_testkit_worker::TestManager;

/// A session store over a test job manager, and a task whose shell has a known prompt.
struct Env {
    sessions: Sessions,
    _manager: TestManager,
    _tasks: tempfile::TempDir,
    task: Arc<tandem_scenario::Task>,
}

fn env() -> Env {
    let manager = TestManager::new();
    let tasks = tempfile::tempdir().unwrap();
    let dir = tasks.path().join("demo");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("task.yaml"),
        "name: demo\ntitle: Demo\ndescription: |\n  Demo.\ndifficulty: easy\ntime_limit: 10m\n\
         shell: /bin/bash --norc -i\nenv:\n  PS1: 'demo$ '\ncheck: |\n  true\nsolution: |\n  none\n",
    )
    .unwrap();
    let task = Arc::new(tandem_scenario::task::load(&dir).unwrap());
    let sessions = Sessions::new(
        Instances::new(manager.manager.clone()),
        manager.state.path(),
    )
    .unwrap();
    Env {
        sessions,
        _manager: manager,
        _tasks: tasks,
        task,
    }
}

impl Env {
    /// A new session of the demo task.
    async fn session(&self) -> (Arc<Session>, Tokens) {
        self.sessions
            .create(CreateSession {
                task: Arc::clone(&self.task),
                created_by: "alice".into(),
                duration: None,
                candidate_keys: vec![],
                interviewer_keys: vec![],
            })
            .await
            .unwrap()
    }
}

const SIZE: TerminalSize = TerminalSize { rows: 24, cols: 80 };

/// Joins `session` as `role` named `name` with an 80x24 window.
fn join(session: &Arc<Session>, role: ParticipantRole, name: &str) -> Client {
    session.join(role, name, "token", None, SIZE)
}

/// Reads `client`'s output until `needle` appears; returns all it read.
async fn until(client: &Client, needle: &str) -> String {
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains(needle) {
            let bytes = client.next_output().await.expect("session alive");
            seen.push_str(&String::from_utf8_lossy(&bytes));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{needle:?} not seen; got {seen:?}"));
    seen
}

/// The candidate runs `echo TAG$((1+1))`; returns what `watcher` saw up to its output
/// `TAG2`. Input sent before this call reached the shell before it, if at all: whatever
/// it printed is in the returned text.
async fn candidate_marker(candidate: &Client, watcher: &Client, tag: &str) -> String {
    candidate
        .input(format!("echo {tag}$((1+1))\n").as_bytes())
        .await;
    until(watcher, &format!("{tag}2")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_has_its_own_secret_token_and_unknown_tokens_find_nothing() {
    let e = env();
    let (session, tokens) = e.session().await;
    assert_ne!(tokens.candidate, tokens.interviewer);
    assert_ne!(tokens.interviewer, tokens.observer);
    for token in [&tokens.candidate, &tokens.interviewer, &tokens.observer] {
        assert_eq!(token.len(), 40, "{token}");
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    }
    for (token, role) in [
        (&tokens.candidate, ParticipantRole::Candidate),
        (&tokens.interviewer, ParticipantRole::Interviewer),
        (&tokens.observer, ParticipantRole::Observer),
    ] {
        let (found, found_role) = e.sessions.by_token(token).expect("a live token");
        assert_eq!((found.id, found_role), (session.id, role));
    }
    assert!(e.sessions.by_token(&"0".repeat(40)).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_candidate_types_everyone_sees() {
    let e = env();
    let (session, _) = e.session().await;
    let candidate = join(&session, ParticipantRole::Candidate, "cand");
    let interviewer = join(&session, ParticipantRole::Interviewer, "ivy");
    let observer = join(&session, ParticipantRole::Observer, "obs");
    until(&candidate, "demo$ ").await;
    candidate.input(b"echo from-cand$((1+1))\n").await;
    for client in [&candidate, &interviewer, &observer] {
        until(client, "from-cand2").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interviewer_types_into_the_shared_terminal() {
    let e = env();
    let (session, _) = e.session().await;
    let candidate = join(&session, ParticipantRole::Candidate, "cand");
    let interviewer = join(&session, ParticipantRole::Interviewer, "ivy");
    until(&interviewer, "demo$ ").await;
    interviewer.input(b"echo from-ivy$((2+2))\n").await;
    until(&candidate, "from-ivy4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_cannot_type() {
    let e = env();
    let (session, _) = e.session().await;
    let candidate = join(&session, ParticipantRole::Candidate, "cand");
    let observer = join(&session, ParticipantRole::Observer, "obs");
    until(&candidate, "demo$ ").await;
    assert_eq!(
        observer.participant.access(),
        ParticipantAccess::Observer,
        "observers join as observers"
    );
    observer.input(b"echo from-obs$((3+3))\n").await;
    let seen = candidate_marker(&candidate, &observer, "after-obs").await;
    assert!(!seen.contains("from-obs6"), "observer input ran: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locking_silences_interviewers_but_not_the_candidate_and_unlocking_lets_them_type() {
    let e = env();
    let (session, _) = e.session().await;
    let candidate = join(&session, ParticipantRole::Candidate, "cand");
    let interviewer = join(&session, ParticipantRole::Interviewer, "ivy");
    until(&candidate, "demo$ ").await;

    session.set_locked(true, "test");
    assert!(session.is_locked());
    interviewer.input(b"echo locked-ivy$((4+4))\n").await;
    let seen = candidate_marker(&candidate, &interviewer, "while-locked").await;
    assert!(
        !seen.contains("locked-ivy8"),
        "input ran while locked: {seen:?}"
    );

    session.set_locked(false, "test");
    interviewer.input(b"echo unlocked-ivy$((5+5))\n").await;
    until(&candidate, "unlocked-ivy10").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interviewer_made_an_observer_cannot_type_until_made_a_writer_again() {
    let e = env();
    let (session, _) = e.session().await;
    let candidate = join(&session, ParticipantRole::Candidate, "cand");
    let interviewer = join(&session, ParticipantRole::Interviewer, "ivy");
    until(&candidate, "demo$ ").await;
    let number = interviewer.participant.number;

    assert!(session.set_access(number, ParticipantAccess::Observer, "test"));
    assert_eq!(
        interviewer.participant.access(),
        ParticipantAccess::Observer
    );
    interviewer.input(b"echo demoted$((6+6))\n").await;
    let seen = candidate_marker(&candidate, &interviewer, "after-demotion").await;
    assert!(
        !seen.contains("demoted12"),
        "a demoted interviewer's input ran: {seen:?}"
    );

    assert!(session.set_access(number, ParticipantAccess::Writer, "test"));
    interviewer.input(b"echo promoted$((7+7))\n").await;
    until(&candidate, "promoted14").await;
    assert!(
        !session.set_access(9999, ParticipantAccess::Observer, "test"),
        "no such participant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_sees_the_current_screen_at_once() {
    let e = env();
    let (session, _) = e.session().await;
    let candidate = join(&session, ParticipantRole::Candidate, "cand");
    until(&candidate, "demo$ ").await;
    candidate.input(b"echo from-cand$((1+1))\n").await;
    until(&candidate, "from-cand2").await;

    let late = join(&session, ParticipantRole::Observer, "late");
    let first = late.next_output().await.expect("a snapshot");
    let first = String::from_utf8_lossy(&first);
    assert!(first.contains("from-cand2"), "{first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_follows_the_candidates_window_and_no_one_elses() {
    let e = env();
    let (session, _) = e.session().await;
    let candidate = join(&session, ParticipantRole::Candidate, "cand");
    let interviewer = join(&session, ParticipantRole::Interviewer, "ivy");
    until(&candidate, "demo$ ").await;

    interviewer.resize(TerminalSize {
        rows: 50,
        cols: 200,
    });
    assert_eq!(session.terminal_size(), SIZE);
    candidate.resize(TerminalSize {
        rows: 30,
        cols: 100,
    });
    assert_eq!(
        session.terminal_size(),
        TerminalSize {
            rows: 30,
            cols: 100
        }
    );
    candidate.input(b"stty size\n").await;
    until(&candidate, "30 100").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_resynced_with_a_snapshot_and_does_not_slow_the_others() {
    let e = env();
    let (session, _) = e.session().await;
    let candidate = join(&session, ParticipantRole::Candidate, "cand");
    until(&candidate, "demo$ ").await;

    // A client that reads nothing while ~3 MB go through the terminal.
    let slow = join(&session, ParticipantRole::Observer, "slow");
    candidate
        .input(b"for i in $(seq 60000); do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done; echo burst$((7+7))\n")
        .await;
    // The others get everything in time, though the slow client has read nothing.
    until(&candidate, "burst14").await;

    // When it reads again it gets its queue's worth, then a snapshot of the screen, not
    // the backlog.
    let mut received = 0usize;
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let bytes = slow.next_output().await.unwrap();
            received += bytes.len();
            if String::from_utf8_lossy(&bytes).contains("burst14") {
                break;
            }
        }
    })
    .await
    .expect("the slow client caught up");
    assert!(
        received < 1_000_000,
        "the slow client received {received} bytes: it was not resynced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_says_goodbye_closes_every_client_and_kills_the_tokens() {
    let e = env();
    let (session, tokens) = e.session().await;
    let candidate = join(&session, ParticipantRole::Candidate, "cand");
    let observer = join(&session, ParticipantRole::Observer, "obs");
    until(&candidate, "demo$ ").await;

    e.sessions.end(session.id, "interview over").await.unwrap();
    for client in [&candidate, &observer] {
        // Everything up to the end of the queue: output the shell printed just before the
        // end may come after the goodbye (see `Sessions::end`), but the queue must close.
        let mut rest = String::new();
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(bytes) = client.next_output().await {
                rest.push_str(&String::from_utf8_lossy(&bytes));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the queue did not close; got {rest:?}"));
        assert!(
            rest.contains("\r\n\x1b[0m[tandem] the session has ended: interview over\r\n"),
            "no goodbye in {rest:?}"
        );
    }
    assert_eq!(
        session.info().ended.as_deref(),
        Some("interview over"),
        "the session records why it ended"
    );
    assert!(e.sessions.get(session.id).is_none());
    assert!(
        e.sessions.by_token(&tokens.candidate).is_none(),
        "tokens die with the session"
    );
    // Ending again is not an error.
    e.sessions.end(session.id, "again").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_told_of_the_end_finds_the_session_ended_for_its_replay() {
    let e = env();
    let (session, tokens) = e.session().await;
    let interviewer = join(&session, ParticipantRole::Interviewer, "ivy");
    until(&interviewer, "demo$ ").await;
    let sessions = e.sessions.clone();
    let id = session.id;
    let ending = tokio::spawn(async move { sessions.end(id, "interview over").await });
    while interviewer.next_output().await.is_some() {}
    // What a web page does when its socket ends: log in for the replay, at once. The
    // ended record must already be there (it used to be saved after the goodbyes).
    assert!(
        e.sessions.replay_access(id, &tokens.interviewer),
        "the interviewer's token opens no replay right after the end"
    );
    ending.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_holds_output_input_resizes_and_who_typed_but_never_observer_input() {
    let e = env();
    let (session, _) = e.session().await;
    let candidate = join(&session, ParticipantRole::Candidate, "cand");
    let interviewer = join(&session, ParticipantRole::Interviewer, "ivy");
    let observer = join(&session, ParticipantRole::Observer, "obs");
    until(&candidate, "demo$ ").await;

    interviewer.input(b"echo from-ivy$((2+2))\n").await;
    until(&candidate, "from-ivy4").await;
    observer.input(b"echo from-obs$((3+3))\n").await;
    session.set_locked(true, "test");
    candidate.resize(TerminalSize {
        rows: 30,
        cols: 100,
    });
    candidate_marker(&candidate, &candidate, "last").await;
    e.sessions.end(session.id, "interview over").await.unwrap();
    drop((candidate, interviewer, observer));

    // asciicast v2: a header, then output, input and resize events.
    let dir = e.sessions.dir(session.id);
    let cast = std::fs::read_to_string(dir.join("recording.cast")).unwrap();
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let events: Vec<serde_json::Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().any(|e| e[1] == "o"));
    assert!(
        events
            .iter()
            .any(|e| e[1] == "i" && e[2].as_str().unwrap().contains("from-ivy"))
    );
    assert!(events.iter().any(|e| e[1] == "r" && e[2] == "100x30"));
    assert!(
        !events
            .iter()
            .any(|e| e[1] == "i" && e[2].as_str().unwrap().contains("from-obs")),
        "observer input is never recorded as typed"
    );
    // The events log says who typed, and what the interviewers did.
    let log = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("\"input\"") && l.contains("\"ivy\""))
    );
    assert!(log.lines().any(|l| l.contains("\"lock\"")));
    assert!(
        !log.contains("from-obs"),
        "observer input is never recorded as typed"
    );
}
