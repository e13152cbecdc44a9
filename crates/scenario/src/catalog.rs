//! The tasks a daemon offers: every `<dir>/<name>/task.yaml` that validates.

use crate::task::{self, Diagnostic, Task};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Validated tasks by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tasks: BTreeMap<String, Arc<Task>>,
}

impl Catalog {
    /// Loads every task directory under `dir`. Invalid tasks are left out; their problems
    /// are returned so the caller can say why (the others still load).
    pub fn load_dir(dir: &Path) -> (Self, Vec<Diagnostic>) {
        let mut catalog = Self::default();
        let mut problems = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                problems.push(Diagnostic {
                    file: dir.to_path_buf(),
                    line: 0,
                    column: 0,
                    message: format!("cannot read the tasks directory: {e}"),
                });
                return (catalog, problems);
            }
        };
        let mut dirs: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("task.yaml").is_file())
            .collect();
        dirs.sort();
        for path in dirs {
            match task::load(&path) {
                Ok(task) => {
                    catalog.tasks.insert(task.name.clone(), Arc::new(task));
                }
                Err(diagnostics) => problems.extend(diagnostics),
            }
        }
        (catalog, problems)
    }

    /// A catalog of the given tasks (for tests and tools).
    pub fn from_tasks(tasks: impl IntoIterator<Item = Task>) -> Self {
        Self {
            tasks: tasks
                .into_iter()
                .map(|t| (t.name.clone(), Arc::new(t)))
                .collect(),
        }
    }

    /// The task called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Task>> {
        self.tasks.get(name).cloned()
    }

    /// All tasks, by name.
    pub fn list(&self) -> Vec<Arc<Task>> {
        self.tasks.values().cloned().collect()
    }
}
