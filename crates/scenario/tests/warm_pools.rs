//! Warm pools end to end (as root: every warm sandbox is a real sandbox): a start takes a
//! sandbox whose setup already ran and the pool refills; a warm sandbox that dies is
//! replaced; a failing setup is reported on the pool and retried later, and a start then
//! falls back to a cold start; the total bound holds with every pool served first; stopping
//! the pools stops their sandboxes.

use std::sync::Arc;
use tandem_scenario::pool::POOL_OWNER;
use tandem_scenario::{Catalog, InstanceState, Instances, ScenarioError, Task, WarmSettings};
use tandem_testkit_worker::TestManager;
use tandem_worker::{JobId, JobManager, JobSpec, JobState, PtySize};

/// A task `name` with `setup`, written to a temp dir and loaded through the real loader.
fn task(root: &tempfile::TempDir, name: &str, setup: &str) -> Task {
    let dir = root.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    let setup: String = setup.lines().map(|l| format!("  {l}\n")).collect();
    let yaml = format!(
        "name: {name}\ntitle: Demo\ndescription: |\n  Fix it.\ndifficulty: easy\n\
         time_limit: 10m\nsetup: |\n{setup}check: |\n  true\nsolution: |\n  Fix it.\n"
    );
    std::fs::write(dir.join("task.yaml"), yaml).unwrap();
    tandem_scenario::task::load(&dir).unwrap_or_else(|e| panic!("{e:?}"))
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

/// Running sandboxes of the pool (jobs of [`POOL_OWNER`] labelled as sandboxes).
fn warm_sandboxes(manager: &JobManager) -> Vec<JobId> {
    manager
        .list()
        .into_iter()
        .filter(|j| {
            j.spec.owner == POOL_OWNER
                && j.spec.labels.get("role").map(String::as_str) == Some("sandbox")
                && j.status.state == JobState::Running
        })
        .map(|j| j.id)
        .collect()
}

fn ready(instances: &Instances, task: &str) -> u32 {
    instances.pool_status(task).map_or(0, |p| p.ready)
}

#[tokio::test]
async fn a_start_takes_a_set_up_sandbox_and_the_pool_refills() {
    let t = TestManager::new();
    let instances = Instances::new(t.manager.clone());
    let root = tempfile::tempdir().unwrap();
    let demo = task(
        &root,
        "demo",
        "echo set up > /etc/setup-ran\necho setup done",
    );
    let catalog = Arc::new(Catalog::from_tasks([demo]));
    let demo = catalog.get("demo").unwrap();
    let pools = instances.keep_warm(
        Arc::clone(&catalog),
        WarmSettings {
            per_task: Some(1),
            max_total: 4,
        },
    );
    instances.pools_until(|i| ready(i, "demo") == 1).await;
    let warm = warm_sandboxes(&t.manager);
    assert_eq!(warm.len(), 1, "{warm:?}");
    // Not an instance of anybody's yet.
    assert!(instances.list().is_empty());

    let instance = instances
        .start(
            Arc::clone(&demo),
            "alice",
            PtySize {
                rows: 30,
                cols: 100,
            },
        )
        .await
        .unwrap();
    assert!(instance.warm);
    assert_eq!(instance.id, warm[0], "the warm sandbox was taken");
    assert_eq!(instance.owner, "alice");
    assert_eq!(instance.state(), InstanceState::Ready);
    // Its setup ran (before the start: the setup job had ended).
    let setup = t.manager.status(instance.setup.unwrap()).unwrap();
    assert_eq!(setup.state, JobState::Exited { code: 0 });
    assert_eq!(
        run_in(&t.manager, instance.id, "cat /etc/setup-ran").await,
        "set up\n"
    );
    // The shell has the caller's size.
    let shell = instance.shell().unwrap();
    assert_eq!(t.manager.info(shell).unwrap().spec.owner, "alice");
    t.manager
        .write_input(shell, b"stty size; exit\n")
        .await
        .unwrap();
    let out = t
        .manager
        .output(shell)
        .unwrap()
        .read_to_end()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out).contains("30 100"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    // The pool refills with another sandbox.
    instances.pools_until(|i| ready(i, "demo") == 1).await;
    let refill = warm_sandboxes(&t.manager);
    assert_eq!(refill.len(), 2, "the taken one runs on: {refill:?}");
    assert!(refill.contains(&instance.id));

    // A warm sandbox that ends is replaced.
    let spare = *refill.iter().find(|id| **id != instance.id).unwrap();
    t.manager
        .stop(spare, std::time::Duration::ZERO)
        .await
        .unwrap();
    instances
        .pools_until(|i| ready(i, "demo") == 1 && !warm_sandboxes(i.manager()).contains(&spare))
        .await;
    assert_eq!(warm_sandboxes(&t.manager).len(), 2);

    // Stopping the pools stops the warm sandboxes, not the instance.
    pools.stop().await;
    assert_eq!(warm_sandboxes(&t.manager), [instance.id]);
    t.manager
        .stop(instance.id, std::time::Duration::ZERO)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failing_setup_is_reported_on_the_pool_and_retried_later() {
    let t = TestManager::new();
    let instances = Instances::new(t.manager.clone());
    let root = tempfile::tempdir().unwrap();
    let broken = task(&root, "broken", "echo nope\nexit 3");
    let catalog = Arc::new(Catalog::from_tasks([broken]));
    let broken = catalog.get("broken").unwrap();
    let _pools = instances.keep_warm(Arc::clone(&catalog), WarmSettings::default());
    instances
        .pools_until(|i| {
            i.pool_status("broken")
                .is_some_and(|p| p.error.is_some() && p.starting == 0)
        })
        .await;
    let status = instances.pool_status("broken").unwrap();
    assert_eq!(status.target, 1, "a task keeps one unless it says");
    assert_eq!(status.ready, 0);
    assert_eq!(
        status.error.as_deref(),
        Some("setup failed: exited with code 3")
    );
    assert!(status.retry_at.unwrap() > std::time::SystemTime::now());
    // The failed sandbox was stopped.
    assert!(warm_sandboxes(&t.manager).is_empty());
    assert_eq!(status.failures, 1);
    // It tries again once the wait is over (5 s), then waits twice as long.
    let first = status.retry_at.unwrap();
    instances
        .pools_until(|i| i.pool_status("broken").is_some_and(|p| p.failures == 2))
        .await;
    let second = instances.pool_status("broken").unwrap().retry_at.unwrap();
    let wait = second.duration_since(first).unwrap();
    assert!(wait.as_secs() >= 9, "the second wait is ~10 s: {wait:?}");
    // A start does not wait for the pool: a cold start, which fails the same way.
    match instances.start(broken, "alice", PtySize::default()).await {
        Err(ScenarioError::SetupFailed { reason, output, .. }) => {
            assert_eq!(reason, "exited with code 3");
            assert_eq!(output, "nope\n");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_total_bound_holds_and_every_pool_gets_one_first() {
    let t = TestManager::new();
    let instances = Instances::new(t.manager.clone());
    let root = tempfile::tempdir().unwrap();
    let catalog = Arc::new(Catalog::from_tasks([
        task(&root, "a", "true"),
        task(&root, "b", "true"),
    ]));
    let _pools = instances.keep_warm(
        catalog,
        WarmSettings {
            per_task: Some(2),
            max_total: 3,
        },
    );
    let settled = |i: &Instances| {
        ["a", "b"].iter().all(|t| {
            i.pool_status(t)
                .is_some_and(|p| p.starting == 0 && p.error.is_none())
        }) && ready(i, "a") + ready(i, "b") == 3
    };
    instances.pools_until(settled).await;
    assert!(ready(&instances, "a") >= 1 && ready(&instances, "b") >= 1);
    assert_eq!(warm_sandboxes(&t.manager).len(), 3);
}
