//! Resource limits and accounting with cgroups, v1 and v2 behind one trait.
//!
//! Our own thin layer rather than cgroups-rs: a job must be inside its cgroup *before* it
//! execs, so the daemon opens each job cgroup's `cgroup.procs` ahead of time and the child
//! writes `0` to it between fork and exec (an async-signal-safe `write`). cgroups-rs only
//! moves already-running processes, and does not nest under the daemon's own cgroup per
//! v1 hierarchy the way we need.
//!
//! Layout: job cgroups live under the daemon's **own** cgroup (from `/proc/self/cgroup`,
//! per hierarchy on v1): `<own>/<parent>/<job id>`, `<parent>` being `tandem` by default.

mod v1;
mod v2;

use serde::{Deserialize, Serialize};
pub use tandem_limits::{DEFAULT_DISK, Limits};

/// Processes the cgroup holds besides the job's own: tandem-init's monitor and init.
pub(crate) const INIT_PROCESSES: u64 = 2;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a job used, as far as the cgroup version offers it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceUsage {
    /// CPU time, user + system, in microseconds.
    pub cpu_usec: u64,
    /// User CPU time in microseconds.
    pub cpu_user_usec: u64,
    /// System CPU time in microseconds.
    pub cpu_system_usec: u64,
    /// Peak memory in bytes (v1: `memory.max_usage_in_bytes`; v2: `memory.peak`, kernel ≥ 5.19).
    pub memory_peak_bytes: Option<u64>,
    /// Bytes read from block devices.
    pub io_read_bytes: Option<u64>,
    /// Bytes written to block devices.
    pub io_write_bytes: Option<u64>,
    /// Processes the kernel's OOM killer killed in the job.
    pub oom_kills: u64,
}

/// Which cgroup version to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// v2 when `/sys/fs/cgroup` is a cgroup2 mount, else v1.
    #[default]
    Auto,
    /// The v1 hierarchies (cpu, cpuacct, memory, pids, blkio, freezer).
    V1,
    /// The cgroup2 mount (on a hybrid host, the one at `/sys/fs/cgroup/unified`).
    V2,
}

/// A block device as `major:minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNumber {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl fmt::Display for DeviceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// Why a cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A file or directory of a cgroup could not be read, written, created or opened.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `write "100000" to`.
        what: String,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A limit needs a controller this host does not offer.
    #[error("{limit} needs the cgroup v{version} `{controller}` controller, which {why}")]
    MissingController {
        /// Which limit, e.g. `a memory limit`.
        limit: &'static str,
        /// The controller, e.g. `memory`.
        controller: &'static str,
        /// 1 or 2.
        version: u8,
        /// Why it is missing.
        why: String,
    },
    /// The host's cgroup setup is not one tandem can use.
    #[error("{0}")]
    Unusable(String),
    /// Disk IO limits need the block device under the state dir, and it is not one.
    #[error("{0}")]
    NoBlockDevice(String),
}

/// A [`CgroupError::Io`] maker for `map_err`.
fn io_error(what: impl Into<String>, path: &Path) -> impl FnOnce(io::Error) -> CgroupError {
    let what = what.into();
    let path = path.to_path_buf();
    move |source| CgroupError::Io { what, path, source }
}

/// A cgroup version's way of creating job cgroups.
pub(crate) trait Backend: Send + Sync + fmt::Debug {
    /// 1 or 2.
    fn version(&self) -> u8;
    /// Creates the cgroup(s) of job `name` with `limits` applied. On error nothing is left.
    fn create(
        &self,
        name: &str,
        limits: &Limits,
        io_device: Option<DeviceNumber>,
    ) -> Result<Box<dyn Group>, CgroupError>;
    /// The part of `limits` this cgroup setup can enforce (all of it on v1; on v2 what
    /// the delegated controllers allow). For defaults: a limit a job asks for explicitly
    /// and that cannot be enforced fails its start instead.
    fn enforceable(&self, limits: &Limits) -> Limits;
    /// Job cgroups left under our parent by an earlier run (a crashed daemon).
    fn stale(&self) -> Vec<Box<dyn Group>>;
    /// The directories job cgroups are created in (one per hierarchy on v1).
    fn parent_paths(&self) -> Vec<PathBuf>;
    /// Whether [`create_warm`](Self::create_warm) and [`adopt`](Self::adopt) work: a warm
    /// cgroup becomes a job's by a rename, which only cgroup v1 allows.
    fn supports_warm(&self) -> bool {
        false
    }
    /// Creates cgroup `name` without limits, for a warm slot (see `warm.rs`). On error
    /// nothing is left.
    fn create_warm(&self, name: &str) -> Result<Box<dyn Group>, CgroupError> {
        Err(CgroupError::Unusable(format!(
            "cgroup v{} has no warm cgroups (cannot create {name})",
            self.version()
        )))
    }
    /// Renames warm cgroup `warm` to job cgroup `name` (its processes stay in it) and
    /// applies `limits`. On a failed rename `warm` is left as it was; on a failed limit
    /// the cgroup is `name` and the caller destroys it.
    fn adopt(
        &self,
        warm: &str,
        name: &str,
        limits: &Limits,
        io_device: Option<DeviceNumber>,
    ) -> Result<Box<dyn Group>, CgroupError> {
        let _ = (limits, io_device);
        Err(CgroupError::Unusable(format!(
            "cgroup v{} cannot rename {warm} to {name}",
            self.version()
        )))
    }
}

/// One job's cgroup (one directory per hierarchy on v1).
pub(crate) trait Group: Send + Sync + fmt::Debug {
    /// `cgroup.procs` of every directory, opened write-only and close-on-exec, for the
    /// child to join before exec.
    fn procs_files(&self) -> &[OwnedFd];
    /// The cgroup's directory, opened for `clone3(CLONE_INTO_CGROUP)`: a child born inside
    /// it needs no migration (cgroup v2 only; `None` on v1, where a process is in one
    /// cgroup per hierarchy).
    fn clone_target(&self) -> Option<&OwnedFd> {
        None
    }
    /// The directories, for diagnostics and tests.
    fn paths(&self) -> Vec<PathBuf>;
    /// SIGKILLs every process in the cgroup (v2 `cgroup.kill`; otherwise freeze, kill each
    /// pid, thaw — frozen processes cannot exit, so no pid is recycled under us).
    fn kill_all(&self) -> io::Result<()>;
    /// True when no process is left.
    fn is_empty(&self) -> io::Result<bool>;
    /// Removes the (empty) directories.
    fn remove(&self) -> io::Result<()>;
    /// Current usage.
    fn usage(&self) -> ResourceUsage;
}

/// The cgroup of a job from an earlier run of the daemon: long gone, nothing to do.
#[derive(Debug)]
pub(crate) struct Detached;

impl Group for Detached {
    fn procs_files(&self) -> &[OwnedFd] {
        &[]
    }
    fn paths(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    fn kill_all(&self) -> io::Result<()> {
        Ok(())
    }
    fn is_empty(&self) -> io::Result<bool> {
        Ok(true)
    }
    fn remove(&self) -> io::Result<()> {
        Ok(())
    }
    fn usage(&self) -> ResourceUsage {
        ResourceUsage::default()
    }
}

/// Kills everything in `group`, waits until it is empty (bounded), removes it. The one
/// way a job cgroup is emptied and removed; async callers run it on the blocking pool
/// ([`destroy`]).
pub(crate) fn destroy_blocking(group: &dyn Group) -> io::Result<()> {
    let mut delay = Duration::from_millis(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if group.is_empty()? {
            break;
        }
        group.kill_all()?;
        if std::time::Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "cgroup {:?} still has processes after SIGKILL",
                    group.paths()
                ),
            ));
        }
        // The kernel finishes tearing processes down asynchronously; there is no
        // notification on v1, so back off briefly and look again.
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
    let mut tries = 0;
    loop {
        match group.remove() {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// [`destroy_blocking`] on the blocking pool.
pub(crate) async fn destroy(group: std::sync::Arc<dyn Group>) -> io::Result<()> {
    tokio::task::spawn_blocking(move || destroy_blocking(group.as_ref()))
        .await
        .map_err(io::Error::other)?
}

/// Detects the host's cgroup setup and returns the backend for `version`.
pub(crate) fn backend(
    version: CgroupVersion,
    parent: &str,
) -> Result<Box<dyn Backend>, CgroupError> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(io_error("read", Path::new("/proc/self/mountinfo")))?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(io_error("read", Path::new("/proc/self/cgroup")))?;
    let unified_root = mount_points(&mounts, "cgroup2")
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p == Path::new("/sys/fs/cgroup"));
    let use_v2 = match version {
        CgroupVersion::V2 => true,
        CgroupVersion::V1 => false,
        CgroupVersion::Auto => unified_root.is_some(),
    };
    if use_v2 {
        Ok(Box::new(v2::V2::detect(&mounts, &own, parent)?))
    } else {
        Ok(Box::new(v1::V1::detect(&mounts, &own, parent)?))
    }
}

/// `(mount point, super options)` of every mount of filesystem type `fstype`.
fn mount_points(mountinfo: &str, fstype: &str) -> Vec<(PathBuf, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            (right.next()? == fstype).then(|| {
                let _source = right.next();
                let options = right.next().unwrap_or("").to_string();
                (PathBuf::from(unescape_mount_path(mount_point)), options)
            })
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space, …).
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves the whole disk backing `path`'s filesystem (a partition maps to its disk:
/// throttling applies to disks).
pub(crate) fn block_device_of(path: &Path) -> Result<DeviceNumber, CgroupError> {
    let meta = std::fs::metadata(path).map_err(io_error("stat", path))?;
    let dev = std::os::unix::fs::MetadataExt::dev(&meta);
    let number = DeviceNumber {
        major: libc::major(dev),
        minor: libc::minor(dev),
    };
    disk_of(number).map_err(|why| {
        CgroupError::NoBlockDevice(format!(
            "disk IO limits need the block device under {}, but it is on device {number}, {why}; \
             set the IO device explicitly in the configuration",
            path.display()
        ))
    })
}

/// Resolves an explicitly configured device node (e.g. `/dev/vda`) to its disk.
pub(crate) fn block_device_node(node: &Path) -> Result<DeviceNumber, CgroupError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(node).map_err(io_error("IO device", node))?;
    if !meta.file_type().is_block_device() {
        return Err(CgroupError::NoBlockDevice(format!(
            "IO device {} is not a block device",
            node.display()
        )));
    }
    let number = DeviceNumber {
        major: libc::major(meta.rdev()),
        minor: libc::minor(meta.rdev()),
    };
    disk_of(number)
        .map_err(|why| CgroupError::NoBlockDevice(format!("IO device {}: {why}", node.display())))
}

fn disk_of(number: DeviceNumber) -> Result<DeviceNumber, String> {
    let sys = PathBuf::from(format!("/sys/dev/block/{number}"));
    if !sys.exists() {
        return Err(
            "which is not a block device (e.g. overlay, tmpfs or a network filesystem)".into(),
        );
    }
    if !sys.join("partition").exists() {
        return Ok(number);
    }
    let real =
        std::fs::canonicalize(&sys).map_err(|e| format!("resolve {}: {e}", sys.display()))?;
    let parent = real
        .parent()
        .ok_or_else(|| format!("partition {} has no parent disk", real.display()))?;
    let text = std::fs::read_to_string(parent.join("dev"))
        .map_err(|e| format!("read {}/dev: {e}", parent.display()))?;
    parse_device(text.trim()).ok_or_else(|| format!("bad device number {text:?}"))
}

fn parse_device(s: &str) -> Option<DeviceNumber> {
    let (major, minor) = s.split_once(':')?;
    Some(DeviceNumber {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    })
}

/// Reads a small cgroup file.
fn read(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path)
}

/// Writes a cgroup file, naming the file and value in the error.
fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    std::fs::write(&path, value).map_err(io_error(format!("write {value:?} to"), &path))
}

/// Value of `key` in a flat-keyed file (`key value` per line).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Opens `dir/cgroup.procs` for the child's join-before-exec write.
fn open_procs(dir: &Path) -> Result<OwnedFd, CgroupError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join("cgroup.procs"))
        .map(OwnedFd::from)
        .map_err(io_error("open", &dir.join("cgroup.procs")))
}

/// Pids listed in `dir/cgroup.procs`.
fn pids(dir: &Path) -> io::Result<Vec<i32>> {
    Ok(read(&dir.join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Creates a job directory, removing it again if a later step fails.
fn make_dir(dir: &Path) -> Result<(), CgroupError> {
    std::fs::create_dir(dir).map_err(io_error("create cgroup", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_parsing() {
        let info = "30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n\
                    35 25 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                    36 25 0:32 / /mnt/with\\040space rw - cgroup cgroup rw,cpu,cpuacct\n";
        let v1 = mount_points(info, "cgroup");
        assert_eq!(v1[0], ("/sys/fs/cgroup/memory".into(), "rw,memory".into()));
        assert_eq!(v1[1].0, PathBuf::from("/mnt/with space"));
        assert_eq!(
            mount_points(info, "cgroup2")[0].0,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
    }

    #[test]
    fn keyed_files() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(text, "oom_kill"), Some(3));
        assert_eq!(keyed(text, "missing"), None);
    }
}
