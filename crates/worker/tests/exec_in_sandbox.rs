//! Commands run inside an existing sandbox (`JobManager::exec`): they share its
//! namespaces, root and cgroup; background services they start keep running; they can be
//! stopped on their own, and end with the sandbox.

mod common;
use common::*;
use std::time::Duration;
use tandem_worker::{ExitOutcome, FileSpec, JobError, JobSpec, JobState, Limits, PtySize};

async fn run_in(
    manager: &tandem_worker::JobManager,
    sandbox: tandem_worker::JobId,
    spec: JobSpec,
) -> (JobState, String) {
    let id = manager.exec(sandbox, spec).await.expect("exec");
    let text = output_text(manager, id).await;
    (
        within(30, "wait", manager.wait(id)).await.unwrap().state,
        text,
    )
}

#[tokio::test]
async fn commands_share_the_sandbox_and_its_background_services() {
    let (manager, fixture) = manager();
    let mut sandbox = JobSpec::sandbox();
    sandbox.hostname = Some("box".into());
    let sandbox = manager.start(sandbox).await.unwrap();

    let (state, text) = run_in(
        &manager,
        sandbox,
        sh("hostname; echo data > /etc/from-setup; \
            (setsid sh -c 'exec sleep 1000' > /dev/null 2>&1 &); echo setup-done"),
    )
    .await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");
    assert_eq!(text, "box\nsetup-done\n");

    // A second command sees the first one's file and its daemon, in the same PID namespace.
    let (state, text) = run_in(
        &manager,
        sandbox,
        sh("cat /etc/from-setup; ps -e -o comm= | sort | tr '\\n' ' '"),
    )
    .await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("data"));
    let procs = lines.next().unwrap();
    assert!(
        procs.contains("sleep"),
        "the setup's daemon survived it: {procs}"
    );

    // Stopping the sandbox ends everything in it, and leaves nothing behind.
    let status = within(30, "stop", manager.stop(sandbox, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        status.state,
        JobState::Stopped {
            forced: false,
            outcome: ExitOutcome::Code(0)
        }
    );
    assert!(!fixture.cgroup_exists(sandbox));
}

#[tokio::test]
async fn a_command_can_be_stopped_alone_and_ends_with_its_sandbox() {
    let (manager, _fixture) = manager();
    let sandbox = manager.start(JobSpec::sandbox()).await.unwrap();

    let polite = manager
        .exec(sandbox, sh("echo up; exec sleep 1000"))
        .await
        .unwrap();
    read_until(&mut manager.output(polite).unwrap(), "up").await;
    let status = manager.stop(polite, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        status.state,
        JobState::Stopped {
            forced: false,
            outcome: ExitOutcome::Signal(libc::SIGTERM)
        }
    );

    let stubborn = manager
        .exec(
            sandbox,
            sh("trap '' TERM; echo up; while :; do sleep 1; done"),
        )
        .await
        .unwrap();
    read_until(&mut manager.output(stubborn).unwrap(), "up").await;
    let status = manager
        .stop(stubborn, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(
        status.state,
        JobState::Stopped {
            forced: true,
            outcome: ExitOutcome::Signal(libc::SIGKILL)
        }
    );
    assert!(
        !manager.status(sandbox).unwrap().state.is_finished(),
        "stopping a command leaves its sandbox running"
    );

    let left = manager
        .exec(sandbox, sh("echo up; exec sleep 1000"))
        .await
        .unwrap();
    read_until(&mut manager.output(left).unwrap(), "up").await;
    manager.stop(sandbox, Duration::from_secs(5)).await.unwrap();
    let status = within(30, "command ends with its sandbox", manager.wait(left))
        .await
        .unwrap();
    assert!(
        matches!(status.state, JobState::Stopped { .. }),
        "{status:?}"
    );

    let err = manager.exec(sandbox, sh("true")).await.unwrap_err();
    assert!(matches!(err, JobError::Ended(_)), "{err}");
}

#[tokio::test]
async fn terminal_user_and_files_inside_a_sandbox() {
    let (manager, _fixture) = manager();
    let mut spec = JobSpec::sandbox();
    spec.files.push(FileSpec {
        path: "/etc/app/config.ini".into(),
        content: b"secret=42\n".to_vec(),
        mode: 0o640,
        uid: Some(65534),
        gid: Some(65534),
    });
    let sandbox = manager.start(spec).await.unwrap();

    let (_, text) = run_in(
        &manager,
        sandbox,
        sh("stat -c '%a %u' /etc/app/config.ini /etc; cat /etc/app/config.ini"),
    )
    .await;
    assert_eq!(text, "640 65534\n755 0\nsecret=42\n");

    let mut as_nobody =
        sh("id -u; cat /etc/app/config.ini; cat /etc/shadow 2>/dev/null || echo no-shadow");
    as_nobody.user = Some("nobody".into());
    let (_, text) = run_in(&manager, sandbox, as_nobody).await;
    assert_eq!(text, "65534\nsecret=42\nno-shadow\n");

    let tty = sh("tty").pty(PtySize::default());
    let (state, text) = run_in(&manager, sandbox, tty).await;
    assert_eq!(state, JobState::Exited { code: 0 });
    assert!(text.starts_with("/dev/pts/"), "{text:?}");

    let mut unknown = sh("true");
    unknown.user = Some("no-such-user".into());
    let err = manager.exec(sandbox, unknown).await.unwrap_err();
    assert!(err.to_string().contains("no-such-user"), "{err}");

    let err = manager
        .exec(
            sandbox,
            sh("true").limits(Limits {
                pids: Some(5),
                ..Limits::default()
            }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, JobError::InvalidSpec(m) if m.starts_with("limits")),
        "{err}"
    );
    manager.stop(sandbox, Duration::from_secs(5)).await.unwrap();
}
