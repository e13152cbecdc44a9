//! Bad input on every RPC: empty, huge and invalid fields, oversized and malformed
//! messages. Every answer is a proper gRPC status (naming the field where a field is
//! wrong), nothing panics or hangs, the server keeps serving, and no bad request starts a
//! job or a session.
//!
//! The RPCs are enumerated from the served descriptor sets (as `auth.rs` does for the
//! permission table): an RPC without bad-input cases here fails the test. Requests are
//! sent as raw bytes (a pass-through codec), so malformed protobuf and messages above
//! the server's limit can be sent too.
//!
//! `every_rpc_refuses_bad_input` needs no root (the unprivileged test server; as root it
//! could start jobs, and asserts none was). `bad_input_on_live_jobs_and_sessions` needs
//! root: it runs a real job and a real session to aim at.

use prost::Message;
use std::time::Duration;
use tandem_api::MAX_REQUEST_BYTES;
use tandem_api::test_server::TestServer;
use tandem_proto::v1 as pb;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Sends and receives messages as bytes, whatever the RPC.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        use prost::bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// Calls `path` with `messages` (the client then closes its side) and returns the first
/// response message (`None`: the response stream ended without one), or the status.
async fn call(
    channel: &Channel,
    path: &str,
    messages: Vec<Vec<u8>>,
) -> Result<Option<Vec<u8>>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
    let path = http::uri::PathAndQuery::try_from(path).unwrap();
    let mut stream = grpc
        .streaming(
            tonic::Request::new(futures_util::stream::iter(messages)),
            path,
            RawCodec,
        )
        .await?
        .into_inner();
    stream.message().await
}

/// What a case must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A response (or an empty response stream).
    Ok,
    /// This code, with a message starting with this field name ("" for any message).
    Status(Code, &'static str),
    /// Refused for its size.
    TooLarge,
    /// A decoding error (tonic's answer to bytes that are not the request message).
    Malformed,
}

struct Case {
    what: String,
    messages: Vec<Vec<u8>>,
    expect: Expect,
}

fn case(what: impl Into<String>, message: &impl Message, expect: Expect) -> Case {
    Case {
        what: what.into(),
        messages: vec![message.encode_to_vec()],
        expect,
    }
}

const MISSING_ID: &str = "6f1c6a52-0000-4000-8000-000000000000";
const TEN_MB: usize = 10 << 20;

fn huge() -> String {
    "x".repeat(TEN_MB)
}

/// An unknown field (number 1000, bytes) of `len` bytes: protobuf skips it, so this is
/// the empty request plus `len` bytes.
fn unknown_field(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    prost::encoding::encode_key(1000, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(len as u64, &mut out);
    out.resize(out.len() + len, b'y');
    out
}

fn invalid(field: &'static str) -> Expect {
    Expect::Status(Code::InvalidArgument, field)
}

fn not_found(field: &'static str) -> Expect {
    Expect::Status(Code::NotFound, field)
}

fn duration(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos })
}

/// The cases of one RPC, `None` for an RPC this file does not know (a failure).
fn cases_for(path: &str) -> Option<Vec<Case>> {
    let id_cases = |make: &dyn Fn(String) -> Vec<u8>, field: &'static str| -> Vec<Case> {
        vec![
            Case {
                what: "empty id".into(),
                messages: vec![make(String::new())],
                expect: invalid(field),
            },
            Case {
                what: "not an id".into(),
                messages: vec![make("../../etc/passwd".into())],
                expect: invalid(field),
            },
            Case {
                what: "1 MB id".into(),
                messages: vec![make("x".repeat(1 << 20))],
                expect: invalid(field),
            },
            Case {
                what: "10 MB id".into(),
                messages: vec![make(huge())],
                expect: Expect::TooLarge,
            },
            Case {
                what: "unknown id".into(),
                messages: vec![make(MISSING_ID.into())],
                expect: Expect::Status(Code::NotFound, ""),
            },
        ]
    };
    let start = |f: &dyn Fn(&mut pb::StartJobRequest)| {
        let mut r = pb::StartJobRequest {
            command: "/bin/true".into(),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    let limits = |f: &dyn Fn(&mut pb::Limits)| {
        start(&|r| {
            let mut l = pb::Limits::default();
            f(&mut l);
            r.limits = Some(l);
        })
    };
    let many = |n: usize| (0..n).map(|i| format!("s{i}")).collect::<Vec<_>>();
    let map = |n: usize| {
        (0..n)
            .map(|i| (format!("K{i}"), "v".to_string()))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx7ZQfLrIM0cJZvdk3bIOwWvlm8pzC9k1yG8NcJqZ2u ivy";
    let timestamp = |seconds: i64, nanos: i32| Some(prost_types::Timestamp { seconds, nanos });
    let create = |f: &dyn Fn(&mut pb::CreateSessionRequest)| {
        let mut r = pb::CreateSessionRequest {
            task: "demo".into(),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    Some(match path {
        "/tandem.v1.JobService/Start" => vec![
            case(
                "empty request",
                &pb::StartJobRequest::default(),
                invalid("command"),
            ),
            case(
                "10 MB command",
                &start(&|r| r.command = huge()),
                Expect::TooLarge,
            ),
            case(
                "1 MB command",
                &start(&|r| r.command = "x".repeat(1 << 20)),
                invalid("command"),
            ),
            case(
                "NUL in command",
                &start(&|r| r.command = "/bin/\0true".into()),
                invalid("command"),
            ),
            case(
                "100k args",
                &start(&|r| r.args = many(100_000)),
                invalid("args"),
            ),
            case(
                "a 200 KB argument",
                &start(&|r| r.args = vec!["a".repeat(200_000)]),
                invalid("args[0]"),
            ),
            case(
                "100k env variables",
                &start(&|r| r.env = map(100_000)),
                invalid("env"),
            ),
            case(
                "'=' in an env name",
                &start(&|r| r.env = [("A=B".to_string(), String::new())].into()),
                invalid("env"),
            ),
            case(
                "100k labels",
                &start(&|r| r.labels = map(100_000)),
                invalid("labels"),
            ),
            case(
                "a 1 MB label",
                &start(&|r| r.labels = [("k".to_string(), "v".repeat(1 << 20))].into()),
                invalid("labels"),
            ),
            case(
                "relative working dir",
                &start(&|r| r.working_dir = "tmp".into()),
                invalid("working_dir"),
            ),
            case(
                "64 KB working dir",
                &start(&|r| r.working_dir = format!("/{}", "d".repeat(65536))),
                invalid("working_dir"),
            ),
            case(
                "bad hostname",
                &start(&|r| r.hostname = "a b".into()),
                invalid("hostname"),
            ),
            case(
                "1 MB hostname",
                &start(&|r| r.hostname = "h".repeat(1 << 20)),
                invalid("hostname"),
            ),
            case(
                "0x0 terminal",
                &start(&|r| r.terminal = Some(pb::TerminalSize { rows: 0, cols: 0 })),
                invalid("terminal"),
            ),
            case(
                "forbidden capability",
                &start(&|r| r.capabilities = vec!["SYS_ADMIN".into()]),
                invalid("capabilities[0]"),
            ),
            case(
                "unknown capability",
                &start(&|r| r.capabilities = vec!["\u{1b}]2;x\u{7}".into()]),
                invalid("capabilities[0]"),
            ),
            case(
                "100k capabilities",
                &start(&|r| r.capabilities = vec!["NET_ADMIN".into(); 100_000]),
                invalid("capabilities"),
            ),
            case(
                "NaN cpu",
                &limits(&|l| l.cpu_cores = Some(f64::NAN)),
                invalid("limits.cpu_cores"),
            ),
            case(
                "infinite cpu",
                &limits(&|l| l.cpu_cores = Some(f64::INFINITY)),
                invalid("limits.cpu_cores"),
            ),
            case(
                "negative cpu",
                &limits(&|l| l.cpu_cores = Some(-1.0)),
                invalid("limits.cpu_cores"),
            ),
            case(
                "1e300 cpus",
                &limits(&|l| l.cpu_cores = Some(1e300)),
                invalid("limits.cpu_cores"),
            ),
            case(
                "zero memory",
                &limits(&|l| l.memory_bytes = Some(0)),
                invalid("limits.memory_bytes"),
            ),
            case(
                "u64::MAX memory",
                &limits(&|l| l.memory_bytes = Some(u64::MAX)),
                invalid("limits.memory_bytes"),
            ),
            case(
                "zero pids",
                &limits(&|l| l.pids = Some(0)),
                invalid("limits.pids"),
            ),
            case(
                "u64::MAX pids",
                &limits(&|l| l.pids = Some(u64::MAX)),
                invalid("limits.pids"),
            ),
            case(
                "1-byte disk",
                &limits(&|l| l.disk_bytes = Some(1)),
                invalid("limits.disk_bytes"),
            ),
            case(
                "u64::MAX disk",
                &limits(&|l| l.disk_bytes = Some(u64::MAX)),
                invalid("limits.disk_bytes"),
            ),
            case(
                "zero read rate",
                &limits(&|l| l.io_read_bytes_per_second = Some(0)),
                invalid("limits.io_read_bytes_per_second"),
            ),
            case(
                "zero write iops",
                &limits(&|l| l.io_write_ops_per_second = Some(0)),
                invalid("limits.io_write_ops_per_second"),
            ),
        ],
        "/tandem.v1.JobService/Stop" => {
            let mut c = id_cases(
                &|id| {
                    pb::StopJobRequest {
                        job_id: id,
                        grace: None,
                    }
                    .encode_to_vec()
                },
                "job_id",
            );
            c.push(case(
                "negative grace, unknown id",
                &pb::StopJobRequest {
                    job_id: MISSING_ID.into(),
                    grace: duration(-1, 0),
                },
                not_found(""),
            ));
            c
        }
        "/tandem.v1.JobService/Status" => id_cases(
            &|id| pb::JobStatusRequest { job_id: id }.encode_to_vec(),
            "job_id",
        ),
        "/tandem.v1.JobService/List" => {
            vec![case("empty request", &pb::ListJobsRequest {}, Expect::Ok)]
        }
        "/tandem.v1.JobService/Logs" => {
            let mut c = id_cases(
                &|id| {
                    pb::LogsRequest {
                        job_id: id,
                        offset: 0,
                        follow: true,
                    }
                    .encode_to_vec()
                },
                "job_id",
            );
            c.push(case(
                "u64::MAX offset, unknown id",
                &pb::LogsRequest {
                    job_id: MISSING_ID.into(),
                    offset: u64::MAX,
                    follow: false,
                },
                not_found(""),
            ));
            c
        }
        "/tandem.v1.JobService/Attach" => {
            use pb::attach_request::Event;
            let msg = |e: Option<Event>| pb::AttachRequest { event: e }.encode_to_vec();
            let open = |id: String| {
                msg(Some(Event::Open(pb::AttachOpen {
                    job_id: id,
                    output_offset: u64::MAX,
                })))
            };
            let mut c = id_cases(&open, "open.job_id");
            c.extend([
                Case {
                    what: "no message".into(),
                    messages: vec![],
                    expect: invalid("open"),
                },
                Case {
                    what: "an empty message".into(),
                    messages: vec![msg(None)],
                    expect: invalid("open"),
                },
                Case {
                    what: "input first".into(),
                    messages: vec![msg(Some(Event::Input(b"rm -rf /\n".to_vec())))],
                    expect: invalid("open"),
                },
                Case {
                    what: "a 0x0 resize first".into(),
                    messages: vec![msg(Some(Event::Resize(pb::TerminalSize {
                        rows: 0,
                        cols: 0,
                    })))],
                    expect: invalid("open"),
                },
                Case {
                    what: "10 MB input first".into(),
                    messages: vec![msg(Some(Event::Input(vec![b'y'; TEN_MB])))],
                    expect: Expect::TooLarge,
                },
                Case {
                    what: "unknown id, then 10 MB input".into(),
                    messages: vec![
                        open(MISSING_ID.into()),
                        msg(Some(Event::Input(vec![b'y'; TEN_MB]))),
                    ],
                    expect: Expect::Status(Code::NotFound, ""),
                },
            ]);
            c
        }
        "/tandem.v1.TaskService/List" => {
            vec![case("empty request", &pb::ListTasksRequest {}, Expect::Ok)]
        }
        "/tandem.v1.TaskService/Show" => vec![
            case("empty name", &pb::ShowTaskRequest::default(), not_found("")),
            case(
                "1 MB name",
                &pb::ShowTaskRequest {
                    name: "n".repeat(1 << 20),
                },
                not_found(""),
            ),
            case(
                "10 MB name",
                &pb::ShowTaskRequest { name: huge() },
                Expect::TooLarge,
            ),
            case(
                "a path as name",
                &pb::ShowTaskRequest {
                    name: "../../etc".into(),
                },
                not_found(""),
            ),
        ],
        "/tandem.v1.TaskService/Run" => vec![
            case("empty name", &pb::RunTaskRequest::default(), not_found("")),
            case(
                "1 MB name",
                &pb::RunTaskRequest {
                    name: "n".repeat(1 << 20),
                    terminal: None,
                },
                not_found(""),
            ),
            case(
                "10 MB name",
                &pb::RunTaskRequest {
                    name: huge(),
                    terminal: None,
                },
                Expect::TooLarge,
            ),
            case(
                "0x0 terminal",
                &pb::RunTaskRequest {
                    name: "demo".into(),
                    terminal: Some(pb::TerminalSize { rows: 0, cols: 0 }),
                },
                invalid("terminal"),
            ),
            case(
                "0x80 terminal",
                &pb::RunTaskRequest {
                    name: "demo".into(),
                    terminal: Some(pb::TerminalSize { rows: 0, cols: 80 }),
                },
                invalid("terminal"),
            ),
        ],
        "/tandem.v1.TaskService/Check" => id_cases(
            &|id| pb::CheckTaskRequest { instance_id: id }.encode_to_vec(),
            "instance_id",
        ),
        "/tandem.v1.SessionService/Create" => vec![
            case(
                "empty request",
                &pb::CreateSessionRequest::default(),
                not_found("task"),
            ),
            case(
                "1 MB task name",
                &create(&|r| r.task = "t".repeat(1 << 20)),
                not_found("task"),
            ),
            case(
                "10 MB task name",
                &create(&|r| r.task = huge()),
                Expect::TooLarge,
            ),
            case(
                "negative duration",
                &create(&|r| r.duration = duration(-1, 0)),
                invalid("duration"),
            ),
            case(
                "negative nanos",
                &create(&|r| r.duration = duration(60, -1)),
                invalid("duration"),
            ),
            case(
                "zero duration",
                &create(&|r| r.duration = duration(0, 0)),
                invalid("duration"),
            ),
            case(
                "25h duration",
                &create(&|r| r.duration = duration(25 * 3600, 0)),
                invalid("duration"),
            ),
            case(
                "i64::MAX duration",
                &create(&|r| r.duration = duration(i64::MAX, 999_999_999)),
                invalid("duration"),
            ),
            case(
                "i64::MAX duration, i32::MAX nanos",
                &create(&|r| r.duration = duration(i64::MAX, i32::MAX)),
                invalid("duration"),
            ),
            case(
                "100k keys",
                &create(&|r| r.candidate_keys = vec!["x".into(); 100_000]),
                invalid("candidate_keys"),
            ),
            case(
                "33 keys",
                &create(&|r| r.interviewer_keys = vec![key.into(); 33]),
                invalid("interviewer_keys"),
            ),
            case(
                "an empty key",
                &create(&|r| r.candidate_keys = vec![String::new()]),
                invalid("candidate_keys[0]"),
            ),
            case(
                "not a key",
                &create(&|r| r.candidate_keys = vec!["hello world".into()]),
                invalid("candidate_keys[0]"),
            ),
            case(
                "a 1 MB key",
                &create(&|r| {
                    r.interviewer_keys = vec![format!("ssh-ed25519 {}", "A".repeat(1 << 20))]
                }),
                invalid("interviewer_keys[0]"),
            ),
            case(
                "an escape in a key comment",
                &create(&|r| r.interviewer_keys = vec![format!("{key}\u{1b}]2;owned\u{7}")]),
                invalid("interviewer_keys[0]"),
            ),
            case(
                "a start in the past",
                &create(&|r| r.at = timestamp(1_000_000_000, 0)),
                invalid("at"),
            ),
            case(
                "a start before 1970",
                &create(&|r| r.at = timestamp(-1, 0)),
                invalid("at"),
            ),
            case(
                "a start with negative nanos",
                &create(&|r| r.at = timestamp(4_000_000_000, -1)),
                invalid("at"),
            ),
            case(
                "a start a century ahead",
                &create(&|r| r.at = timestamp(5_000_000_000, 0)),
                invalid("at"),
            ),
            case(
                "a start at i64::MAX",
                &create(&|r| r.at = timestamp(i64::MAX, 999_999_999)),
                invalid("at"),
            ),
            case(
                "an unknown clock",
                &create(&|r| r.clock = 99),
                invalid("clock"),
            ),
        ],
        "/tandem.v1.SessionService/List" => vec![case(
            "empty request",
            &pb::ListSessionsRequest {},
            Expect::Ok,
        )],
        "/tandem.v1.SessionService/Show" => {
            id_cases(&|id| pb::ShowSessionRequest { id }.encode_to_vec(), "id")
        }
        "/tandem.v1.SessionService/Reschedule" => id_cases(
            &|id| {
                pb::RescheduleSessionRequest {
                    id,
                    at: timestamp(4_000_000_000, 0),
                }
                .encode_to_vec()
            },
            "id",
        ),
        "/tandem.v1.SessionService/Reset" => {
            id_cases(&|id| pb::ResetSessionRequest { id }.encode_to_vec(), "id")
        }
        "/tandem.v1.SessionService/End" => {
            id_cases(&|id| pb::EndSessionRequest { id }.encode_to_vec(), "id")
        }
        "/tandem.v1.SessionService/Extend" => {
            let mut c = id_cases(
                &|id| {
                    pb::ExtendSessionRequest {
                        id,
                        by: duration(60, 0),
                    }
                    .encode_to_vec()
                },
                "id",
            );
            c.push(case(
                "i64::MAX, unknown id",
                &pb::ExtendSessionRequest {
                    id: MISSING_ID.into(),
                    by: duration(i64::MAX, i32::MAX),
                },
                not_found(""),
            ));
            c
        }
        "/tandem.v1.SessionService/SetAccess" => {
            let mut c = id_cases(
                &|id| {
                    pb::SetAccessRequest {
                        id,
                        participant: 1,
                        access: "observer".into(),
                    }
                    .encode_to_vec()
                },
                "id",
            );
            c.push(case(
                "u64::MAX participant, unknown id",
                &pb::SetAccessRequest {
                    id: MISSING_ID.into(),
                    participant: u64::MAX,
                    access: "x".repeat(1 << 20),
                },
                not_found(""),
            ));
            c
        }
        "/tandem.v1.SessionService/SetLock" => id_cases(
            &|id| pb::SetLockRequest { id, locked: true }.encode_to_vec(),
            "id",
        ),
        "/tandem.v1.SessionService/Check" => {
            id_cases(&|id| pb::SessionCheckRequest { id }.encode_to_vec(), "id")
        }
        "/tandem.v1.SessionService/Recording" => {
            id_cases(&|id| pb::RecordingRequest { id }.encode_to_vec(), "id")
        }
        "/tandem.v1.SessionService/Timeline" => id_cases(
            &|id| pb::SessionTimelineRequest { id }.encode_to_vec(),
            "id",
        ),
        "/tandem.v1.SessionService/Hint" => {
            id_cases(&|id| pb::SessionHintRequest { id }.encode_to_vec(), "id")
        }
        "/tandem.v1.SessionService/Note" => {
            let mut c = id_cases(
                &|id| {
                    pb::SessionNoteRequest {
                        id,
                        text: "a note".into(),
                    }
                    .encode_to_vec()
                },
                "id",
            );
            c.push(case(
                "a 1 MiB note, unknown id",
                &pb::SessionNoteRequest {
                    id: MISSING_ID.into(),
                    text: "x".repeat(1 << 20),
                },
                not_found(""),
            ));
            c
        }
        "/tandem.v1.ServerService/Info" => {
            vec![case("empty request", &pb::ServerInfoRequest {}, Expect::Ok)]
        }
        _ => return None,
    })
}

/// Cases every RPC gets, whatever its messages.
fn generic_cases() -> Vec<Case> {
    vec![
        Case {
            what: "a 10 MB message".into(),
            messages: vec![unknown_field(TEN_MB)],
            expect: Expect::TooLarge,
        },
        Case {
            what: "one byte over the limit".into(),
            messages: vec![unknown_field(MAX_REQUEST_BYTES - 4)],
            expect: Expect::TooLarge,
        },
        Case {
            what: "a truncated varint".into(),
            messages: vec![vec![0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]],
            expect: Expect::Malformed,
        },
        Case {
            what: "a length past the end".into(),
            messages: vec![vec![0x0A, 0x7F, b'x']],
            expect: Expect::Malformed,
        },
        Case {
            what: "a field of the wrong wire type".into(),
            messages: vec![vec![0x0B]],
            expect: Expect::Malformed,
        },
    ]
}

/// Every RPC path of the served services, from their descriptor sets.
fn rpc_paths(sets: &[&[u8]]) -> Vec<String> {
    let mut paths = Vec::new();
    for bytes in sets {
        let set = prost_types::FileDescriptorSet::decode(*bytes).unwrap();
        for file in set.file {
            for service in &file.service {
                for method in &service.method {
                    paths.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    paths
}

/// Checks one answer against what the case expects.
fn check(path: &str, what: &str, answer: &Result<Option<Vec<u8>>, Status>, expect: Expect) {
    let context = format!("{path} with {what}");
    if let Err(status) = answer {
        // However big the request, the answer stays small: nothing is echoed whole.
        assert!(
            status.message().len() <= 1024,
            "{context}: a {} byte status message",
            status.message().len()
        );
    }
    match (expect, answer) {
        (Expect::Ok, Ok(_)) => {}
        (Expect::Status(code, field), Err(status)) => {
            assert_eq!(status.code(), code, "{context}: {status:?}");
            assert!(
                status.message().starts_with(field),
                "{context}: {:?} should name {field}",
                status.message()
            );
        }
        (Expect::TooLarge, Err(status)) => {
            assert!(
                matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
                "{context}: {status:?}"
            );
            assert!(
                status.message().contains("too large")
                    && status.message().contains(&MAX_REQUEST_BYTES.to_string()),
                "{context}: {status:?}"
            );
        }
        (Expect::Malformed, Err(status)) => {
            assert!(
                matches!(status.code(), Code::Internal | Code::InvalidArgument),
                "{context}: {status:?}"
            );
            assert!(status.message().contains("decode"), "{context}: {status:?}");
        }
        (expect, answer) => panic!("{context}: expected {expect:?}, got {answer:?}"),
    }
}

/// A catalog with one task, `demo` (so calls naming it get past the lookup).
fn demo_catalog() -> (tandem_scenario::Catalog, tempfile::TempDir) {
    let tasks = tempfile::tempdir().unwrap();
    let dir = tasks.path().join("demo");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("task.yaml"),
        "name: demo\ntitle: Demo\ndescription: |\n  Demo.\ndifficulty: easy\ntime_limit: 10m\n\
         shell: /bin/bash --norc -i\ncheck: |\n  true\nsolution: |\n  none\n",
    )
    .unwrap();
    let (catalog, problems) = tandem_scenario::Catalog::load_dir(tasks.path());
    assert!(problems.is_empty(), "{problems:?}");
    (catalog, tasks)
}

/// The server still answers, quickly.
async fn still_serving(channel: &Channel, after: &str) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        health.check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("the server did not answer within 5 s after {after}"));
    answer.unwrap_or_else(|e| panic!("the server does not serve after {after}: {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_bad_input() {
    let (catalog, _tasks) = demo_catalog();
    let server = TestServer::start_unprivileged_with_catalog(catalog).await;
    let admin = server.channel(&server.pki.client_tls("admin")).await;
    let tandem = rpc_paths(&[tandem_proto::FILE_DESCRIPTOR_SET]);
    assert!(tandem.len() >= 20, "{tandem:?}");
    let all = rpc_paths(&[
        tandem_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        // (v1alpha reflection is in the permission table but not served: UNIMPLEMENTED.)
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    ]);
    let mut calls = 0;
    for path in &all {
        let mut cases = if tandem.contains(path) {
            cases_for(path).unwrap_or_else(|| panic!("{path} has no bad-input cases in this file"))
        } else {
            Vec::new()
        };
        cases.extend(generic_cases());
        for case in cases {
            let answer =
                tokio::time::timeout(Duration::from_secs(30), call(&admin, path, case.messages))
                    .await
                    .unwrap_or_else(|_| {
                        panic!("{path} with {} did not answer within 30 s", case.what)
                    });
            // tonic-reflection reads its requests in a task of its own and ends the
            // response stream, without a status, on one it cannot decode.
            let reflection = path.starts_with("/grpc.reflection.");
            if !(reflection && matches!(answer, Ok(None))) {
                check(path, &case.what, &answer, case.expect);
            }
            still_serving(&admin, &format!("{path} with {}", case.what)).await;
            calls += 1;
        }
    }
    eprintln!("{calls} bad requests on {} RPCs", all.len());
    // Nothing started: no job, no task instance, no session.
    assert!(
        server.manager.list().is_empty(),
        "{:?}",
        server.manager.list()
    );
    assert!(server.sessions.records().is_empty());
    // A fresh connection works too.
    let fresh = server.channel(&server.pki.client_tls("alice")).await;
    still_serving(&fresh, "all of it").await;
}

/// Calls that need something real to aim at: a running job, a terminal job, a live
/// session. Needs root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_live_jobs_and_sessions() {
    let (catalog, _tasks) = demo_catalog();
    let server = TestServer::start_with_catalog(catalog).await;
    let admin = server.channel(&server.pki.client_tls("admin")).await;
    let mut jobs = tandem_proto::v1::job_service_client::JobServiceClient::new(admin.clone());
    let mut sessions =
        tandem_proto::v1::session_service_client::SessionServiceClient::new(admin.clone());
    let within = |what: &'static str| move |_| panic!("{what} did not answer within 20 s");
    let twenty = Duration::from_secs(20);

    // A running job: offsets and graces out of range.
    let id = jobs
        .start(pb::StartJobRequest {
            command: "/bin/sh".into(),
            args: vec!["-c".into(), "echo hi; exec sleep 1000".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let answer = tokio::time::timeout(
        twenty,
        call(
            &admin,
            "/tandem.v1.JobService/Logs",
            vec![
                pb::LogsRequest {
                    job_id: id.clone(),
                    offset: u64::MAX,
                    follow: false,
                }
                .encode_to_vec(),
            ],
        ),
    )
    .await
    .unwrap_or_else(within("Logs at u64::MAX"));
    assert!(matches!(answer, Ok(None)), "{answer:?}");
    let open = |job_id: &str, output_offset| pb::AttachRequest {
        event: Some(pb::attach_request::Event::Open(pb::AttachOpen {
            job_id: job_id.into(),
            output_offset,
        })),
    };
    let answer = call(
        &admin,
        "/tandem.v1.JobService/Attach",
        vec![open(&id, u64::MAX).encode_to_vec()],
    )
    .await;
    check(
        "Attach",
        "a job without a terminal",
        &answer,
        Expect::Status(Code::FailedPrecondition, ""),
    );
    for (grace, what) in [
        (duration(-1, 0), "negative grace"),
        (duration(0, -1), "negative nanos"),
        (duration(1_000_000_000, 0), "a grace of 30 years"),
        (duration(i64::MAX, i32::MAX), "i64::MAX grace"),
    ] {
        let answer = call(
            &admin,
            "/tandem.v1.JobService/Stop",
            vec![
                pb::StopJobRequest {
                    job_id: id.clone(),
                    grace,
                }
                .encode_to_vec(),
            ],
        )
        .await;
        check("Stop", what, &answer, invalid("grace"));
        still_serving(&admin, what).await;
    }

    // A terminal job: absurd sizes are clamped to the largest terminal; 0x0 is ignored.
    let tty = jobs
        .start(pb::StartJobRequest {
            command: "/bin/sh".into(),
            terminal: Some(pb::TerminalSize {
                rows: u32::MAX,
                cols: u32::MAX,
            }),
            env: [("PS1".to_string(), "$ ".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(open(&tty, 0)).await.unwrap();
    let mut output = jobs
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let resize = |rows, cols| pb::AttachRequest {
        event: Some(pb::attach_request::Event::Resize(pb::TerminalSize {
            rows,
            cols,
        })),
    };
    let input = |text: &str| pb::AttachRequest {
        event: Some(pb::attach_request::Event::Input(text.as_bytes().to_vec())),
    };
    tx.send(input("stty size; echo A=$((6*7))\n"))
        .await
        .unwrap();
    let mut seen = String::new();
    let mut read_until = async |needle: &str, seen: &mut String| {
        tokio::time::timeout(twenty, async {
            while !seen.contains(needle) {
                match output.message().await.unwrap().unwrap().event.unwrap() {
                    pb::attach_response::Event::Output(b) => {
                        seen.push_str(&String::from_utf8_lossy(&b))
                    }
                    pb::attach_response::Event::Ended(j) => panic!("ended: {j:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{needle:?} not seen: {seen:?}"));
    };
    read_until("A=42", &mut seen).await;
    assert!(
        seen.contains("200 500"),
        "the terminal is clamped to 500x200: {seen:?}"
    );
    for (rows, cols) in [(0, 0), (0, 80), (u32::MAX, 1), (1, u32::MAX)] {
        tx.send(resize(rows, cols)).await.unwrap();
    }
    tx.send(input("stty size; echo B=$((6*7))\n"))
        .await
        .unwrap();
    read_until("B=42", &mut seen).await;
    let after = &seen[seen.find("A=42").unwrap()..];
    assert!(
        after.contains("\n1 500\r") || after.contains("$ 1 500\r"),
        "the last size is 500 columns of 1 row (0x0 and 80x0 ignored): {after:?}"
    );
    // Input as large as a request may be (just under 4 MiB) reaches the terminal and the
    // server keeps serving.
    tx.send(input(&format!(
        ": {}\n",
        "y".repeat(MAX_REQUEST_BYTES - 64)
    )))
    .await
    .unwrap();
    still_serving(&admin, "4 MB of terminal input").await;
    drop(tx);
    drop(output);

    // A live session: extending, access, participants out of range.
    let session = sessions
        .create(pb::CreateSessionRequest {
            task: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap()
        .id;
    for (by, what) in [
        (None, "no duration"),
        (duration(0, 0), "zero"),
        (duration(-60, 0), "negative"),
        (duration(25 * 3600, 0), "25 hours"),
        (duration(i64::MAX, 999_999_999), "i64::MAX seconds"),
        (
            duration(i64::MAX, i32::MAX),
            "i64::MAX seconds and i32::MAX nanos",
        ),
    ] {
        let answer = call(
            &admin,
            "/tandem.v1.SessionService/Extend",
            vec![
                pb::ExtendSessionRequest {
                    id: session.clone(),
                    by,
                }
                .encode_to_vec(),
            ],
        )
        .await;
        check("Extend", what, &answer, invalid("by"));
        still_serving(&admin, what).await;
    }
    // Within bounds it works, and the session is still live.
    sessions
        .extend(pb::ExtendSessionRequest {
            id: session.clone(),
            by: duration(600, 0),
        })
        .await
        .unwrap();
    for (participant, access, expect, what) in [
        (
            u64::MAX,
            "observer",
            not_found("participant"),
            "participant u64::MAX",
        ),
        (0, "observer", not_found("participant"), "participant 0"),
        (1, "admin", invalid("access"), "access admin"),
        (1, "", invalid("access"), "empty access"),
    ] {
        let answer = call(
            &admin,
            "/tandem.v1.SessionService/SetAccess",
            vec![
                pb::SetAccessRequest {
                    id: session.clone(),
                    participant,
                    access: access.into(),
                }
                .encode_to_vec(),
            ],
        )
        .await;
        check("SetAccess", what, &answer, expect);
    }
    // Notes: empty, blank or too long; hints of a task that has none.
    for (text, what) in [
        (String::new(), "an empty note"),
        (" \n\t".to_string(), "a blank note"),
        (
            "x".repeat(tandem_session::MAX_NOTE_BYTES + 1),
            "a note too long",
        ),
    ] {
        let answer = call(
            &admin,
            "/tandem.v1.SessionService/Note",
            vec![
                pb::SessionNoteRequest {
                    id: session.clone(),
                    text,
                }
                .encode_to_vec(),
            ],
        )
        .await;
        check("Note", what, &answer, invalid("text"));
    }
    let answer = call(
        &admin,
        "/tandem.v1.SessionService/Hint",
        vec![
            pb::SessionHintRequest {
                id: session.clone(),
            }
            .encode_to_vec(),
        ],
    )
    .await;
    check(
        "Hint",
        "a task without hints",
        &answer,
        Expect::Status(Code::FailedPrecondition, "every hint"),
    );
    let shown = sessions
        .show(pb::ShowSessionRequest {
            id: session.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        shown.session.unwrap().ended.is_empty(),
        "the session is still live"
    );
    sessions
        .end(pb::EndSessionRequest { id: session })
        .await
        .unwrap();
    still_serving(&admin, "all of it").await;
}

/// Resident memory of this process (the server runs in it), bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Recordings may be 64 MiB: clients asking for one at the same time must not make the
/// server hold a copy each. Needs root (a real session makes the recording's place).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_recording_requests_are_streamed_from_the_file() {
    let (catalog, _tasks) = demo_catalog();
    let server = TestServer::start_with_catalog(catalog).await;
    let admin = server.channel(&server.pki.client_tls("admin")).await;
    let mut sessions =
        tandem_proto::v1::session_service_client::SessionServiceClient::new(admin.clone());
    let id = sessions
        .create(pb::CreateSessionRequest {
            task: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap()
        .id;
    sessions
        .end(pb::EndSessionRequest { id: id.clone() })
        .await
        .unwrap();
    // A recording at the default cap.
    let size = 64 << 20;
    let path = server
        .sessions
        .dir(id.parse().unwrap())
        .join("recording.cast");
    std::fs::write(&path, vec![b'r'; size]).unwrap();
    let tls = server.pki.client_tls("admin");
    let before = rss_bytes();
    let mut streams = Vec::new();
    for _ in 0..8 {
        // A connection each: HTTP/2 windows are per connection, and the point is eight
        // readers that all stop reading, not one connection's flow control.
        let mut client = tandem_proto::v1::session_service_client::SessionServiceClient::new(
            server.channel(&tls).await,
        );
        let mut stream = client
            .recording(pb::RecordingRequest { id: id.clone() })
            .await
            .unwrap()
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("the first chunk comes")
            .unwrap()
            .unwrap();
        assert!(!first.data.is_empty());
        streams.push(stream);
    }
    let grown = rss_bytes().saturating_sub(before);
    eprintln!("8 recording streams of {size} bytes opened: RSS grew by {grown} bytes");
    assert!(grown < size as u64, "RSS grew by {grown} bytes");
    // One delivers the whole file.
    let mut stream = streams.swap_remove(0);
    drop(streams);
    let mut total = 64 << 10;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("the recording keeps coming")
        .unwrap()
    {
        total += chunk.data.len() as u64;
    }
    assert!(
        total >= size as u64 && total <= size as u64 + (64 << 10),
        "{total}"
    );
}
