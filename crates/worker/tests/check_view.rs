//! Checks (`JobSpec::pristine` commands) see the candidate's box but run none of the
//! candidate's code: `/usr`, the loader's links and configuration and the interpreters'
//! site configuration come from pristine copies; the check's own writes stay private; and
//! it runs as a host uid the sandbox does not map, so the sandbox's root cannot trace it.

mod common;
use common::*;
use tandem_worker::{JobId, JobManager, JobSpec, JobState};

async fn run_in(manager: &JobManager, sandbox: JobId, spec: JobSpec) -> (JobState, String) {
    let id = manager.exec(sandbox, spec).await.expect("exec");
    let text = output_text(manager, id).await;
    (
        within(30, "wait", manager.wait(id)).await.unwrap().state,
        text,
    )
}

/// A process that waits, named by the marker after it (`pgrep -f ' MARKER$'`).
const SLEEPER: &str = "python3 -c \"import time; time.sleep(1000)\"";

fn check(script: &str) -> JobSpec {
    let mut spec = JobSpec::new("/bin/bash", ["-s"])
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/nonexistent");
    spec.stdin = Some(script.as_bytes().to_vec());
    spec.pristine = true;
    spec
}

/// What a root candidate does to make every check pass: replace the shell, python and
/// the loader's configuration, plant Python site code, an rc file in the checks' HOME.
const FORGE: &str = r#"
set -e
printf '#!/bin/sh\nexit 0\n' > /usr/bin/bash.fake && chmod 755 /usr/bin/bash.fake
cp /usr/bin/bash.fake /usr/bin/python3 2>/dev/null || true
rm -f /usr/bin/bash && mv /usr/bin/bash.fake /usr/bin/bash
for d in /etc/python3*; do echo 'import os; os._exit(0)' > "$d/sitecustomize.py"; done
echo /tmp/evil.so > /etc/ld.so.preload
mkdir -p /nonexistent && echo 'exit 0' > /nonexistent/.bashrc
echo forged
"#;

#[tokio::test]
async fn a_candidate_who_replaces_the_tools_cannot_make_a_check_pass() {
    let (manager, _f) = manager();
    let sandbox = manager.start(JobSpec::sandbox()).await.unwrap();
    // The same forgery works on what the candidate runs: a plain command is fooled.
    let (state, text) = run_in(&manager, sandbox, sh(FORGE)).await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");
    let (state, _) = run_in(&manager, sandbox, sh("/usr/bin/bash -c 'exit 1'")).await;
    assert_eq!(
        state,
        JobState::Exited { code: 0 },
        "the forged bash exits 0"
    );
    let (state, text) = run_in(
        &manager,
        sandbox,
        sh("/usr/bin/python3 -c 'import sys; sys.exit(1)'"),
    )
    .await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");

    // A check that fails still fails, in bash and in python.
    let (state, text) = run_in(&manager, sandbox, check("echo not solved; exit 1")).await;
    assert_eq!(state, JobState::Exited { code: 1 }, "{text}");
    assert_eq!(text, "not solved\n");
    let (state, text) = run_in(
        &manager,
        sandbox,
        check("exec /usr/bin/python3 -c 'import sys; print(\"py\"); sys.exit(3)'"),
    )
    .await;
    assert_eq!(state, JobState::Exited { code: 3 }, "{text}");
    assert_eq!(text, "py\n");
    manager
        .stop(sandbox, std::time::Duration::ZERO)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_check_sees_the_candidates_files_processes_and_network_but_writes_privately() {
    let (manager, _f) = manager();
    let mut spec = JobSpec::sandbox();
    spec = spec.tmpfs("/data", 1 << 20);
    let sandbox = manager.start(spec).await.unwrap();
    let marker = unique_marker("held");
    let (state, text) = run_in(
        &manager,
        sandbox,
        sh(&format!(
            "echo 10.1.2.3 api.internal >> /etc/hosts; chmod 600 /etc/hosts; \
             echo data > /data/file; \
             (setsid sh -c 'exec 3>/data/held; rm /data/held; exec {SLEEPER} {marker}' \
               >/dev/null 2>&1 &); \
             (setsid python3 -m http.server --bind 127.0.0.1 8099 >/dev/null 2>&1 &); \
             for i in $(seq 100); do python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8099))' 2>/dev/null && break; sleep 0.1; done; \
             echo ready"
        )),
    )
    .await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");

    let (state, text) = run_in(
        &manager,
        sandbox,
        check(
            "grep api.internal /etc/hosts; cat /data/file; \
             ls -l /proc/[0-9]*/fd 2>/dev/null | grep -c 'held (deleted)'; \
             python3 -c 'import urllib.request as u; print(u.urlopen(\"http://127.0.0.1:8099/\").status)'; \
             echo scratch > /etc/check-wrote && cat /etc/check-wrote; \
             id -u",
        ),
    )
    .await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "10.1.2.3 api.internal", "{text}");
    assert_eq!(lines[1], "data");
    assert_eq!(
        lines[2], "1",
        "the check reads the candidate's /proc/PID/fd: {text}"
    );
    assert_eq!(
        lines[3], "200",
        "the check reaches the candidate's loopback: {text}"
    );
    assert_eq!(lines[4], "scratch");
    assert_eq!(
        lines[5], "65534",
        "the check's uid is not mapped in the sandbox"
    );

    // The check's write stayed in its own layer.
    let (_, text) = run_in(
        &manager,
        sandbox,
        sh("test -e /etc/check-wrote && echo leaked || echo private"),
    )
    .await;
    assert_eq!(text, "private\n");
    manager
        .stop(sandbox, std::time::Duration::ZERO)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_sandbox_root_cannot_trace_or_read_a_running_check() {
    let (manager, _f) = manager();
    let sandbox = manager.start(JobSpec::sandbox()).await.unwrap();
    let own = unique_marker("own");
    let (state, _) = run_in(
        &manager,
        sandbox,
        sh(&format!("(setsid {SLEEPER} {own} >/dev/null 2>&1 &)")),
    )
    .await;
    assert_eq!(state, JobState::Exited { code: 0 });
    let marker = unique_marker("check");
    let check_job = manager
        .exec(
            sandbox,
            check(&format!("echo started; exec {SLEEPER} {marker}")),
        )
        .await
        .unwrap();
    read_until(&mut manager.output(check_job).unwrap(), "started").await;
    // Each probe runs first against a process of the candidate's own (not a child of
    // the probe), where it must succeed, then against the check.
    let seize = "python3 -c 'import ctypes,sys; l=ctypes.CDLL(None, use_errno=True); \
                 sys.exit(0 if l.ptrace(0x4206, int(sys.argv[1]), 0, 0) == 0 else 1)'";
    let probe = format!(
        "for p in $(pgrep -f ' {own}$') $(pgrep -f ' {marker}$'); do \
           if cat /proc/$p/environ >/dev/null 2>&1; then echo environ=yes; else echo environ=no; fi; \
           if ls /proc/$p/fd >/dev/null 2>&1; then echo fd=yes; else echo fd=no; fi; \
           if {seize} $p 2>/dev/null; then echo ptrace=yes; else echo ptrace=no; fi; \
         done; \
         grep -E '^Uid' /proc/$(pgrep -f ' {marker}$')/status | cut -f2"
    );
    let mut probe = sh(&probe);
    probe.capabilities = Vec::new();
    let (state, text) = run_in(&manager, sandbox, probe).await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "environ=yes",
            "fd=yes",
            "ptrace=yes",
            "environ=no",
            "fd=no",
            "ptrace=no"
        ],
        "{text}"
    );
    assert_eq!(
        lines[6], "65534",
        "the check runs as an unmapped uid: {text}"
    );
    manager
        .stop(check_job, std::time::Duration::ZERO)
        .await
        .unwrap();
    manager
        .stop(sandbox, std::time::Duration::ZERO)
        .await
        .unwrap();
}

/// Found by a red-team run: what a check starts must not outlive it. A process left
/// behind runs as the check's uid (with what the check may do) and can forge the next
/// check by tracing it. The check's init kills everything below it before it reports the
/// end: a daemonized process, one that took the sandbox's root uid, a chain of forks.
/// The same commands run as a plain command leave their processes running.
#[tokio::test]
async fn nothing_a_check_started_outlives_it() {
    let (manager, _f) = manager();
    let sandbox = manager.start(JobSpec::sandbox()).await.unwrap();
    let leave = |marker: &str| {
        format!(
            "(setsid {SLEEPER} {marker}-daemon >/dev/null 2>&1 &)\n\
             (python3 -c 'import os,time; os.setresuid(0,0,0); \
               open(\"/tmp/{marker}-uid\", \"w\").write(str(os.getresuid())); \
               time.sleep(1000)' {marker}-root >/dev/null 2>&1 &)\n\
             ( ( (setsid {SLEEPER} {marker}-chain >/dev/null 2>&1 &) & ) & )\n\
             for i in $(seq 600); do \
               [ -s /tmp/{marker}-uid ] && \
               [ $(pgrep -f -c ' {marker}-(daemon|root|chain)$') -ge 3 ] && break; \
               sleep 0.05; \
             done\n\
             cat /tmp/{marker}-uid; echo\n\
             echo left"
        )
    };
    // Control: a plain command's processes stay (this is how a setup starts services).
    let plain = unique_marker("plain");
    let (state, text) = run_in(&manager, sandbox, sh(&leave(&plain))).await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");
    assert_eq!(
        text, "(0, 0, 0)\nleft\n",
        "the uid changed to the sandbox's root"
    );
    assert_eq!(left_by(&plain).len(), 3, "{text}");

    let marker = unique_marker("check");
    let (state, text) = run_in(
        &manager,
        sandbox,
        check(&format!("{}\nexit 1", leave(&marker))),
    )
    .await;
    assert_eq!(state, JobState::Exited { code: 1 }, "{text}");
    assert_eq!(
        text, "(0, 0, 0)\nleft\n",
        "the check's leftover took the sandbox's root uid"
    );
    assert_eq!(
        left_by(&marker),
        Vec::<u32>::new(),
        "a check's processes end with it"
    );
    // The plain command's processes were not touched.
    assert_eq!(left_by(&plain).len(), 3);
    manager
        .stop(sandbox, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(left_by(&plain), Vec::<u32>::new());
}

/// The processes whose last argument is `marker-…` (not the shells whose script names it).
fn left_by(marker: &str) -> Vec<u32> {
    processes_with(marker)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let last = c.split(|&b| b == 0).rfind(|a| !a.is_empty());
                last.is_some_and(|a| a.starts_with(format!("{marker}-").as_bytes()))
            })
        })
        .collect()
}

/// Found by a red-team run: `/usr/bin/awk` (like `which`, `vi`, `iptables` and about 80
/// more) is a link through `/etc/alternatives`, which the candidate owns. A check sees the
/// host's alternatives, not the candidate's.
#[tokio::test]
async fn the_candidates_alternatives_do_not_choose_a_checks_programs() {
    let (manager, _f) = manager();
    let sandbox = manager.start(JobSpec::sandbox()).await.unwrap();
    let forge = "printf '#!/bin/sh\\necho forged\\n' > /root/awk && chmod 755 /root/awk && \
                 ln -sfn /root/awk /etc/alternatives/awk";
    let (state, text) = run_in(&manager, sandbox, sh(forge)).await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");
    let awk = "awk 'BEGIN { print \"real awk\" }'";
    // The same link fools what the candidate runs.
    let (_, text) = run_in(&manager, sandbox, sh(awk)).await;
    assert_eq!(text, "forged\n");
    let (state, text) = run_in(&manager, sandbox, check(awk)).await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");
    assert_eq!(text, "real awk\n");
    manager
        .stop(sandbox, std::time::Duration::ZERO)
        .await
        .unwrap();
}

/// Found by a red-team run: a check that quotes the candidate's page printed 80 MB, kept
/// as a 64 MiB log per check and too big for one API answer. A check keeps at most
/// `CHECK_OUTPUT_CAP` bytes; a plain command keeps what the manager's cap allows.
#[tokio::test]
async fn a_checks_output_is_capped_small() {
    let (manager, _f) = manager();
    let sandbox = manager.start(JobSpec::sandbox()).await.unwrap();
    let flood = "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done";
    for (spec, capped) in [(sh(flood), false), (check(flood), true)] {
        let id = manager.exec(sandbox, spec).await.unwrap();
        let text = output_text(&manager, id).await;
        let status = within(30, "wait", manager.wait(id)).await.unwrap();
        assert_eq!(status.state, JobState::Exited { code: 0 });
        if capped {
            let cap = tandem_worker::CHECK_OUTPUT_CAP;
            assert!(status.output_bytes <= cap + 200, "{}", status.output_bytes);
            assert!(status.output_dropped_bytes > 1_000_000);
            assert!(text.contains("output limit of 1048576 bytes reached"));
        } else {
            assert!(status.output_bytes > 3_000_000, "{}", status.output_bytes);
            assert!(text.ends_with("\ndone\n"));
        }
    }
    manager
        .stop(sandbox, std::time::Duration::ZERO)
        .await
        .unwrap();
}

/// Found by a red-team run: Python imports from the working directory, and glibc loads
/// an NSS module named with a '/' relative to it. A check must not start in the
/// candidate's files.
#[tokio::test]
async fn code_planted_where_a_check_starts_is_not_loaded() {
    let (manager, _f) = manager();
    let sandbox = manager.start(JobSpec::sandbox()).await.unwrap();
    // A library that makes any process that loads it exit 0 at once.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("evil.c");
    std::fs::write(
        &source,
        "#include <unistd.h>\n__attribute__((constructor)) static void f(void) { \
         write(1, \"FORGED\\n\", 7); _exit(0); }\n",
    )
    .unwrap();
    let library = dir.path().join("evil.so");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .unwrap();
    assert!(built.success());
    let mut plant = sh("cat > /tmp/evil.so; \
         for d in / /.tandem-check /root /tmp; do mkdir -p $d; \
           printf 'import os\\nprint(\"FORGED\")\\nos._exit(0)\\n' > $d/glob.py; \
           mkdir -p $d/libnss_ && cp /tmp/evil.so $d/libnss_/x.so.2; done; \
         sed -i 's|^passwd:.*|passwd: /x|' /etc/nsswitch.conf; grep ^passwd: /etc/nsswitch.conf");
    plant.stdin = Some(std::fs::read(&library).unwrap());
    let (state, text) = run_in(&manager, sandbox, plant).await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");
    assert_eq!(text, "passwd: /x\n");
    // The same planting works on a command of the candidate's that starts in /.
    let (state, text) = run_in(
        &manager,
        sandbox,
        sh("cd / && python3 -c 'import glob, sys; sys.exit(1)'"),
    )
    .await;
    assert_eq!(
        (state, text.as_str()),
        (JobState::Exited { code: 0 }, "FORGED\n")
    );
    let (_, text) = run_in(&manager, sandbox, sh("cd / && id -un root")).await;
    assert_eq!(text, "FORGED\n", "id loaded the planted NSS module");

    // Not on a check.
    let (state, text) = run_in(
        &manager,
        sandbox,
        check("id -un root; exec python3 - <<'EOF'\nimport glob, sys\nprint('honest')\nsys.exit(1)\nEOF"),
    )
    .await;
    assert_eq!(state, JobState::Exited { code: 1 }, "{text}");
    assert!(!text.contains("FORGED"), "{text}");
    assert!(text.ends_with("honest\n"), "{text}");
    manager
        .stop(sandbox, std::time::Duration::ZERO)
        .await
        .unwrap();
}

/// Found by a red-team run: the candidate replaced a directory on the way to one of the
/// sandbox's mounts with a link, to redirect where the check's view mounts it (over the
/// pristine /usr/bin).
#[tokio::test]
async fn links_on_the_way_to_a_mount_do_not_redirect_the_checks_view() {
    let (manager, _f) = manager();
    let sandbox = manager
        .start(JobSpec::sandbox().tmpfs("/opt/app/bin", 1 << 20))
        .await
        .unwrap();
    let (state, text) = run_in(
        &manager,
        sandbox,
        sh("mkdir -p /root/usr/bin /root/e && cp /usr/bin/dash /root/e/sh && \
            printf '#!/root/e/sh\\necho FORGED\\nexit 0\\n' > /root/e/fake && chmod 755 /root/e/fake && \
            for f in bash sh python3; do ln -sf /root/e/fake /root/usr/bin/$f; done && \
            mv /opt/app /opt/app.orig && ln -s ../../root/usr /opt/app && ls /opt/app/bin/bash"),
    )
    .await;
    assert_eq!(state, JobState::Exited { code: 0 }, "{text}");
    let id = manager.exec(sandbox, check("exit 1")).await;
    match id {
        Err(e) => assert!(e.to_string().contains("without following links"), "{e}"),
        Ok(id) => {
            let text = output_text(&manager, id).await;
            let state = manager.wait(id).await.unwrap().state;
            assert_ne!(state, JobState::Exited { code: 0 }, "{text}");
            assert!(!text.contains("FORGED"), "{text}");
        }
    }
    manager
        .stop(sandbox, std::time::Duration::ZERO)
        .await
        .unwrap();
}
