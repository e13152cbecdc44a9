//! The task format (`tasks/<name>/task.yaml`) and its validation.
//!
//! Parsing is strict (`deny_unknown_fields` everywhere) and every problem is reported as
//! `file:line:column: message`, all of them at once rather than the first only. Values
//! that need more than a type check (durations, sizes, file references, scripts) are read
//! with their position (`Spanned`) and checked afterwards; scripts are checked with
//! `bash -n`, and bash's line numbers are mapped back into the YAML file.

use crate::sandbox::{TaskFile, TaskTmpfs};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tandem_limits::Limits;

mod accounts;
mod check;

pub use check::{MAX_AUTO_CHECK, MAX_SCRIPT_TIMEOUT, MAX_TIME_LIMIT, MIN_AUTO_CHECK};

/// Default time a setup script may take.
pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Default time a check may take.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Default shell of the candidate.
pub const DEFAULT_SHELL: &str = "/bin/bash -l";
/// Instances of a task kept set up ahead of time unless its `warm` says otherwise.
pub const DEFAULT_WARM: u32 = 1;
/// Most instances one task may keep set up ahead of time.
pub const MAX_WARM: u32 = 16;
/// Largest `task.yaml` read (checked before parsing): a task file is a page of YAML and
/// its scripts; bigger files (or a `task.yaml` that is a device or a pipe) are refused.
pub const MAX_TASK_FILE_BYTES: u64 = 1 << 20;

/// What the YAML parser may spend on one task file, on top of the size bound above:
/// alias expansion ("billion laughs"), nesting, node and scalar totals are all capped
/// (serde-saphyr's budget), so a hostile file fails fast with its position.
fn parser_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_TASK_FILE_BYTES as usize),
            max_events: 100_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_recorded_anchor_events: 100_000,
            max_recorded_anchor_bytes: 4 << 20,
            max_depth: 16,
            max_documents: 1,
            max_nodes: 50_000,
            max_total_scalar_bytes: 4 << 20,
            max_merge_keys: 100,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 16,
        },
    }
}

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
    /// Capabilities added to the sandbox's default set (checked against the allow-list).
    pub capabilities: Vec<String>,
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
    pub files: Vec<TaskFile>,
    /// Size-limited tmpfs mounts.
    pub tmpfs: Vec<TaskTmpfs>,
    /// Setup script (bash), run as root before anyone joins.
    pub setup: Option<String>,
    /// Time the setup may take.
    pub setup_timeout: Duration,
    /// Check script (bash): exit 0 = solved; its output explains.
    pub check: String,
    /// Time a check may take.
    pub check_timeout: Duration,
    /// Instances kept set up ahead of time, so that a session starts at once (`warm`,
    /// default [`DEFAULT_WARM`]; the daemon may override it).
    pub warm: u32,
    /// How often a session runs the check by itself (`auto_check`), recording when each
    /// condition first passes; `None`: only when an interviewer asks.
    pub auto_check: Option<Duration>,
    /// Gentle to explicit; revealed to the candidate one by one by an interviewer.
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
    #[serde(default)]
    capabilities: Vec<Spanned<String>>,
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
    warm: Option<Spanned<u32>>,
    #[serde(default)]
    hints: Vec<String>,
    auto_check: Option<Spanned<String>>,
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
    disk: Option<Spanned<String>>,
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
    let text = match read_bounded(&file, MAX_TASK_FILE_BYTES) {
        Ok(text) => text,
        Err(e) => {
            report.whole(format!("cannot read: {e}"));
            return Err(report.found);
        }
    };
    let raw: RawTask = match serde_saphyr::from_str_with_options(&text, parser_options()) {
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
    let task = check::check(raw, &dir, &mut report);
    match task {
        Some(task) if report.found.is_empty() => Ok(task),
        _ => Err(report.found),
    }
}

/// Reads a UTF-8 file of at most `max` bytes; a longer one (whatever its metadata says:
/// a pipe or a device has none) is an error that says so, after reading `max + 1` bytes.
fn read_bounded(path: &Path, max: u64) -> std::io::Result<String> {
    let bytes = read_bytes_bounded(path, max)?;
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Reads at most `max` bytes of a file; more is an error (`FileTooLarge`).
pub(crate) fn read_bytes_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    // Not a pipe or a device: opening a FIFO would wait for a writer.
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than the {max} bytes allowed"),
        ));
    }
    Ok(bytes)
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
        assert_eq!(task.files[0].uid, 65534);
        assert_eq!(task.tmpfs[0].size, 10 << 20);
        assert_eq!(task.shell, ["/bin/bash", "-l"]);
        assert_eq!(task.check_timeout, DEFAULT_CHECK_TIMEOUT);
        assert_eq!(task.user, "root");
        assert_eq!(task.warm, DEFAULT_WARM);
        assert_eq!(task.auto_check, None);
    }

    #[test]
    fn auto_check_is_bounded_where_it_is_written() {
        let with =
            |every: &str| GOOD.replace("limits:\n", &format!("auto_check: {every}\nlimits:\n"));
        let root = write_task(&with("30s"));
        let task = load(&root.path().join("demo")).unwrap();
        assert_eq!(task.auto_check, Some(Duration::from_secs(30)));
        let errs = errors(&with("1s"));
        assert!(
            errs[0].starts_with("task.yaml:7:13: auto_check: 1s is shorter than the minimum of 5s"),
            "{errs:?}"
        );
        let errs = errors(&with("2h"));
        assert!(
            errs[0].starts_with("task.yaml:7:13: auto_check: 2h is longer than the maximum of 1h"),
            "{errs:?}"
        );
        assert!(errors(&with("often"))[0].starts_with("task.yaml:7:13: auto_check:"));
    }

    #[test]
    fn warm_is_bounded_where_it_is_written() {
        let with = |warm: &str| GOOD.replace("limits:\n", &format!("warm: {warm}\nlimits:\n"));
        let root = write_task(&with("0"));
        assert_eq!(load(&root.path().join("demo")).unwrap().warm, 0);
        let errs = errors(&with("17"));
        assert!(
            errs[0].starts_with("task.yaml:7:7: warm: 17 instances is more than the 16"),
            "{errs:?}"
        );
        assert!(errors(&with("-1"))[0].starts_with("task.yaml:7:7:"));
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
             difficulty, time_limit, limits, capabilities, rootfs, hostname, user, shell, env, \
             files, tmpfs, setup, setup_timeout, check, check_timeout, warm, hints, auto_check, \
             solution"
        );
    }

    #[test]
    fn capabilities_and_disk_are_checked_where_they_are_written() {
        let with = |extra: &str| GOOD.replace("limits:\n", &format!("{extra}limits:\n"));
        let root = write_task(&with("capabilities: [NET_ADMIN, cap_sys_ptrace]\n"));
        let task = load(&root.path().join("demo")).unwrap();
        assert_eq!(task.capabilities, ["NET_ADMIN", "cap_sys_ptrace"]);
        let errs = errors(&with("capabilities: [NET_ADMIN, SYS_ADMIN]\n"));
        assert!(
            errs[0].starts_with("task.yaml:7:27: capabilities[1]: SYS_ADMIN is never granted"),
            "{errs:?}"
        );
        let bad = GOOD.replace("limits:\n", "limits:\n  disk: 512K\n");
        let errs = errors(&bad);
        assert!(
            errs[0].contains("limits.disk: 524288 bytes is below the minimum"),
            "{errs:?}"
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
    fn the_parser_budget_stops_bombs_that_types_would_not() {
        // `IgnoredAny` walks every node, aliases expanded: only the budget stops these.
        let mut laughs = format!("a: &a [{}]\n", ["lol"; 10].join(", "));
        for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            laughs.push_str(&format!(
                "{next}: &{next} [{}]\n",
                vec![format!("*{prev}"); 10].join(", ")
            ));
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let wide = format!("[{}]", vec!["x"; 60_000].join(","));
        for yaml in [laughs, deep, wide] {
            let start = std::time::Instant::now();
            let result = serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(
                &yaml,
                parser_options(),
            );
            assert!(result.is_err(), "{} bytes accepted", yaml.len());
            assert!(start.elapsed() < std::time::Duration::from_secs(2));
        }
        // A real task stays far within it.
        assert!(
            serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(GOOD, parser_options())
                .is_ok()
        );
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
