//! `tandem task validate`: which tasks the arguments stand for, validating each with
//! `tandem-task` (locally: no server, no certificates, no worker), and the result as a
//! JSON document.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tandem_task::Diagnostic;

/// The result of validating one task.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    /// The task's directory or file, as it was found.
    pub path: PathBuf,
    /// The task's name when it is valid.
    pub name: Option<String>,
    /// Every problem found; empty when the task is valid.
    pub errors: Vec<Diagnostic>,
}

/// `task validate -o json`: one document for all tasks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidateView {
    /// One entry per task, in the order validated.
    pub tasks: Vec<ValidationView>,
}

/// One task's validation as printed by `task validate -o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationView {
    /// The task's directory or file.
    pub path: String,
    /// The task's name; `null` when it is invalid.
    pub name: Option<String>,
    /// Whether the task is valid.
    pub ok: bool,
    /// Every problem found.
    pub errors: Vec<DiagnosticView>,
}

/// One problem as printed by `task validate -o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiagnosticView {
    /// The file the problem is in.
    pub file: String,
    /// 1-based line; `null` when the problem concerns the whole file.
    pub line: Option<u64>,
    /// 1-based column; `null` when unknown.
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl From<&Diagnostic> for DiagnosticView {
    fn from(d: &Diagnostic) -> Self {
        DiagnosticView {
            file: d.file.display().to_string(),
            line: (d.line > 0).then_some(d.line),
            column: (d.line > 0 && d.column > 0).then_some(d.column),
            message: d.message.clone(),
        }
    }
}

impl ValidateView {
    /// The document for these results.
    pub fn new(results: &[Validation]) -> Self {
        ValidateView {
            tasks: results
                .iter()
                .map(|v| ValidationView {
                    path: v.path.display().to_string(),
                    name: v.name.clone(),
                    ok: v.errors.is_empty(),
                    errors: v.errors.iter().map(DiagnosticView::from).collect(),
                })
                .collect(),
        }
    }
}

/// The tasks the `task validate` arguments stand for, each once, in argument order: a file
/// is a task file; a directory with a `task.yaml` is a task; any other directory stands
/// for its subdirectories that have a `task.yaml` (by name). A path that does not exist
/// is kept, so that loading it reports it. `Err` is a directory that holds no task.
pub fn expand(paths: &[PathBuf]) -> Vec<Result<PathBuf, Diagnostic>> {
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    for path in paths {
        if !path.is_dir() || path.join("task.yaml").is_file() {
            if seen.insert(path.clone()) {
                found.push(Ok(path.clone()));
            }
            continue;
        }
        match task_dirs(path) {
            Ok(dirs) if dirs.is_empty() => found.push(Err(whole_file(
                path,
                "no task.yaml in this directory nor in any of its subdirectories",
            ))),
            Ok(dirs) => {
                for dir in dirs {
                    if seen.insert(dir.clone()) {
                        found.push(Ok(dir));
                    }
                }
            }
            Err(e) => found.push(Err(whole_file(
                path,
                &format!("cannot read the directory: {e}"),
            ))),
        }
    }
    found
}

/// The subdirectories of `dir` that have a `task.yaml`, sorted.
fn task_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.join("task.yaml").is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// A problem with a whole file or directory.
fn whole_file(path: &Path, message: &str) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: message.to_string(),
    }
}

/// Validates every task the arguments stand for (see [`expand`]).
pub fn validate(paths: &[PathBuf]) -> Vec<Validation> {
    expand(paths)
        .into_iter()
        .map(|target| match target {
            Ok(path) => match tandem_task::load(&path) {
                Ok(task) => Validation {
                    path,
                    name: Some(task.name),
                    errors: Vec::new(),
                },
                Err(errors) => Validation {
                    path,
                    name: None,
                    errors,
                },
            },
            Err(problem) => Validation {
                path: problem.file.clone(),
                name: None,
                errors: vec![problem],
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs;

    /// A minimal valid task file for a task called `name`.
    fn task_yaml(name: &str) -> String {
        format!(
            "name: {name}\ntitle: A demo\ndescription: Fix it.\ndifficulty: easy\n\
             time_limit: 10m\ncheck: \"true\"\nsolution: x\n"
        )
    }

    /// Writes `dir/name/task.yaml` and returns the task's directory.
    fn write_task(dir: &Path, name: &str, yaml: &str) -> PathBuf {
        let task = dir.join(name);
        fs::create_dir_all(&task).unwrap();
        fs::write(task.join("task.yaml"), yaml).unwrap();
        task
    }

    #[test]
    fn expand_task_dir_file_and_tasks_dir() {
        let root = tempfile::tempdir().unwrap();
        let tasks = root.path().join("tasks");
        let b = write_task(&tasks, "b", &task_yaml("b"));
        let a = write_task(&tasks, "a", &task_yaml("a"));
        // Neither a directory without task.yaml nor a plain file counts as a task.
        fs::create_dir_all(tasks.join("notes")).unwrap();
        fs::write(tasks.join("README.md"), "hi").unwrap();

        let found = expand(std::slice::from_ref(&tasks));
        assert_eq!(found, vec![Ok(a.clone()), Ok(b.clone())]);

        let file = a.join("task.yaml");
        let found = expand(&[b.clone(), file.clone()]);
        assert_eq!(found, vec![Ok(b.clone()), Ok(file)]);

        // Each task once, in argument order.
        let found = expand(&[b.clone(), tasks.clone(), a.clone()]);
        assert_eq!(found, vec![Ok(b), Ok(a)]);
    }

    #[test]
    fn expand_missing_and_empty() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("nope");
        assert_eq!(
            expand(std::slice::from_ref(&missing)),
            vec![Ok(missing.clone())]
        );
        let empty = root.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let found = expand(std::slice::from_ref(&empty));
        assert_eq!(found.len(), 1);
        let problem = found[0].clone().unwrap_err();
        assert_eq!(problem.file, empty);
        assert!(problem.message.contains("no task.yaml"), "{problem}");

        let results = validate(&[missing.clone(), empty]);
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r.name.is_none()));
        assert!(
            results[0].errors[0].message.contains("cannot read"),
            "{:?}",
            results[0].errors
        );
    }

    #[test]
    fn validate_json_shape() {
        let root = tempfile::tempdir().unwrap();
        let good = write_task(root.path(), "demo", &task_yaml("demo"));
        let bad = write_task(
            root.path(),
            "broken",
            &format!("{}limts: {{}}\n", task_yaml("broken")),
        );
        let results = validate(&[root.path().to_path_buf()]);
        let value = serde_json::to_value(ValidateView::new(&results)).unwrap();
        let bad_file = bad.join("task.yaml").display().to_string();
        let errors = &value["tasks"][0]["errors"];
        assert_eq!(errors.as_array().unwrap().len(), 1, "{value}");
        assert_eq!(errors[0]["file"], bad_file.as_str());
        assert_eq!(errors[0]["line"], 8);
        assert!(errors[0]["column"].as_u64().unwrap() >= 1);
        let message = errors[0]["message"].as_str().unwrap();
        assert!(message.contains("unknown field `limts`"), "{message}");
        assert_eq!(
            value["tasks"][0],
            json!({
                "path": bad.display().to_string(),
                "name": null,
                "ok": false,
                "errors": errors.clone(),
            })
        );
        assert_eq!(
            value["tasks"][1],
            json!({
                "path": good.display().to_string(),
                "name": "demo",
                "ok": true,
                "errors": [],
            })
        );
        assert_eq!(value.as_object().unwrap().len(), 1);

        // A problem with the whole file has no position.
        let view = DiagnosticView::from(&whole_file(Path::new("x"), "gone"));
        assert_eq!(
            serde_json::to_value(view).unwrap(),
            json!({"file": "x", "line": null, "column": null, "message": "gone"})
        );
    }
}
