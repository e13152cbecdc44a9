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
