//! A check's view of a sandbox: the candidate's files, but not the candidate's code.
//!
//! A check judges the candidate's box, so it must see the box's files, processes and
//! network; but the candidate is root there and could replace `/bin/bash`, the loader,
//! `python3`, `ld.so.preload` or Python's `sitecustomize` to make every check pass. So a
//! check runs in a mount namespace of its own (owned by the host's user namespace: nothing
//! inside can change it) whose root is an overlay of
//! * a private tmpfs layer on top (the check's own writes go there and vanish with it),
//! * the **pins** layer: the root-level links (`/bin` → `usr/bin` …), `ld.so.cache`, a
//!   whiteout of `ld.so.preload` and of the checks' `HOME` (`/nonexistent`), Python's and
//!   Perl's site directories, `/etc/alternatives` and OpenSSL's configuration, as the host
//!   has them,
//! * the candidate's root (its `/etc`, `/opt`, `/var`, … as they are now),
//!
//! with pristine, read-only, `nosuid` copies of the host's system directories (`/usr`, …)
//! mounted over the candidate's, and the sandbox's live mounts (`/proc`, `/dev`, `/sys`,
//! `/run`, the task's tmpfs and binds) carried in.
//!
//! The check runs as a host uid that the sandbox's user namespace does not map, with the
//! sandbox's capabilities plus `SYS_PTRACE` (to read the candidate's `/proc/PID/fd`).
//! The candidate (root inside, without `SYS_PTRACE` unless the task grants it) can neither
//! trace the check, read its memory or descriptors, nor become its uid; it can only signal
//! it (`CAP_KILL`), which makes the check fail or error, never pass. Nothing the check
//! starts outlives it: its init is a subreaper and kills every process below it when the
//! check's command ends (`init::kill_descendants`).

use super::{Failure, idmap, rootfs, step, userns};
use crate::protocol::CheckConfig;
use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const NONE: Option<&str> = None;

/// Where the check's root is assembled: over the sandbox's `/proc` in the check's own
/// mount namespace (a mount point nothing inside can replace; the real `/proc` was
/// copied first).
const STAGE: &str = "/proc";

pub(super) fn enter(cfg: &CheckConfig, sandbox: &OwnedFd, user: &OwnedFd) -> Result<(), Failure> {
    // Pristine copies, made from the host's mount namespace.
    let pristine = idmap::Options::PRISTINE;
    let pins = idmap::detached_copy(&cfg.pins, user, pristine)?;
    let system = cfg
        .system_dirs
        .iter()
        .map(|(inside, host)| Ok((inside.clone(), idmap::detached_copy(host, user, pristine)?)))
        .collect::<Result<Vec<(PathBuf, OwnedFd)>, Failure>>()?;

    super::enter_namespaces(sandbox)?;
    unshare(CloneFlags::CLONE_NEWNS)
        .map_err(step(|| "create the check's mount namespace".into()))?;
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
        .map_err(step(|| "make the check's mounts private".into()))?;
    // The candidate may have replaced directories on the way to a mount point (not the
    // mount point itself) with links: resolve everything without following any.
    let mut live = Vec::new();
    for path in &cfg.mounts {
        if let Some(tree) = idmap::clone_tree_nofollow(path)? {
            live.push((path.clone(), tree));
        }
    }

    let stage = Path::new(STAGE);
    mount(
        Some("tmpfs"),
        stage,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(format!("size={},mode=700", cfg.scratch).as_str()),
    )
    .map_err(step(|| "mount the check's scratch tmpfs".into()))?;
    let [pins_dir, upper, work, root] = ["pins", "upper", "work", "root"].map(|d| stage.join(d));
    for dir in [&pins_dir, &upper, &work, &root] {
        std::fs::create_dir(dir).map_err(|e| io_failure(format!("create {}", dir.display()), e))?;
    }
    idmap::attach(&pins, &pins_dir)?;
    // The merged top directory shows the upper layer's owner and mode: the candidate's.
    let top =
        std::fs::metadata("/").map_err(|e| io_failure("stat the sandbox's root".into(), e))?;
    std::os::unix::fs::chown(&upper, Some(top.uid()), Some(top.gid()))
        .and_then(|()| {
            std::fs::set_permissions(&upper, std::fs::Permissions::from_mode(top.mode() & 0o7777))
        })
        .map_err(|e| io_failure("prepare the check's layer".into(), e))?;
    let options = format!(
        "lowerdir={}:/,upperdir={},workdir={}",
        pins_dir.display(),
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        &root,
        Some("overlay"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(step(|| format!("mount the check's root ({options})")))?;
    let root_dir =
        idmap::open_path(None, &root).map_err(|e| ("open the check's root".to_string(), e))?;
    for (inside, tree) in system.iter().chain(live.iter()) {
        idmap::attach_beneath(tree, &root_dir, inside)?;
    }
    drop(root_dir);
    rootfs::pivot(&root)?;
    become_check_user(cfg.host_uid, user)
}

/// Takes the host uid `uid` (not mapped in the sandbox) and enters the sandbox's user
/// namespace with it: the process then holds every capability there (until the lock-down)
/// but is nobody the sandbox can become.
fn become_check_user(uid: u32, user: &OwnedFd) -> Result<(), Failure> {
    // Keep the permitted set across the uid change, and raise it again: entering a user
    // namespace needs CAP_SYS_ADMIN over it.
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } == -1 {
        return Err(("keep capabilities".into(), Errno::last()));
    }
    userns::become_ids(uid, uid).map_err(step(|| format!("become host uid {uid}")))?;
    let permitted = super::permitted_capabilities().map_err(step(|| "read capabilities".into()))?;
    super::set_capabilities(permitted, permitted).map_err(step(|| "raise capabilities".into()))?;
    setns(user, CloneFlags::CLONE_NEWUSER)
        .map_err(step(|| "enter the sandbox's user namespace".into()))
}

fn io_failure(what: String, e: std::io::Error) -> Failure {
    (what, Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}
