//! What a job is asked to run: [`JobSpec`], and the ids jobs get.

use crate::cgroup::Limits;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::path::PathBuf;
use std::str::FromStr;

/// Unguessable id of a job: a random (v4) UUID from the OS CSPRNG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(uuid::Uuid);

impl JobId {
    /// A fresh random id.
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

/// Size of a job's terminal in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtySize {
    /// Number of rows (lines), at least 1.
    pub rows: u16,
    /// Number of columns, at least 1.
    pub cols: u16,
}

impl Default for PtySize {
    fn default() -> Self {
        Self { rows: 24, cols: 80 }
    }
}

/// A host file or directory made visible inside the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Absolute host path.
    pub source: PathBuf,
    /// Absolute path inside the job (created if missing).
    pub target: PathBuf,
    /// Mount read-only.
    pub read_only: bool,
}

/// A size-limited tmpfs inside the job (e.g. a small `/data` a task fills up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsMount {
    /// Absolute path inside the job (created if missing).
    pub target: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

/// A file placed in a new sandbox's root before anything runs (e.g. a task's config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    /// Absolute path inside the job.
    pub path: PathBuf,
    /// Content.
    pub content: Vec<u8>,
    /// Permission bits (e.g. 0o644).
    pub mode: u32,
    /// Owner uid; root when unset.
    pub uid: Option<u32>,
    /// Group gid; root when unset.
    pub gid: Option<u32>,
}

/// Everything needed to start a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobSpec {
    /// Program to run; looked up in the job's `PATH` (or a standard one) if it has no `/`.
    /// Empty for a holding sandbox (see [`JobSpec::sandbox`]).
    pub command: String,
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// The complete environment of the job: nothing is inherited from the daemon.
    pub env: BTreeMap<String, String>,
    /// Absolute working directory; `/` when unset.
    pub cwd: Option<PathBuf>,
    /// Run on a terminal of this initial size (stdin, stdout and stderr are the terminal).
    /// Without one, stdin is `/dev/null` and stdout and stderr share one pipe.
    pub pty: Option<PtySize>,
    /// Who started the job; opaque to the worker, used by the API for authorization.
    pub owner: String,
    /// Free-form labels (e.g. the session or task a job belongs to).
    pub labels: BTreeMap<String, String>,
    /// CPU, memory, pids and disk IO limits.
    pub limits: Limits,
    /// Lower layer of the job's copy-on-write root: a directory holding a root filesystem.
    /// `None` uses the host's `/` (read-only underneath; writes go to the job's own layer).
    pub rootfs: Option<PathBuf>,
    /// Host name inside the job; default: `job-` and the first 8 characters of its id.
    pub hostname: Option<String>,
    /// Bind mounts from the host.
    pub binds: Vec<BindMount>,
    /// tmpfs mounts.
    pub tmpfs: Vec<TmpfsMount>,
    /// Files placed in the new root before the command starts.
    pub files: Vec<FileSpec>,
    /// Run the command as this user (name or uid in the job's /etc/passwd); root if unset.
    pub user: Option<String>,
    /// No command: the sandbox holds, until stopped, for commands run in it with
    /// [`JobManager::exec`](crate::JobManager::exec).
    pub hold: bool,
    /// Bytes the command reads on stdin (e.g. a script for `bash -s`); `/dev/null` when
    /// unset. Not with a terminal.
    pub stdin: Option<Vec<u8>>,
    /// Capabilities added to the sandbox's default set (see [`crate::capability`]): names
    /// from [`ALLOWED_EXTRA`](crate::capability::ALLOWED_EXTRA), e.g. `NET_ADMIN`.
    pub capabilities: Vec<String>,
    /// Run in an existing sandbox as a **check** (with [`JobManager::exec`](crate::JobManager::exec)):
    /// the command sees the sandbox's files, processes and network, but its programs,
    /// loader and interpreter configuration come from pristine read-only copies, its own
    /// writes go to a private layer, and it runs as a host uid the sandbox cannot trace.
    pub pristine: bool,
    /// Most bytes of output the job's log keeps, when less than the manager's
    /// [`output_cap`](crate::JobManagerConfig::output_cap) (which is the most any job keeps).
    pub output_cap: Option<u64>,
}

/// Most bytes of [`JobSpec::files`] content in one spec (they travel to init in memory).
pub use tandem_limits::MAX_FILES_BYTES;

/// Longest command (a program name or path: `PATH_MAX`).
pub const MAX_COMMAND_BYTES: usize = 4096;
/// Most arguments of a command.
pub const MAX_ARGS: usize = 4096;
/// Longest single argument or environment entry (the kernel's `MAX_ARG_STRLEN` is 128 KiB).
pub const MAX_ARG_BYTES: usize = 128 * 1024 - 1;
/// Most bytes of all arguments together, and of the whole environment together (the
/// kernel allows 2 MiB for both, with the default stack limit).
pub const MAX_ARGV_BYTES: usize = 256 * 1024;
/// Most environment variables.
pub const MAX_ENV_VARS: usize = 1024;
/// Most labels of a job.
pub const MAX_LABELS: usize = 64;
/// Longest label key.
pub const MAX_LABEL_KEY_BYTES: usize = 128;
/// Longest label value.
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;
/// Most capability names (there are about 40 capabilities).
pub const MAX_CAPABILITIES: usize = 64;
/// Longest working directory or path in a spec (`PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

impl JobSpec {
    /// A spec running `command` with `args`, no environment, no terminal.
    pub fn new<I, S>(command: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            command: command.into(),
            args: args.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// A sandbox without a command: it stays up until stopped, and commands run in it with
    /// [`JobManager::exec`](crate::JobManager::exec).
    pub fn sandbox() -> Self {
        Self {
            hold: true,
            ..Self::default()
        }
    }

    /// Adds one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Runs the job on a terminal of the given size.
    pub fn pty(mut self, size: PtySize) -> Self {
        self.pty = Some(size);
        self
    }

    /// Sets the owner.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Adds a bind mount.
    pub fn bind(
        mut self,
        source: impl Into<PathBuf>,
        target: impl Into<PathBuf>,
        read_only: bool,
    ) -> Self {
        self.binds.push(BindMount {
            source: source.into(),
            target: target.into(),
            read_only,
        });
        self
    }

    /// Adds a tmpfs mount of `size` bytes.
    pub fn tmpfs(mut self, target: impl Into<PathBuf>, size: u64) -> Self {
        self.tmpfs.push(TmpfsMount {
            target: target.into(),
            size,
        });
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Checks the spec for input the kernel would reject or misread, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.hold {
            if !self.command.is_empty() || !self.args.is_empty() || self.pty.is_some() {
                return Err(
                    "command: a holding sandbox runs no command (and has no terminal)".into(),
                );
            }
        } else if self.command.is_empty() {
            return Err("command: must not be empty".into());
        }
        if self.command.contains('\0') {
            return Err("command: contains a NUL byte".into());
        }
        if self.command.len() > MAX_COMMAND_BYTES {
            return Err(format!(
                "command: {} bytes is longer than the {MAX_COMMAND_BYTES} allowed",
                self.command.len()
            ));
        }
        if let Some(i) = self.args.iter().position(|a| a.contains('\0')) {
            return Err(format!("args[{i}]: contains a NUL byte"));
        }
        check_strings("args", MAX_ARGS, self.args.iter().map(|a| ("", a.as_str())))?;
        check_strings(
            "env",
            MAX_ENV_VARS,
            self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )?;
        if self.labels.len() > MAX_LABELS {
            return Err(format!(
                "labels: {} labels is more than the {MAX_LABELS} allowed",
                self.labels.len()
            ));
        }
        for (k, v) in &self.labels {
            if k.is_empty() || k.len() > MAX_LABEL_KEY_BYTES || v.len() > MAX_LABEL_VALUE_BYTES {
                return Err(format!(
                    "labels: a key must have 1 to {MAX_LABEL_KEY_BYTES} bytes and a value at most \
                     {MAX_LABEL_VALUE_BYTES} (got a key of {} and a value of {})",
                    k.len(),
                    v.len()
                ));
            }
        }
        if self.capabilities.len() > MAX_CAPABILITIES {
            return Err(format!(
                "capabilities: {} names is more than the {MAX_CAPABILITIES} allowed",
                self.capabilities.len()
            ));
        }
        for (field, path) in [("cwd", &self.cwd), ("rootfs", &self.rootfs)] {
            if let Some(path) = path
                && path.as_os_str().len() > MAX_PATH_BYTES
            {
                return Err(format!(
                    "{field}: {} bytes is longer than the {MAX_PATH_BYTES} a path may have",
                    path.as_os_str().len()
                ));
            }
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(format!(
                    "env: invalid variable name {k:?} (must be non-empty, without '=' or NUL)"
                ));
            }
            if v.contains('\0') {
                return Err(format!("env.{k}: value contains a NUL byte"));
            }
        }
        if let Some(cwd) = &self.cwd
            && !cwd.is_absolute()
        {
            return Err(format!(
                "cwd: must be an absolute path, got {:?}",
                cwd.display()
            ));
        }
        if let Some(size) = self.pty {
            check_size(size).map_err(|e| format!("pty: {e}"))?;
            if self.stdin.is_some() {
                return Err("stdin: a job on a terminal reads its input from the terminal".into());
            }
        }
        self.limits.validate()?;
        if let Some(rootfs) = &self.rootfs {
            check_overlay_path(rootfs).map_err(|e| format!("rootfs: {e}"))?;
            if !rootfs.is_dir() {
                return Err(format!(
                    "rootfs: {} is not a directory on this host",
                    rootfs.display()
                ));
            }
        }
        if let Some(name) = &self.hostname {
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !valid {
                return Err(format!(
                    "hostname: {name:?} must be 1-64 characters of letters, digits, '-' and '.'"
                ));
            }
        }
        for (i, bind) in self.binds.iter().enumerate() {
            if !bind.source.is_absolute() || !bind.source.exists() {
                return Err(format!(
                    "binds[{i}].source: {} must be an existing absolute host path",
                    bind.source.display()
                ));
            }
            check_target(&bind.target).map_err(|e| format!("binds[{i}].target: {e}"))?;
        }
        crate::capability::CapSet::with_extra(&self.capabilities)?;
        let files_bytes: usize = self.files.iter().map(|f| f.content.len()).sum();
        if files_bytes > MAX_FILES_BYTES {
            return Err(format!(
                "files: {files_bytes} bytes of content is more than the {MAX_FILES_BYTES} allowed"
            ));
        }
        if self.pristine && self.user.is_some() {
            return Err("user: a check runs as tandem's own check user".into());
        }
        for (i, file) in self.files.iter().enumerate() {
            check_target(&file.path).map_err(|e| format!("files[{i}].path: {e}"))?;
            if file.mode > 0o7777 {
                return Err(format!(
                    "files[{i}].mode: {:o} is not a file mode",
                    file.mode
                ));
            }
        }
        if let Some(user) = &self.user
            && (user.is_empty() || user.contains(['\0', ':', '/']))
        {
            return Err(format!("user: {user:?} is not a user name or uid"));
        }
        for (i, tmpfs) in self.tmpfs.iter().enumerate() {
            check_target(&tmpfs.target).map_err(|e| format!("tmpfs[{i}].target: {e}"))?;
            if tmpfs.size < 4096 {
                return Err(format!(
                    "tmpfs[{i}].size: {} bytes is below the minimum of 4096",
                    tmpfs.size
                ));
            }
        }
        Ok(())
    }
}

impl JobSpec {
    /// A command run in an existing sandbox cannot bring sandbox-level settings.
    pub(crate) fn validate_for_exec(&self) -> Result<(), String> {
        let field = if self.hold {
            Some("hold")
        } else if self.limits != Limits::default() {
            Some("limits")
        } else if self.rootfs.is_some() {
            Some("rootfs")
        } else if self.hostname.is_some() {
            Some("hostname")
        } else if !self.binds.is_empty() {
            Some("binds")
        } else if !self.tmpfs.is_empty() {
            Some("tmpfs")
        } else if !self.files.is_empty() {
            Some("files")
        } else if !self.capabilities.is_empty() {
            Some("capabilities")
        } else {
            None
        };
        match field {
            Some(f) => Err(format!(
                "{f}: belongs to the sandbox, not to a command run in it"
            )),
            None => Ok(()),
        }
    }
}

/// Bounds a list of strings (arguments: `name` empty; environment: `NAME=value`): at most
/// `max` entries, each at most [`MAX_ARG_BYTES`], all together at most [`MAX_ARGV_BYTES`].
fn check_strings<'a>(
    field: &str,
    max: usize,
    entries: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> Result<(), String> {
    if entries.len() > max {
        return Err(format!(
            "{field}: {} entries is more than the {max} allowed",
            entries.len()
        ));
    }
    let mut total = 0;
    for (i, (name, value)) in entries.enumerate() {
        let len = name.len() + usize::from(!name.is_empty()) + value.len();
        if len > MAX_ARG_BYTES {
            return Err(if name.is_empty() {
                format!("{field}[{i}]: {len} bytes is longer than the {MAX_ARG_BYTES} allowed")
            } else {
                format!(
                    "{field}: an entry of {len} bytes is longer than the {MAX_ARG_BYTES} allowed"
                )
            });
        }
        total += len + 1;
    }
    if total > MAX_ARGV_BYTES {
        return Err(format!(
            "{field}: {total} bytes in all is more than the {MAX_ARGV_BYTES} allowed"
        ));
    }
    Ok(())
}

/// A mount target inside the job: absolute, not `/`, no `..`.
fn check_target(path: &Path) -> Result<(), String> {
    use std::path::Component;
    if !path.is_absolute() || path.parent().is_none() {
        return Err(format!(
            "{} must be an absolute path below /",
            path.display()
        ));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{} must not contain '..'", path.display()));
    }
    Ok(())
}

/// overlayfs takes its layers as `key=path,…` with `:` separating lower layers, so those
/// characters cannot appear in the paths.
pub(crate) fn check_overlay_path(path: &Path) -> Result<(), String> {
    let s = path
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
    if !path.is_absolute() {
        return Err(format!("{s} must be an absolute path"));
    }
    if s.contains([',', ':', '\\']) {
        return Err(format!(
            "{s} must not contain ',', ':' or '\\' (overlayfs syntax)"
        ));
    }
    Ok(())
}

pub use tandem_limits::{MAX_TERMINAL_COLS, MAX_TERMINAL_ROWS};

impl PtySize {
    /// `cols` × `rows` within 1×1 and [`MAX_TERMINAL_COLS`] × [`MAX_TERMINAL_ROWS`].
    pub fn clamped(cols: u32, rows: u32) -> Self {
        let (cols, rows) = tandem_limits::clamp_terminal(cols, rows);
        Self { rows, cols }
    }
}

/// Rejects a terminal smaller than 1×1 or larger than the maximum.
pub(crate) fn check_size(size: PtySize) -> Result<(), String> {
    if size.rows == 0 || size.cols == 0 {
        return Err(format!(
            "terminal size must be at least 1x1, got {}x{}",
            size.cols, size.rows
        ));
    }
    if size.cols > MAX_TERMINAL_COLS || size.rows > MAX_TERMINAL_ROWS {
        return Err(format!(
            "terminal size must be at most {MAX_TERMINAL_COLS}x{MAX_TERMINAL_ROWS}, got {}x{}",
            size.cols, size.rows
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        assert!(JobSpec::new("true", [""; 0]).validate().is_ok());
        let cases = [
            (JobSpec::new("", [""; 0]), "command"),
            (JobSpec::new("echo", ["a\0b"]), "args[0]"),
            (JobSpec::new("env", [""; 0]).env("A=B", "x"), "env"),
            (JobSpec::new("pwd", [""; 0]).cwd("rel/dir"), "cwd"),
            (
                JobSpec::new("x".repeat(MAX_COMMAND_BYTES + 1), [""; 0]),
                "command",
            ),
            (JobSpec::new("echo", vec![""; MAX_ARGS + 1]), "args"),
            (
                JobSpec::new("echo", ["x".repeat(MAX_ARG_BYTES + 1)]),
                "args[0]",
            ),
            (JobSpec::new("echo", vec!["x".repeat(100_000); 3]), "args"),
            (
                JobSpec {
                    env: (0..=MAX_ENV_VARS)
                        .map(|i| (format!("V{i}"), String::new()))
                        .collect(),
                    ..JobSpec::new("env", [""; 0])
                },
                "env",
            ),
            (
                JobSpec::new("env", [""; 0]).env("BIG", "x".repeat(MAX_ARG_BYTES)),
                "env",
            ),
            (
                JobSpec {
                    labels: (0..=MAX_LABELS)
                        .map(|i| (format!("l{i}"), String::new()))
                        .collect(),
                    ..JobSpec::new("true", [""; 0])
                },
                "labels",
            ),
            (
                JobSpec::new("true", [""; 0]).label("k", "v".repeat(2000)),
                "labels",
            ),
            (JobSpec::new("true", [""; 0]).label("", "v"), "labels"),
            (
                JobSpec {
                    capabilities: vec!["NET_ADMIN".into(); MAX_CAPABILITIES + 1],
                    ..JobSpec::new("true", [""; 0])
                },
                "capabilities",
            ),
            (
                JobSpec::new("pwd", [""; 0]).cwd(format!("/{}", "d".repeat(MAX_PATH_BYTES))),
                "cwd",
            ),
            (
                JobSpec::new("sh", [""; 0]).pty(PtySize { rows: 0, cols: 80 }),
                "pty",
            ),
        ];
        for (spec, field) in cases {
            let err = spec.validate().unwrap_err();
            assert!(err.starts_with(field), "{err:?} should name {field}");
        }
    }

    #[test]
    fn ids_are_random_and_round_trip() {
        let a = JobId::new_random();
        assert_ne!(a, JobId::new_random());
        assert_eq!(a.to_string().parse::<JobId>().unwrap(), a);
        assert!("not-an-id".parse::<JobId>().is_err());
    }
}
