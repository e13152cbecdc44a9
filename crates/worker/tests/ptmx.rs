//! A sandbox's `/dev` belongs to the candidate (root inside): they can replace the
//! `/dev/ptmx` link with a link to `/dev/null`, a file or a fifo. The terminals of later
//! jobs (a new shell for the candidate) must not come through it: they are opened from the
//! sandbox's own devpts instance, `/dev/pts/ptmx`, without following links. Needs root.

mod common;
use common::*;
use std::process::Command;
use tandem_worker::{JobSpec, JobState, PtySize};

/// What the candidate puts at `/dev/ptmx`.
const SABOTAGE: [(&str, &str); 3] = [
    ("a link to /dev/null", "ln -sfn /dev/null /dev/ptmx"),
    ("a file", "rm -f /dev/ptmx && echo x > /dev/ptmx"),
    ("a fifo", "rm -f /dev/ptmx && mkfifo /dev/ptmx"),
];

/// The opener the worker used before: glibc's `openpty` (Python's `os.openpty`) opens
/// `/dev/ptmx` through `posix_openpt`.
const NAIVE: &str =
    "python3 -c 'import os; os.openpty()' >/dev/null 2>&1 && echo naive-works || echo naive-broken";

/// Host control: in a mount namespace of its own with a `/dev` like a sandbox's (a tmpfs,
/// a devpts instance, `ptmx -> pts/ptmx`), a naive opener works, and each sabotage breaks it.
#[test]
fn the_sabotage_breaks_a_naive_opener_on_the_host() {
    for (what, sabotage) in SABOTAGE {
        let script = format!(
            "set -e; mount -t tmpfs tmpfs /dev; mknod -m 666 /dev/null c 1 3; \
             mkdir /dev/pts; mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts; \
             ln -s pts/ptmx /dev/ptmx; {NAIVE}; {sabotage}; {NAIVE}"
        );
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{what}: {out:?}");
        assert_eq!(text, "naive-works\nnaive-broken\n", "{what}: {out:?}");
    }
}

/// After each sabotage inside a sandbox, a naive opener inside is broken, but a new
/// terminal job still gets a working terminal of the sandbox's devpts. `/dev/pts` itself
/// stays: a mount point cannot be moved or removed (EBUSY), and its `ptmx` belongs to the
/// host's root (`nobody` inside), so the candidate cannot change its mode.
#[tokio::test]
async fn a_new_terminal_survives_a_sabotaged_dev_ptmx() {
    let (manager, _fixture) = manager();
    for (what, sabotage) in SABOTAGE {
        let sandbox = manager.start(JobSpec::sandbox()).await.unwrap();
        let attack = manager
            .exec(
                sandbox,
                sh(&format!(
                    "{sabotage}; {NAIVE}; \
                     mv /dev/pts /dev/pts-away 2>/dev/null || echo pts-stays; \
                     rmdir /dev/pts 2>/dev/null || echo pts-stays; \
                     chmod 000 /dev/pts/ptmx 2>/dev/null || echo ptmx-stays"
                )),
            )
            .await
            .unwrap();
        let text = output_text(&manager, attack).await;
        let state = within(30, "wait", manager.wait(attack))
            .await
            .unwrap()
            .state;
        assert_eq!(state, JobState::Exited { code: 0 }, "{what}: {text}");
        assert_eq!(
            text, "naive-broken\npts-stays\npts-stays\nptmx-stays\n",
            "{what}: the sabotage took"
        );

        let shell = manager
            .exec(
                sandbox,
                sh("tty; stty size; { echo via-controlling-tty >/dev/tty; } 2>/dev/null")
                    .pty(PtySize { rows: 24, cols: 80 }),
            )
            .await
            .unwrap_or_else(|e| panic!("{what}: a terminal job after the sabotage: {e}"));
        let text = output_text(&manager, shell).await;
        let state = within(30, "wait", manager.wait(shell)).await.unwrap().state;
        assert_eq!(state, JobState::Exited { code: 0 }, "{what}: {text:?}");
        let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
        assert_eq!(lines.len(), 3, "{what}: {text:?}");
        assert!(lines[0].starts_with("/dev/pts/"), "{what}: {text:?}");
        assert_eq!(
            lines[1..],
            ["24 80", "via-controlling-tty"],
            "{what}: {text:?}"
        );
        manager
            .stop(sandbox, std::time::Duration::from_secs(5))
            .await
            .unwrap();
    }
}
