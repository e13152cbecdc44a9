//! What a task asks of its sandbox, as plain values: files placed before setup and
//! size-limited tmpfs mounts (limits and capabilities are `tandem-limits`' values, which
//! the worker enforces). `tandem-scenario` turns them into the worker's job spec.

use std::path::PathBuf;

/// A file placed in the sandbox's root before setup runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFile {
    /// Absolute path inside the sandbox.
    pub path: PathBuf,
    /// Content.
    pub content: Vec<u8>,
    /// Permission bits (e.g. 0o644).
    pub mode: u32,
    /// Owner uid, resolved from the root filesystem's `/etc/passwd` or given as a number.
    pub uid: u32,
    /// Group gid, resolved the same way.
    pub gid: u32,
}

/// A size-limited tmpfs mounted in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTmpfs {
    /// Absolute path inside the sandbox (created if missing).
    pub target: PathBuf,
    /// Size in bytes.
    pub size: u64,
}
