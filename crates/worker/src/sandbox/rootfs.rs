//! The job's root: an overlay (read-only lower = host `/` or a rootfs directory; upper and
//! work in the job's state dir), a fresh `/proc`, a minimal `/dev` with its own devpts
//! instance, read-only `/sys`, tmpfs `/tmp` and `/run`, hidden host paths, the spec's bind
//! and tmpfs mounts, then `pivot_root`.
//!
//! Every mount happens in the job's private mount namespace (made `MS_PRIVATE`
//! recursively first), so nothing propagates to the host and everything disappears with
//! the job's last process: there is nothing to unmount afterwards, even after a crash.

use super::{Failure, step};
use crate::protocol::RootfsConfig;
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::path::{Path, PathBuf};

const NONE: Option<&str> = None;

/// Device nodes bind-mounted from the host into the job's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Builds the root filesystem at `cfg.mount_point` and pivots into it.
pub(crate) fn build(cfg: &RootfsConfig) -> Result<(), Failure> {
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
        .map_err(step(|| "make all mounts private".into()))?;

    let root = &cfg.mount_point;
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        cfg.lower.display(),
        cfg.upper.display(),
        cfg.work.display()
    );
    mount(
        Some("overlay"),
        root,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(step(|| format!("mount the overlay root ({options})")))?;

    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let proc_dir = dir_inside(root, "/proc")?;
    mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        nosuid_nodev | MsFlags::MS_NOEXEC,
        NONE,
    )
    .map_err(step(|| "mount /proc".into()))?;
    build_dev(root)?;
    let sys = dir_inside(root, "/sys")?;
    mount(
        Some("sysfs"),
        &sys,
        Some("sysfs"),
        nosuid_nodev | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY,
        NONE,
    )
    .map_err(step(|| "mount /sys read-only".into()))?;
    tmpfs(root, "/tmp", "mode=1777", nosuid_nodev)?;
    tmpfs(root, "/run", "mode=755", nosuid_nodev)?;

    for host in &cfg.hide {
        let target = inside(root, host);
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
    for bind in &cfg.binds {
        let target = if bind.source.is_dir() {
            dir_inside(root, &bind.target)?
        } else {
            file_inside(root, &bind.target)?
        };
        let what = || {
            format!(
                "bind {} to {}",
                bind.source.display(),
                bind.target.display()
            )
        };
        mount(
            Some(&bind.source),
            &target,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
        )
        .map_err(step(what))?;
        if bind.read_only {
            remount_read_only(&target).map_err(step(what))?;
        }
    }
    for t in &cfg.tmpfs {
        let target = t.target.to_string_lossy();
        tmpfs(
            root,
            &target,
            &format!("size={},mode=755", t.size),
            nosuid_nodev,
        )?;
    }

    pivot(root)?;
    harden_proc();
    Ok(())
}

fn build_dev(root: &Path) -> Result<(), Failure> {
    let dev = dir_inside(root, "/dev")?;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536"),
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
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .map_err(step(|| "mount /dev/pts".into()))?;
    let shm = dev.join("shm");
    mkdir(&shm)?;
    mount(
        Some("tmpfs"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
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

fn pivot(root: &Path) -> Result<(), Failure> {
    // pivot_root(".", ".") stacks the old root under the new one at "/"; detaching it
    // leaves only the new root. No directory for the old root is needed inside.
    nix::unistd::chdir(root).map_err(step(|| "enter the new root".into()))?;
    nix::unistd::pivot_root(".", ".").map_err(step(|| "pivot_root".into()))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(step(|| "detach the host's root".into()))?;
    nix::unistd::chdir("/").map_err(step(|| "enter /".into()))
}

/// Makes the parts of /proc that reach the host kernel read-only or empty (as container
/// runtimes do); `/proc/sys/net` stays writable since it belongs to the job's own
/// network namespace.
fn harden_proc() {
    for path in [
        "/proc/sys",
        "/proc/sysrq-trigger",
        "/proc/irq",
        "/proc/bus",
        "/proc/fs",
    ] {
        let _ = mount(
            Some(path),
            path,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
        )
        .and_then(|()| remount_read_only(Path::new(path)));
    }
    // A bind mount starts with its source's flags (read-only here): remount it writable.
    let _ = mount(
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
    });
    for path in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/latency_stats",
    ] {
        if Path::new(path).exists() {
            let _ = mount(Some("/dev/null"), path, NONE, MsFlags::MS_BIND, NONE);
        }
    }
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
