//! Per-user kernel quotas (inotify instances, pending signals, message queues…) are
//! counted per user namespace *and* charged to the namespace's owner on the host. A
//! sandbox's user namespace is owned by its own host uid, not by root: a candidate who
//! uses up a quota uses up the sandbox's, never the host root's (which tandemd and the
//! host's services share).

mod common;
use common::*;
use tandem_worker::{JobSpec, JobState};

/// inotify instances this process can still create, up to `limit` (closed again).
fn host_inotify_instances(limit: usize) -> usize {
    let mut fds = Vec::new();
    while fds.len() < limit {
        // SAFETY: inotify_init1 takes flags and returns a new descriptor or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            break;
        }
        fds.push(fd);
    }
    let n = fds.len();
    for fd in fds {
        // SAFETY: closing descriptors this function opened.
        unsafe { libc::close(fd) };
    }
    n
}

#[tokio::test]
async fn a_sandbox_exhausting_inotify_instances_leaves_the_hosts_root_its_own() {
    let max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // On the host, root can create instances now (so it could lose them).
    assert!(
        host_inotify_instances(8) == 8,
        "root has inotify instances to lose"
    );
    let (manager, _f) = manager();
    let spec = JobSpec::new(
        "python3",
        [
            "-c",
            "import ctypes, sys, time\n\
             libc = ctypes.CDLL(None)\n\
             fds = []\n\
             while len(fds) < 100000:\n\
             \x20   fd = libc.inotify_init()\n\
             \x20   if fd < 0: break\n\
             \x20   fds.append(fd)\n\
             print(len(fds), flush=True)\n\
             time.sleep(1000)\n",
        ],
    )
    .env("PATH", "/usr/bin:/bin");
    let id = manager.start(spec).await.unwrap();
    let text = read_until(&mut manager.output(id).unwrap(), "\n").await;
    let inside: usize = text.trim().parse().unwrap();
    assert!(
        inside > 0 && inside <= max,
        "the sandbox has its own quota: {text}"
    );
    // While the sandbox holds its whole quota, the host's root still has its own.
    let host = host_inotify_instances(8);
    let status = manager.stop(id, std::time::Duration::ZERO).await.unwrap();
    assert!(matches!(status.state, JobState::Stopped { .. }));
    assert_eq!(
        host, 8,
        "the sandbox used up root's inotify instances (it made {inside})"
    );
}

#[tokio::test]
async fn a_sandbox_cannot_take_the_hosts_terminals() {
    let (manager, _f) = manager();
    // Opening pseudo-terminals until the kernel says no.
    let spec = JobSpec::new(
        "python3",
        [
            "-c",
            "import os, time\n\
             fds = []\n\
             while len(fds) < 5000:\n\
             \x20   try: fds.append(os.open('/dev/ptmx', os.O_RDWR | os.O_NOCTTY))\n\
             \x20   except OSError: break\n\
             print(len(fds), flush=True)\n\
             time.sleep(1000)\n",
        ],
    )
    .env("PATH", "/usr/bin:/bin");
    let id = manager.start(spec).await.unwrap();
    let text = read_until(&mut manager.output(id).unwrap(), "\n").await;
    let inside: usize = text.trim().parse().unwrap();
    // The host can still open a terminal while the sandbox holds all it may.
    let host = nix::pty::posix_openpt(nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY);
    manager.stop(id, std::time::Duration::ZERO).await.unwrap();
    assert!(inside <= 64, "a sandbox opened {inside} terminals");
    assert!(
        inside >= 32,
        "the sandbox can still open terminals: {inside}"
    );
    assert!(host.is_ok(), "the host could not open a terminal: {host:?}");
}
