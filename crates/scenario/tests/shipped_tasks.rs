//! Every task shipped in `tasks/` is valid, unsolved right after its setup, and solved
//! after its `solution.sh` (run as root in the sandbox, as a candidate would fix it).
//!
//! `every_shipped_task_validates` needs no root; the others run each task in a real
//! sandbox (namespaces, cgroups) and need root.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tandem_scenario::{Catalog, CheckOutcome, Instances};
use tandem_testkit_worker::TestManager;
use tandem_worker::{JobSpec, JobState, PtySize};

const SHIPPED: [&str; 6] = [
    "bad-hosts",
    "broken-permissions",
    "disk-full",
    "port-conflict",
    "runaway-cpu",
    "zombie-flood",
];

fn tasks_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tasks")
}

#[test]
fn every_shipped_task_validates() {
    let (catalog, problems) = Catalog::load_dir(&tasks_dir());
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let names: Vec<String> = catalog.list().iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, SHIPPED);
    for name in SHIPPED {
        assert!(
            tasks_dir().join(name).join("solution.sh").is_file(),
            "{name} ships no solution.sh"
        );
    }
}

/// setup → check fails (not an error) → solution.sh → check passes.
async fn solve(name: &str) {
    let manager = TestManager::new();
    let instances = Instances::new(manager.manager.clone());
    let task =
        tandem_scenario::task::load(&tasks_dir().join(name)).unwrap_or_else(|e| panic!("{e:#?}"));
    let task = Arc::new(task);

    let instance = instances
        .start(Arc::clone(&task), "test", PtySize::default())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let before = instances.check(instance.id).await.unwrap();
    assert_eq!(
        before.outcome,
        CheckOutcome::Failed,
        "{name}: right after setup the check must fail (not pass, not error): {before:?}"
    );

    // Tasks of several parts name them (partial credit): right after setup, some fail.
    if name != "port-conflict" {
        assert!(
            before.conditions.len() >= 2 && before.conditions.iter().any(|c| !c.passed),
            "{name}: named conditions, some failing: {before:?}"
        );
    }

    let script = std::fs::read(tasks_dir().join(name).join("solution.sh")).unwrap();
    let mut fix = JobSpec::new("/bin/bash", ["-s"]).env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    fix.env.insert("HOME".into(), "/root".into());
    fix.stdin = Some(script);
    let fix = manager.exec(instance.id, fix).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(120), manager.wait(fix))
        .await
        .expect("solution.sh finished within 2 minutes")
        .unwrap();
    let fix_output = manager.output(fix).unwrap().read_to_end().await.unwrap();
    assert_eq!(
        status.state,
        JobState::Exited { code: 0 },
        "{name}: solution.sh failed:\n{}",
        String::from_utf8_lossy(&fix_output)
    );

    let after = instances.check(instance.id).await.unwrap();
    assert_eq!(
        after.outcome,
        CheckOutcome::Passed,
        "{name}: after solution.sh the check must pass: {after:?}\nsolution output:\n{}",
        String::from_utf8_lossy(&fix_output)
    );
    assert!(
        after.conditions.iter().all(|c| c.passed)
            && after.conditions.len() == before.conditions.len(),
        "{name}: after solution.sh every condition passes: {after:?}"
    );
    manager
        .stop(instance.id, Duration::from_secs(5))
        .await
        .unwrap();
}

macro_rules! solve_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                solve($name).await;
            }
        )*
    };
}

solve_tests! {
    bad_hosts_is_solved_by_its_solution => "bad-hosts",
    broken_permissions_is_solved_by_its_solution => "broken-permissions",
    disk_full_is_solved_by_its_solution => "disk-full",
    port_conflict_is_solved_by_its_solution => "port-conflict",
    runaway_cpu_is_solved_by_its_solution => "runaway-cpu",
    zombie_flood_is_solved_by_its_solution => "zombie-flood",
}

/// A candidate who controls what a check prints (here the body of `/health`) cannot
/// make a condition pass: the body says `PASS health-ok` and names a condition of its own
/// before the check's report, and the timeline must still see `health-ok` failing and
/// only the task's three conditions. Fails with the old rule (first line per name) and
/// with a check that prints the body unquoted. Needs root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofing_http_body_does_not_pass_a_condition() {
    let manager = TestManager::new();
    let instances = Instances::new(manager.manager.clone());
    let task = tandem_scenario::task::load(&tasks_dir().join("broken-permissions"))
        .unwrap_or_else(|e| panic!("{e:#?}"));
    let instance = instances
        .start(Arc::new(task), "test", PtySize::default())
        .await
        .unwrap();

    // As the candidate (root in the sandbox): replace the billing service by one that
    // answers 500 with a body made of condition lines, and wait until it answers.
    let candidate = r#"
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
pkill -f /opt/billing/billing.py || true
while pgrep -f /opt/billing/billing.py >/dev/null; do sleep 0.1; done
cat >/tmp/spoof.py <<'PY'
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"x\nPASS health-ok\nPASS spoofed\n"
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", 8081), H).serve_forever()
PY
setsid nohup python3 /tmp/spoof.py >/dev/null 2>&1 </dev/null &
for _ in $(seq 100); do
    curl -s http://127.0.0.1:8081/health | grep -q spoofed && exit 0
    sleep 0.1
done
exit 1
"#;
    let mut spec = JobSpec::new("/bin/bash", ["-s"]);
    spec.stdin = Some(candidate.as_bytes().to_vec());
    let job = manager.exec(instance.id, spec).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), manager.wait(job))
        .await
        .expect("the candidate's script finished within a minute")
        .unwrap();
    let output = manager.output(job).unwrap().read_to_end().await.unwrap();
    assert_eq!(
        status.state,
        JobState::Exited { code: 0 },
        "the spoofing server answers:\n{}",
        String::from_utf8_lossy(&output)
    );

    let result = instances.check(instance.id).await.unwrap();
    assert_eq!(result.outcome, CheckOutcome::Failed, "{result:?}");
    let names: Vec<&str> = result.conditions.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["health-ok", "config-private", "service-not-root"],
        "{result:?}"
    );
    assert!(!result.conditions[0].passed, "{result:?}");
    assert!(
        result.output.contains(r"x\nPASS health-ok"),
        "the check quotes the body: {result:?}"
    );
    manager
        .stop(instance.id, Duration::from_secs(5))
        .await
        .unwrap();
}
