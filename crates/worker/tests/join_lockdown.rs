//! A process joining a sandbox (a setup script, a new shell, a check) is locked down
//! before anything inside can see it: a scanner inside, reading every process's
//! `/proc/PID/status` as fast as it can while commands and checks join, never sees one
//! without the seccomp filter or with a capability beyond the sandbox's set.
//! (runc CVE-2016-9962 was such a window.)

mod common;
use common::*;
use std::time::Duration;
use tandem_worker::{CapSet, JobSpec, JobState};

/// Scans /proc until /tmp/stop-scan exists; prints each violation, then a summary line
/// `seen=N` with the number of distinct processes it looked at.
const SCANNER: &str = r#"
import glob, os, sys
allowed = int(sys.argv[1], 16)
seen, bad = set(), set()
while True:
    stop = os.path.exists("/tmp/stop-scan")
    for path in glob.glob("/proc/[0-9]*/status"):
        try:
            fields = dict(l.split(":", 1) for l in open(path).read().splitlines() if ":" in l)
        except OSError:
            continue
        pid = path.split("/")[2]
        seen.add(pid)
        seccomp = fields.get("Seccomp", "").strip()
        caps = [int(fields.get(k, "0").strip(), 16) for k in ("CapEff", "CapPrm", "CapBnd")]
        if seccomp != "2" or any(c & ~allowed for c in caps):
            key = (pid, seccomp, tuple(caps))
            if key not in bad:
                bad.add(key)
                print("VIOLATION pid=%s name=%s seccomp=%s caps=%s" % (
                    pid, fields.get("Name", "?").strip(), seccomp, [hex(c) for c in caps]), flush=True)
    if stop:
        break
print("seen=%d" % len(seen), flush=True)
"#;

fn scanner(allowed: u64) -> JobSpec {
    let mut spec = JobSpec::new("python3", ["-", &format!("{allowed:x}")])
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    spec.stdin = Some(SCANNER.as_bytes().to_vec());
    spec
}

#[tokio::test]
async fn a_scanner_inside_never_sees_a_joining_process_before_its_lock_down() {
    // Checks hold SYS_PTRACE besides the sandbox's set (to read the candidate's /proc).
    let allowed = CapSet::default_set().0 | 1 << 19;
    // The scanner's logic, on the host: it does report unconfined processes.
    let host = std::process::Command::new("sh")
        .args([
            "-c",
            "mkdir -p /tmp/scan-host && cd /tmp/scan-host && python3 - \"$0\"",
        ])
        .arg(format!("{allowed:x}"))
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            // One pass over the host's /proc: stop at once.
            let script = SCANNER.replace("/tmp/stop-scan", "/");
            child.stdin.take().unwrap().write_all(script.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run the scanner on the host");
    let host = String::from_utf8_lossy(&host.stdout);
    assert!(
        host.contains("VIOLATION"),
        "the scanner finds unconfined host processes: {host}"
    );

    let (manager, _f) = manager();
    let sandbox = manager.start(JobSpec::sandbox()).await.unwrap();
    let scan = manager.exec(sandbox, scanner(allowed)).await.unwrap();
    let joins = 40;
    for i in 0..joins {
        let mut spec = sh("true");
        // Every other one is a check, which is set up differently.
        if i % 2 == 1 {
            spec.pristine = true;
        }
        let id = manager.exec(sandbox, spec).await.unwrap();
        let status = within(30, "join", manager.wait(id)).await.unwrap();
        assert_eq!(status.state, JobState::Exited { code: 0 });
    }
    let stop = manager
        .exec(sandbox, sh("touch /tmp/stop-scan"))
        .await
        .unwrap();
    within(30, "stop", manager.wait(stop)).await.unwrap();
    let text = output_text(&manager, scan).await;
    assert!(!text.contains("VIOLATION"), "{text}");
    let seen: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("seen="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary: {text}"));
    // Each join shows up as its init and its command; the scanner caught most of them.
    assert!(
        seen >= joins,
        "the scanner saw only {seen} processes: {text}"
    );
    manager.stop(sandbox, Duration::ZERO).await.unwrap();
}
