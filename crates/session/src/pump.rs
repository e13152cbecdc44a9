//! The terminal pump: one task per session that reads the shell job's terminal output
//! (from byte 0: what its log holds, then live from the worker's pump, see
//! `JobManager::terminal`) into the hub (the screen and every client's queue) and the
//! recording, for the whole session. When the shell exits while the session is live (the candidate typed
//! `exit`), it starts a new shell in the same sandbox and says so on the shared terminal;
//! a shell that keeps exiting, or the sandbox ending, ends the session. The shell
//! profile's command marks are taken out of the output on the way (`marks.rs`).

use crate::Sessions;
use crate::marks::MarkFilter;
use crate::session::Session;
use bytes::Bytes;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Reads the shell's output into the hub and the recording for the whole session. When
/// the shell exits (the candidate typed `exit`) a new one starts in the same sandbox, and
/// everyone sees a line saying so; when the sandbox itself is gone, the session ends.
pub(crate) async fn run(sessions: Sessions, session: Arc<Session>) {
    let manager = sessions.instances().manager().clone();
    let mut ended = session.watch();
    let mut restarts: Vec<std::time::Instant> = Vec::new();
    loop {
        let shell = session.shell();
        let mut reader = match manager.terminal(shell) {
            Ok(reader) => reader,
            Err(e) => {
                tracing::warn!(session = %session.id, error = %e, "no terminal output");
                break;
            }
        };
        // The shell profile's command marks: taken out here, so no client and no
        // recording ever sees them (see `marks.rs`).
        let mut marks = MarkFilter::default();
        loop {
            tokio::select! {
                chunk = reader.next_chunk() => match chunk {
                    Ok(Some(data)) => {
                        let (data, found) = marks.feed_bytes(&data);
                        // Commands first: whoever sees the prompt after one can find it
                        // in the events.
                        session.shell_marks(found);
                        if !data.is_empty() {
                            // The participants first: the recorder's send wakes its thread.
                            session.hub.output(&data);
                            session.recorder.output(&data);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(session = %session.id, error = %e, "reading the terminal failed");
                        break;
                    }
                },
                _ = ended.wait_for(|i| i.ended.is_some()) => return,
            }
        }
        if session.info().ended.is_some() {
            return;
        }
        if session.shell() != shell {
            // A reset swapped the sandbox: show its notice, then the new shell.
            let notice = session
                .reset_notice
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(notice) = notice {
                session.recorder.output(&notice);
                session.hub.output(&notice);
            }
            continue;
        }
        // Not a restart loop: a shell that keeps dying ends the session.
        let now = std::time::Instant::now();
        restarts.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        if restarts.len() >= 5 {
            let _ = sessions.end(session.id, "the shell keeps exiting").await;
            return;
        }
        restarts.push(now);
        let size = session.terminal_size();
        match sessions
            .instances()
            .new_shell(&session.instance(), size.into())
            .await
        {
            Ok(job) => {
                *session
                    .shell
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = job;
                let notice = Bytes::from_static(
                    b"\r\n\x1b[0m[tandem] the shell exited; here is a new one\r\n",
                );
                session.recorder.output(&notice);
                session.hub.output(&notice);
                session.recorder.event(json!({"event": "shell_restarted"}));
                tracing::info!(session = %session.id, "the shell exited; started a new one");
            }
            Err(e) => {
                tracing::info!(session = %session.id, error = %e, "no new shell");
                break;
            }
        }
    }
    let _ = sessions.end(session.id, "the sandbox has ended").await;
}
