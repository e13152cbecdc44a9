//! A running job's supervisor and its helpers.
//!
//! Per job there are three tasks, all owned by the job's supervisor:
//! * the **supervisor** owns the monitor process (the only waiter on it), turns stop
//!   requests into control bytes with a grace timer, and, once the monitor has exited,
//!   removes the job's cgroup and sandbox directories and records the final state
//!   (decided by [`final_state`]);
//! * the **output pump** copies the pipe or PTY master to the terminal consumer, if any,
//!   and into the output log;
//! * the **event reader** parses init's events.

use crate::cgroup;
use crate::manager::{Command, Job};
use crate::output_log::{CHUNK, LogWriter};
use crate::protocol::{CONTROL_KILL, CONTROL_TERMINATE, ExitOutcome, InitEvent, MAX_EVENT};
use crate::pty::PtyMaster;
use crate::status::{Ending, final_state};
use crate::sys;
use bytes::Bytes;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long after the job's last process is gone the output pump may still drain. The
/// PID namespace guarantees no process holds the output open by then; this bound only
/// protects readers from a bug.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How long to wait for the monitor after asking it to kill the job before SIGKILLing it
/// directly.
const KILL_FALLBACK: Duration = Duration::from_secs(5);

/// Where a job's output comes from.
pub(crate) enum Source {
    Pipe(pipe::Receiver),
    Pty(Arc<PtyMaster>),
}

/// Copies output to the terminal consumer and into the log until EOF (all writers closed /
/// PTY hung up).
pub(crate) async fn pump_output(mut source: Source, mut writer: LogWriter) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let read = match &mut source {
            Source::Pipe(p) => p.read(&mut buf).await,
            Source::Pty(m) => m.read(&mut buf).await,
        };
        match read {
            Ok(0) => break,
            Ok(n) => writer.append(Bytes::copy_from_slice(&buf[..n])).await,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading job output failed");
                break;
            }
        }
    }
    // Dropping the writer marks the log closed.
}

/// Forwards init's events (and the descriptors sent with them) until every sender has
/// closed the socket (init and monitor are gone).
pub(crate) async fn read_events(
    socket: AsyncFd<OwnedFd>,
    tx: mpsc::Sender<(InitEvent, Vec<OwnedFd>)>,
) {
    let mut buf = vec![0u8; MAX_EVENT];
    loop {
        let received = match socket.readable().await {
            Ok(mut guard) => match guard.try_io(|s| sys::recv_event(s.get_ref(), &mut buf)) {
                Ok(result) => result,
                Err(_would_block) => continue,
            },
            Err(e) => Err(e),
        };
        match received {
            Ok((0, fds)) if fds.is_empty() => return,
            Ok((n, fds)) => match serde_json::from_slice::<InitEvent>(&buf[..n]) {
                Ok(event) => {
                    if tx.send((event, fds)).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "unparseable event from tandem-init"),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading events from tandem-init failed");
                return;
            }
        }
    }
}

/// What the supervisor owns besides the job.
pub(crate) struct Supervised {
    /// The monitor process: the only child of the daemon for this job.
    pub(crate) child: crate::monitor::Monitor,
    /// Events that came after `Running` while the start awaited the sandbox's handles.
    pub(crate) held: Vec<InitEvent>,
    /// Parsed init events after `Running`.
    pub(crate) events: mpsc::Receiver<(InitEvent, Vec<OwnedFd>)>,
    /// The task producing `events`.
    pub(crate) event_reader: JoinHandle<()>,
    /// Write end of the control pipe.
    pub(crate) control: pipe::Sender,
    /// Stop requests.
    pub(crate) commands: mpsc::Receiver<Command>,
    /// The output pump.
    pub(crate) pump: JoinHandle<()>,
}

pub(crate) async fn supervise(job: Arc<Job>, mut s: Supervised) {
    let mut exited: Option<(ExitOutcome, bool)> = None;
    for event in std::mem::take(&mut s.held) {
        if let InitEvent::Exited {
            outcome,
            stop_delivered,
        } = event
        {
            exited = Some((outcome, stop_delivered));
        }
    }
    let mut stop_requested = false;
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    let mut fallback_at: Option<Instant> = None;
    let far = || Instant::now() + Duration::from_secs(86400 * 365);

    let wait_result = loop {
        tokio::select! {
            res = s.child.wait() => break res,
            Some((event, _)) = s.events.recv() => {
                if let InitEvent::Exited { outcome, stop_delivered } = event {
                    exited = Some((outcome, stop_delivered));
                }
            }
            Some(Command::Stop { grace }) = s.commands.recv() => {
                if !stop_requested {
                    stop_requested = true;
                    job.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
                    tracing::debug!(job = %job.id, ?grace, "stopping job");
                    let _ = s.control.write_all(&[CONTROL_TERMINATE]).await;
                }
                let deadline = Instant::now() + grace;
                kill_at = Some(kill_at.map_or(deadline, |d| d.min(deadline)));
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or_else(far)), if kill_at.is_some() && !killed => {
                killed = true;
                tracing::debug!(job = %job.id, "grace period over, killing job");
                let _ = s.control.write_all(&[CONTROL_KILL]).await;
                // The cgroup is the authoritative list of a sandbox's processes. (A command
                // run in another job's sandbox is killed by its init instead.)
                if job.parent.is_none()
                    && let Err(e) = job.cgroup().kill_all()
                {
                    tracing::warn!(job = %job.id, error = %e, "killing the job's cgroup failed");
                }
                fallback_at = Some(Instant::now() + KILL_FALLBACK);
            }
            _ = tokio::time::sleep_until(fallback_at.unwrap_or_else(far)), if fallback_at.is_some() => {
                tracing::warn!(job = %job.id, "tandem-init did not exit after kill; killing it directly");
                fallback_at = None;
                let _ = s.child.start_kill();
            }
        }
    };

    // The monitor exits only after the init, and the init's exit makes the kernel kill
    // and reap the rest of the namespace first: no process of the job should be left now.
    // The cgroup makes sure of it.
    drop(s.control);
    while let Some((event, _)) = s.events.recv().await {
        if let InitEvent::Exited {
            outcome,
            stop_delivered,
        } = event
        {
            exited = Some((outcome, stop_delivered));
        }
    }
    let _ = s.event_reader.await;
    if tokio::time::timeout(DRAIN_LIMIT, &mut s.pump)
        .await
        .is_err()
    {
        tracing::warn!(job = %job.id, "output still open after the job ended; closing it");
        s.pump.abort();
    }
    let usage = match &job.parent {
        None => {
            let usage = job.cgroup().usage();
            if let Err(e) = cgroup::destroy(job.cgroup()).await {
                tracing::warn!(job = %job.id, error = %e, "cannot remove the job's cgroup");
            }
            remove_sandbox_dirs(&job.dir);
            Some(usage)
        }
        Some(_) => None,
    };
    // Every process of the sandbox is gone: its uid range may serve another.
    drop(
        job.ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(),
    );
    let state = final_state(&Ending {
        exited,
        stop_requested,
        killed,
        oom_kills: usage.map(|u| u.oom_kills),
        memory_peak_bytes: usage.and_then(|u| u.memory_peak_bytes),
        // The sandbox this command ran in ended (or is being stopped) under it.
        sandbox_gone: job.parent.as_ref().is_some_and(|p| {
            p.stopping.load(std::sync::atomic::Ordering::SeqCst)
                || p.status.borrow().state.is_finished()
        }),
        monitor: match wait_result {
            Ok(status) => status.to_string(),
            Err(e) => format!("waiting for it failed: {e}"),
        },
    });
    job.release();
    tracing::debug!(job = %job.id, ?state, "job ended");
    job.status.send_modify(|st| {
        st.state = state;
        st.usage = usage;
        st.ended_at = Some(SystemTime::now());
    });
    job.persist();
}

/// Removes a job's sandbox directories (the mount point of its writable layer; and the
/// overlay directories of older versions); the output log stays.
pub(crate) fn remove_sandbox_dirs(job_dir: &Path) {
    for name in ["sandbox", "upper", "work", "rootfs"] {
        let path = job_dir.join(name);
        if let Err(e) = std::fs::remove_dir_all(&path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove job directory");
        }
    }
}
