//! `tandem task validate` end to end: the built binary on small task files in a temporary
//! directory, with no server and no certificates anywhere.

use std::path::Path;
use std::process::{Command, Output};

/// A minimal valid task file for a task called `name` (seven lines).
fn task_yaml(name: &str) -> String {
    format!(
        "name: {name}\ntitle: A demo\ndescription: Fix it.\ndifficulty: easy\n\
         time_limit: 10m\ncheck: \"true\"\nsolution: x\n"
    )
}

/// Writes `root/name/task.yaml`.
fn write_task(root: &Path, name: &str, yaml: &str) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("create the task directory");
    std::fs::write(dir.join("task.yaml"), yaml).expect("write task.yaml");
}

/// Runs `tandem ARGS…` in `dir` with an empty environment (so no certificates are found).
fn tandem(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .env_clear()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run tandem")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_valid_task_passes() {
    let root = tempfile::tempdir().expect("tempdir");
    write_task(root.path(), "demo", &task_yaml("demo"));
    let out = tandem(root.path(), &["task", "validate", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ok: demo (demo)\n");
    assert_eq!(text(&out.stderr), "");

    // A directory of task directories, as JSON.
    let out = tandem(root.path(), &["-o", "json", "task", "validate", "."]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one document");
    assert_eq!(json["tasks"][0]["name"], "demo");
    assert_eq!(json["tasks"][0]["ok"], true);
    assert_eq!(json["tasks"].as_array().map(Vec::len), Some(1));
}

#[test]
fn an_unknown_field_is_reported_with_its_position() {
    let root = tempfile::tempdir().expect("tempdir");
    write_task(root.path(), "demo", &task_yaml("demo"));
    let yaml = format!("{}limts:\n  cpu: 1\n", task_yaml("typo"));
    write_task(root.path(), "typo", &yaml);
    let out = tandem(root.path(), &["task", "validate", "."]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("typo/task.yaml:8:1: unknown field `limts`"),
        "{stderr}"
    );
    // The valid task is still reported as such.
    assert_eq!(text(&out.stdout), "ok: demo (./demo)\n");

    let out = tandem(root.path(), &["-o", "json", "task", "validate", "typo"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one document");
    let task = &json["tasks"][0];
    assert_eq!(task["ok"], false);
    assert!(task["name"].is_null());
    assert_eq!(task["errors"][0]["file"], "typo/task.yaml");
    assert_eq!(task["errors"][0]["line"], 8);
    assert_eq!(task["errors"][0]["column"], 1);
}

#[test]
fn a_bad_duration_points_at_the_value() {
    let root = tempfile::tempdir().expect("tempdir");
    let yaml = task_yaml("slow").replace("time_limit: 10m", "time_limit: soon");
    write_task(root.path(), "slow", &yaml);
    let out = tandem(root.path(), &["task", "validate", "slow/task.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    // Line 5, column 13: where `soon` starts.
    assert!(
        stderr.contains("slow/task.yaml:5:13: time_limit: \"soon\""),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn validate_needs_a_path() {
    let root = tempfile::tempdir().expect("tempdir");
    let out = tandem(root.path(), &["task", "validate"]);
    assert_eq!(out.status.code(), Some(2));
}
