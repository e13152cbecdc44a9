//! The job's isolation, applied by init (PID 1 of the job's PID namespace) before it forks
//! the command: namespaces, the root filesystem, then the lock-down (seccomp filter and
//! reduced capabilities). Runs single-threaded in init; every `unsafe` of it is here.
//!
//! The job runs as real root inside (no user namespace: an overlay over the host's `/`
//! needs the host's uids). What keeps it in: its own mount, PID, network, UTS, IPC and
//! cgroup namespaces; a capability bounding set without CAP_SYS_ADMIN, CAP_SYS_MODULE,
//! CAP_MKNOD, CAP_DAC_READ_SEARCH and the like; a seccomp filter refusing the system calls
//! that reach the host kernel's global state (mount, modules, kexec, bpf, keyrings, new
//! namespaces…). init itself runs under the same filter and capabilities (and is
//! non-dumpable), so a job process that manages to ptrace it gains nothing.

mod net;
pub(crate) mod rootfs;
mod seccomp;

use crate::protocol::SandboxConfig;
use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};

/// A failed step and its OS error.
pub(crate) type Failure = (String, Errno);

pub(crate) fn step(what: impl FnOnce() -> String) -> impl FnOnce(Errno) -> Failure {
    move |e| (what(), e)
}

/// Creates the namespaces (other than PID, which the monitor created) and the root
/// filesystem, and pivots into it.
pub(crate) fn enter(config: &SandboxConfig) -> Result<(), Failure> {
    unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWCGROUP,
    )
    .map_err(step(|| {
        "create mount, network, UTS, IPC and cgroup namespaces".into()
    }))?;
    net::loopback_up().map_err(step(|| "bring up the loopback interface".into()))?;
    nix::unistd::sethostname(&config.hostname)
        .map_err(step(|| format!("set hostname {:?}", config.hostname)))?;
    rootfs::build(&config.rootfs)
}

/// Capabilities the job keeps (Docker's default set, without CAP_MKNOD since there is no
/// device cgroup, plus NET_ADMIN for `ip`/`tc` and SYS_PTRACE for `strace`, both confined to
/// the job's own namespaces).
const KEEP_CAPS: [u32; 15] = [
    0,  // CHOWN
    1,  // DAC_OVERRIDE
    3,  // FOWNER
    4,  // FSETID
    5,  // KILL
    6,  // SETGID
    7,  // SETUID
    8,  // SETPCAP
    10, // NET_BIND_SERVICE
    12, // NET_ADMIN
    13, // NET_RAW
    18, // SYS_CHROOT
    19, // SYS_PTRACE
    29, // AUDIT_WRITE
    31, // SETFCAP
];

/// Installs the seccomp filter and drops capabilities; after this init (and everything it
/// forks) cannot mount, load modules, create namespaces or regain what it dropped.
pub(crate) fn lock_down() -> Result<(), Failure> {
    // The filter goes on while init still holds CAP_SYS_ADMIN, so it needs no
    // no_new_privs: setuid programs (sudo, su) keep working within the bounding set.
    seccomp::install().map_err(step(|| "install the seccomp filter".into()))?;
    drop_capabilities().map_err(step(|| "drop capabilities".into()))?;
    // Non-dumpable: only CAP_SYS_PTRACE holders may ptrace init, and it holds nothing
    // more than they do.
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } == -1 {
        return Err(("make init non-dumpable".into(), Errno::last()));
    }
    Ok(())
}

fn drop_capabilities() -> Result<(), Errno> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63);
    let keep: u64 = KEEP_CAPS.iter().fold(0, |m, c| m | (1u64 << c));
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
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let data = [
        Data {
            effective: keep as u32,
            permitted: keep as u32,
            inheritable: 0,
        },
        Data {
            effective: (keep >> 32) as u32,
            permitted: (keep >> 32) as u32,
            inheritable: 0,
        },
    ];
    // SAFETY: capset reads one header and two data structs (version 3), both valid here.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } == -1 {
        return Err(Errno::last());
    }
    Ok(())
}
