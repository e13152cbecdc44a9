//! The load suite, bounded in count and time, on loopback only: 100 jobs started at once
//! from 10 clients. Every byte is checked, and what the server holds (resident memory,
//! descriptors, tokio tasks) is measured before and after: it must come back. The
//! figures are printed (`cargo test -p tandem-suites --test load -- --nocapture`).
//!
//! The server runs in this test process (the API's `test_server`), so its own figures
//! are the server's, plus the clients' (which are gone when measured after).
//!
//! Needs root: every job runs in a real sandbox (namespaces, cgroups).

use futures_util::future::join_all;
use std::time::{Duration, Instant};
use tandem_api::test_server::TestServer;
use tandem_proto::v1 as pb;
use tandem_suites::*;

/// Figures of this process and its runtime's live tasks.
#[derive(Debug, Clone, Copy)]
struct Load {
    process: Figures,
    tasks: usize,
}

fn load() -> Load {
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

/// Waits (bounded) until this process holds no more descriptors and tasks than
/// `baseline` plus `slack`: connections that clients closed end on the server's side a
/// moment later. Returns the figures then.
async fn back_to(baseline: Load, slack: usize) -> Load {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticks.tick().await;
        let now = load();
        let settled =
            now.process.fds <= baseline.process.fds + slack && now.tasks <= baseline.tasks + slack;
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
    let server = TestServer::start().await;
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
    let mut expected = before;
    expected.process.fds += 100;
    let after = back_to(expected, 2).await;
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
