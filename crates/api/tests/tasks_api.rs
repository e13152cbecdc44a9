//! The task service over mutual TLS: list/show, run an instance, check it (failed, then
//! passed after a fix), others' instances are NOT_FOUND, a failing setup is reported with
//! its output.
//!
//! Needs root: task instances are real sandboxes (namespaces, cgroups).

use tandem_api::test_server::TestServer;
use tandem_proto::v1 as pb;
use tandem_proto::v1::job_service_client::JobServiceClient;
use tandem_proto::v1::task_service_client::TaskServiceClient;
use tandem_scenario::Catalog;
use tonic::Code;

fn write_task(root: &std::path::Path, name: &str, setup: &str, check: &str) {
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("task.yaml"),
        format!(
            "name: {name}\ntitle: The {name} task\ndescription: |\n  Make /etc/state say ok.\n\
             difficulty: easy\ntime_limit: 15m\nsetup: |\n  {setup}\ncheck: |\n  {check}\n\
             hints: [look at /etc/state]\nsolution: |\n  echo ok > /etc/state\n"
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_check_a_task_over_the_api() {
    let tasks = tempfile::tempdir().unwrap();
    write_task(
        tasks.path(),
        "state",
        "echo broken > /etc/state",
        "grep -qx ok /etc/state && echo state is ok || { echo state is $(cat /etc/state); exit 1; }",
    );
    write_task(
        tasks.path(),
        "bad-setup",
        "echo cannot prepare; exit 7",
        "true",
    );
    let (catalog, problems) = Catalog::load_dir(tasks.path());
    assert!(problems.is_empty(), "{problems:?}");
    let server = TestServer::start_with_catalog(catalog).await;
    let alice_channel = server.channel(&server.pki.client_tls("alice")).await;
    let mut alice = TaskServiceClient::new(alice_channel.clone());
    let mut bob = TaskServiceClient::new(server.channel(&server.pki.client_tls("bob")).await);

    let list = alice
        .list(pb::ListTasksRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = list.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["bad-setup", "state"]);
    let shown = alice
        .show(pb::ShowTaskRequest {
            name: "state".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shown.hints, ["look at /etc/state"]);
    assert_eq!(shown.task.unwrap().time_limit.unwrap().seconds, 900);
    let missing = alice
        .show(pb::ShowTaskRequest {
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let instance = alice
        .run(pb::RunTaskRequest {
            name: "state".into(),
            terminal: None,
        })
        .await
        .unwrap()
        .into_inner()
        .instance
        .unwrap();
    assert_eq!(instance.state(), pb::InstanceState::Ready);
    assert_eq!(instance.owner, "alice");
    assert!(!instance.shell_job_id.is_empty());

    let check = |id: String| pb::CheckTaskRequest { instance_id: id };
    let result = alice
        .check(check(instance.id.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(result.outcome(), pb::CheckOutcome::Failed);
    assert_eq!(result.output, "state is broken\n");

    // Bob cannot check Alice's instance, nor see its sandbox job.
    let status = bob.check(check(instance.id.clone())).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // Fix it through the shell, like a candidate.
    let mut jobs = JobServiceClient::new(alice_channel);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::AttachRequest {
        event: Some(pb::attach_request::Event::Open(pb::AttachOpen {
            job_id: instance.shell_job_id.clone(),
            output_offset: 0,
        })),
    })
    .await
    .unwrap();
    tx.send(pb::AttachRequest {
        event: Some(pb::attach_request::Event::Input(
            b"echo ok > /etc/state; echo FIX\"\"ED\n".to_vec(),
        )),
    })
    .await
    .unwrap();
    let mut out = jobs
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut seen = String::new();
    while !seen.contains("FIXED\r\n") {
        match out.message().await.unwrap().unwrap().event.unwrap() {
            pb::attach_response::Event::Output(b) => seen.push_str(&String::from_utf8_lossy(&b)),
            pb::attach_response::Event::Ended(j) => panic!("shell ended: {j:?}"),
        }
    }
    let result = alice
        .check(check(instance.id.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(result.outcome(), pb::CheckOutcome::Passed, "{result:?}");

    let failed = alice
        .run(pb::RunTaskRequest {
            name: "bad-setup".into(),
            terminal: None,
        })
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::FailedPrecondition);
    assert!(
        failed.message().contains("exited with code 7"),
        "{}",
        failed.message()
    );
    assert!(
        failed.message().contains("cannot prepare"),
        "{}",
        failed.message()
    );
}
