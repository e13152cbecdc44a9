//! The job's root: an overlay whose read-only lower layer is an idmapped copy of the
//! system view's skeleton (or a rootfs directory), with each of the host's system
//! directories (`/usr`, …) as an overlay of its own over an idmapped copy; every writable
//! layer on one tmpfs of `limits.disk` bytes (so the writes of a sandbox never touch the
//! host's disk and are charged to its memory cgroup); a fresh `/proc`, a minimal `/dev`
//! with its own devpts instance, read-only `/sys`, small tmpfs `/run` and `/dev/shm`, the
//! spec's bind and tmpfs mounts, then `pivot_root`.
//!
//! Every mount happens in the job's private mount namespace (made `MS_PRIVATE`
//! recursively first, and owned by the host's user namespace), so nothing propagates to
//! the host, nothing inside can change it, and everything disappears with the job's last
//! process: there is nothing to unmount afterwards, even after a crash.

use super::{Failure, idmap, step};
use crate::protocol::RootfsConfig;
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const NONE: Option<&str> = None;

/// Device nodes bind-mounted from the host into the job's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Terminals a sandbox may open (its devpts instance's `max`).
pub(crate) const MAX_PTYS: u32 = 64;

/// Size of `/run` and of `/dev/shm` (each; charged to the job's memory like all tmpfs).
pub(crate) const SMALL_TMPFS: u64 = 64 << 20;

/// Builds the root filesystem and pivots into it. Runs as host root in the job's new
/// mount namespace; `userns` is the sandbox's user namespace (for the idmapped layers).
pub(crate) fn build(cfg: &RootfsConfig, userns: &OwnedFd) -> Result<(), Failure> {
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
        .map_err(step(|| "make all mounts private".into()))?;

    let stage = &cfg.staging;
    mount(
        Some("tmpfs"),
        stage,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(format!("size={},mode=700", cfg.disk).as_str()),
    )
    .map_err(step(|| "mount the sandbox's writable tmpfs".into()))?;
    let root = stage.join("root");
    mkdir(&root)?;
    let root_owner = overlay(stage, "root", &cfg.lower, &root, userns)?;
    for dir in &cfg.system_dirs {
        let name = dir
            .file_name()
            .ok_or_else(|| (format!("system directory {}", dir.display()), Errno::EINVAL))?
            .to_string_lossy()
            .into_owned();
        let target = confined(&root, &root.join(&name), Path::new(&name))?;
        overlay(stage, &name, dir, &target, userns)?;
    }

    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let proc_dir = dir_inside(&root, "/proc")?;
    mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        nosuid_nodev | MsFlags::MS_NOEXEC,
        NONE,
    )
    .map_err(step(|| "mount /proc".into()))?;
    build_dev(&root, root_owner)?;
    let tmp = dir_inside(&root, "/tmp")?;
    let tmp_meta = std::fs::metadata(&tmp).map_err(|e| io_failure("stat /tmp".into(), e))?;
    if tmp_meta.mode() & 0o7777 != 0o1777 {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
            .and_then(|()| std::os::unix::fs::chown(&tmp, Some(root_owner.0), Some(root_owner.1)))
            .map_err(|e| io_failure("make /tmp world-writable".into(), e))?;
    }
    let sys = dir_inside(&root, "/sys")?;
    mount(
        Some("sysfs"),
        &sys,
        Some("sysfs"),
        nosuid_nodev | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY,
        NONE,
    )
    .map_err(step(|| "mount /sys read-only".into()))?;
    tmpfs(
        &root,
        "/run",
        &format!("size={SMALL_TMPFS},mode=755,uid={0},gid={0}", root_owner.0),
        nosuid_nodev,
    )?;

    for host in &cfg.hide {
        let target = inside(&root, host);
        if target.is_dir() {
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                nosuid_nodev | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY,
                Some("size=4k,mode=755"),
            )
            .map_err(step(|| format!("hide {}", host.display())))?;
        }
    }
    // A bind shows the host's files with their owners shifted like the layers' (host root
    // appears as the sandbox's root): a writable bind hands the sandbox's root the host
    // root's rights over the files in it, so bind only what you would hand over.
    for bind in &cfg.binds {
        let target = if bind.source.is_dir() {
            dir_inside(&root, &bind.target)?
        } else {
            file_inside(&root, &bind.target)?
        };
        let copy = idmap::detached_copy(
            &bind.source,
            userns,
            idmap::Options {
                nosuid: true,
                writable: !bind.read_only,
            },
        )?;
        idmap::attach(&copy, &target)?;
    }
    for t in &cfg.tmpfs {
        let target = t.target.to_string_lossy();
        tmpfs(
            &root,
            &target,
            &format!("size={},mode=755,uid={1},gid={1}", t.size, root_owner.0),
            nosuid_nodev,
        )?;
    }

    pivot(&root)?;
    harden_proc()
}

/// Mounts an overlay at `target`: lower = an idmapped copy of `lower`, upper and work on
/// the staging tmpfs under `layers/<name>`. The upper directory takes the owner and mode
/// the lower's top directory has as the sandbox sees it (the merged top directory shows
/// the upper's). Returns that owner (host ids).
fn overlay(
    stage: &Path,
    name: &str,
    lower: &Path,
    target: &Path,
    userns: &OwnedFd,
) -> Result<(u32, u32), Failure> {
    let lower_dir = stage.join("lower").join(name);
    let upper = stage.join("layers").join(name).join("upper");
    let work = stage.join("layers").join(name).join("work");
    for d in [&lower_dir, &upper, &work] {
        mkdir(d)?;
    }
    let copy = idmap::detached_copy(lower, userns, idmap::Options::LAYER)?;
    idmap::attach(&copy, &lower_dir)?;
    let meta = std::fs::metadata(&lower_dir)
        .map_err(|e| io_failure(format!("stat {}", lower.display()), e))?;
    std::os::unix::fs::chown(&upper, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| io_failure(format!("chown the {name} layer"), e))?;
    std::fs::set_permissions(
        &upper,
        std::fs::Permissions::from_mode(meta.mode() & 0o7777),
    )
    .map_err(|e| io_failure(format!("chmod the {name} layer"), e))?;
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower_dir.display(),
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(step(|| format!("mount the {name} layer ({options})")))?;
    Ok((meta.uid(), meta.gid()))
}

/// `/dev`: a small tmpfs owned by the sandbox's root (`owner`, host ids), the host's
/// harmless device nodes bind-mounted in, a devpts instance of the job's own.
fn build_dev(root: &Path, owner: (u32, u32)) -> Result<(), Failure> {
    let dev = dir_inside(root, "/dev")?;
    let (uid, gid) = owner;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_STRICTATIME,
        Some(format!("mode=755,size=65536,uid={uid},gid={gid}").as_str()),
    )
    .map_err(step(|| "mount /dev".into()))?;
    for name in DEVICES {
        let node = dev.join(name);
        std::fs::File::create(&node).map_err(|e| io_failure(format!("create /dev/{name}"), e))?;
        mount(
            Some(&Path::new("/dev").join(name)),
            &node,
            NONE,
            MsFlags::MS_BIND,
            NONE,
        )
        .map_err(step(|| format!("bind /dev/{name}")))?;
    }
    let pts = dev.join("pts");
    mkdir(&pts)?;
    // A devpts instance of our own: the job sees only its own terminals, never the host's.
    // At most MAX_PTYS of them: the kernel's PTY count is shared by every sandbox
    // (kernel.pty.max less kernel.pty.reserve), so one sandbox must not take them all.
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        // The `tty` group (5) of the sandbox, as a host gid.
        Some(
            format!(
                "newinstance,ptmxmode=0666,mode=0620,gid={},max={MAX_PTYS}",
                gid + 5
            )
            .as_str(),
        ),
    )
    .map_err(step(|| "mount /dev/pts".into()))?;
    let shm = dev.join("shm");
    mkdir(&shm)?;
    mount(
        Some("tmpfs"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(format!("mode=1777,size={SMALL_TMPFS},uid={uid},gid={gid}").as_str()),
    )
    .map_err(step(|| "mount /dev/shm".into()))?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link))
            .map_err(|e| io_failure(format!("create /dev/{link}"), e))?;
    }
    Ok(())
}

pub(super) fn pivot(root: &Path) -> Result<(), Failure> {
    // pivot_root(".", ".") stacks the old root under the new one at "/"; detaching it
    // leaves only the new root. No directory for the old root is needed inside.
    nix::unistd::chdir(root).map_err(step(|| "enter the new root".into()))?;
    nix::unistd::pivot_root(".", ".").map_err(step(|| "pivot_root".into()))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(step(|| "detach the host's root".into()))?;
    nix::unistd::chdir("/").map_err(step(|| "enter /".into()))
}

/// Makes the parts of /proc that reach the host kernel read-only or empty (as container
/// runtimes do); `/proc/sys/net` stays writable since it belongs to the job's own
/// network namespace. (The files are the host root's, which the sandbox's root is not;
/// this is the second wall.) A step that fails fails the start.
fn harden_proc() -> Result<(), Failure> {
    for path in [
        "/proc/sys",
        "/proc/sysrq-trigger",
        "/proc/irq",
        "/proc/bus",
        "/proc/fs",
    ] {
        if !Path::new(path).exists() {
            continue;
        }
        mount(
            Some(path),
            path,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
        )
        .and_then(|()| remount_read_only(Path::new(path)))
        .map_err(step(|| format!("make {path} read-only")))?;
    }
    // A bind mount starts with its source's flags (read-only here): remount it writable.
    mount(
        Some("/proc/sys/net"),
        "/proc/sys/net",
        NONE,
        MsFlags::MS_BIND,
        NONE,
    )
    .and_then(|()| {
        mount(
            NONE,
            "/proc/sys/net",
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            NONE,
        )
    })
    .map_err(step(|| "keep /proc/sys/net writable".into()))?;
    for path in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/latency_stats",
        "/proc/config.gz",
    ] {
        if Path::new(path).exists() {
            mount(Some("/dev/null"), path, NONE, MsFlags::MS_BIND, NONE)
                .map_err(step(|| format!("mask {path}")))?;
        }
    }
    Ok(())
}

fn remount_read_only(target: &Path) -> Result<(), Errno> {
    mount(
        NONE,
        target,
        NONE,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        NONE,
    )
}

fn tmpfs(root: &Path, path: &str, options: &str, flags: MsFlags) -> Result<(), Failure> {
    let target = dir_inside(root, path)?;
    mount(Some("tmpfs"), &target, Some("tmpfs"), flags, Some(options))
        .map_err(step(|| format!("mount tmpfs on {path}")))
}

/// `path` (absolute, as seen inside the job) under `root`.
fn inside(root: &Path, path: impl AsRef<Path>) -> PathBuf {
    root.join(path.as_ref().strip_prefix("/").unwrap_or(path.as_ref()))
}

/// Creates directory `path` inside the root (in the overlay's upper layer if missing) and
/// checks that no symlink in the root led it outside.
fn dir_inside(root: &Path, path: impl AsRef<Path>) -> Result<PathBuf, Failure> {
    let target = inside(root, &path);
    std::fs::create_dir_all(&target)
        .map_err(|e| io_failure(format!("create {}", path.as_ref().display()), e))?;
    confined(root, &target, path.as_ref())
}

/// Creates an empty file `path` inside the root as a bind mount point.
fn file_inside(root: &Path, path: &Path) -> Result<PathBuf, Failure> {
    let target = inside(root, path);
    if let Some(parent) = path.parent() {
        dir_inside(root, parent)?;
    }
    if !target.exists() {
        std::fs::File::create(&target)
            .map_err(|e| io_failure(format!("create {}", path.display()), e))?;
    }
    confined(root, &target, path)
}

/// Mounting on a path that a symlink in the (possibly untrusted) rootfs redirects
/// elsewhere would put the mount in the wrong place: refuse.
fn confined(root: &Path, target: &Path, shown: &Path) -> Result<PathBuf, Failure> {
    let real = std::fs::canonicalize(target)
        .map_err(|e| io_failure(format!("resolve {}", shown.display()), e))?;
    if !real.starts_with(root) {
        return Err((
            format!(
                "mount target {} leaves the root through a symlink (to {})",
                shown.display(),
                real.display()
            ),
            Errno::ELOOP,
        ));
    }
    Ok(real)
}

fn mkdir(path: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(path).map_err(|e| io_failure(format!("create {}", path.display()), e))
}

fn io_failure(what: String, e: std::io::Error) -> Failure {
    (what, Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}
