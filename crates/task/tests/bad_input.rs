//! Hostile task files: YAML bombs (alias expansion, deep nesting, huge scalars), huge
//! files, files that are not files. Each is refused quickly, with bounded memory, and with
//! a diagnostic that says where (file:line:column when the parser knows it).
//!
//! Time and memory are measured around each load: the peak RSS of this test process must
//! not grow by more than a small multiple of the bounded input.

use std::path::Path;
use std::time::{Duration, Instant};
use tandem_task::{Diagnostic, MAX_TASK_FILE_BYTES};

/// A valid task with `extra` appended (at the top level).
fn task_yaml(extra: &str) -> String {
    format!(
        "name: demo\ntitle: Demo\ndescription: |\n  Fix it.\ndifficulty: easy\ntime_limit: 10m\n\
         check: |\n  true\nsolution: |\n  none\n{extra}"
    )
}

fn write(root: &Path, content: &[u8]) -> std::path::PathBuf {
    let dir = root.join("demo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("task.yaml"), content).unwrap();
    dir
}

/// Peak resident set of this process (VmHWM), bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// Loads `dir`, asserting it fails within `limit` with at most `memory` bytes of RSS
/// growth; returns the diagnostics.
fn refused(dir: &Path, limit: Duration, memory: u64) -> Vec<Diagnostic> {
    let before = peak_rss();
    let start = Instant::now();
    let result = tandem_task::load(dir);
    let took = start.elapsed();
    let grew = peak_rss().saturating_sub(before);
    let errs = result.expect_err("a hostile task file must be refused");
    assert!(!errs.is_empty());
    assert!(took < limit, "took {took:?} (limit {limit:?}): {errs:?}");
    assert!(
        grew <= memory,
        "peak RSS grew by {grew} bytes (limit {memory}): {errs:?}"
    );
    for e in &errs {
        assert!(
            e.file.ends_with("task.yaml"),
            "the diagnostic names the file: {e}"
        );
    }
    errs
}

/// The classic "billion laughs": nine levels of ten aliases each, 10^9 strings once
/// expanded, as YAML values (anchors `a` to `i`).
fn laughs() -> Vec<String> {
    let mut lines = vec![format!("&a [{}]", ["lol"; 10].join(", "))];
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        lines.push(format!(
            "&{} [{}]",
            w[1],
            vec![format!("*{}", w[0]); 10].join(", ")
        ));
    }
    lines
}

#[test]
fn billion_laughs_is_refused_quickly_at_its_position() {
    let root = tempfile::tempdir().unwrap();
    let bomb = laughs();
    // At the top level, under keys of their own.
    let top: String = bomb
        .iter()
        .enumerate()
        .map(|(i, l)| format!("k{i}: {l}\n"))
        .collect();
    // Inside a field the task reads: the anchors in a list, the last one used where a
    // string (a hint, the solution) or a map (env) is expected.
    let in_hints: String = bomb.iter().map(|l| format!("  - {l}\n")).collect();
    for yaml in [
        format!("{top}{}", task_yaml("")),
        format!("{}{top}", task_yaml("")),
        task_yaml(&format!("hints:\n{in_hints}  - *i\n")),
        task_yaml(&format!("hints:\n{in_hints}env: *i\n")),
        task_yaml(&format!("hints:\n{in_hints}")).replace("solution: |\n  none\n", "")
            + "solution: *i\n",
    ] {
        let dir = write(root.path(), yaml.as_bytes());
        let errs = refused(&dir, Duration::from_secs(5), 64 << 20);
        eprintln!("billion laughs: {errs:?}");
        assert!(errs[0].line > 0, "a position is given: {}", errs[0]);
    }
}

#[test]
fn alias_expansion_through_a_known_field_is_bounded() {
    // Many aliases of one big anchored string: each expansion copies 64 KiB (5000 of
    // them: 320 MiB if nothing stopped it).
    let root = tempfile::tempdir().unwrap();
    let big = "x".repeat(64 << 10);
    let aliases = vec!["*s"; 5_000].join(", ");
    let yaml = task_yaml(&format!("hints: [&s {big}, {aliases}]\n"));
    let dir = write(root.path(), yaml.as_bytes());
    let errs = refused(&dir, Duration::from_secs(5), 64 << 20);
    eprintln!("alias expansion: {errs:?}");
    assert!(errs[0].line > 0, "a position is given: {}", errs[0]);
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let root = tempfile::tempdir().unwrap();
    // 100k nested flow lists; 1000 nested block lists and mappings (their indentation
    // makes deeper ones larger than the size bound).
    let depth = 100_000;
    let flow = format!("hints: {}{}\n", "[".repeat(depth), "]".repeat(depth));
    let dir = write(root.path(), task_yaml(&flow).as_bytes());
    let errs = refused(&dir, Duration::from_secs(5), 64 << 20);
    eprintln!("flow nesting: {errs:?}");
    assert!(errs[0].line > 0, "{}", errs[0]);

    let mut block = String::from("hints:\n");
    for i in 0..1_000 {
        block.push_str(&" ".repeat(i));
        block.push_str("-\n");
    }
    let dir = write(root.path(), task_yaml(&block).as_bytes());
    let errs = refused(&dir, Duration::from_secs(5), 64 << 20);
    eprintln!("block nesting: {errs:?}");
    assert!(errs[0].line > 0, "{}", errs[0]);

    // Nested mappings.
    let mut maps = String::from("env:\n");
    for i in 1..1_000 {
        maps.push_str(&" ".repeat(i));
        maps.push_str(&format!("k{i}:\n"));
    }
    let dir = write(root.path(), task_yaml(&maps).as_bytes());
    let errs = refused(&dir, Duration::from_secs(5), 64 << 20);
    eprintln!("mapping nesting: {errs:?}");
    assert!(errs[0].line > 0, "{}", errs[0]);
}

#[test]
fn huge_files_and_scalars_are_refused_before_parsing() {
    let root = tempfile::tempdir().unwrap();
    // A 100 MB scalar: refused by the size bound, without reading it all.
    let huge = 100 << 20;
    let mut yaml = task_yaml("hints:\n  - ").into_bytes();
    yaml.resize(yaml.len() + huge, b'x');
    yaml.push(b'\n');
    let dir = write(root.path(), &yaml);
    let errs = refused(&dir, Duration::from_secs(5), 8 << 20);
    assert!(
        errs[0]
            .message
            .contains(&format!("{MAX_TASK_FILE_BYTES} bytes")),
        "{}",
        errs[0]
    );

    // Just under the bound: parsed (and refused for what it says, not for its size).
    let mut yaml = task_yaml("hints:\n  - ").into_bytes();
    yaml.resize(MAX_TASK_FILE_BYTES as usize - 1, b'x');
    yaml.push(b'\n');
    let dir = write(root.path(), &yaml);
    let loaded = tandem_task::load(&dir);
    assert!(loaded.is_ok(), "{:?}", loaded.err());

    // Many small scalars within the bound: a node count, not a crash.
    let many = format!("hints: [{}]\n", vec!["a"; 400_000].join(","));
    let dir = write(root.path(), task_yaml(&many).as_bytes());
    refused(&dir, Duration::from_secs(5), 64 << 20);
}

#[test]
fn a_task_file_that_is_not_a_regular_file_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("demo");
    std::fs::create_dir(&dir).unwrap();
    // An endless device: reading it would never end.
    std::os::unix::fs::symlink("/dev/zero", dir.join("task.yaml")).unwrap();
    let errs = refused(&dir, Duration::from_secs(5), 8 << 20);
    assert!(
        errs[0].message.contains("not a regular file"),
        "{}",
        errs[0]
    );
    // A FIFO: opening it would wait for a writer forever.
    std::fs::remove_file(dir.join("task.yaml")).unwrap();
    nix_mkfifo(&dir.join("task.yaml"));
    let errs = refused(&dir, Duration::from_secs(5), 8 << 20);
    assert!(
        errs[0].message.contains("not a regular file"),
        "{}",
        errs[0]
    );
}

#[test]
fn a_file_source_that_is_endless_or_huge_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = write(
        root.path(),
        task_yaml("files:\n  - path: /opt/zero\n    source: zero\n").as_bytes(),
    );
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero")).unwrap();
    let errs = refused(&dir, Duration::from_secs(5), 8 << 20);
    assert!(
        errs.iter()
            .any(|e| e.line == 13 && e.message.contains("files[0].source")),
        "{errs:?}"
    );
    // Two files within the per-file bound but over it together.
    let dir = write(
        root.path(),
        task_yaml("files:\n  - path: /opt/a\n    source: big\n  - path: /opt/b\n    source: big\n")
            .as_bytes(),
    );
    std::fs::write(dir.join("big"), vec![b'x'; 9 << 20]).unwrap();
    let errs = tandem_task::load(&dir).unwrap_err();
    assert!(
        errs.iter().any(|e| e.message.starts_with("files: ")),
        "{errs:?}"
    );
}

#[test]
fn absurd_durations_are_refused_at_their_position() {
    let root = tempfile::tempdir().unwrap();
    for (yaml, field) in [
        (
            task_yaml("").replace("time_limit: 10m", "time_limit: 1000000000h"),
            "time_limit",
        ),
        (task_yaml("setup_timeout: 30d\n"), "setup_timeout"),
        (
            task_yaml("check_timeout: 99999999999999s\n"),
            "check_timeout",
        ),
        (
            task_yaml("").replace("time_limit: 10m", "time_limit: 99999999999999999999999h"),
            "time_limit",
        ),
    ] {
        let dir = write(root.path(), yaml.as_bytes());
        let errs = tandem_task::load(&dir).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.line > 0 && e.column > 0 && e.message.starts_with(field)),
            "{field}: {errs:?}"
        );
    }
}

fn nix_mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}
