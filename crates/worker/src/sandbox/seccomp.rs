//! The seccomp filter of every sandbox process: a deny-list compiled by rust-vmm's
//! `seccompiler` (the filter compiler of Firecracker and Cloud Hypervisor).
//!
//! Refused with EPERM: system calls that act on the host kernel's global state or open
//! kernel surface an interview box never needs ([`DENIED`], each with its reason),
//! `clone` asking for a new namespace, and `socket(AF_VSOCK)` (vsock ports are not
//! namespaced). `clone3` gets ENOSYS, since a filter cannot read its
//! flags (they sit in a struct in memory): libc then falls back to `clone`, whose flags it
//! can. A foreign ABI (32-bit `int 0x80`) kills the process; x32 numbers of the denied calls
//! are denied too. Everything else is allowed: candidates need real tools, and the user
//! namespace (capabilities only over the sandbox's own objects) is the first wall.

use nix::errno::Errno;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Refused with EPERM, and why.
pub(crate) const DENIED: &[(libc::c_long, &str)] = &[
    (libc::SYS_mount, "mounts: the sandbox's mounts are fixed"),
    (libc::SYS_umount2, "mounts"),
    (libc::SYS_pivot_root, "mounts"),
    (libc::SYS_fsopen, "mounts (new mount API)"),
    (libc::SYS_fsconfig, "mounts (new mount API)"),
    (libc::SYS_fsmount, "mounts (new mount API)"),
    (libc::SYS_fspick, "mounts (new mount API)"),
    (libc::SYS_move_mount, "mounts (new mount API)"),
    (libc::SYS_open_tree, "mounts (new mount API)"),
    (libc::SYS_mount_setattr, "mounts (new mount API)"),
    (
        libc::SYS_unshare,
        "new namespaces (a nested user namespace re-grants capabilities)",
    ),
    (libc::SYS_setns, "entering other namespaces"),
    (libc::SYS_swapon, "host swap"),
    (libc::SYS_swapoff, "host swap"),
    (libc::SYS_reboot, "host power"),
    (libc::SYS_kexec_load, "replacing the host kernel"),
    (libc::SYS_kexec_file_load, "replacing the host kernel"),
    (libc::SYS_init_module, "kernel modules"),
    (libc::SYS_finit_module, "kernel modules"),
    (libc::SYS_delete_module, "kernel modules"),
    (
        libc::SYS_open_by_handle_at,
        "opening files by handle bypasses the mount tree",
    ),
    (libc::SYS_name_to_handle_at, "file handles"),
    (libc::SYS_bpf, "eBPF: large kernel surface"),
    (
        libc::SYS_perf_event_open,
        "perf: kernel surface and host information",
    ),
    (
        libc::SYS_userfaultfd,
        "userfaultfd: a classic exploit primitive",
    ),
    (
        libc::SYS_io_uring_setup,
        "io_uring: large kernel surface, bypasses this filter",
    ),
    (libc::SYS_io_uring_enter, "io_uring"),
    (libc::SYS_io_uring_register, "io_uring"),
    (libc::SYS_keyctl, "kernel keyrings are not namespaced"),
    (libc::SYS_add_key, "kernel keyrings"),
    (libc::SYS_request_key, "kernel keyrings"),
    (libc::SYS_acct, "process accounting to a host file"),
    (libc::SYS_quotactl, "host disk quotas"),
    (libc::SYS_quotactl_fd, "host disk quotas"),
    (libc::SYS_syslog, "the host kernel log"),
    (libc::SYS_settimeofday, "the host clock"),
    (libc::SYS_clock_settime, "the host clock"),
    (libc::SYS_clock_adjtime, "the host clock"),
    (libc::SYS_adjtimex, "the host clock"),
    (libc::SYS_fanotify_init, "filesystem-wide event monitoring"),
    (libc::SYS_lookup_dcookie, "kernel profiling"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_iopl, "I/O ports"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_ioperm, "I/O ports"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_uselib, "obsolete"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS__sysctl, "obsolete"),
];

/// `clone` flags that create namespaces: refused with EPERM.
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWCGROUP,
];

/// x32 system calls share the x86_64 arch value and set this bit in the number.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: i64 = 0x4000_0000;
/// x32's own number for `kexec_load` (x32 renumbers only calls with compat structures,
/// 512–547; of the denied calls, only this one).
#[cfg(target_arch = "x86_64")]
const X32_KEXEC_LOAD: i64 = 528;

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

/// The two filters: the deny-list (EPERM) and `clone3` (ENOSYS). The kernel runs both;
/// they match disjoint calls.
pub(crate) fn programs() -> Result<[BpfProgram; 2], seccompiler::BackendError> {
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &(nr, _) in DENIED {
        denied.insert(nr, Vec::new());
        #[cfg(target_arch = "x86_64")]
        denied.insert(nr | X32_SYSCALL_BIT, Vec::new());
    }
    #[cfg(target_arch = "x86_64")]
    denied.insert(X32_KEXEC_LOAD | X32_SYSCALL_BIT, Vec::new());
    // One rule per flag: the rules of a call are alternatives, so any flag matches.
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            let flag = flag as u64;
            SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    denied.insert(libc::SYS_clone, clone_rules);
    // vsock's port space belongs to the whole machine (no network namespace has its own):
    // a sandbox could take the host's ports or talk to the hypervisor.
    denied.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            libc::AF_VSOCK as u64,
        )?])?],
    );
    let deny = SeccompFilter::new(
        denied,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        ARCH,
    )?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        ARCH,
    )?;
    Ok([deny.try_into()?, clone3.try_into()?])
}

/// Installs the filters for this process and everything it forks afterwards. Called while
/// the process holds CAP_SYS_ADMIN in its user namespace, so no `no_new_privs` is needed
/// and setuid programs (`su`, `sudo`) keep working inside.
pub(super) fn install() -> Result<(), Errno> {
    let programs = programs().map_err(|_| Errno::EINVAL)?;
    for program in &programs {
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: seccomp(SET_MODE_FILTER) reads the sock_fprog and its filter array, both
        // valid for the duration of the call (the kernel copies them).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc == -1 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_within_the_kernel_limits() {
        let [deny, clone3] = programs().expect("filters compile");
        // BPF_MAXINSNS.
        assert!(deny.len() < 4096 && clone3.len() < 4096);
        assert!(DENIED.iter().any(|(nr, _)| *nr == libc::SYS_io_uring_setup));
    }
}
