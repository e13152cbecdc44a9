//! The real `tandemd` process on free ports, with its directories under one test dir.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A running tandemd (killed when dropped).
pub struct Daemon {
    pub child: Child,
    /// `127.0.0.1:PORT` of its gRPC API.
    pub grpc: String,
    /// `https://localhost:PORT` of its web front end.
    pub web: String,
    /// Its JSON log lines after "ready".
    pub logs: mpsc::UnboundedReceiver<serde_json::Value>,
    /// Its log lines up to "ready" (for [`Self::wait_log`]).
    early: std::collections::VecDeque<serde_json::Value>,
}

impl Daemon {
    /// Starts `workspace_bin("tandemd")` with `dir/state`, `dir/certs` and `dir/tasks`,
    /// ports chosen by the kernel, JSON logs, a 2 s shutdown grace; returns once it logged
    /// "ready".
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[]).await
    }

    /// [`Self::start`] with more flags.
    pub async fn start_with(dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(crate::workspace_bin("tandemd"))
            .args([
                "--grpc-listen",
                "127.0.0.1:0",
                "--ssh-listen",
                "127.0.0.1:0",
                "--web-listen",
                "127.0.0.1:0",
            ])
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--certs-dir")
            .arg(dir.join("certs"))
            .arg("--tasks-dir")
            .arg(dir.join("tasks"))
            .args(["--log-format", "json", "--shutdown-grace", "2s"])
            .args(args)
            .env_clear()
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run tandemd");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let mut grpc = None;
        let mut web = None;
        let mut early = std::collections::VecDeque::new();
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = rx.recv().await {
                let message = line["fields"]["message"].as_str().unwrap_or("");
                if message.starts_with("gRPC API listening") {
                    grpc = line["fields"]["address"].as_str().map(str::to_string);
                }
                if message.starts_with("web listening") {
                    web = line["fields"]["url"].as_str().map(str::to_string);
                }
                if message == "ready" {
                    return;
                }
                early.push_back(line);
            }
            panic!("tandemd exited before it was ready");
        })
        .await
        .expect("tandemd ready within 60 s");
        Self {
            child,
            grpc: grpc.expect("the gRPC address was logged"),
            web: web.expect("the web address was logged"),
            logs: rx,
            early,
        }
    }

    /// The first log line not yet waited for whose message is `message` (lines from the
    /// start on), waiting at most 60 s for it.
    pub async fn wait_log(&mut self, message: &str) -> serde_json::Value {
        let is = |line: &serde_json::Value| line["fields"]["message"].as_str() == Some(message);
        if let Some(at) = self.early.iter().position(is) {
            return self.early.remove(at).expect("the position is in range");
        }
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = self.logs.recv().await {
                if line["fields"]["message"].as_str() == Some(message) {
                    return line;
                }
            }
            panic!("tandemd exited before it logged {message:?}");
        })
        .await
        .unwrap_or_else(|_| panic!("tandemd logged {message:?} within 60 s"))
    }
}
