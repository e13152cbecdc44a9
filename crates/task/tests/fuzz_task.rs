//! Property tests of the task loader (`tandem_task::load`) on generated and mutated YAML:
//! it never panics, a task it accepts keeps the format's invariants, and every problem it
//! reports names the file and, unless it concerns the whole file, a line and column that
//! exist in it. Longer runs:
//! `PROPTEST_CASES=20000 cargo test -p tandem-task --test fuzz_task` (docs/TESTING.md).

use proptest::prelude::*;
use std::path::Path;
use tandem_task::{Diagnostic, MAX_TIME_LIMIT};

/// `default` cases unless PROPTEST_CASES asks for more (or fewer).
fn cases(default: u32) -> ProptestConfig {
    let mut config = ProptestConfig {
        // Failures are saved beside this file (`*.proptest-regressions`) and replayed first.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default;
    }
    config
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
  disk: 64M
capabilities: [NET_ADMIN]
hostname: box-1
env:
  PS1: 'demo$ '
files:
  - path: /etc/motd
    content: hello
    mode: \"0644\"
    owner: root:root
tmpfs:
  - path: /data
    size: 10M
setup: |
  echo setting up
check: |
  test -f /etc/motd
check_timeout: 20s
hints: [look around]
solution: |
  Fix it.
";

/// Messages about the file as a whole (no single position to point at).
const WHOLE_FILE: &[&str] = &[
    "title:",
    "description:",
    "solution:",
    "env:",
    "files:",
    "cannot read",
];

/// Loads `yaml` as `demo/task.yaml` and checks the loader's promises.
fn check_load(yaml: &str) -> Result<(), TestCaseError> {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("demo");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("task.yaml");
    std::fs::write(&file, yaml).unwrap();
    match tandem_task::load(&dir) {
        Ok(task) => {
            prop_assert_eq!(&task.name, "demo");
            prop_assert!(!task.time_limit.is_zero() && task.time_limit <= MAX_TIME_LIMIT);
            prop_assert!(!task.title.is_empty() && !task.title.contains('\n'));
            prop_assert!(task.limits.validate().is_ok());
        }
        Err(diagnostics) => {
            prop_assert!(!diagnostics.is_empty());
            for d in &diagnostics {
                positioned(d, &file, yaml)?;
            }
        }
    }
    Ok(())
}

fn positioned(d: &Diagnostic, file: &Path, yaml: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(&d.file, file);
    prop_assert!(!d.message.is_empty());
    let text = d.to_string();
    prop_assert!(text.starts_with(&file.display().to_string()), "{}", text);
    if d.line == 0 {
        prop_assert!(
            WHOLE_FILE.iter().any(|p| d.message.starts_with(p)),
            "a problem without a position: {}",
            text
        );
        return Ok(());
    }
    let lines = yaml.lines().count() as u64;
    prop_assert!(
        d.line <= lines + 1,
        "line {} of {}: {}",
        d.line,
        lines,
        text
    );
    prop_assert!(d.column >= 1, "no column: {}", text);
    Ok(())
}

/// One edit of a text.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            any::<usize>(),
            "[ -~\t\n]{1,6}|[:\\-\\[\\]{}&*!|>'\"#%@`]{1,3}|\\PC{1,2}"
        )
            .prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<usize>(), 1..20usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_string();
    for e in edits {
        let boundary = |t: &str, at: usize| {
            let mut at = at % (t.len() + 1);
            while !t.is_char_boundary(at) {
                at -= 1;
            }
            at
        };
        match e {
            Edit::Insert(at, s) => {
                let at = boundary(&text, *at);
                text.insert_str(at, s);
            }
            Edit::Delete(at, n) => {
                let start = boundary(&text, *at);
                let end = boundary(&text, (start + n).min(text.len()));
                text.replace_range(start..end.max(start), "");
            }
            Edit::DuplicateLine(i) => {
                let mut lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let i = i % lines.len();
                    lines.insert(i, lines[i]);
                }
                text = lines.join("\n") + "\n";
            }
            Edit::SwapLines(a, b) => {
                let mut lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let n = lines.len();
                    lines.swap(a % n, b % n);
                }
                text = lines.join("\n") + "\n";
            }
        }
    }
    text
}

/// Values people (or attackers) might write for a field.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,25}(\\.[0-9]{0,5})?(ns|us|ms|s|m|h|d|w|M|y|K|G|T|KB|MiB|/s)?",
        "-?[0-9]{1,5}",
        "[a-zA-Z_:./-]{0,20}",
        Just(String::new()),
        Just("~".to_string()),
        Just(".nan".to_string()),
        Just("-.inf".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("\"\\0\"".to_string()),
        Just("!!binary AAAA".to_string()),
        "\\PC{0,12}",
    ]
}

/// Fields whose value a generated case replaces (`key: ` at the start of a line).
const FIELDS: &[&str] = &[
    "name",
    "title",
    "difficulty",
    "time_limit",
    "  cpu",
    "  memory",
    "  pids",
    "  disk",
    "capabilities",
    "hostname",
    "  PS1",
    "  - path",
    "    content",
    "    mode",
    "    owner",
    "    size",
    "check_timeout",
    "hints",
];

proptest! {
    #![proptest_config(cases(300))]

    /// Random edits of a valid task file.
    #[test]
    fn mutated_task_files_are_answered_with_positions(edits in prop::collection::vec(edit(), 1..6)) {
        check_load(&apply(GOOD, &edits))?;
    }

    /// A valid task file with fields set to odd values.
    #[test]
    fn odd_field_values_are_answered_with_positions(
        changes in prop::collection::vec((0..FIELDS.len(), value()), 1..5)
    ) {
        let mut yaml = GOOD.to_string();
        for (field, value) in &changes {
            let key = format!("\n{}: ", FIELDS[*field]);
            if let Some(at) = yaml.find(&key) {
                let start = at + key.len();
                let end = start + yaml[start..].find('\n').unwrap_or(yaml.len() - start);
                yaml.replace_range(start..end, value);
            }
        }
        check_load(&yaml)?;
    }

    /// Arbitrary bytes as a task file.
    #[test]
    fn arbitrary_text_is_answered(text in "\\PC{0,200}") {
        check_load(&text)?;
    }
}

#[test]
fn the_template_is_valid() {
    check_load(GOOD).unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("demo");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("task.yaml"), GOOD).unwrap();
    tandem_task::load(&dir).unwrap();
}
