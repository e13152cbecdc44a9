//! The job service over real mutual TLS: ownership (interviewers see only their own jobs,
//! others' ids are NOT_FOUND like missing ones), validation, concurrent log followers,
//! clients that vanish mid-stream, shutdown, and attach.
//!
//! These tests need root: they start real jobs (namespaces, cgroups). TLS and permission
//! tests that start none are in `mtls.rs` and run without root.

use std::time::Duration;
use tandem_api::test_server::TestServer;
use tandem_proto::v1 as pb;
use tandem_proto::v1::job_service_client::JobServiceClient;
use tonic::Code;
use tonic::transport::Channel;

fn sh(script: &str) -> pb::StartJobRequest {
    pb::StartJobRequest {
        command: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
        ..Default::default()
    }
}

async fn start(client: &mut JobServiceClient<Channel>, req: pb::StartJobRequest) -> String {
    client.start(req).await.expect("start").into_inner().job_id
}

/// All of a job's output through Logs with follow.
async fn follow(client: &mut JobServiceClient<Channel>, id: &str) -> Vec<u8> {
    let mut stream = client
        .logs(pb::LogsRequest {
            job_id: id.into(),
            offset: 0,
            follow: true,
        })
        .await
        .expect("logs")
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        assert_eq!(chunk.offset, out.len() as u64, "chunks are contiguous");
        out.extend_from_slice(&chunk.data);
    }
    out
}

#[tokio::test]
async fn interviewers_only_see_their_own_jobs() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut admin = server.client("admin").await;
    let id = start(&mut alice, sh("echo secret; exec sleep 1000")).await;

    let missing = "6f1c6a52-0000-4000-8000-000000000000";
    for who in [&mut bob] {
        let not_found = who
            .status(pb::JobStatusRequest { job_id: id.clone() })
            .await
            .unwrap_err();
        let really_missing = who
            .status(pb::JobStatusRequest {
                job_id: missing.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(not_found.code(), Code::NotFound);
        // Same answer as for an id that does not exist: existence is not leaked.
        assert_eq!(
            not_found.message().replace(&id, "ID"),
            really_missing.message().replace(missing, "ID")
        );
        let logs = who
            .logs(pb::LogsRequest {
                job_id: id.clone(),
                offset: 0,
                follow: false,
            })
            .await
            .unwrap_err();
        assert_eq!(logs.code(), Code::NotFound);
        let stop = who
            .stop(pb::StopJobRequest {
                job_id: id.clone(),
                grace: None,
            })
            .await
            .unwrap_err();
        assert_eq!(stop.code(), Code::NotFound);
        let list = who.list(pb::ListJobsRequest {}).await.unwrap().into_inner();
        assert!(list.jobs.is_empty(), "bob sees {:?}", list.jobs);
    }
    let job = server.manager.status(id.parse().unwrap()).unwrap();
    assert!(
        !job.state.is_finished(),
        "bob's stop must not have touched the job"
    );

    let mine = alice
        .list(pb::ListJobsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.jobs.len(), 1);
    assert_eq!(mine.jobs[0].owner, "alice");
    let all = admin
        .list(pb::ListJobsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.jobs.len(), 1);
    let stopped = admin
        .stop(pb::StopJobRequest {
            job_id: id.clone(),
            grace: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(stopped.state(), pb::JobState::Stopped);
    assert_eq!(stopped.signal, Some(15));
}

#[tokio::test]
async fn bad_requests_are_invalid_arguments_naming_the_field() {
    let server = TestServer::start().await;
    let mut client = server.client("alice").await;
    let cases = [
        (pb::StartJobRequest::default(), "command"),
        (
            pb::StartJobRequest {
                working_dir: "relative/dir".into(),
                ..sh("true")
            },
            "working_dir",
        ),
        (
            pb::StartJobRequest {
                limits: Some(pb::Limits {
                    memory_bytes: Some(10),
                    ..Default::default()
                }),
                ..sh("true")
            },
            "limits.memory_bytes",
        ),
        (
            pb::StartJobRequest {
                terminal: Some(pb::TerminalSize { rows: 0, cols: 0 }),
                ..sh("true")
            },
            "terminal",
        ),
    ];
    for (req, field) in cases {
        let status = client.start(req).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(field),
            "{} should name {field}",
            status.message()
        );
    }
    let status = client
        .status(pb::JobStatusRequest {
            job_id: "not-an-id".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("job_id"));
    let status = client
        .start(pb::StartJobRequest {
            command: "/no/such/program".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("No such file or directory"),
        "{status:?}"
    );
    assert!(server.manager.list().is_empty());
}

#[tokio::test]
async fn two_followers_get_identical_bytes() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut admin = server.client("admin").await;
    // Output keeps coming while both follow: 2 MiB of random bytes in 64 KiB pieces.
    let id = start(
        &mut alice,
        sh("for i in $(seq 32); do head -c 65536 /dev/urandom; done"),
    )
    .await;
    let (a, b) = tokio::join!(follow(&mut alice, &id), follow(&mut admin, &id));
    assert_eq!(a.len(), 2 * 1024 * 1024);
    assert_eq!(a, b);
    let local = server
        .manager
        .output(id.parse().unwrap())
        .unwrap()
        .read_to_end()
        .await
        .unwrap();
    assert_eq!(a, local);
    // Without follow: what exists, then the end.
    let mut stream = alice
        .logs(pb::LogsRequest {
            job_id: id.clone(),
            offset: 1024 * 1024,
            follow: false,
        })
        .await
        .unwrap()
        .into_inner();
    let mut tail = Vec::new();
    while let Some(c) = stream.message().await.unwrap() {
        tail.extend_from_slice(&c.data);
    }
    assert_eq!(tail, a[1024 * 1024..]);
}

#[tokio::test]
async fn a_client_leaving_mid_stream_leaves_no_stream_behind() {
    let mut server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let id = start(&mut alice, sh("echo first; exec sleep 1000")).await;
    let mut stream = alice
        .logs(pb::LogsRequest {
            job_id: id.clone(),
            offset: 0,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.data, b"first\n");
    assert_eq!(*server.streams.borrow(), 1);
    // The client goes away: stream and connection dropped.
    drop(stream);
    drop(alice);
    server.streams_drained().await;
    // The job is unaffected.
    let status = server.manager.status(id.parse().unwrap()).unwrap();
    assert!(!status.state.is_finished());
}

#[tokio::test]
async fn shutdown_ends_live_streams_cleanly() {
    let mut server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let id = start(&mut alice, sh("echo first; exec sleep 1000")).await;
    let mut stream = alice
        .logs(pb::LogsRequest {
            job_id: id,
            offset: 0,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.message().await.unwrap().unwrap().data, b"first\n");
    server.shutdown().await;
    let end = stream.message().await.unwrap_err();
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    assert!(end.message().contains("shutting down"));
    assert_eq!(*server.streams.borrow(), 0);
}

#[tokio::test]
async fn attach_types_into_a_terminal_job_and_sees_it_end() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let id = start(
        &mut alice,
        pb::StartJobRequest {
            terminal: Some(pb::TerminalSize { rows: 24, cols: 80 }),
            env: [("PS1".to_string(), "prompt$ ".to_string())].into(),
            ..pb::StartJobRequest {
                command: "/bin/bash".into(),
                args: vec!["--norc".into(), "-i".into()],
                ..Default::default()
            }
        },
    )
    .await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let open = pb::AttachRequest {
        event: Some(pb::attach_request::Event::Open(pb::AttachOpen {
            job_id: id.clone(),
            output_offset: 0,
        })),
    };
    tx.send(open).await.unwrap();
    let mut out = alice
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut seen = String::new();
    let mut wait_for = async |needle: &str, seen: &mut String| {
        tokio::time::timeout(Duration::from_secs(30), async {
            while !seen.contains(needle) {
                match out.message().await.unwrap().unwrap().event.unwrap() {
                    pb::attach_response::Event::Output(b) => {
                        seen.push_str(&String::from_utf8_lossy(&b))
                    }
                    pb::attach_response::Event::Ended(job) => return Some(job),
                }
            }
            None
        })
        .await
        .expect("output within 30 s")
    };
    assert!(wait_for("prompt$ ", &mut seen).await.is_none());
    let input = |s: &str| pb::AttachRequest {
        event: Some(pb::attach_request::Event::Input(s.as_bytes().to_vec())),
    };
    tx.send(pb::AttachRequest {
        event: Some(pb::attach_request::Event::Resize(pb::TerminalSize {
            rows: 30,
            cols: 100,
        })),
    })
    .await
    .unwrap();
    tx.send(input("stty size; exit 3\n")).await.unwrap();
    let ended = wait_for("\u{0}never", &mut seen)
        .await
        .expect("ended event");
    assert!(seen.contains("30 100"), "{seen:?}");
    assert_eq!(ended.state(), pb::JobState::Exited);
    assert_eq!(ended.exit_code, Some(3));
}

#[tokio::test]
async fn attach_refuses_jobs_without_a_terminal_and_others_jobs() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let id = start(&mut alice, sh("exec sleep 1000")).await;
    for (client, code) in [
        (&mut alice, Code::FailedPrecondition),
        (&mut bob, Code::NotFound),
    ] {
        let open = pb::AttachRequest {
            event: Some(pb::attach_request::Event::Open(pb::AttachOpen {
                job_id: id.clone(),
                output_offset: 0,
            })),
        };
        let status = client.attach(tokio_stream::iter([open])).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
    }
}
