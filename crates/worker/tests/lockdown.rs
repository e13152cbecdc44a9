//! Root inside a job is not root over the host: no mounts, no new namespaces, no kernel
//! modules or raw devices, no io_uring, bpf or keyrings, a read-only /proc/sys, a minimal
//! /dev, and by default no NET_ADMIN, NET_RAW or SYS_PTRACE. Real tools (strace of one's
//! own children, ip with `NET_ADMIN` granted) still work.
//!
//! Every probe first runs on the host, as root in throw-away namespaces (`unshare`), and
//! must succeed there: a probe that could not succeed anywhere would prove nothing.

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

/// Python one-liner: exit 0 if the raw system call succeeds.
fn syscall(name: &str, nr: i64, args: &str) -> String {
    probe(
        name,
        &format!(
            "python3 -c 'import ctypes,sys; l=ctypes.CDLL(None, use_errno=True); \
             sys.exit(0 if l.syscall({nr}{args}) >= 0 else 1)' 2>/dev/null"
        ),
    )
}

/// The probes: each must print `=yes` on the host and `=no` in a default sandbox.
fn kernel_probes() -> Vec<String> {
    let mut probes = vec![
        probe("mount", "mount -t tmpfs t /mnt 2>/dev/null"),
        probe("unshare_user", "unshare -U true 2>/dev/null"),
        probe("unshare_net", "unshare -n true 2>/dev/null"),
        probe("mknod", "mknod /mnt/disk b 8 0 2>/dev/null"),
        probe(
            "drop_caches",
            "{ echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null",
        ),
        probe("dmesg", "dmesg >/dev/null 2>&1"),
        probe(
            "ip_forward",
            "{ echo 1 > /proc/sys/net/ipv4/ip_forward; } 2>/dev/null",
        ),
        probe(
            "ip_link_add",
            "ip link add dummy0 type dummy 2>/dev/null || ip link add veth0 type veth peer name veth1 2>/dev/null",
        ),
        probe(
            "raw_socket",
            "python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)' 2>/dev/null",
        ),
        // io_uring_setup(1, &params): a zeroed 120-byte struct.
        syscall("io_uring", 425, ", 1, ctypes.create_string_buffer(120)"),
        // bpf(BPF_PROG_LOAD…) with a bad size still reaches the kernel: use BPF_MAP_CREATE
        // of an array map (type 2, key 4, value 4, 1 entry).
        syscall(
            "bpf",
            321,
            ", 0, ctypes.create_string_buffer(bytes([2, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 1]) + bytes(59)), 72",
        ),
        // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1)
        syscall("keyctl", 250, ", 0, -3, 1"),
        // userfaultfd(O_CLOEXEC)
        syscall("userfaultfd", 323, ", 0o2000000"),
    ];
    // vsock ports are the whole machine's: probed where the host has vsock at all.
    let vsock = "python3 -c 'import socket; socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)' 2>/dev/null";
    if std::process::Command::new("sh")
        .args(["-c", vsock])
        .status()
        .is_ok_and(|s| s.success())
    {
        probes.push(probe("vsock", vsock));
    }
    // Kernels without magic SysRq have no trigger file: nothing to probe there.
    if std::path::Path::new("/proc/sysrq-trigger").exists() {
        probes.push(probe(
            "sysrq",
            "{ echo h > /proc/sysrq-trigger; } 2>/dev/null",
        ));
    }
    probes
}

/// Runs `script` on the host as root in fresh mount, network, PID and IPC namespaces.
fn on_host(script: &str) -> String {
    let out = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--ipc",
            "--uts",
            "--pid",
            "--fork",
            "--mount-proc",
        ])
        .args(["bash", "-c", script])
        .output()
        .expect("run unshare");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn in_sandbox(manager: &tandem_worker::JobManager, spec: JobSpec) -> (String, Vec<String>) {
    let id = manager.start(spec).await.unwrap();
    let text = output_text(manager, id).await;
    assert_eq!(
        manager.wait(id).await.unwrap().state,
        JobState::Exited { code: 0 },
        "{text}"
    );
    let lines = text.lines().map(str::to_string).collect();
    (text, lines)
}

#[tokio::test]
async fn root_in_a_job_cannot_reach_the_host_kernel() {
    let probes = kernel_probes();
    let script = probes.join("; ");
    let host = on_host(&script);
    for line in host.lines() {
        assert!(
            line.ends_with("=yes"),
            "on the host, as root: {line}\n{host}"
        );
    }
    assert_eq!(host.lines().count(), probes.len(), "{host}");

    let (manager, _f) = manager();
    let extra = [
        probe("strace", "strace -f -o /dev/null true 2>/dev/null"),
        probe("host_disk", "ls /dev | grep -q -E '^(sd|vd|nvme|xvd)'"),
        "grep CapBnd /proc/self/status | cut -f2".to_string(),
        "ls /dev | tr '\\n' ' '; echo".to_string(),
    ];
    let (text, lines) =
        in_sandbox(&manager, bash(&format!("{script}; {}", extra.join("; ")))).await;
    for line in &lines[..probes.len()] {
        assert!(line.ends_with("=no"), "in the sandbox: {line}\n{text}");
    }
    let rest = &lines[probes.len()..];
    assert_eq!(
        rest[0], "strace=yes",
        "strace of one's own children works: {text}"
    );
    assert_eq!(rest[1], "host_disk=no", "{text}");
    let bounding = u64::from_str_radix(&rest[2], 16).unwrap();
    for (cap, name) in [
        (21, "SYS_ADMIN"),
        (16, "SYS_MODULE"),
        (17, "SYS_RAWIO"),
        (27, "MKNOD"),
        (2, "DAC_READ_SEARCH"),
        (19, "SYS_PTRACE"),
        (12, "NET_ADMIN"),
        (13, "NET_RAW"),
    ] {
        assert_eq!(
            bounding & (1 << cap),
            0,
            "CAP_{name} must not be in the bounding set"
        );
    }
    for (cap, name) in [(0, "CHOWN"), (7, "SETUID"), (10, "NET_BIND_SERVICE")] {
        assert_ne!(bounding & (1 << cap), 0, "CAP_{name} must be kept");
    }
    assert_eq!(
        rest[3], "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero ",
        "{text}"
    );
}

#[tokio::test]
async fn a_task_may_opt_into_net_admin_for_its_own_network() {
    let (manager, _f) = manager();
    let script = [
        probe(
            "ip_forward",
            "{ echo 1 > /proc/sys/net/ipv4/ip_forward; } 2>/dev/null",
        ),
        probe("ip_addr_add", "ip addr add 10.20.0.5/32 dev lo 2>/dev/null"),
        probe("mount", "mount -t tmpfs t /mnt 2>/dev/null"),
        "grep CapEff /proc/self/status | cut -f2".to_string(),
    ]
    .join("; ");
    let mut spec = bash(&script);
    spec.capabilities = vec!["NET_ADMIN".into()];
    let (text, lines) = in_sandbox(&manager, spec).await;
    assert_eq!(
        lines[..3],
        ["ip_forward=yes", "ip_addr_add=yes", "mount=no"],
        "{text}"
    );
    let effective = u64::from_str_radix(&lines[3], 16).unwrap();
    assert_ne!(effective & (1 << 12), 0, "NET_ADMIN granted: {text}");
    assert_eq!(effective & (1 << 21), 0, "never SYS_ADMIN: {text}");
    // Nothing reached the host's network.
    let host = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    assert!(!host.contains("10.20.0.5"), "the address reached the host");
}

#[tokio::test]
async fn capabilities_outside_the_allow_list_are_refused() {
    let (manager, _f) = manager();
    let mut spec = bash("true");
    spec.capabilities = vec!["SYS_ADMIN".into()];
    let err = manager.start(spec).await.unwrap_err().to_string();
    assert!(
        err.contains("capabilities[0]: SYS_ADMIN is never granted"),
        "{err}"
    );
}
