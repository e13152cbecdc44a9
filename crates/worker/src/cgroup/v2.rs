//! cgroup v2: one unified hierarchy. Jobs go to `<own>/<parent>/<id>`.
//!
//! v2 forbids processes in a cgroup whose controllers are enabled for its children ("no
//! internal processes"), except at the root. So before enabling controllers in the
//! daemon's own cgroup we move the processes living there into a leaf `<own>/daemon`.

use super::{
    Backend, CgroupError, DeviceNumber, Group, INIT_PROCESSES, Limits, ResourceUsage, io_error,
    keyed, make_dir, mount_points, open_procs, pids, read, write,
};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// CFS period used for CPU quotas.
const CPU_PERIOD_US: u64 = 100_000;

/// Controllers we enable for job cgroups when the host delegates them.
const CONTROLLERS: [&str; 4] = ["cpu", "memory", "pids", "io"];

#[derive(Debug)]
pub(crate) struct V2 {
    /// The daemon's own cgroup directory.
    own: PathBuf,
    /// `<own>/<parent>`, where job cgroups are created.
    parent: PathBuf,
    /// Controllers enabled in `parent`'s `cgroup.subtree_control`, once set up.
    enabled: Mutex<Option<Vec<String>>>,
}

impl V2 {
    pub(crate) fn detect(
        mountinfo: &str,
        own_cgroups: &str,
        parent: &str,
    ) -> Result<Self, CgroupError> {
        let mounts = mount_points(mountinfo, "cgroup2");
        let mount = mounts
            .iter()
            .map(|(p, _)| p)
            .find(|p| *p == Path::new("/sys/fs/cgroup"))
            .or_else(|| mounts.first().map(|(p, _)| p))
            .ok_or_else(|| {
                CgroupError::Unusable(
                    "no cgroup2 filesystem is mounted (looked in /proc/self/mountinfo)".into(),
                )
            })?;
        let own = own_cgroups
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| {
                CgroupError::Unusable("/proc/self/cgroup has no cgroup v2 entry (0::)".into())
            })?;
        // A daemon already moved into its `daemon` leaf by an earlier start keeps using
        // the cgroup above it.
        let own = own.trim().trim_end_matches("/daemon");
        let own = mount.join(own.trim_start_matches('/'));
        Ok(Self {
            parent: own.join(parent),
            own,
            enabled: Mutex::new(None),
        })
    }

    /// Enables the available controllers for `<own>` and `<own>/<parent>` (once).
    fn setup(&self) -> Result<Vec<String>, CgroupError> {
        let mut enabled = self.enabled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = enabled.as_ref() {
            return Ok(e.clone());
        }
        let controllers = self.own.join("cgroup.controllers");
        let available = read(&controllers).map_err(io_error("read", &controllers))?;
        let wanted: Vec<String> = CONTROLLERS
            .iter()
            .filter(|c| available.split_whitespace().any(|a| a == **c))
            .map(|c| c.to_string())
            .collect();
        if !wanted.is_empty() {
            let line = wanted
                .iter()
                .map(|c| format!("+{c}"))
                .collect::<Vec<_>>()
                .join(" ");
            let subtree = self.own.join("cgroup.subtree_control");
            if let Err(e) = std::fs::write(&subtree, &line) {
                if e.raw_os_error() != Some(libc::EBUSY) {
                    return Err(io_error(
                        format!("enable controllers ({line}) in"),
                        &subtree,
                    )(e));
                }
                // Processes live in our own cgroup: move them into a leaf first.
                let leaf = self.own.join("daemon");
                if !leaf.exists() {
                    make_dir(&leaf)?;
                }
                for pid in pids(&self.own).map_err(io_error("list", &self.own))? {
                    // A process may exit meanwhile; that is fine.
                    let _ = std::fs::write(leaf.join("cgroup.procs"), pid.to_string());
                }
                write(&self.own, "cgroup.subtree_control", &line)?;
            }
            if !self.parent.exists() {
                make_dir(&self.parent)?;
            }
            write(&self.parent, "cgroup.subtree_control", &line)?;
        } else if !self.parent.exists() {
            make_dir(&self.parent)?;
        }
        *enabled = Some(wanted.clone());
        Ok(wanted)
    }
}

impl Backend for V2 {
    fn version(&self) -> u8 {
        2
    }

    fn enforceable(&self, limits: &Limits) -> Limits {
        let enabled = self.setup().unwrap_or_default();
        let has = |c: &str| enabled.iter().any(|e| e == c);
        let mut out = limits.clone();
        if !has("cpu") {
            out.cpu = None;
        }
        if !has("memory") {
            out.memory = None;
        }
        if !has("pids") {
            out.pids = None;
        }
        if !has("io") {
            out.io_read_bps = None;
            out.io_write_bps = None;
            out.io_read_iops = None;
            out.io_write_iops = None;
        }
        out
    }

    fn create(
        &self,
        name: &str,
        limits: &Limits,
        io: Option<DeviceNumber>,
    ) -> Result<Box<dyn Group>, CgroupError> {
        let enabled = self.setup()?;
        let need = |controller: &'static str, limit: &'static str| {
            if enabled.iter().any(|c| c == controller) {
                Ok(())
            } else {
                Err(CgroupError::MissingController {
                    limit,
                    controller,
                    version: 2,
                    why: format!(
                        "is not delegated to {} (its cgroup.controllers lacks it)",
                        self.own.display()
                    ),
                })
            }
        };
        if limits.cpu.is_some() {
            need("cpu", "a CPU limit")?;
        }
        if limits.memory.is_some() {
            need("memory", "a memory limit")?;
        }
        if limits.pids.is_some() {
            need("pids", "a pids limit")?;
        }
        if limits.has_io() {
            need("io", "a disk IO limit")?;
        }
        let dir = self.parent.join(name);
        make_dir(&dir)?;
        let apply = || -> Result<(OwnedFd, OwnedFd), CgroupError> {
            if let Some(cpu) = limits.cpu {
                let quota = ((cpu * CPU_PERIOD_US as f64).round() as u64).max(1000);
                write(&dir, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
            }
            if let Some(memory) = limits.memory {
                write(&dir, "memory.max", &memory.to_string())?;
                if dir.join("memory.swap.max").exists() {
                    write(&dir, "memory.swap.max", "0")?;
                }
                // On OOM kill the whole job, not one arbitrary process of it.
                write(&dir, "memory.oom.group", "1")?;
            }
            if let Some(pids) = limits.pids {
                write(&dir, "pids.max", &(pids + INIT_PROCESSES).to_string())?;
            }
            if let Some(dev) = io {
                let mut line = dev.to_string();
                for (key, value) in [
                    ("rbps", limits.io_read_bps),
                    ("wbps", limits.io_write_bps),
                    ("riops", limits.io_read_iops),
                    ("wiops", limits.io_write_iops),
                ] {
                    if let Some(v) = value {
                        line.push_str(&format!(" {key}={v}"));
                    }
                }
                write(&dir, "io.max", &line)?;
            }
            let target = std::fs::File::open(&dir)
                .map(OwnedFd::from)
                .map_err(io_error("open", &dir))?;
            Ok((open_procs(&dir)?, target))
        };
        match apply() {
            Ok((procs, target)) => Ok(Box::new(V2Group {
                dir,
                procs: vec![procs],
                target: Some(target),
            })),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    fn parent_paths(&self) -> Vec<PathBuf> {
        vec![self.parent.clone()]
    }

    fn stale(&self) -> Vec<Box<dyn Group>> {
        let Ok(entries) = std::fs::read_dir(&self.parent) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| {
                Box::new(V2Group {
                    dir: e.path(),
                    procs: Vec::new(),
                    target: None,
                }) as Box<dyn Group>
            })
            .collect()
    }
}

#[derive(Debug)]
struct V2Group {
    /// The job's cgroup directory.
    dir: PathBuf,
    /// Its `cgroup.procs`, opened for the join before exec (empty for stale groups).
    procs: Vec<OwnedFd>,
    /// Its directory (read-only, close-on-exec), for `clone3(CLONE_INTO_CGROUP)`.
    target: Option<OwnedFd>,
}

impl V2Group {
    fn freeze(&self, frozen: bool) -> io::Result<()> {
        std::fs::write(
            self.dir.join("cgroup.freeze"),
            if frozen { "1" } else { "0" },
        )?;
        if frozen {
            for _ in 0..1000 {
                if keyed(&read(&self.dir.join("cgroup.events"))?, "frozen") == Some(1) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
        Ok(())
    }
}

impl Group for V2Group {
    fn procs_files(&self) -> &[OwnedFd] {
        &self.procs
    }

    fn clone_target(&self) -> Option<&OwnedFd> {
        self.target.as_ref()
    }

    fn paths(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn kill_all(&self) -> io::Result<()> {
        let kill = self.dir.join("cgroup.kill");
        if kill.exists() {
            return std::fs::write(kill, "1");
        }
        // Kernels before 5.14: freeze, kill each pid, thaw.
        self.freeze(true)?;
        for pid in pids(&self.dir)? {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        self.freeze(false)
    }

    fn is_empty(&self) -> io::Result<bool> {
        match read(&self.dir.join("cgroup.events")) {
            Ok(events) => Ok(keyed(&events, "populated") == Some(0)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn remove(&self) -> io::Result<()> {
        match std::fs::remove_dir(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn usage(&self) -> ResourceUsage {
        let mut usage = ResourceUsage::default();
        if let Ok(stat) = read(&self.dir.join("cpu.stat")) {
            usage.cpu_usec = keyed(&stat, "usage_usec").unwrap_or(0);
            usage.cpu_user_usec = keyed(&stat, "user_usec").unwrap_or(0);
            usage.cpu_system_usec = keyed(&stat, "system_usec").unwrap_or(0);
        }
        usage.memory_peak_bytes = read(&self.dir.join("memory.peak"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if let Ok(events) = read(&self.dir.join("memory.events")) {
            usage.oom_kills = keyed(&events, "oom_kill").unwrap_or(0);
        }
        if let Ok(stat) = read(&self.dir.join("io.stat")) {
            let (mut r, mut w) = (0u64, 0u64);
            for field in stat.split_whitespace() {
                if let Some(v) = field.strip_prefix("rbytes=") {
                    r += v.parse::<u64>().unwrap_or(0);
                } else if let Some(v) = field.strip_prefix("wbytes=") {
                    w += v.parse::<u64>().unwrap_or(0);
                }
            }
            usage.io_read_bytes = Some(r);
            usage.io_write_bytes = Some(w);
        }
        usage
    }
}
