//! The task format (`tasks/<name>/task.yaml`) and its validation.
//!
//! Parsing is strict (`deny_unknown_fields` everywhere) and every problem is reported as
//! `file:line:column: message`, all of them at once rather than the first only. Values
//! that need more than a type check (durations, sizes, file references, scripts) are read
//! with their position (`Spanned`) and checked afterwards; scripts are checked with
//! `bash -n`, and bash's line numbers are mapped back into the YAML file.

use crate::units::{parse_rate, parse_size};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use tandem_worker::{FileSpec, Limits, TmpfsMount};

/// Default time a setup script may take.
pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Default time a check may take.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Default shell of the candidate.
pub const DEFAULT_SHELL: &str = "/bin/bash -l";

/// One problem in a task file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (normally `tasks/<name>/task.yaml`).
    pub file: PathBuf,
    /// 1-based line, 0 when the problem concerns the whole file.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}", self.file.display(), self.message),
            (l, 0) => write!(f, "{}:{l}: {}", self.file.display(), self.message),
            (l, c) => write!(f, "{}:{l}:{c}: {}", self.file.display(), self.message),
        }
    }
}

/// How hard a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difficulty {
    /// A warm-up.
    Easy,
    /// A typical interview task.
    Medium,
    /// For senior candidates.
    Hard,
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Easy => "easy",
            Self::Medium => "medium",
            Self::Hard => "hard",
        })
    }
}

/// A validated task, ready to run.
#[derive(Debug, Clone)]
pub struct Task {
    /// Identifier; equals the directory name.
    pub name: String,
    /// One line.
    pub title: String,
    /// Shown to the candidate at login.
    pub description: String,
    /// How hard it is.
    pub difficulty: Difficulty,
    /// Suggested length of the interview.
    pub time_limit: Duration,
    /// Limits of the sandbox.
    pub limits: Limits,
    /// Root filesystem directory; the host's `/` when `None`.
    pub rootfs: Option<PathBuf>,
    /// Host name inside the sandbox.
    pub hostname: Option<String>,
    /// Who the candidate is inside (`root`, or a user the setup creates).
    pub user: String,
    /// The candidate's shell, program and arguments.
    pub shell: Vec<String>,
    /// Environment of setup, check and shell (on top of a standard PATH, HOME, LANG).
    pub env: BTreeMap<String, String>,
    /// Files placed before setup, with owners resolved to numbers.
    pub files: Vec<FileSpec>,
    /// Size-limited tmpfs mounts.
    pub tmpfs: Vec<TmpfsMount>,
    /// Setup script (bash), run as root before anyone joins.
    pub setup: Option<String>,
    /// Time the setup may take.
    pub setup_timeout: Duration,
    /// Check script (bash): exit 0 = solved; its output explains.
    pub check: String,
    /// Time a check may take.
    pub check_timeout: Duration,
    /// For interviewers, gentle to explicit.
    pub hints: Vec<String>,
    /// For interviewers: what is wrong and how to fix it.
    pub solution: String,
    /// The task's directory.
    pub dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    name: Spanned<String>,
    title: String,
    description: String,
    difficulty: Spanned<String>,
    time_limit: Spanned<String>,
    #[serde(default)]
    limits: Option<RawLimits>,
    rootfs: Option<Spanned<String>>,
    hostname: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    shell: Option<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<RawFile>,
    #[serde(default)]
    tmpfs: Vec<RawTmpfs>,
    setup: Option<Spanned<String>>,
    setup_timeout: Option<Spanned<String>>,
    check: Spanned<String>,
    check_timeout: Option<Spanned<String>>,
    #[serde(default)]
    hints: Vec<String>,
    solution: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    cpu: Option<Spanned<f64>>,
    memory: Option<Spanned<String>>,
    pids: Option<Spanned<u64>>,
    io_read: Option<Spanned<String>>,
    io_write: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: Spanned<String>,
    source: Option<Spanned<String>>,
    content: Option<String>,
    mode: Option<Spanned<String>>,
    owner: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTmpfs {
    path: Spanned<String>,
    size: Spanned<String>,
}

/// Collects diagnostics for one file.
struct Report {
    file: PathBuf,
    found: Vec<Diagnostic>,
}

impl Report {
    fn at<T>(&mut self, value: &Spanned<T>, message: impl Into<String>) {
        self.found.push(Diagnostic {
            file: self.file.clone(),
            line: value.referenced.line(),
            column: value.referenced.column(),
            message: message.into(),
        });
    }

    fn whole(&mut self, message: impl Into<String>) {
        self.found.push(Diagnostic {
            file: self.file.clone(),
            line: 0,
            column: 0,
            message: message.into(),
        });
    }
}

/// Loads and validates a task from its directory (or its `task.yaml`). `Err` holds every
/// problem found.
pub fn load(path: &Path) -> Result<Task, Vec<Diagnostic>> {
    let (dir, file) = if path.is_dir() {
        (path.to_path_buf(), path.join("task.yaml"))
    } else {
        (
            path.parent().map(Path::to_path_buf).unwrap_or_default(),
            path.to_path_buf(),
        )
    };
    let mut report = Report {
        file: file.clone(),
        found: Vec::new(),
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) => {
            report.whole(format!("cannot read: {e}"));
            return Err(report.found);
        }
    };
    let raw: RawTask = match serde_saphyr::from_str(&text) {
        Ok(raw) => raw,
        Err(e) => {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            report.found.push(Diagnostic {
                file,
                line,
                column,
                message: parser_message(&e.to_string()),
            });
            return Err(report.found);
        }
    };
    let task = check(raw, &dir, &mut report);
    match task {
        Some(task) if report.found.is_empty() => Ok(task),
        _ => Err(report.found),
    }
}

/// serde-saphyr's message without its own position prefix and source snippet.
fn parser_message(display: &str) -> String {
    let first = display.lines().next().unwrap_or(display);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match first.split_once(": ") {
        Some((position, rest)) if position.starts_with("line ") => rest.to_string(),
        _ => first.to_string(),
    }
}

fn check(raw: RawTask, dir: &Path, report: &mut Report) -> Option<Task> {
    let dir_name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    let name = raw.name.value.clone();
    if !valid_name(&name) {
        report.at(
            &raw.name,
            format!("name: {name:?} must be 1-64 lowercase letters, digits and '-'"),
        );
    } else if dir_name.as_deref().is_some_and(|d| d != name) {
        report.at(
            &raw.name,
            format!(
                "name: {name:?} must equal the task's directory name {:?}",
                dir_name.unwrap_or_default()
            ),
        );
    }
    if raw.title.trim().is_empty() || raw.title.contains('\n') {
        report.whole("title: must be one non-empty line");
    }
    if raw.description.trim().is_empty() {
        report.whole("description: must not be empty (the candidate reads it at login)");
    }
    if raw.solution.trim().is_empty() {
        report.whole("solution: must not be empty (interviewers rely on it)");
    }
    let difficulty = match raw.difficulty.value.as_str() {
        "easy" => Difficulty::Easy,
        "medium" => Difficulty::Medium,
        "hard" => Difficulty::Hard,
        other => {
            report.at(
                &raw.difficulty,
                format!("difficulty: {other:?} is not one of easy, medium, hard"),
            );
            Difficulty::Medium
        }
    };
    let time_limit = duration(report, "time_limit", &raw.time_limit);
    let setup_timeout = raw
        .setup_timeout
        .as_ref()
        .map_or(DEFAULT_SETUP_TIMEOUT, |d| {
            duration(report, "setup_timeout", d)
        });
    let check_timeout = raw
        .check_timeout
        .as_ref()
        .map_or(DEFAULT_CHECK_TIMEOUT, |d| {
            duration(report, "check_timeout", d)
        });

    let mut limits = Limits::default();
    if let Some(l) = &raw.limits {
        limits.cpu = l.cpu.as_ref().map(|c| c.value);
        limits.pids = l.pids.as_ref().map(|p| p.value);
        limits.memory = l
            .memory
            .as_ref()
            .and_then(|m| size(report, "limits.memory", m));
        limits.io_read_bps = l
            .io_read
            .as_ref()
            .and_then(|r| rate(report, "limits.io_read", r));
        limits.io_write_bps = l
            .io_write
            .as_ref()
            .and_then(|r| rate(report, "limits.io_write", r));
        if let Err(e) = limits.validate() {
            let position = l
                .cpu
                .as_ref()
                .map(|c| c.referenced)
                .or(l.pids.as_ref().map(|p| p.referenced))
                .or(l.memory.as_ref().map(|m| m.referenced));
            match position {
                Some(p) => report.found.push(Diagnostic {
                    file: report.file.clone(),
                    line: p.line(),
                    column: p.column(),
                    message: e,
                }),
                None => report.whole(e),
            }
        }
    }

    let rootfs = raw.rootfs.as_ref().map(|r| {
        let path = PathBuf::from(&r.value);
        if !path.is_absolute() || !path.is_dir() {
            report.at(
                r,
                format!("rootfs: {} is not an existing absolute directory", r.value),
            );
        }
        path
    });
    let root = rootfs.clone().unwrap_or_else(|| PathBuf::from("/"));
    let hostname = raw.hostname.as_ref().map(|h| {
        if !valid_hostname(&h.value) {
            report.at(
                h,
                format!(
                    "hostname: {:?} must be 1-64 letters, digits, '-' and '.'",
                    h.value
                ),
            );
        }
        h.value.clone()
    });
    let user = match &raw.user {
        Some(u) => {
            if !valid_user(&u.value) {
                report.at(u, format!("user: {:?} is not a valid user name", u.value));
            }
            u.value.clone()
        }
        None => "root".to_string(),
    };
    let shell: Vec<String> = raw
        .shell
        .as_ref()
        .map_or(DEFAULT_SHELL, |s| s.value.as_str())
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if let Some(s) = &raw.shell
        && !shell.first().is_some_and(|p| p.starts_with('/'))
    {
        report.at(
            s,
            "shell: must start with an absolute program path, e.g. /bin/bash -l",
        );
    }
    for key in raw.env.keys() {
        if key.is_empty() || key.contains(['=', '\0']) {
            report.whole(format!("env: {key:?} is not a variable name"));
        }
    }

    let accounts = Accounts::read(&root);
    let mut files = Vec::new();
    for (i, f) in raw.files.iter().enumerate() {
        if let Some(spec) = file(report, i, f, dir, &accounts) {
            files.push(spec);
        }
    }
    let mut tmpfs = Vec::new();
    for (i, t) in raw.tmpfs.iter().enumerate() {
        if !inside_path(&t.path.value) {
            report.at(
                &t.path,
                format!(
                    "tmpfs[{i}].path: {:?} must be an absolute path below /",
                    t.path.value
                ),
            );
        }
        if let Some(size) = size(report, &format!("tmpfs[{i}].size"), &t.size) {
            tmpfs.push(TmpfsMount {
                target: PathBuf::from(&t.path.value),
                size,
            });
        }
    }

    if let Some(setup) = &raw.setup {
        bash_syntax(report, "setup", setup);
    }
    if raw.check.value.trim().is_empty() {
        report.at(&raw.check, "check: must not be empty");
    } else {
        bash_syntax(report, "check", &raw.check);
    }

    Some(Task {
        name,
        title: raw.title.trim().to_string(),
        description: raw.description,
        difficulty,
        time_limit,
        limits,
        rootfs,
        hostname,
        user,
        shell,
        env: raw.env,
        files,
        tmpfs,
        setup: raw.setup.map(|s| s.value),
        setup_timeout,
        check: raw.check.value,
        check_timeout,
        hints: raw.hints,
        solution: raw.solution,
        dir: dir.to_path_buf(),
    })
}

fn file(
    report: &mut Report,
    i: usize,
    f: &RawFile,
    dir: &Path,
    accounts: &Accounts,
) -> Option<FileSpec> {
    if !inside_path(&f.path.value) {
        report.at(
            &f.path,
            format!(
                "files[{i}].path: {:?} must be an absolute path below /",
                f.path.value
            ),
        );
    }
    let content = match (&f.source, &f.content) {
        (Some(_), Some(_)) => {
            report.at(
                &f.path,
                format!("files[{i}]: give either `source` or `content`, not both"),
            );
            return None;
        }
        (None, None) => {
            report.at(
                &f.path,
                format!("files[{i}]: needs `source` (a file in the task directory) or `content`"),
            );
            return None;
        }
        (None, Some(content)) => content.clone().into_bytes(),
        (Some(source), None) => {
            let relative = Path::new(&source.value);
            if relative.is_absolute() || relative.components().any(|c| c == Component::ParentDir) {
                report.at(
                    source,
                    format!(
                        "files[{i}].source: {:?} must be a path inside the task directory",
                        source.value
                    ),
                );
                return None;
            }
            match std::fs::read(dir.join(relative)) {
                Ok(bytes) => bytes,
                Err(e) => {
                    report.at(
                        source,
                        format!(
                            "files[{i}].source: cannot read {}: {e}",
                            dir.join(relative).display()
                        ),
                    );
                    return None;
                }
            }
        }
    };
    let mode = match &f.mode {
        None => 0o644,
        Some(m) => match u32::from_str_radix(m.value.trim_start_matches("0o"), 8) {
            Ok(mode) if mode <= 0o7777 => mode,
            _ => {
                report.at(
                    m,
                    format!(
                        "files[{i}].mode: {:?} is not an octal mode like \"0644\"",
                        m.value
                    ),
                );
                0o644
            }
        },
    };
    let (uid, gid) = match &f.owner {
        None => (0, 0),
        Some(owner) => match accounts.resolve(&owner.value) {
            Ok(ids) => ids,
            Err(why) => {
                report.at(owner, format!("files[{i}].owner: {why}"));
                (0, 0)
            }
        },
    };
    Some(FileSpec {
        path: PathBuf::from(&f.path.value),
        content,
        mode,
        uid: Some(uid),
        gid: Some(gid),
    })
}

fn duration(report: &mut Report, field: &str, value: &Spanned<String>) -> Duration {
    match humantime::parse_duration(value.value.trim()) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            report.at(value, format!("{field}: must be longer than zero"));
            Duration::from_secs(1)
        }
        Err(e) => {
            report.at(
                value,
                format!(
                    "{field}: {:?} is not a duration like 45m, 90s, 1h30m ({e})",
                    value.value
                ),
            );
            Duration::from_secs(1)
        }
    }
}

fn size(report: &mut Report, field: &str, value: &Spanned<String>) -> Option<u64> {
    parse_size(&value.value)
        .map_err(|e| report.at(value, format!("{field}: {e}")))
        .ok()
}

fn rate(report: &mut Report, field: &str, value: &Spanned<String>) -> Option<u64> {
    parse_rate(&value.value)
        .map_err(|e| report.at(value, format!("{field}: {e}")))
        .ok()
}

/// Checks a script with `bash -n`; bash's line numbers are mapped to the YAML file.
fn bash_syntax(report: &mut Report, field: &str, script: &Spanned<String>) {
    use std::io::Write;
    let child = std::process::Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            report.at(
                script,
                format!("{field}: cannot run `bash -n` to check the script: {e}"),
            );
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.value.as_bytes());
    }
    let Ok(out) = child.wait_with_output() else {
        report.at(script, format!("{field}: `bash -n` did not finish"));
        return;
    };
    if out.status.success() {
        return;
    }
    // The script's first line is where the YAML value starts (a `|` block starts on the
    // line after the key).
    let first_line = script.referenced.line();
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        // "bash: line 3: syntax error near unexpected token `fi'"
        let Some(rest) = line.split_once("line ").map(|(_, r)| r) else {
            continue;
        };
        let Some((number, message)) = rest.split_once(": ") else {
            continue;
        };
        let Ok(number) = number.parse::<u64>() else {
            continue;
        };
        // "unexpected end of file" is reported one line past the end: clamp to the script.
        let last = script.value.lines().count().max(1) as u64;
        report.found.push(Diagnostic {
            file: report.file.clone(),
            line: first_line + number.clamp(1, last) - 1,
            column: script.referenced.column(),
            message: format!("{field}: bash: {message}"),
        });
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn inside_path(path: &str) -> bool {
    let p = Path::new(path);
    p.is_absolute() && p.parent().is_some() && !p.components().any(|c| c == Component::ParentDir)
}

/// Users and groups of a root filesystem, from its `/etc/passwd` and `/etc/group`.
struct Accounts {
    users: Vec<(String, u32, u32)>,
    groups: Vec<(String, u32)>,
}

impl Accounts {
    fn read(root: &Path) -> Self {
        let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_default();
        let users = read("etc/passwd")
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some((
                    f.first()?.to_string(),
                    f.get(2)?.parse().ok()?,
                    f.get(3)?.parse().ok()?,
                ))
            })
            .collect();
        let groups = read("etc/group")
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some((f.first()?.to_string(), f.get(2)?.parse().ok()?))
            })
            .collect();
        Self { users, groups }
    }

    /// `user[:group]`, names from the rootfs or numbers.
    fn resolve(&self, owner: &str) -> Result<(u32, u32), String> {
        let (user, group) = match owner.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (owner, None),
        };
        let (uid, primary) = match user.parse::<u32>() {
            Ok(uid) => (uid, uid),
            Err(_) => self
                .users
                .iter()
                .find(|(n, _, _)| n == user)
                .map(|(_, u, g)| (*u, *g))
                .ok_or_else(|| {
                    format!(
                        "no user {user:?} in the root filesystem's /etc/passwd (a user the setup \
                         creates cannot own files placed before setup: chown in the setup script)"
                    )
                })?,
        };
        let gid = match group {
            None => primary,
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => self
                    .groups
                    .iter()
                    .find(|(n, _)| n == g)
                    .map(|(_, gid)| *gid)
                    .ok_or_else(|| format!("no group {g:?} in the root filesystem's /etc/group"))?,
            },
        };
        Ok((uid, gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_task(yaml: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("demo");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("task.yaml"), yaml).unwrap();
        std::fs::write(dir.join("app.py"), "print('hi')\n").unwrap();
        root
    }

    const GOOD: &str = "\
name: demo
title: A demo task
description: |
  Something is broken.
difficulty: easy
time_limit: 30m
limits:
  cpu: 0.5
  memory: 256M
  pids: 100
files:
  - path: /opt/app.py
    source: app.py
    mode: \"0755\"
    owner: nobody:nogroup
  - path: /etc/motd
    content: hello
tmpfs:
  - path: /data
    size: 10M
setup: |
  echo setting up
check: |
  test -f /opt/app.py
hints: [look around]
solution: |
  Fix it.
";

    #[test]
    fn a_good_task_loads() {
        let root = write_task(GOOD);
        let task = load(&root.path().join("demo")).unwrap();
        assert_eq!(task.name, "demo");
        assert_eq!(task.time_limit, Duration::from_secs(1800));
        assert_eq!(task.limits.memory, Some(256 << 20));
        assert_eq!(task.files[0].mode, 0o755);
        assert_eq!(task.files[0].content, b"print('hi')\n");
        assert_eq!(task.files[0].uid, Some(65534));
        assert_eq!(task.tmpfs[0].size, 10 << 20);
        assert_eq!(task.shell, ["/bin/bash", "-l"]);
        assert_eq!(task.check_timeout, DEFAULT_CHECK_TIMEOUT);
        assert_eq!(task.user, "root");
    }

    fn errors(yaml: &str) -> Vec<String> {
        let root = write_task(yaml);
        load(&root.path().join("demo"))
            .unwrap_err()
            .iter()
            .map(|d| {
                let text = d.to_string();
                text[text.find("task.yaml").unwrap()..].to_string()
            })
            .collect()
    }

    #[test]
    fn unknown_fields_name_line_and_column() {
        let bad = GOOD.replace("limits:\n", "limts:\n");
        assert_eq!(
            errors(&bad)[0],
            "task.yaml:7:1: unknown field `limts`, expected one of name, title, description, \
             difficulty, time_limit, limits, rootfs, hostname, user, shell, env, files, tmpfs, \
             setup, setup_timeout, check, check_timeout, hints, solution"
        );
    }

    #[test]
    fn every_semantic_problem_is_reported_with_its_position() {
        let bad = GOOD
            .replace("time_limit: 30m", "time_limit: 30 minutes please")
            .replace("memory: 256M", "memory: 256Q")
            .replace("source: app.py", "source: missing.py")
            .replace("owner: nobody:nogroup", "owner: nosuchuser")
            .replace("size: 10M", "size: -1")
            .replace("difficulty: easy", "difficulty: trivial")
            .replace("  echo setting up\n", "  if true; then\n    echo x\n");
        let errs = errors(&bad);
        let expect = [
            "task.yaml:5:13: difficulty: \"trivial\"",
            "task.yaml:6:13: time_limit:",
            "task.yaml:9:11: limits.memory:",
            "task.yaml:13:13: files[0].source: cannot read",
            "task.yaml:20:11: tmpfs[0].size:",
            "task.yaml:23:3: setup: bash:",
        ];
        for prefix in expect {
            assert!(
                errs.iter().any(|e| e.starts_with(prefix)),
                "missing {prefix:?} in {errs:#?}"
            );
        }
    }

    #[test]
    fn invalid_yaml_and_missing_fields_are_positioned() {
        let errs = errors("name: [demo\n");
        assert!(errs[0].starts_with("task.yaml:1:"), "{errs:?}");
        let errs = errors("name: demo\ntitle: x\n");
        assert!(errs[0].contains("missing field"), "{errs:?}");
    }

    #[test]
    fn the_name_must_match_the_directory() {
        let errs = errors(&GOOD.replace("name: demo", "name: other"));
        assert!(
            errs[0].starts_with("task.yaml:1:7: name: \"other\" must equal"),
            "{errs:?}"
        );
    }
}
