//! Warm pools: per task, sandboxes set up ahead of time, so that starting an instance
//! (a session) only starts the candidate's shell.
//!
//! A warm sandbox is the task's sandbox with its setup done and no shell: it belongs to
//! nobody ([`POOL_OWNER`] owns its jobs) and is not an [`Instance`](crate::Instance)
//! until [`Instances::start`] takes it, which makes it the caller's instance and starts the
//! shell on the caller's terminal size. One filler task per daemon ([`Instances::keep_warm`],
//! owned by the returned [`WarmPools`]) keeps every pool at its target: a take, a warm
//! sandbox that ends, or a retry time wakes it. It runs at most [`MAX_SETUPS_AT_ONCE`]
//! setups at once, fills every pool to one before any to two, and keeps at most
//! [`WarmSettings::max_total`] warm sandboxes in all. A setup that fails is reported on
//! the pool (see [`PoolStatus`]) and retried after a back-off that doubles from 5 s to
//! 5 min; the failed sandbox is stopped.

use crate::catalog::Catalog;
use crate::instance::{Instances, ScenarioError};
use crate::task::Task;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tandem_worker::JobId;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// Owner of the jobs of warm sandboxes (they keep it once taken; the instance has the
/// taker's name).
pub const POOL_OWNER: &str = "tandem-pool";

/// Setups the filler runs at the same time (each is a task's whole setup script).
pub const MAX_SETUPS_AT_ONCE: usize = 2;

/// First wait before a failed pool tries again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait before a failed pool tries again.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How many warm sandboxes to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmSettings {
    /// Instead of each task's own `warm` count, this many for every task (0: no pools).
    pub per_task: Option<u32>,
    /// Most warm sandboxes in all, set up or setting up (they use memory and disk).
    pub max_total: u32,
}

impl Default for WarmSettings {
    fn default() -> Self {
        Self {
            per_task: None,
            max_total: 8,
        }
    }
}

impl WarmSettings {
    /// The pool size of `task`.
    pub fn target(&self, task: &Task) -> u32 {
        self.per_task.unwrap_or(task.warm)
    }
}

/// A task's sandbox with its setup done, waiting to be taken.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The sandbox job.
    pub(crate) id: JobId,
    /// The task.
    pub(crate) task: Arc<Task>,
    /// The setup job, if the task has a setup.
    pub(crate) setup: Option<JobId>,
}

/// One task's pool.
#[derive(Debug, Default)]
struct Pool {
    /// How many to keep.
    target: u32,
    /// Set up, oldest first.
    ready: VecDeque<Prepared>,
    /// Setups running.
    starting: u32,
    /// Setups failed in a row.
    failures: u32,
    /// Why the last setup failed (cleared by a success).
    error: Option<String>,
    /// No new setup before then.
    retry_at: Option<Instant>,
}

/// What a task's pool holds, for lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolStatus {
    /// How many it keeps.
    pub target: u32,
    /// Set up and waiting.
    pub ready: u32,
    /// Being set up.
    pub starting: u32,
    /// Why the last setup failed, while the pool backs off.
    pub error: Option<String>,
    /// Setups that failed in a row.
    pub failures: u32,
    /// When it tries again.
    pub retry_at: Option<SystemTime>,
}

/// Every task's pool. A std lock, never held across `.await`.
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    pools: Arc<Mutex<BTreeMap<String, Pool>>>,
    /// Wakes the filler (a take, an end). `Notify` keeps one wake-up for a filler that is
    /// busy, so none is lost.
    wake: Arc<Notify>,
    /// Bumped on every change of any pool, for those who wait for one.
    changed: Arc<watch::Sender<u64>>,
}

impl Default for Pools {
    fn default() -> Self {
        Self {
            pools: Arc::default(),
            wake: Arc::default(),
            changed: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl Pools {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Pool>> {
        self.pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tells those waiting for a change.
    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The oldest warm sandbox of `task`, if any (the filler is told to replace it).
    pub(crate) fn take(&self, task: &str) -> Option<Prepared> {
        let taken = self.lock().get_mut(task)?.ready.pop_front();
        if taken.is_some() {
            self.wake.notify_one();
            self.bump();
        }
        taken
    }

    /// The pool of `task`, if pools are kept.
    pub(crate) fn status(&self, task: &str) -> Option<PoolStatus> {
        let pools = self.lock();
        let pool = pools.get(task)?;
        let now = Instant::now();
        Some(PoolStatus {
            target: pool.target,
            ready: pool.ready.len() as u32,
            starting: pool.starting,
            error: pool.error.clone(),
            failures: pool.failures,
            retry_at: pool
                .retry_at
                .filter(|at| *at > now)
                .map(|at| SystemTime::now() + (at - now)),
        })
    }

    /// Removes every warm sandbox (to stop them).
    fn drain(&self) -> Vec<JobId> {
        self.lock()
            .values_mut()
            .flat_map(|p| p.ready.drain(..).map(|w| w.id).collect::<Vec<_>>())
            .collect()
    }
}

/// The daemon's warm pools: dropping this (or [`stop`](Self::stop)) ends the filler.
#[derive(Debug)]
pub struct WarmPools {
    instances: Instances,
    filler: tokio::task::JoinHandle<()>,
}

impl WarmPools {
    /// Ends the filler (setups under way are abandoned: the worker's shutdown stops their
    /// sandboxes) and stops the warm sandboxes.
    pub async fn stop(mut self) {
        self.filler.abort();
        let _ = (&mut self.filler).await;
        for id in self.instances.pools.drain() {
            let _ = self.instances.manager().stop(id, Duration::ZERO).await;
        }
    }
}

impl Drop for WarmPools {
    fn drop(&mut self) {
        self.filler.abort();
    }
}

impl Instances {
    /// Keeps sandboxes of every task of `catalog` set up ahead of time, per `settings`,
    /// for as long as the returned handle lives. Call once per daemon.
    pub fn keep_warm(&self, catalog: Arc<Catalog>, settings: WarmSettings) -> WarmPools {
        {
            let mut pools = self.pools.lock();
            for task in catalog.list() {
                pools.entry(task.name.clone()).or_default().target = settings.target(&task);
            }
        }
        let filler = tokio::spawn(fill(self.clone(), catalog, settings));
        WarmPools {
            instances: self.clone(),
            filler,
        }
    }

    /// The warm pool of `task` (`None` where no pools are kept).
    pub fn pool_status(&self, task: &str) -> Option<PoolStatus> {
        self.pools.status(task)
    }

    /// Waits until `done` holds, checking it again whenever a pool changes (for tests
    /// and tools that need a pool in a given state).
    pub async fn pools_until(&self, mut done: impl FnMut(&Self) -> bool) {
        let mut changed = self.pools.changed.subscribe();
        while !done(self) {
            // The sender lives in `self`: it cannot close while we hold `self`.
            let _ = changed.changed().await;
        }
    }

    /// A warm sandbox of `task`: the sandbox, then the setup to its end.
    async fn prepare(&self, task: Arc<Task>) -> Result<Prepared, ScenarioError> {
        let (id, setup) = self.sandbox(&task, POOL_OWNER).await?;
        self.set_up(&task, id, setup).await?;
        Ok(Prepared { id, task, setup })
    }
}

/// The filler: keeps every pool at its target until aborted. Its setups and watchers
/// live in its own `JoinSet`s, so they end with it.
async fn fill(instances: Instances, catalog: Arc<Catalog>, settings: WarmSettings) {
    let pools = instances.pools.clone();
    // Setups under way, and the task each is for (to count a panicked one back).
    let mut setups: JoinSet<Result<Prepared, ScenarioError>> = JoinSet::new();
    let mut setting_up: HashMap<tokio::task::Id, String> = HashMap::new();
    // One per warm sandbox: completes when the sandbox ends.
    let mut watchers: JoinSet<(String, JobId)> = JoinSet::new();
    loop {
        let now = Instant::now();
        let mut next_retry: Option<Instant> = None;
        {
            let mut all = pools.lock();
            let mut total: u32 = all
                .values()
                .map(|p| p.ready.len() as u32 + p.starting)
                .sum();
            // Every pool to one first, then each to its target.
            for round in [1, u32::MAX] {
                for task in catalog.list() {
                    let Some(pool) = all.get_mut(&task.name) else {
                        continue;
                    };
                    if let Some(at) = pool.retry_at {
                        if at > now {
                            next_retry = Some(next_retry.map_or(at, |n| n.min(at)));
                            continue;
                        }
                        pool.retry_at = None;
                    }
                    let want = pool.target.min(round);
                    while pool.ready.len() as u32 + pool.starting < want
                        && total < settings.max_total
                        && setups.len() < MAX_SETUPS_AT_ONCE
                    {
                        pool.starting += 1;
                        total += 1;
                        let instances = instances.clone();
                        let task = Arc::clone(&task);
                        let name = task.name.clone();
                        let handle = setups.spawn(async move { instances.prepare(task).await });
                        setting_up.insert(handle.id(), name);
                    }
                }
            }
        }
        pools.bump();
        let retry = async {
            match next_retry {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = pools.wake.notified() => {}
            () = retry => {}
            Some(done) = setups.join_next_with_id() => {
                let (id, result) = match done {
                    Ok((id, result)) => (id, result),
                    Err(e) => {
                        tracing::error!(error = %e, "a warm pool setup panicked");
                        let reason = format!("the setup task failed: {e}");
                        (e.id(), Err(ScenarioError::Internal(reason)))
                    }
                };
                let Some(task) = setting_up.remove(&id) else {
                    continue;
                };
                let mut all = pools.lock();
                let pool = all.entry(task.clone()).or_default();
                pool.starting = pool.starting.saturating_sub(1);
                match result {
                    Ok(prepared) => {
                        pool.failures = 0;
                        pool.error = None;
                        let (manager, id) = (instances.manager().clone(), prepared.id);
                        watchers.spawn(async move {
                            let _ = manager.wait(id).await;
                            (task, id)
                        });
                        tracing::info!(sandbox = %prepared.id, task = %prepared.task.name, "warm sandbox ready");
                        pool.ready.push_back(prepared);
                    }
                    Err(e) => {
                        pool.failures += 1;
                        let wait = FIRST_BACKOFF
                            .saturating_mul(1 << (pool.failures - 1).min(10))
                            .min(MAX_BACKOFF);
                        let reason = match &e {
                            ScenarioError::SetupFailed { reason, .. } => {
                                format!("setup failed: {reason}")
                            }
                            other => other.to_string(),
                        };
                        tracing::warn!(%task, error = %reason, retry_in = ?wait, "warm pool: no sandbox");
                        pool.error = Some(reason);
                        pool.retry_at = Some(Instant::now() + wait);
                    }
                }
            }
            Some(Ok((task, id))) = watchers.join_next() => {
                let mut all = pools.lock();
                if let Some(pool) = all.get_mut(&task)
                    && let Some(at) = pool.ready.iter().position(|p| p.id == id)
                {
                    pool.ready.remove(at);
                    tracing::warn!(sandbox = %id, %task, "a warm sandbox ended before it was used");
                }
            }
        }
    }
}
