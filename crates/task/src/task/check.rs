//! The checks behind [`load`](super::load): every field of a parsed task file is checked
//! and every problem reported with its position; scripts are checked with `bash -n`.

use super::accounts::Accounts;
use super::{
    DEFAULT_CHECK_TIMEOUT, DEFAULT_SETUP_TIMEOUT, DEFAULT_SHELL, DEFAULT_WARM, Diagnostic,
    Difficulty, MAX_WARM, RawFile, RawTask, Report, Task,
};
use crate::sandbox::{TaskFile, TaskTmpfs};
use crate::units::{parse_rate, parse_size};
use serde_saphyr::Spanned;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use tandem_limits::{CapSet, Limits};

/// Checks every field of `raw`, the task file of the task directory `dir`. `None` when
/// nothing usable could be made (the problems are in `report` either way).
pub(super) fn check(raw: RawTask, dir: &Path, report: &mut Report) -> Option<Task> {
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
    let time_limit = duration(report, "time_limit", &raw.time_limit, MAX_TIME_LIMIT);
    let setup_timeout = raw
        .setup_timeout
        .as_ref()
        .map_or(DEFAULT_SETUP_TIMEOUT, |d| {
            duration(report, "setup_timeout", d, MAX_SCRIPT_TIMEOUT)
        });
    let check_timeout = raw
        .check_timeout
        .as_ref()
        .map_or(DEFAULT_CHECK_TIMEOUT, |d| {
            duration(report, "check_timeout", d, MAX_SCRIPT_TIMEOUT)
        });
    let auto_check = raw.auto_check.as_ref().map(|d| {
        let every = duration(report, "auto_check", d, MAX_AUTO_CHECK);
        if every < MIN_AUTO_CHECK {
            report.at(
                d,
                format!(
                    "auto_check: {} is shorter than the minimum of {}",
                    d.value.trim(),
                    humantime::format_duration(MIN_AUTO_CHECK)
                ),
            );
        }
        every.max(MIN_AUTO_CHECK)
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
        limits.disk = l.disk.as_ref().and_then(|d| size(report, "limits.disk", d));
        if let Err(e) = limits.validate() {
            let position = l
                .cpu
                .as_ref()
                .map(|c| c.referenced)
                .or(l.pids.as_ref().map(|p| p.referenced))
                .or(l.memory.as_ref().map(|m| m.referenced))
                .or(l.disk.as_ref().map(|d| d.referenced));
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
    let warm = match &raw.warm {
        Some(w) if w.value > MAX_WARM => {
            report.at(
                w,
                format!(
                    "warm: {} instances is more than the {MAX_WARM} a task may keep ready",
                    w.value
                ),
            );
            w.value
        }
        Some(w) => w.value,
        None => DEFAULT_WARM,
    };
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

    let accounts = rootfs
        .as_deref()
        .map_or_else(Accounts::system_view, Accounts::read);
    let mut files = Vec::new();
    for (i, f) in raw.files.iter().enumerate() {
        if let Some(spec) = file(report, i, f, dir, &accounts) {
            files.push(spec);
        }
    }
    let files_bytes: usize = files.iter().map(|f: &TaskFile| f.content.len()).sum();
    if files_bytes > tandem_limits::MAX_FILES_BYTES {
        report.whole(format!(
            "files: {files_bytes} bytes of content in all is more than the {} allowed",
            tandem_limits::MAX_FILES_BYTES
        ));
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
            tmpfs.push(TaskTmpfs {
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

    let capabilities: Vec<String> = raw.capabilities.iter().map(|c| c.value.clone()).collect();
    if let Err(e) = CapSet::with_extra(&capabilities) {
        // The message names the entry: "capabilities[i]: …".
        let index = e
            .strip_prefix("capabilities[")
            .and_then(|rest| rest.split(']').next())
            .and_then(|i| i.parse::<usize>().ok())
            .unwrap_or(0);
        match raw.capabilities.get(index) {
            Some(entry) => report.at(entry, e),
            None => report.at(&raw.check, e),
        }
    }

    Some(Task {
        name,
        title: raw.title.trim().to_string(),
        description: raw.description,
        difficulty,
        time_limit,
        limits,
        capabilities,
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
        warm,
        auto_check,
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
) -> Option<TaskFile> {
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
            match super::read_bytes_bounded(
                &dir.join(relative),
                tandem_limits::MAX_FILES_BYTES as u64,
            ) {
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
    Some(TaskFile {
        path: PathBuf::from(&f.path.value),
        content,
        mode,
        uid,
        gid,
    })
}

/// Longest `time_limit`: a session lasts at most a day.
pub const MAX_TIME_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// Shortest `auto_check`: each check joins the sandbox (a few milliseconds of the
/// daemon's and the check's own time), so not more often than this.
pub const MIN_AUTO_CHECK: Duration = Duration::from_secs(5);
/// Longest `auto_check`.
pub const MAX_AUTO_CHECK: Duration = Duration::from_secs(3600);
/// Longest `setup_timeout` and `check_timeout`.
pub const MAX_SCRIPT_TIMEOUT: Duration = Duration::from_secs(3600);

fn duration(report: &mut Report, field: &str, value: &Spanned<String>, max: Duration) -> Duration {
    match humantime::parse_duration(value.value.trim()) {
        Ok(d) if d.is_zero() => {
            report.at(value, format!("{field}: must be longer than zero"));
            Duration::from_secs(1)
        }
        Ok(d) if d > max => {
            report.at(
                value,
                format!(
                    "{field}: {} is longer than the maximum of {}",
                    value.value.trim(),
                    humantime::format_duration(max)
                ),
            );
            max
        }
        Ok(d) => d,
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
