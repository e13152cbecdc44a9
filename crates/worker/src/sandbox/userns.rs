//! The sandbox's user namespace, and the namespaces it owns.
//!
//! Root inside a sandbox is an unprivileged host uid: the namespace maps the sandbox's ids
//! `0..count` to the host's `base..base+count` (a range of its own per sandbox, see
//! `ids.rs`). The network, UTS and IPC namespaces are created *with* it, so that they
//! belong to it: capabilities granted inside (say `NET_ADMIN`) act on the sandbox's own
//! network stack only. The mount, PID and cgroup namespaces are created by tandem-init as
//! host root and belong to the host's user namespace: nothing inside can mount, unmount or
//! remount anything, whatever capabilities it holds.
//!
//! A user namespace needs a process to be created in, and its id map must be written by a
//! process in the parent namespace: the monitor forks a short-lived helper that takes the
//! sandbox's base uid (so that it, not root, owns the namespace and pays its per-user
//! quotas) and unshares; the monitor writes the helper's maps, opens the namespaces (the
//! descriptors keep them alive) and lets the helper exit.

use super::{Failure, step};
use crate::protocol::IdMap;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

/// Descriptors of a new sandbox's namespaces.
pub(crate) struct Namespaces {
    /// The user namespace.
    pub user: OwnedFd,
    /// Network, UTS and IPC namespaces owned by `user`.
    pub net: OwnedFd,
    pub uts: OwnedFd,
    pub ipc: OwnedFd,
}

/// Creates the sandbox's user namespace (mapped per `ids`) and the namespaces it owns.
/// Runs in the monitor: single-threaded, host root.
pub(crate) fn create(ids: IdMap) -> Result<Namespaces, Failure> {
    let (ready_read, ready_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(step(|| "create pipe".into()))?;
    let (done_read, done_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(step(|| "create pipe".into()))?;
    // SAFETY: the monitor is single-threaded, so the child may run arbitrary code.
    let helper = match unsafe { fork() }.map_err(step(|| "fork the namespace helper".into()))? {
        ForkResult::Child => {
            drop((ready_read, done_write));
            let flags = CloneFlags::CLONE_NEWUSER
                | CloneFlags::CLONE_NEWNET
                | CloneFlags::CLONE_NEWUTS
                | CloneFlags::CLONE_NEWIPC;
            let byte = match become_owner(ids.host_base).and_then(|()| nix::sched::unshare(flags)) {
                Ok(()) => 0u8,
                Err(e) => e as i32 as u8,
            };
            let _ = File::from(ready_write).write_all(&[byte]);
            // Hold the namespaces until the monitor has opened them (EOF on `done`).
            let _ = File::from(done_read).read(&mut [0u8; 1]);
            // SAFETY: _exit in a forked child: no atexit handlers of the parent run.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    };
    drop((ready_write, done_read));
    let result = (|| {
        let mut byte = [0u8; 1];
        File::from(ready_read)
            .read_exact(&mut byte)
            .map_err(|_| ("wait for the namespace helper".to_string(), Errno::EPIPE))?;
        if byte[0] != 0 {
            let errno = Errno::from_raw(i32::from(byte[0]));
            let hint = if errno == Errno::EPERM || errno == Errno::ENOSPC {
                " (is user.max_user_namespaces 0, or are user namespaces disabled?)"
            } else {
                ""
            };
            return Err((format!("create the sandbox's user namespace{hint}"), errno));
        }
        let map = format!("0 {} {}\n", ids.host_base, ids.count);
        let proc = format!("/proc/{}", helper.as_raw());
        for file in ["uid_map", "gid_map"] {
            std::fs::write(format!("{proc}/{file}"), &map).map_err(|e| {
                (
                    format!("write the sandbox's {file} ({})", map.trim()),
                    io_errno(&e),
                )
            })?;
        }
        let open = |ns: &str| {
            File::open(format!("{proc}/ns/{ns}"))
                .map(OwnedFd::from)
                .map_err(|e| (format!("open the sandbox's {ns} namespace"), io_errno(&e)))
        };
        Ok(Namespaces {
            user: open("user")?,
            net: open("net")?,
            uts: open("uts")?,
            ipc: open("ipc")?,
        })
    })();
    drop(done_write);
    let _ = waitpid(helper, None);
    result
}

/// In the helper: takes the sandbox's own host uid as its effective uid, keeping its
/// capabilities, so that the user namespace it creates is *owned* by that uid rather than
/// by root. The kernel charges per-user quotas (inotify instances, pending signals,
/// message queues, namespaces…) of everything in a user namespace to its owner too: a
/// sandbox must use up its own, never root's.
fn become_owner(uid: u32) -> Result<(), Errno> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } == -1 {
        return Err(Errno::last());
    }
    become_ids(uid, uid)?;
    // Creating a user namespace with CAP_SYS_ADMIN works even where unprivileged user
    // namespaces are switched off.
    let permitted = super::permitted_capabilities()?;
    super::set_capabilities(permitted, permitted)
}

/// Enters the user namespace `user` and becomes its root (uid and gid 0 inside, no
/// supplementary groups). The process then has every capability in that namespace and
/// none outside it.
pub(crate) fn become_root_in(user: &OwnedFd) -> Result<(), Failure> {
    nix::sched::setns(user, CloneFlags::CLONE_NEWUSER)
        .map_err(step(|| "enter the sandbox's user namespace".into()))?;
    become_ids(0, 0).map_err(step(|| {
        "become root of the sandbox's user namespace".into()
    }))
}

/// Sets real, effective and saved uid and gid, and clears supplementary groups.
pub(crate) fn become_ids(uid: u32, gid: u32) -> Result<(), Errno> {
    use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
    setgroups(&[])?;
    setresgid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(gid))?;
    setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid))
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
