//! Task instances end to end (as root): setup runs in the sandbox, the shell starts, the
//! check runs in the same sandbox and tells passed / failed / error apart; failing and
//! hanging setups and hanging checks are reported clearly and leave nothing behind.
//!
//! Needs root: every instance is a real sandbox (namespaces, cgroups). The task format's
//! own tests run without root in `tandem-task`.

use std::sync::Arc;
use std::time::Duration;
use tandem_scenario::{CheckOutcome, InstanceState, Instances, ScenarioError, Task};
use tandem_testkit_worker::TestManager;
use tandem_worker::{JobId, JobManager, JobSpec, PtySize};

struct Setup {
    instances: Instances,
    manager: TestManager,
}

fn setup() -> Setup {
    let manager = TestManager::new();
    Setup {
        instances: Instances::new(manager.manager.clone()),
        manager,
    }
}

/// A task written to a temp dir and loaded through the real loader.
fn make_task(setup: &str, check: &str, extra: &str) -> (Arc<Task>, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("demo");
    std::fs::create_dir(&dir).unwrap();
    let indent = |s: &str| s.lines().map(|l| format!("  {l}\n")).collect::<String>();
    let yaml = format!(
        "name: demo\ntitle: Demo\ndescription: |\n  Fix it.\ndifficulty: easy\ntime_limit: 10m\n\
         {extra}setup: |\n{}check: |\n{}solution: |\n  Just fix it.\n",
        indent(setup),
        indent(check)
    );
    std::fs::write(dir.join("task.yaml"), yaml).unwrap();
    let task = tandem_scenario::task::load(&dir).unwrap_or_else(|e| panic!("{e:?}"));
    (Arc::new(task), root)
}

async fn run_in(manager: &JobManager, sandbox: JobId, script: &str) -> String {
    let id = manager
        .exec(sandbox, JobSpec::new("/bin/sh", ["-c", script]))
        .await
        .unwrap();
    let out = manager.output(id).unwrap().read_to_end().await.unwrap();
    manager.wait(id).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn setup_shell_and_checks_share_one_sandbox() {
    let s = setup();
    let (task, _dir) = make_task(
        "echo broken > /etc/app.conf\n\
         setsid sleep 1000 >/dev/null 2>&1 < /dev/null &\n\
         echo setup done",
        "if grep -q fixed /etc/app.conf; then echo config fixed; else echo config says $(cat /etc/app.conf); exit 1; fi",
        "user: nobody\nfiles:\n  - path: /etc/app.readme\n    content: read me\n",
    );
    let instance = s
        .instances
        .start(task, "alice", PtySize::default())
        .await
        .unwrap();
    assert_eq!(instance.state(), InstanceState::Ready);
    let setup_out = s
        .manager
        .output(instance.setup.unwrap())
        .unwrap()
        .read_to_end()
        .await
        .unwrap();
    assert_eq!(setup_out, b"setup done\n");

    let result = s.instances.check(instance.id).await.unwrap();
    assert_eq!(result.outcome, CheckOutcome::Failed);
    assert_eq!(result.output, "config says broken\n");

    // The candidate's shell: a terminal job in the same sandbox, as the task's user; its
    // log keeps little (the session's recording is the record).
    let shell = instance.shell().unwrap();
    assert_eq!(
        s.manager.info(shell).unwrap().spec.output_cap,
        Some(tandem_scenario::SHELL_OUTPUT_CAP)
    );
    s.manager
        .write_input(shell, b"id -un; cat /etc/app.readme; echo\n")
        .await
        .unwrap();
    let mut out = s.manager.output(shell).unwrap();
    let mut seen = String::new();
    while !seen.contains("read me") {
        let chunk = tokio::time::timeout(Duration::from_secs(20), out.next_chunk())
            .await
            .expect("shell output")
            .unwrap()
            .expect("shell alive");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("nobody"), "{seen:?}");
    // The login shell greeted the candidate with the task's description.
    assert!(seen.contains("Fix it."), "{seen:?}");

    // The background service from setup is still there; fix the task like a candidate.
    let ps = run_in(
        &s.manager,
        instance.id,
        "pgrep -x sleep >/dev/null && echo service-up",
    )
    .await;
    assert_eq!(ps, "service-up\n");
    run_in(&s.manager, instance.id, "echo fixed > /etc/app.conf").await;
    let result = s.instances.check(instance.id).await.unwrap();
    assert_eq!(result.outcome, CheckOutcome::Passed, "{result:?}");
    assert_eq!(result.output, "config fixed\n");

    s.manager
        .stop(instance.id, Duration::from_secs(5))
        .await
        .unwrap();
    s.manager.wait(shell).await.unwrap();
    let err = s.instances.check(instance.id).await.unwrap_err();
    assert!(matches!(err, ScenarioError::NotRunning(_)), "{err}");
}

#[tokio::test]
async fn a_failing_setup_fails_the_instance_with_its_output() {
    let s = setup();
    let (task, _dir) = make_task("echo preparing\necho oops >&2\nexit 3", "true", "");
    let err = s
        .instances
        .start(task, "alice", PtySize::default())
        .await
        .unwrap_err();
    let ScenarioError::SetupFailed {
        reason,
        output,
        instance,
        ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(reason, "exited with code 3");
    assert_eq!(output, "preparing\noops\n");
    let listed = s.instances.get(*instance).unwrap();
    assert!(matches!(listed.state(), InstanceState::Failed { .. }));
    // The sandbox is gone: no job left running, no cgroup.
    assert!(
        s.manager
            .list()
            .iter()
            .all(|j| j.status.state.is_finished())
    );
    for p in s.manager.cgroup_parent_paths() {
        assert!(!p.join(instance.to_string()).exists());
    }
}

#[tokio::test]
async fn hanging_setups_and_checks_time_out() {
    let s = setup();
    let (task, _dir) = make_task("echo waiting\nsleep 1000", "true", "setup_timeout: 1s\n");
    let err = s
        .instances
        .start(task, "alice", PtySize::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ScenarioError::SetupFailed { reason, output, .. } if reason == "did not finish within 1s" && output == "waiting\n"),
        "{err}"
    );

    let (hung_check, _dir2) = make_task("true", "echo checking\nsleep 1000", "check_timeout: 1s\n");
    let instance = s
        .instances
        .start(hung_check, "alice", PtySize::default())
        .await
        .unwrap();
    let result = s.instances.check(instance.id).await.unwrap();
    assert_eq!(
        result.outcome,
        CheckOutcome::Error,
        "a hung check is not 'not solved'"
    );
    assert!(
        result.output.contains("did not finish within 1s"),
        "{}",
        result.output
    );
    assert!(result.duration >= Duration::from_secs(1));
    assert_eq!(
        instance.state(),
        InstanceState::Ready,
        "the instance survives a bad check"
    );
}

/// Checks of one instance take turns (each is a job with its own mounts, and each
/// answers for the state after its caller asked): two asked for at once run one after
/// the other. Each check prints when it started and ended; the spans must not overlap.
#[tokio::test]
async fn checks_of_one_instance_take_turns() {
    let s = setup();
    let (task, _dir) = make_task("true", "date +%s%N; sleep 0.3; date +%s%N; exit 1", "");
    let instance = s
        .instances
        .start(task, "alice", PtySize::default())
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        s.instances.check(instance.id),
        s.instances.check(instance.id)
    );
    let span = |r: Result<tandem_scenario::CheckResult, ScenarioError>| {
        let r = r.unwrap();
        assert_eq!(r.outcome, CheckOutcome::Failed, "{r:?}");
        let times: Vec<u128> = r.output.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(times.len(), 2, "{r:?}");
        (times[0], times[1])
    };
    let (mut first, mut second) = (span(a), span(b));
    if second.0 < first.0 {
        std::mem::swap(&mut first, &mut second);
    }
    assert!(
        first.1 <= second.0,
        "the checks overlapped: {first:?} and {second:?}"
    );
}
