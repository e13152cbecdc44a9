//! The shared terminal without a transport (as root: a real sandbox and shell): fan-out
//! to every client, input by role and lock, late joiners' snapshot, slow clients resynced
//! without delaying others, the recording, and the end.

use std::sync::Arc;
use std::time::Duration;
use tandem_scenario::Instances;
use tandem_session::{
    Client, CreateSession, ParticipantAccess, ParticipantRole, Sessions, TerminalSize,
};
use tandem_testkit::TestManager;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_terminal_many_clients() {
    let e = env();
    let (session, tokens) = e
        .sessions
        .create(CreateSession {
            task: Arc::clone(&e.task),
            created_by: "alice".into(),
            duration: None,
            candidate_keys: vec![],
            interviewer_keys: vec![],
        })
        .await
        .unwrap();
    assert_ne!(tokens.candidate, tokens.interviewer);
    assert_eq!(tokens.candidate.len(), 40);
    let (found, role) = e.sessions.by_token(&tokens.observer).unwrap();
    assert_eq!((found.id, role), (session.id, ParticipantRole::Observer));
    assert!(e.sessions.by_token("0".repeat(40).as_str()).is_none());

    let size = TerminalSize { rows: 24, cols: 80 };
    let candidate = session.join(ParticipantRole::Candidate, "cand", "token", None, size);
    let interviewer = session.join(ParticipantRole::Interviewer, "ivy", "token", None, size);
    until(&candidate, "demo$ ").await;
    until(&interviewer, "demo$ ").await;

    candidate.input(b"echo from-cand$((1+1))\n").await;
    until(&interviewer, "from-cand2").await;
    until(&candidate, "from-cand2").await;
    interviewer.input(b"echo from-ivy$((2+2))\n").await;
    until(&candidate, "from-ivy4").await;

    // Observers cannot type; locking silences interviewers too.
    let observer = session.join(ParticipantRole::Observer, "obs", "token", None, size);
    observer.input(b"echo from-obs$((3+3))\n").await;
    session.set_locked(true);
    interviewer.input(b"echo locked-ivy$((4+4))\n").await;
    candidate.input(b"echo marker$((5+5))\n").await;
    let seen = until(&observer, "marker10").await;
    assert!(
        !seen.contains("from-obs6") && !seen.contains("locked-ivy8"),
        "{seen:?}"
    );
    session.set_locked(false);
    assert!(session.set_access(interviewer.participant.number, ParticipantAccess::Observer));
    interviewer.input(b"echo demoted$((6+6))\n").await;

    // A late joiner gets the current screen at once: earlier output is in its first bytes.
    let late = session.join(ParticipantRole::Observer, "late", "token", None, size);
    let first = late.next_output().await.unwrap();
    assert!(String::from_utf8_lossy(&first).contains("from-cand2"));

    // The candidate's window sets the terminal size.
    candidate.resize(TerminalSize {
        rows: 30,
        cols: 100,
    });
    candidate.input(b"stty size\n").await;
    until(&candidate, "30 100").await;

    // A client that reads nothing does not slow the others; when it reads again it gets
    // a snapshot instead of the backlog.
    let slow = session.join(ParticipantRole::Observer, "slow", "token", None, size);
    candidate
        .input(b"for i in $(seq 60000); do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done; echo burst$((7+7))\n")
        .await;
    until(&candidate, "burst14").await;
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
    .unwrap();
    // ~3 MB went through the terminal; the slow client got its queue's worth and then a
    // snapshot of the screen, not the backlog.
    assert!(
        received < 1_000_000,
        "the slow client received {received} bytes: it was not resynced"
    );

    e.sessions.end(session.id, "interview over").await.unwrap();
    let rest = until(&candidate, "the session has ended: interview over").await;
    assert!(!rest.is_empty());
    assert!(candidate.next_output().await.is_none());
    assert!(
        e.sessions.by_token(&tokens.candidate).is_none(),
        "tokens die with the session"
    );
    drop((candidate, interviewer, observer, late, slow));

    // The recording: asciicast v2 with output, input and a resize; the events say who typed.
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
