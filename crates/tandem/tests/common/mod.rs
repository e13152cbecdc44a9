//! What the CLI tests against a real tandemd share.
#![allow(dead_code)]

use std::path::Path;
use tokio::process::Command;

/// Runs the `tandem` CLI against `server` with the certificates under `dir/certs`:
/// (exit code, stdout, stderr).
pub async fn tandem(dir: &Path, server: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .env_clear()
        .args(["--server", server, "--certs-dir"])
        .arg(dir.join("certs"))
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A daemon's directory under /var/tmp (where a daemon's state would be) holding one task,
/// `tasks/hello`, whose task.yaml is `yaml`.
pub fn dir_with_hello_task(prefix: &str, yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .unwrap();
    let task = dir.path().join("tasks/hello");
    std::fs::create_dir_all(&task).unwrap();
    std::fs::write(task.join("task.yaml"), yaml).unwrap();
    dir
}
