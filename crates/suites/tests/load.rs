//! The load suite, bounded in count and time, on loopback only: 100 jobs started at once
//! from 10 clients, 1000 concurrent followers of one job's output, 20 sessions of 5
//! participants typing at once. Every byte is checked, and what the server holds
//! (resident memory, descriptors, tokio tasks) is measured before and after: it must
//! come back. The figures are printed (`cargo test -p tandem-suites --test load --
//! --nocapture`).
//!
//! The servers run in this test process (the API's `test_server`, the SSH front end over
//! a session store), so its figures are the servers', plus the clients' (gone when
//! measured after). Memory is measured after `malloc_trim(0)`: what the allocator keeps
//! free is not held by anything.
//!
//! Needs root: every job and session runs in a real sandbox (namespaces, cgroups).

use futures_util::future::join_all;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_api::test_server::TestServer;
use tandem_proto::v1 as pb;
use tandem_session::{ParticipantRole, TerminalSize};
use tandem_suites::*;

/// The tests of this file run one at a time: each measures the whole process.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Figures of this process and its runtime's live tasks.
#[derive(Debug, Clone, Copy)]
struct Load {
    process: Figures,
    tasks: usize,
}

fn load() -> Load {
    // SAFETY: malloc_trim only returns free memory of the allocator to the OS.
    unsafe { libc::malloc_trim(0) };
    Load {
        process: figures(std::process::id()),
        tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
    }
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSS {} KiB, {} fds, {} threads, {} tasks",
            self.process.rss_kib, self.process.fds, self.process.threads, self.tasks
        )
    }
}

/// Waits (bounded) until this process holds no more descriptors than `baseline` plus
/// `fds` and no more tasks than `baseline` plus `tasks`: connections that clients closed
/// end on the server's side a moment later. Returns the figures then.
async fn back_to(baseline: Load, fds: usize, tasks: usize) -> Load {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticks.tick().await;
        let now = load();
        let settled =
            now.process.fds <= baseline.process.fds + fds && now.tasks <= baseline.tasks + tasks;
        if settled || Instant::now() > deadline {
            return now;
        }
    }
}

/// 100 jobs started at once by 10 clients (each its own TLS connection, starting its 10
/// jobs concurrently): every job runs and ends with its own exit code and output. Once
/// the clients are gone, the server holds one descriptor per finished job (its output
/// log, which it still serves) and nothing else more than before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_jobs_started_at_once_from_ten_clients_all_finish_right() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    // Counted with the worker's warm slots full (they refill in the background).
    server.manager.warm_slots_ready().await;
    let before = load();
    let tls = server.pki.client_tls("admin");
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(Api::over(server.channel(&tls).await));
    }
    let started = Instant::now();
    let runs = clients.into_iter().enumerate().map(|(c, api)| {
        tokio::spawn(async move {
            let starts = (0..10).map(|j| {
                let mut jobs = api.jobs.clone();
                async move {
                    let id = jobs
                        .start(sh(&format!(
                            "echo job {c}.{j} $(({c} * 10 + {j})); exit $((({c} + {j}) % 7))"
                        )))
                        .await
                        .unwrap_or_else(|e| panic!("job {c}.{j} did not start: {e}"))
                        .into_inner()
                        .job_id;
                    (j, id, Instant::now())
                }
            });
            let ids = join_all(starts).await;
            let mut api = api;
            for (j, id, _) in &ids {
                let (out, job) = api.finish(id).await;
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    format!("job {c}.{j} {}\n", c * 10 + j)
                );
                assert_eq!(job.state(), pb::JobState::Exited, "{job:?}");
                assert_eq!(job.exit_code, Some(((c + j) % 7) as i32));
            }
            ids.iter().map(|(_, _, t)| *t).max().unwrap()
        })
    });
    let last_start = join_all(runs)
        .await
        .into_iter()
        .map(|r| r.expect("a client's jobs"))
        .max()
        .unwrap();
    let all_started = last_start - started;
    let all_done = started.elapsed();
    let jobs = server.manager.list();
    assert_eq!(jobs.len(), 100);
    assert!(jobs.iter().all(|j| j.status.state.is_finished()));
    server.manager.warm_slots_ready().await;
    let mut expected = before;
    expected.process.fds += 100;
    let after = back_to(expected, 2, 2).await;
    eprintln!(
        "100 jobs from 10 clients: all started in {all_started:?}, all checked in {all_done:?}; \
         before: {before}; after: {after}"
    );
    assert!(
        after.process.fds <= expected.process.fds + 2,
        "descriptors beyond one output log per finished job: before {before}, after {after}"
    );
    assert!(
        after.tasks <= before.tasks + 2,
        "tasks left: before {before}, after {after}"
    );
}

/// The output a follower must receive: the job prints `ready`, then on SIGTERM (the stop)
/// the numbers 1 to 30000. (Its stderr is closed: the shell would say there that the stop
/// terminated its `sleep`.)
const FOLLOWED_JOB: &str = "exec 2>/dev/null; trap 'seq 1 30000; exit 0' TERM; echo ready; \
    while :; do sleep 1; done";

fn followed_output() -> Vec<u8> {
    let mut out = b"ready\n".to_vec();
    for i in 1..=30000 {
        out.extend_from_slice(format!("{i}\n").as_bytes());
    }
    out
}

/// One round: `followers` followers of a new job over `connections` TLS connections, all
/// following before the job prints its stream; each must receive every byte.
async fn follow_round(server: &TestServer, followers: usize, connections: usize) -> Load {
    let tls = server.pki.client_tls("admin");
    let mut api = Api::over(server.channel(&tls).await);
    let id = api
        .jobs
        .start(sh(FOLLOWED_JOB))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(server.channel(&tls).await);
    }
    let expected = followed_output();
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel::<()>(followers);
    let tasks: Vec<_> = (0..followers)
        .map(|i| {
            let mut jobs =
                pb::job_service_client::JobServiceClient::new(channels[i % connections].clone());
            let id = id.clone();
            let ready = ready_tx.clone();
            tokio::spawn(async move {
                let mut stream = jobs
                    .logs(pb::LogsRequest {
                        job_id: id,
                        offset: 0,
                        follow: true,
                    })
                    .await
                    .expect("follow")
                    .into_inner();
                let mut hash = StreamHash::default();
                let mut signalled = false;
                while let Some(chunk) = stream.message().await.expect("the stream") {
                    hash.update(&chunk.data);
                    if !signalled && hash.len >= 6 {
                        signalled = true;
                        let _ = ready.send(()).await;
                    }
                }
                (hash.len, hash.finish())
            })
        })
        .collect();
    drop(ready_tx);
    tokio::time::timeout(Duration::from_secs(60), async {
        for _ in 0..followers {
            ready.recv().await.expect("a follower ready");
        }
    })
    .await
    .expect("every follower got the first line within 60 s");
    assert_eq!(*server.streams.borrow(), followers, "live streams");
    let peak = load();
    let started = Instant::now();
    let stopped = api
        .jobs
        .stop(pb::StopJobRequest {
            job_id: id.clone(),
            grace: Some(prost_duration(Duration::from_secs(60))),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(stopped.exit_code, Some(0), "{stopped:?}");
    let want = (expected.len() as u64, sha256(&expected));
    let results = tokio::time::timeout(Duration::from_secs(60), join_all(tasks))
        .await
        .expect("every follower reached the end within 60 s");
    let complete = results
        .into_iter()
        .filter(|r| *r.as_ref().expect("a follower") == want)
        .count();
    assert_eq!(complete, followers, "followers that received every byte");
    eprintln!(
        "{followers} followers over {connections} connections: {} bytes each, all delivered \
         {:?} after the stop; during: {peak}",
        expected.len(),
        started.elapsed()
    );
    drop(channels);
    peak
}

/// 1000 followers of one job's output, following before the job prints: every follower
/// receives every byte (same length, same SHA-256). Afterwards the server's descriptors
/// and tasks come back to what they were (plus the finished job's output log) and its
/// memory stays put. Two rounds: the first one's peak grows the allocator's arenas and
/// tokio's blocking pool (idle threads stay 10 s), so the second shows whether anything
/// accumulates per follower. Memory is measured after `malloc_trim(0)` (what the allocator
/// keeps free is not counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_followers_of_one_job_get_every_byte_and_leave_nothing_behind() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut server = TestServer::start().await;
    let baseline = load();
    let mut after = Vec::new();
    for round in 1..=2 {
        follow_round(&server, 1000, 20).await;
        server.streams_drained().await;
        // Each round's job is finished and keeps its output log open.
        let mut expected = baseline;
        expected.process.fds += round;
        let now = back_to(expected, 0, 1).await;
        assert!(
            now.process.fds <= expected.process.fds,
            "descriptors left after round {round}: before {baseline}, after {now}"
        );
        assert!(
            now.tasks <= baseline.tasks + 1,
            "tasks left after round {round}: before {baseline}, after {now}"
        );
        after.push(now);
    }
    let (first, second) = (after[0], after[1]);
    eprintln!("followers: before {baseline}; after round 1 {first}; after round 2 {second}");
    // 32 MiB: the first round's residue (idle blocking threads, arenas); 8 MiB is 8 KiB
    // per follower, when one 64 KiB chunk kept per follower would be 64 MB.
    assert!(
        first.process.rss_kib <= baseline.process.rss_kib + 32 * 1024,
        "memory after round 1: before {baseline}, after {first}"
    );
    assert!(
        second.process.rss_kib <= first.process.rss_kib + 8 * 1024,
        "memory grows per round: after round 1 {first}, after round 2 {second}"
    );
}

/// 20 sessions of 5 participants each, all typing at once: the candidate over the real
/// OpenSSH client, three interviewers and an observer through the session API (the
/// transport-free `Client` the SSH front end itself uses; real ssh for all five would be
/// 80 more ssh processes on this 2-core machine, and the SSH path is exercised once per
/// session). Every participant sees every writer's marker, and the observer's typing
/// reaches no one. Ended, the sessions leave nothing open but their jobs' output logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sessions_of_five_typing_at_once_all_see_every_marker() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const SESSIONS: usize = 20;
    const WITHIN: Duration = Duration::from_secs(60);
    let server = SshServer::start().await;
    // The worker's warm slots (a waiting init and its socket each) are refilled in the
    // background after starts: count with them full, before and after.
    server.manager.warm_slots_ready().await;
    let before = load();
    let started = Instant::now();
    let sessions = join_all((0..SESSIONS).map(|_| server.session())).await;
    let created_in = started.elapsed();
    let size = TerminalSize { rows: 24, cols: 80 };
    let barrier = Arc::new(tokio::sync::Barrier::new(SESSIONS));
    let typed_at = Arc::new(std::sync::OnceLock::new());
    let runs = sessions.iter().enumerate().map(|(s, (session, tokens))| {
        let barrier = Arc::clone(&barrier);
        let typed_at = Arc::clone(&typed_at);
        let server = &server;
        async move {
            let mut cand = server.ssh(&tokens.candidate);
            cand.expect(PROMPT).await;
            let ivys: Vec<_> = (1..=3)
                .map(|k| {
                    session.join(
                        ParticipantRole::Interviewer,
                        &format!("ivy{k}"),
                        "token",
                        None,
                        size,
                    )
                })
                .collect();
            let obs = session.join(ParticipantRole::Observer, "obs", "token", None, size);
            // Typed `mSxP-$((6*7))`, printed `mSxP-42`: what the shell echoes back as typed
            // does not count.
            let line = |p: usize| format!("echo m{s}x{p}-$((6*7))\r");
            let markers: Vec<String> = (0..4).map(|p| format!("m{s}x{p}-42")).collect();
            let watchers = ivys
                .iter()
                .chain([&obs])
                .map(|c| until_all(c, &markers, WITHIN));
            let watching = join_all(watchers);
            let typing = async {
                if barrier.wait().await.is_leader() {
                    let _ = typed_at.set(Instant::now());
                }
                cand.send(&line(0));
                join_all(ivys.iter().enumerate().map(|(k, c)| {
                    let line = line(k + 1);
                    async move { c.input(line.as_bytes()).await }
                }))
                .await;
                obs.input(format!("echo obs{s}-$((6*7))\r").as_bytes())
                    .await;
                for m in &markers {
                    cand.expect(m).await;
                }
            };
            let (seen, ()) = tokio::join!(watching, typing);
            // A fence: once everybody sees it, any input accepted before it was echoed.
            cand.send("echo fence-$((6*7))\r");
            let fence = ["fence-42".to_string()];
            let after = join_all(
                ivys.iter()
                    .chain([&obs])
                    .map(|c| until_all(c, &fence, WITHIN)),
            )
            .await;
            cand.expect("fence-42").await;
            let everything = seen
                .iter()
                .chain(&after)
                .chain([&cand.seen])
                .cloned()
                .collect::<String>();
            assert!(
                !everything.contains(&format!("obs{s}-42")),
                "the observer's typing reached the terminal"
            );
            cand
        }
    });
    let clients = join_all(runs).await;
    let all_seen = typed_at.get().expect("typing began").elapsed();
    let during = load();
    for (session, _) in &sessions {
        server
            .sessions
            .end(session.id, "load test over")
            .await
            .unwrap();
    }
    for mut cand in clients {
        let out = cand.until_exit().await;
        assert!(out.contains("session has ended: load test over"), "{out:?}");
    }
    // Ended sessions keep nothing open but the output logs of their two finished jobs
    // (the sandbox's holding job and the shell), which the API still serves.
    drop(sessions);
    server.manager.warm_slots_ready().await;
    let mut expected = before;
    expected.process.fds += 2 * SESSIONS;
    let after = back_to(expected, 2, 2).await;
    eprintln!(
        "{SESSIONS} sessions x 5 participants: created in {created_in:?}, every marker (and a \
         fence after them) seen by all {:?} after typing began; before: {before}; during: \
         {during}; after: {after}",
        all_seen
    );
    assert!(
        after.process.fds <= expected.process.fds + 2,
        "descriptors left: before {before}, after {after}"
    );
    assert!(
        after.tasks <= before.tasks + 2,
        "tasks left: before {before}, after {after}"
    );
}
