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
    /// Its JSON log lines after "ready".
    pub logs: mpsc::UnboundedReceiver<serde_json::Value>,
}

impl Daemon {
    /// Starts `workspace_bin("tandemd")` with `dir/state`, `dir/certs` and `dir/tasks`,
    /// ports chosen by the kernel, JSON logs, a 2 s shutdown grace; returns once it logged
    /// "ready".
    pub async fn start(dir: &Path) -> Self {
        let mut child = Command::new(crate::workspace_bin("tandemd"))
            .args([
                "--grpc-listen",
                "127.0.0.1:0",
                "--ssh-listen",
                "127.0.0.1:0",
            ])
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--certs-dir")
            .arg(dir.join("certs"))
            .arg("--tasks-dir")
            .arg(dir.join("tasks"))
            .args(["--log-format", "json", "--shutdown-grace", "2s"])
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
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = rx.recv().await {
                let message = line["fields"]["message"].as_str().unwrap_or("");
                if message.starts_with("gRPC API listening") {
                    grpc = line["fields"]["address"].as_str().map(str::to_string);
                }
                if message == "ready" {
                    return;
                }
            }
            panic!("tandemd exited before it was ready");
        })
        .await
        .expect("tandemd ready within 60 s");
        Self {
            child,
            grpc: grpc.expect("the gRPC address was logged"),
            logs: rx,
        }
    }
}
