//! `tandem job attach`: the local terminal becomes the job's terminal.
//!
//! The local terminal is put in raw mode (every byte, Ctrl-C included, goes to the job)
//! by a [`RawMode`] guard that restores the saved settings when dropped, so the terminal
//! is restored on every way out: the job ending, detaching, an error, a panic. Keys go out
//! as `Input`, window size changes (SIGWINCH) as `Resize`, and the job's output is written
//! to stdout as received. Ctrl-] detaches and leaves the job running.

use std::io::{IsTerminal, Read};
use std::os::fd::AsFd;

use anyhow::{Context, bail};
use nix::sys::termios::{self, SetArg, Termios};
use tandem_proto::v1::attach_request::Event as Request;
use tandem_proto::v1::attach_response::Event as Response;
use tandem_proto::v1::job_service_client::JobServiceClient;
use tandem_proto::v1::{AttachOpen, AttachRequest, AttachResponse, Job};
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::terminal::terminal_size;

/// The detach key: Ctrl-] (as in telnet).
pub const DETACH_KEY: u8 = 0x1d;

/// How an attach ended.
#[derive(Debug)]
pub enum AttachEnd {
    /// The job ended; its final status.
    Ended(Box<Job>),
    /// The user pressed the detach key; the job goes on.
    Detached,
    /// tandem got SIGTERM or SIGHUP; the job goes on.
    Interrupted,
}

/// Saved terminal settings of stdin, restored on drop.
struct RawMode {
    /// The settings before raw mode.
    saved: Termios,
}

impl RawMode {
    /// Puts the terminal on stdin into raw mode.
    fn enter() -> nix::Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // TCSADRAIN: let pending output (the job's last bytes) be shown in raw mode first.
        // Nothing useful can be done if restoring fails (the terminal is gone).
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// Attaches to the terminal of job `job_id` until it ends or the user detaches.
///
/// The first message sent is `open` with output offset 0, so the server replays the
/// job's output and the screen is redrawn. gRPC errors are turned into sentences with
/// `describe_status`. The terminal is back in its normal mode when this returns.
pub async fn attach(
    client: &mut JobServiceClient<Channel>,
    server: &str,
    job_id: &str,
) -> anyhow::Result<AttachEnd> {
    let describe =
        |status: tonic::Status| anyhow::anyhow!(tandem_client::describe_status(server, &status));
    let (requests, rx) = mpsc::channel::<AttachRequest>(64);
    send(
        &requests,
        Request::Open(AttachOpen {
            job_id: job_id.to_string(),
            output_offset: 0,
        }),
    )
    .await;
    let interactive = std::io::stdin().is_terminal();
    if interactive && let Some(size) = terminal_size() {
        // Fit the job's terminal to this window right away (and redraw full-screen
        // programs), not only at the next resize.
        send(&requests, Request::Resize(size)).await;
    }
    let mut responses = client
        .attach(ReceiverStream::new(rx))
        .await
        .map_err(describe)?
        .into_inner();

    let raw = if interactive {
        Some(RawMode::enter().context("cannot put the terminal into raw mode")?)
    } else {
        None
    };
    let mut at_line_start = true;
    let result = pump(&mut responses, &requests, server, &mut at_line_start).await;
    drop(raw);
    if interactive && !at_line_start {
        // Whatever is printed next (a detach notice, an error) starts on a line of its own.
        eprintln!();
    }
    result
}

/// Moves bytes until the job ends, the user detaches or the call fails; records in
/// `at_line_start` whether the last byte written to stdout ended a line.
async fn pump(
    responses: &mut tonic::Streaming<AttachResponse>,
    requests: &mpsc::Sender<AttachRequest>,
    server: &str,
    at_line_start: &mut bool,
) -> anyhow::Result<AttachEnd> {
    let describe =
        |status: tonic::Status| anyhow::anyhow!(tandem_client::describe_status(server, &status));
    let mut input = spawn_stdin_reader();
    let mut winch = signal(SignalKind::window_change())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut stdout = tokio::io::stdout();
    let mut input_open = true;
    loop {
        tokio::select! {
            message = responses.message() => match message.map_err(describe)? {
                Some(response) => match response.event {
                    Some(Response::Output(bytes)) => {
                        if let Some(&last) = bytes.last() {
                            *at_line_start = last == b'\n';
                        }
                        stdout.write_all(&bytes).await?;
                        stdout.flush().await?;
                    }
                    Some(Response::Ended(job)) => {
                        stdout.flush().await?;
                        return Ok(AttachEnd::Ended(Box::new(job)));
                    }
                    None => {}
                },
                None => bail!("{server} ended the attach stream before the job ended"),
            },
            bytes = input.recv(), if input_open => match bytes {
                Some(bytes) => {
                    if let Some(at) = bytes.iter().position(|&b| b == DETACH_KEY) {
                        if at > 0 {
                            send(requests, Request::Input(bytes[..at].to_vec())).await;
                        }
                        return Ok(AttachEnd::Detached);
                    }
                    send(requests, Request::Input(bytes)).await;
                }
                // End of input (a pipe or file): keep showing output until the job ends.
                None => input_open = false,
            },
            _ = winch.recv() => {
                if let Some(size) = terminal_size() {
                    send(requests, Request::Resize(size)).await;
                }
            }
            _ = term.recv() => return Ok(AttachEnd::Interrupted),
            _ = hangup.recv() => return Ok(AttachEnd::Interrupted),
        }
    }
}

/// Queues one request. A failure means the call is over; the response stream then says
/// why, so the error is not reported here.
async fn send(requests: &mpsc::Sender<AttachRequest>, event: Request) {
    let _ = requests.send(AttachRequest { event: Some(event) }).await;
}

/// Reads stdin on a thread of its own (a blocking read cannot be cancelled, and the
/// process exits without waiting for the thread) and hands the bytes over; the channel
/// closes at end of input or on a read error.
fn spawn_stdin_reader() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    rx
}
