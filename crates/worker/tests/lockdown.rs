//! Root inside a job is not root over the host: no mounts, no new namespaces, no kernel
//! modules or raw devices, a read-only /proc/sys (except the job's own network sysctls),
//! and a minimal /dev. Real tools (strace, ip) still work.

mod common;
use common::*;
use tandem_worker::{JobSpec, JobState};

fn bash(script: &str) -> JobSpec {
    JobSpec::new("/bin/bash", ["-c", script]).env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
}

/// Runs `check` (a shell condition); the job prints `name=yes` or `name=no`.
fn probe(name: &str, check: &str) -> String {
    format!("if {check}; then echo {name}=yes; else echo {name}=no; fi")
}

#[tokio::test]
async fn root_in_a_job_cannot_reach_the_host_kernel() {
    let (manager, _f) = manager();
    let script = [
        probe("mount", "mount -t tmpfs t /mnt 2>/dev/null"),
        probe("unshare_user", "unshare -U true 2>/dev/null"),
        probe("unshare_net", "unshare -n true 2>/dev/null"),
        probe("mknod", "mknod /tmp/disk b 8 0 2>/dev/null"),
        probe("drop_caches", "{ echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null"),
        probe("sysrq", "{ echo h > /proc/sysrq-trigger; } 2>/dev/null"),
        probe("dmesg", "dmesg >/dev/null 2>&1"),
        probe("ip_forward", "{ echo 1 > /proc/sys/net/ipv4/ip_forward; } 2>/dev/null"),
        probe("ip_link_add", "ip link add dummy0 type dummy 2>/dev/null || ip link add veth0 type veth peer name veth1 2>/dev/null"),
        probe("strace", "strace -f -o /dev/null true 2>/dev/null"),
        probe("host_disk", "ls /dev | grep -q -E '^(sd|vd|nvme|xvd)'"),
        "grep CapBnd /proc/self/status | cut -f2".to_string(),
        "ls /dev | tr '\\n' ' '; echo".to_string(),
    ]
    .join("; ");
    let id = manager.start(bash(&script)).await.unwrap();
    let text = output_text(&manager, id).await;
    assert_eq!(
        manager.wait(id).await.unwrap().state,
        JobState::Exited { code: 0 },
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let expect = [
        "mount=no",
        "unshare_user=no",
        "unshare_net=no",
        "mknod=no",
        "drop_caches=no",
        "sysrq=no",
        "dmesg=no",
        "ip_forward=yes",
    ];
    assert_eq!(lines[..expect.len()], expect, "{text}");
    // NET_ADMIN inside the job's own network namespace: ip works on its interfaces.
    assert_eq!(lines[8], "ip_link_add=yes", "{text}");
    assert_eq!(lines[9], "strace=yes", "strace must work inside: {text}");
    assert_eq!(lines[10], "host_disk=no", "{text}");
    let bounding = u64::from_str_radix(lines[11], 16).unwrap();
    for (cap, name) in [
        (21, "SYS_ADMIN"),
        (16, "SYS_MODULE"),
        (17, "SYS_RAWIO"),
        (27, "MKNOD"),
        (2, "DAC_READ_SEARCH"),
    ] {
        assert_eq!(
            bounding & (1 << cap),
            0,
            "CAP_{name} must not be in the bounding set"
        );
    }
    for (cap, name) in [(19, "SYS_PTRACE"), (12, "NET_ADMIN"), (0, "CHOWN")] {
        assert_ne!(bounding & (1 << cap), 0, "CAP_{name} must be kept");
    }
    assert_eq!(
        lines[12], "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero ",
        "{text}"
    );
}
