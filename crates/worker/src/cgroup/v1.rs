//! cgroup v1: one directory per hierarchy (cpu, cpuacct, memory, pids, blkio, freezer; some
//! may be co-mounted), each nested under the daemon's own cgroup *in that hierarchy*.

use super::{
    Backend, CgroupError, DeviceNumber, Group, INIT_PROCESSES, Limits, ResourceUsage, io_error,
    keyed, make_dir, mount_points, open_procs, pids, read, write,
};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Controllers we use. `freezer` makes kills race-free; `cpuacct` gives usage.
const CONTROLLERS: [&str; 6] = ["cpu", "cpuacct", "memory", "pids", "blkio", "freezer"];

/// CFS period used for CPU quotas.
const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug)]
pub(crate) struct V1 {
    /// Per controller: the directory jobs are created in, `<mount>/<own>/<parent>`.
    /// Co-mounted controllers share a directory.
    parents: Vec<(&'static str, PathBuf)>,
}

impl V1 {
    pub(crate) fn detect(
        mountinfo: &str,
        own_cgroups: &str,
        parent: &str,
    ) -> Result<Self, CgroupError> {
        let mounts = mount_points(mountinfo, "cgroup");
        let mut parents = Vec::new();
        for controller in CONTROLLERS {
            let Some((mount, _)) = mounts
                .iter()
                .find(|(_, opts)| opts.split(',').any(|o| o == controller))
            else {
                continue;
            };
            let own = own_cgroups
                .lines()
                .find_map(|l| {
                    let mut f = l.splitn(3, ':');
                    let _id = f.next()?;
                    let ctrls = f.next()?;
                    let path = f.next()?;
                    ctrls.split(',').any(|c| c == controller).then_some(path)
                })
                .unwrap_or("/");
            let dir = mount.join(own.trim_start_matches('/')).join(parent);
            parents.push((controller, dir));
        }
        if parents.is_empty() {
            return Err(CgroupError::Unusable(
                "no cgroup v1 hierarchy is mounted (looked in /proc/self/mountinfo)".into(),
            ));
        }
        Ok(Self { parents })
    }

    fn parent_of(&self, controller: &str) -> Option<&Path> {
        self.parents
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, p)| p.as_path())
    }

    fn require(&self, controller: &'static str, limit: &'static str) -> Result<(), CgroupError> {
        if self.parent_of(controller).is_none() {
            return Err(CgroupError::MissingController {
                limit,
                controller,
                version: 1,
                why: "is not mounted".into(),
            });
        }
        Ok(())
    }

    /// Unique directories (co-mounted controllers share one).
    fn unique_parents(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (_, p) in &self.parents {
            if !dirs.contains(p) {
                dirs.push(p.clone());
            }
        }
        dirs
    }

    fn group(&self, name: &str) -> V1Group {
        let dir_of = |c: &str| self.parent_of(c).map(|p| p.join(name));
        V1Group {
            dirs: self.unique_parents().iter().map(|p| p.join(name)).collect(),
            procs: Vec::new(),
            cpuacct: dir_of("cpuacct"),
            memory: dir_of("memory"),
            blkio: dir_of("blkio"),
            freezer: dir_of("freezer"),
        }
    }

    /// Fails if `limits` need a controller that is not mounted.
    fn check(&self, limits: &Limits) -> Result<(), CgroupError> {
        if limits.cpu.is_some() {
            self.require("cpu", "a CPU limit")?;
        }
        if limits.memory.is_some() {
            self.require("memory", "a memory limit")?;
        }
        if limits.pids.is_some() {
            self.require("pids", "a pids limit")?;
        }
        if limits.has_io() {
            self.require("blkio", "a disk IO limit")?;
        }
        Ok(())
    }

    /// Creates `name` in every hierarchy, without limits, with its `cgroup.procs` open.
    /// On error nothing is left.
    fn make(&self, name: &str) -> Result<V1Group, CgroupError> {
        let mut group = self.group(name);
        for parent in self.unique_parents() {
            std::fs::create_dir_all(&parent).map_err(io_error("create cgroup", &parent))?;
        }
        let mut made = Vec::new();
        let result = (|| {
            for dir in &group.dirs {
                make_dir(dir)?;
                made.push(dir.clone());
            }
            for dir in &group.dirs {
                group.procs.push(open_procs(dir)?);
            }
            Ok(())
        })();
        if let Err(e) = result {
            for dir in made.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
            return Err(e);
        }
        Ok(group)
    }

    fn apply(
        &self,
        name: &str,
        limits: &Limits,
        io: Option<DeviceNumber>,
    ) -> Result<(), CgroupError> {
        let dir = |c: &str| self.parent_of(c).map(|p| p.join(name));
        if let (Some(cpu), Some(d)) = (limits.cpu, dir("cpu")) {
            let quota = ((cpu * CPU_PERIOD_US as f64).round() as u64).max(1000);
            write(&d, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
            write(&d, "cpu.cfs_quota_us", &quota.to_string())?;
        }
        if let (Some(memory), Some(d)) = (limits.memory, dir("memory")) {
            write(&d, "memory.limit_in_bytes", &memory.to_string())?;
            if d.join("memory.memsw.limit_in_bytes").exists() {
                // memory+swap = memory: no swap at all beyond the limit.
                write(&d, "memory.memsw.limit_in_bytes", &memory.to_string())?;
            } else {
                // No swap accounting in this kernel: at least do not prefer swapping.
                write(&d, "memory.swappiness", "0")?;
            }
        }
        if let (Some(pids), Some(d)) = (limits.pids, dir("pids")) {
            write(&d, "pids.max", &(pids + INIT_PROCESSES).to_string())?;
        }
        if let (Some(dev), Some(d)) = (io, dir("blkio")) {
            for (file, value) in [
                ("blkio.throttle.read_bps_device", limits.io_read_bps),
                ("blkio.throttle.write_bps_device", limits.io_write_bps),
                ("blkio.throttle.read_iops_device", limits.io_read_iops),
                ("blkio.throttle.write_iops_device", limits.io_write_iops),
            ] {
                if let Some(v) = value {
                    write(&d, file, &format!("{dev} {v}"))?;
                }
            }
        }
        Ok(())
    }
}

impl Backend for V1 {
    fn enforceable(&self, limits: &Limits) -> Limits {
        limits.clone()
    }

    fn version(&self) -> u8 {
        1
    }

    fn create(
        &self,
        name: &str,
        limits: &Limits,
        io: Option<DeviceNumber>,
    ) -> Result<Box<dyn Group>, CgroupError> {
        self.check(limits)?;
        let group = self.make(name)?;
        if let Err(e) = self.apply(name, limits, io) {
            let _ = group.remove();
            return Err(e);
        }
        Ok(Box::new(group))
    }

    fn supports_warm(&self) -> bool {
        true
    }

    fn create_warm(&self, name: &str) -> Result<Box<dyn Group>, CgroupError> {
        Ok(Box::new(self.make(name)?))
    }

    fn adopt(
        &self,
        warm: &str,
        name: &str,
        limits: &Limits,
        io: Option<DeviceNumber>,
    ) -> Result<Box<dyn Group>, CgroupError> {
        self.check(limits)?;
        let mut renamed: Vec<PathBuf> = Vec::new();
        for parent in self.unique_parents() {
            let (from, to) = (parent.join(warm), parent.join(name));
            if let Err(e) = std::fs::rename(&from, &to) {
                for parent in renamed.iter().rev() {
                    let _ = std::fs::rename(parent.join(name), parent.join(warm));
                }
                return Err(io_error(format!("rename to {}", to.display()), &from)(e));
            }
            renamed.push(parent);
        }
        let mut group = self.group(name);
        self.apply(name, limits, io)?;
        for dir in &group.dirs {
            group.procs.push(open_procs(dir)?);
        }
        Ok(Box::new(group))
    }

    fn parent_paths(&self) -> Vec<PathBuf> {
        self.unique_parents()
    }

    fn stale(&self) -> Vec<Box<dyn Group>> {
        let mut names: Vec<String> = Vec::new();
        for parent in self.unique_parents() {
            let Ok(entries) = std::fs::read_dir(&parent) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir())
                    && let Some(name) = entry.file_name().to_str()
                    && !names.iter().any(|n| n == name)
                {
                    names.push(name.to_string());
                }
            }
        }
        names
            .iter()
            .map(|n| {
                let mut g = self.group(n);
                g.dirs.retain(|d| d.exists());
                Box::new(g) as Box<dyn Group>
            })
            .collect()
    }
}

#[derive(Debug)]
struct V1Group {
    /// One directory per unique hierarchy.
    dirs: Vec<PathBuf>,
    /// Their `cgroup.procs`, opened for the join before exec.
    procs: Vec<OwnedFd>,
    /// Directory in the cpuacct hierarchy (usage).
    cpuacct: Option<PathBuf>,
    /// Directory in the memory hierarchy (peak, OOM kills).
    memory: Option<PathBuf>,
    /// Directory in the blkio hierarchy (IO bytes).
    blkio: Option<PathBuf>,
    /// Directory in the freezer hierarchy (race-free kill).
    freezer: Option<PathBuf>,
}

impl V1Group {
    /// Every pid in any of the job's directories.
    fn all_pids(&self) -> io::Result<Vec<i32>> {
        let mut all = Vec::new();
        for dir in &self.dirs {
            match pids(dir) {
                Ok(p) => all.extend(p),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    fn freeze(&self, dir: &Path) -> io::Result<()> {
        std::fs::write(dir.join("freezer.state"), "FROZEN")?;
        // Freezing completes asynchronously; the state reads FREEZING until then.
        for _ in 0..1000 {
            if read(&dir.join("freezer.state"))?.trim() == "FROZEN" {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        Ok(())
    }
}

impl Group for V1Group {
    fn procs_files(&self) -> &[OwnedFd] {
        &self.procs
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.dirs.clone()
    }

    fn kill_all(&self) -> io::Result<()> {
        let frozen = match &self.freezer {
            Some(dir) if dir.exists() => {
                self.freeze(dir)?;
                Some(dir)
            }
            _ => None,
        };
        for pid in self.all_pids()? {
            // Frozen processes cannot exit, so these pids cannot be recycled meanwhile.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(dir) = frozen {
            std::fs::write(dir.join("freezer.state"), "THAWED")?;
        }
        Ok(())
    }

    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.all_pids()?.is_empty())
    }

    fn remove(&self) -> io::Result<()> {
        for dir in &self.dirs {
            match std::fs::remove_dir(dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn usage(&self) -> ResourceUsage {
        let mut usage = ResourceUsage::default();
        if let Some(d) = &self.cpuacct {
            if let Ok(ns) = read(&d.join("cpuacct.usage")) {
                usage.cpu_usec = ns.trim().parse::<u64>().unwrap_or(0) / 1000;
            }
            if let Ok(stat) = read(&d.join("cpuacct.stat")) {
                let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                    .ok()
                    .flatten()
                    .filter(|&t| t > 0)
                    .unwrap_or(100) as u64;
                usage.cpu_user_usec = keyed(&stat, "user").unwrap_or(0) * 1_000_000 / hz;
                usage.cpu_system_usec = keyed(&stat, "system").unwrap_or(0) * 1_000_000 / hz;
            }
        }
        if let Some(d) = &self.memory {
            usage.memory_peak_bytes = read(&d.join("memory.max_usage_in_bytes"))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            usage.oom_kills = read(&d.join("memory.oom_control"))
                .ok()
                .and_then(|s| keyed(&s, "oom_kill"))
                .unwrap_or(0);
        }
        if let Some(d) = &self.blkio
            && let Ok(text) = read(&d.join("blkio.throttle.io_service_bytes"))
        {
            let (mut r, mut w) = (0u64, 0u64);
            for line in text.lines() {
                let mut f = line.split_whitespace();
                let (Some(dev), Some(op), Some(n)) = (f.next(), f.next(), f.next()) else {
                    continue;
                };
                if dev == "Total" {
                    continue;
                }
                let n: u64 = n.parse().unwrap_or(0);
                match op {
                    "Read" => r += n,
                    "Write" => w += n,
                    _ => {}
                }
            }
            usage.io_read_bytes = Some(r);
            usage.io_write_bytes = Some(w);
        }
        usage
    }
}
