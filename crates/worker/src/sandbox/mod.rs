//! The sandbox wall, applied by `tandem-init` (single-threaded, so every namespace call
//! is allowed): every `unsafe` of it is here.
//!
//! * **Create** (the monitor, then the init): the monitor makes the sandbox's user
//!   namespace with its network, UTS and IPC namespaces ([`userns`]) and a PID namespace,
//!   and forks the init. The init, still host root, makes the mount and cgroup namespaces
//!   (owned by the host's user namespace, so nothing inside can ever mount), builds the
//!   root ([`rootfs`]: idmapped lower layers, a writable tmpfs layer of `limits.disk`) and
//!   pivots into it; only then it enters the user namespace as its root, places the
//!   sandbox's files, and locks itself down before it forks anything.
//! * **Join** (a command run in an existing sandbox): the monitor enters the sandbox's
//!   namespaces, its user namespace last, and locks itself down (seccomp, capabilities,
//!   non-dumpable) *before* it forks the process that appears inside. Nothing inside ever
//!   sees a process of tandem's with more privilege than its own.
//! * **Check**: like join, but with a view of its own ([`check`]).
//!
//! The lock-down: a seccomp deny-list ([`seccomp`]), the capability sets reduced to the
//! sandbox's (bounding, permitted, effective; ambient cleared), not dumpable.

mod check;
mod files;
pub(crate) mod idmap;
mod net;
pub(crate) mod rootfs;
pub(crate) mod seccomp;
pub(crate) mod userns;

use crate::capability::CapSet;
use crate::protocol::{CheckConfig, SandboxConfig};
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns, unshare};
use std::os::fd::OwnedFd;

pub(crate) use userns::Namespaces;

/// A failed step and its OS error.
pub(crate) type Failure = (String, Errno);

pub(crate) fn step(what: impl FnOnce() -> String) -> impl FnOnce(Errno) -> Failure {
    move |e| (what(), e)
}

/// Namespaces a joining command enters through the sandbox init's pidfd (the user
/// namespace separately, last).
const JOINED: CloneFlags = CloneFlags::CLONE_NEWPID
    .union(CloneFlags::CLONE_NEWNS)
    .union(CloneFlags::CLONE_NEWNET)
    .union(CloneFlags::CLONE_NEWUTS)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWCGROUP);

/// Create mode, in the init (PID 1 of the new PID namespace, host root): the remaining
/// namespaces, the root filesystem, the user namespace, the files. The caller locks down
/// next.
pub(crate) fn enter(config: &SandboxConfig, ns: Namespaces) -> Result<(), Failure> {
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWCGROUP)
        .map_err(step(|| "create mount and cgroup namespaces".into()))?;
    for (fd, what) in [(&ns.net, "network"), (&ns.uts, "UTS"), (&ns.ipc, "IPC")] {
        setns(fd, CloneFlags::empty())
            .map_err(step(|| format!("enter the sandbox's {what} namespace")))?;
    }
    net::loopback_up().map_err(step(|| "bring up the loopback interface".into()))?;
    nix::unistd::sethostname(&config.hostname)
        .map_err(step(|| format!("set hostname {:?}", config.hostname)))?;
    rootfs::build(&config.rootfs, &ns.user)?;
    userns::become_root_in(&ns.user)?;
    files::place(&config.files)
}

/// Join mode, in the monitor (host root, host namespaces): enters the sandbox and locks
/// down; the caller then forks the process that appears inside.
pub(crate) fn join(sandbox: &OwnedFd, user: &OwnedFd, caps: CapSet) -> Result<(), Failure> {
    setns(sandbox, JOINED).map_err(|e| {
        let why = if e == Errno::ESRCH {
            " (the sandbox has ended)"
        } else {
            ""
        };
        (format!("enter the sandbox's namespaces{why}"), e)
    })?;
    userns::become_root_in(user)?;
    lock_down(caps, false)
}

/// Enters every namespace of the sandbox whose init `sandbox` (a pidfd) is, but its user
/// namespace. The PID namespace applies to the children forked afterwards.
fn enter_namespaces(sandbox: &OwnedFd) -> Result<(), Failure> {
    setns(sandbox, JOINED).map_err(|e| {
        let why = if e == Errno::ESRCH {
            " (the sandbox has ended)"
        } else {
            ""
        };
        (format!("enter the sandbox's namespaces{why}"), e)
    })
}

/// Check mode, in the monitor: like [`join`], with the check's own view and identity.
pub(crate) fn join_check(
    config: &CheckConfig,
    sandbox: &OwnedFd,
    user: &OwnedFd,
    caps: CapSet,
) -> Result<(), Failure> {
    check::enter(config, sandbox, user)?;
    lock_down(caps, true)?;
    // The check's uid is not the namespace's root, so an exec would clear its
    // capabilities: carry them across as ambient capabilities.
    raise_ambient(caps).map_err(step(|| "keep the check's capabilities across exec".into()))
}

/// Puts `caps` in the inheritable and ambient sets (they must be permitted).
fn raise_ambient(caps: CapSet) -> Result<(), Errno> {
    set_sets(caps.0, caps.0, caps.0)?;
    for cap in 0..64u64 {
        if caps.0 & (1 << cap) != 0 {
            // SAFETY: plain prctl with integer arguments.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            };
            if rc == -1 {
                return Err(Errno::last());
            }
        }
    }
    Ok(())
}

/// Installs the seccomp filters, reduces the capabilities to `caps` and makes the process
/// non-dumpable; after this the process (and everything it forks) cannot mount, load
/// modules, create namespaces or regain what it dropped. `no_new_privs` too for checks
/// (setuid programs are for the candidate, not for checks).
pub(crate) fn lock_down(caps: CapSet, no_new_privs: bool) -> Result<(), Failure> {
    if no_new_privs {
        // SAFETY: plain prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == -1 {
            return Err(("set no_new_privs".into(), Errno::last()));
        }
    }
    // The filter goes on while the process still holds CAP_SYS_ADMIN in the sandbox's user
    // namespace, so it needs no no_new_privs: setuid programs (sudo, su) keep working.
    seccomp::install().map_err(step(|| "install the seccomp filter".into()))?;
    drop_capabilities(caps).map_err(step(|| "drop capabilities".into()))?;
    not_dumpable()
}

/// Only holders of CAP_SYS_PTRACE in the user namespace that owns the process's memory
/// (the host's, for tandem-init) may trace or read a non-dumpable process.
pub(crate) fn not_dumpable() -> Result<(), Failure> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } == -1 {
        return Err(("make tandem-init non-dumpable".into(), Errno::last()));
    }
    Ok(())
}

fn drop_capabilities(caps: CapSet) -> Result<(), Errno> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63);
    let keep = caps.0;
    for cap in 0..=last {
        if keep & (1 << cap) == 0 {
            // SAFETY: plain prctl with integer arguments.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } == -1 {
                return Err(Errno::last());
            }
        }
    }
    // SAFETY: plain prctl with integer arguments.
    if unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    } == -1
    {
        return Err(Errno::last());
    }
    set_capabilities(keep, keep)
}

/// `capget`/`capset`'s header (linux/capability.h, version 3).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// One half (32 bits) of each set.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

/// This process's permitted set.
pub(crate) fn permitted_capabilities() -> Result<u64, Errno> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes one header and two data structs (version 3), both valid here.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } == -1 {
        return Err(Errno::last());
    }
    Ok(u64::from(data[0].permitted) | u64::from(data[1].permitted) << 32)
}

/// `capset` of the effective and permitted sets (inheritable cleared).
pub(crate) fn set_capabilities(effective: u64, permitted: u64) -> Result<(), Errno> {
    set_sets(effective, permitted, 0)
}

fn set_sets(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    use CapData as Data;
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [
        Data {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        Data {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: capset reads one header and two data structs (version 3), both valid here.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } == -1 {
        return Err(Errno::last());
    }
    Ok(())
}
