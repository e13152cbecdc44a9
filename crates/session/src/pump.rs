//! The terminal pump: one task per session that reads the shell job's terminal output
//! (from byte 0: what its log holds, then live from the worker's pump, see
//! `JobManager::terminal`) into the hub (the screen and every client's queue) and the
//! recording, for the whole session. When the shell exits while the session is live (the candidate typed
//! `exit`), it starts a new shell in the same sandbox and says so on the shared terminal.
//! A shell that keeps exiting or cannot start (the candidate broke something a shell
//! needs) leaves the session waiting for an interviewer's reset, never ends it: only the
//! sandbox ending does. The shell profile's command marks are taken out of the output on
//! the way (`marks.rs`).

use crate::Sessions;
use crate::marks::MarkFilter;
use crate::session::Session;
use bytes::Bytes;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Reads the shell's output into the hub and the recording for the whole session. When
/// the shell exits (the candidate typed `exit`) a new one starts in the same sandbox, and
/// everyone sees a line saying so; when none can, everyone sees why and the session waits
/// for a reset; when the sandbox itself is gone, the session ends.
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
            show_reset_notice(&session);
            restarts.clear();
            continue;
        }
        // Not a restart loop: a shell that keeps dying is not replaced again.
        let now = std::time::Instant::now();
        restarts.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        let why = if restarts.len() >= 5 {
            "the shell keeps exiting".to_string()
        } else {
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
                    continue;
                }
                Err(e) => e.to_string(),
            }
        };
        // No new shell. The candidate may have broken what a shell needs (their `/dev`,
        // their shell's files): that must not end the interview, so the session stays
        // and waits for an interviewer to reset the box, or for it to end.
        tracing::info!(session = %session.id, error = %why, "no new shell");
        let instance = session.instance();
        let notice = Bytes::from(format!(
            "\r\n\x1b[0m[tandem] no new shell ({why}); an interviewer can reset the box\r\n"
        ));
        session.recorder.output(&notice);
        session.hub.output(&notice);
        session
            .recorder
            .event(json!({"event": "no_shell", "reason": why}));
        session.tell_everyone("no new shell: an interviewer can reset the box");
        while session.shell() == shell {
            let sandbox_ended = tokio::select! {
                _ = ended.wait_for(|i| i.ended.is_some()) => return,
                // A reset stops the old sandbox only after swapping the shell.
                _ = manager.wait(instance.id) => session.shell() == shell,
                () = session.shell_swapped.notified() => false,
            };
            if sandbox_ended {
                let _ = sessions.end(session.id, "the sandbox has ended").await;
                return;
            }
        }
        show_reset_notice(&session);
        restarts.clear();
    }
    let _ = sessions.end(session.id, "the sandbox has ended").await;
}

/// Shows a reset's notice (once) before its new shell.
fn show_reset_notice(session: &Session) {
    let notice = session
        .reset_notice
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(notice) = notice {
        session.recorder.output(&notice);
        session.hub.output(&notice);
    }
}
