//! Warm slots: the cgroup migration kept off the start path (cgroup v1).
//!
//! Moving a process into a cgroup (a write to `cgroup.procs`) takes the kernel's
//! threadgroup lock for writing, which waits for an RCU grace period: ~5–20 ms on a 2-core
//! VM, most of a start. So the pool keeps a few **slots** ready: a cgroup `warm-<uuid>` in
//! every hierarchy, without limits, and a `tandem-init` already inside it (spawned with
//! [`WARM_ARG`](crate::init::WARM_ARG); its join happened between its fork and exec, on a
//! blocking thread, off any start). A start takes a slot, renames its cgroup to the job id
//! (cgroup v1 renames within a parent; the process stays in it), writes the job's limits,
//! then sends the waiting init the job's descriptors: it becomes the job's monitor, so no
//! process of the job runs before its limits are set. Once the start is done, the pool
//! refills (a refill forks the daemon and migrates a process: not while a start runs).
//!
//! Without a slot (none left, or `warm_slots = 0`) a start creates its cgroup and joins it
//! before exec, as before. cgroup v2 has no slots (it cannot rename a cgroup) and needs
//! none: its starts clone the monitor straight into the job's cgroup
//! (`sys::spawn_into_cgroup`), with no migration.
//!
//! Each slot also has a directory `<state>/warm/<name>` with `sandbox/` inside, renamed to
//! the job's directory when taken (creating inodes on ext4 costs more than renaming).
//! Crash safety: that directory marks the slot as this manager's; after a crash the
//! next manager kills and removes the `warm-*` cgroups that have a marker (see
//! `recovery.rs`). A waiting init also exits by itself when its socket reaches EOF (the
//! daemon is gone). A crash between a taken slot's two renames (directory, then cgroup)
//! leaves that slot's empty cgroup behind, unrecognised.

use crate::cgroup::{self, Backend, Group};
use crate::manager::InitProgram;
use crate::sys::{self, InitFds};
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::task::JoinHandle;

/// Prefix of a warm slot's cgroup name (job cgroups are named by job id).
pub(crate) const WARM_PREFIX: &str = "warm-";

/// A slot: a `tandem-init` waiting inside cgroup `name`.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The cgroup's name, `warm-<uuid>`, also its marker's.
    pub(crate) name: String,
    /// The waiting init (the job's monitor once it has its descriptors).
    pub(crate) child: tokio::process::Child,
    /// Our end of its socket: the job's descriptors go here.
    pub(crate) socket: OwnedFd,
    /// The cgroup under its warm name.
    group: Box<dyn Group>,
}

/// The ready slots and their filler.
#[derive(Debug)]
pub(crate) struct WarmPool {
    /// Creates the warm cgroups and renames them.
    backend: Arc<dyn Backend>,
    /// How to start `tandem-init`.
    init: InitProgram,
    /// `<state>/warm`: a marker directory per slot.
    markers: PathBuf,
    /// How many slots to keep ready.
    target: usize,
    /// Ready slots, the running filler, and whether the pool is closed.
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    slots: Vec<Slot>,
    filler: Option<JoinHandle<()>>,
    closed: bool,
}

impl WarmPool {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        init: InitProgram,
        markers: PathBuf,
        target: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            backend,
            init,
            markers,
            target,
            state: Mutex::new(PoolState::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A ready slot, if any. The caller starts the refill ([`refill`](Self::refill)) once
    /// its start is done: a refill forks the daemon and migrates a process, which would
    /// compete with the start for the CPU.
    pub(crate) fn take(&self) -> Option<Slot> {
        self.state().slots.pop()
    }

    /// Starts filling the pool up to its target on the blocking pool, unless a filler
    /// runs, the pool is closed or full, or there is no runtime to run it on.
    pub(crate) fn refill(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut state = self.state();
        let busy = state.filler.as_ref().is_some_and(|f| !f.is_finished());
        if state.closed || busy || state.slots.len() >= self.target {
            return;
        }
        let pool = Arc::clone(self);
        state.filler = Some(runtime.spawn_blocking(move || pool.fill()));
    }

    /// Waits for the running filler, if any: then the pool is full (unless making a slot
    /// failed, which is logged).
    pub(crate) async fn wait_filled(&self) -> usize {
        let filler = self.state().filler.take();
        if let Some(filler) = filler {
            let _ = filler.await;
        }
        self.state().slots.len()
    }

    fn fill(&self) {
        loop {
            {
                let state = self.state();
                if state.closed || state.slots.len() >= self.target {
                    return;
                }
            }
            match self.make_slot() {
                Ok(slot) => {
                    let mut state = self.state();
                    if state.closed {
                        drop(state);
                        self.discard_blocking(slot);
                        return;
                    }
                    state.slots.push(slot);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prepare a warm slot; starts join their cgroups themselves");
                    return;
                }
            }
        }
    }

    /// Creates a warm cgroup and starts a waiting init in it (blocks for the join).
    fn make_slot(&self) -> Result<Slot, String> {
        let name = format!("{WARM_PREFIX}{}", uuid::Uuid::new_v4());
        let marker = self.markers.join(&name);
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&marker)
            .and_then(|()| std::fs::create_dir(marker.join("sandbox")));
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&marker);
            return Err(format!("create {}: {e}", marker.display()));
        }
        let group = match self.backend.create_warm(&name) {
            Ok(g) => g,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&marker);
                return Err(e.to_string());
            }
        };
        let spawned = (|| {
            let (ours, theirs) = sys::event_socket()?;
            let mut cmd = tokio::process::Command::new(&self.init.program);
            cmd.args(&self.init.args)
                .arg(crate::init::WARM_ARG)
                .env_clear()
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true);
            let fds = InitFds::warm(&theirs)?;
            fds.install(&mut cmd, group.procs_files());
            let child = cmd.spawn();
            drop(cmd);
            drop((fds, theirs));
            Ok::<_, std::io::Error>((child?, ours))
        })();
        match spawned {
            Ok((child, socket)) => Ok(Slot {
                name,
                child,
                socket,
                group,
            }),
            Err(e) => {
                let _ = cgroup::destroy_blocking(group.as_ref());
                let _ = std::fs::remove_dir_all(&marker);
                Err(format!("start a warm init: {e}"))
            }
        }
    }

    /// Renames the slot's marker, a job directory skeleton (`sandbox/` inside), to the
    /// job's directory `dir`.
    pub(crate) fn adopt_dir(&self, slot: &Slot, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::rename(self.markers.join(&slot.name), dir)
    }

    /// Kills a slot's init and removes its cgroup and marker (blocking).
    fn discard_blocking(&self, mut slot: Slot) {
        let _ = slot.child.start_kill();
        if let Err(e) = cgroup::destroy_blocking(slot.group.as_ref()) {
            tracing::warn!(cgroup = ?slot.group.paths(), error = %e, "cannot remove a warm cgroup");
        }
        let _ = std::fs::remove_dir_all(self.markers.join(&slot.name));
    }

    /// [`discard_blocking`](Self::discard_blocking) on the blocking pool.
    pub(crate) async fn discard(self: &Arc<Self>, slot: Slot) {
        let pool = Arc::clone(self);
        let _ = tokio::task::spawn_blocking(move || pool.discard_blocking(slot)).await;
    }

    /// Closes the pool: no more refills; waits for the filler and discards every slot.
    pub(crate) async fn close(self: &Arc<Self>) {
        let filler = {
            let mut state = self.state();
            state.closed = true;
            state.filler.take()
        };
        if let Some(filler) = filler {
            let _ = filler.await;
        }
        let slots = std::mem::take(&mut self.state().slots);
        for slot in slots {
            self.discard(slot).await;
        }
    }

    /// Closes the pool and SIGKILLs every waiting init without waiting (their cgroups are
    /// left for `remove_cgroups_blocking`, like the jobs' after `abort_all`).
    pub(crate) fn abort(&self) {
        let slots = {
            let mut state = self.state();
            state.closed = true;
            std::mem::take(&mut state.slots)
        };
        for mut slot in slots {
            let _ = slot.child.start_kill();
        }
    }
}

impl Drop for WarmPool {
    /// A manager dropped without `shutdown`: its waiting inits must not outlive it.
    fn drop(&mut self) {
        let slots = std::mem::take(&mut self.state().slots);
        for slot in slots {
            self.discard_blocking(slot);
        }
    }
}
