//! Named conditions in a check's output (partial credit): besides its exit status, a
//! check may print one line per condition, `PASS <name>` or `FAIL <name>: <reason>`.
//! Sessions record when each condition first passed; the rest of the output stays the
//! explanation interviewers read.

use serde::{Deserialize, Serialize};

/// One named condition of a check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// Its name: letters, digits, `-`, `_`, `.` (as the check printed it).
    pub name: String,
    /// `PASS` (true) or `FAIL` (false).
    pub passed: bool,
    /// What a `FAIL` line says after the colon (empty for `PASS`).
    pub reason: String,
}

/// Longest condition name taken from a check's output.
pub const MAX_CONDITION_NAME: usize = 64;
/// Most conditions taken from one check's output (the rest are ignored).
pub const MAX_CONDITIONS: usize = 32;

/// The conditions `output` reports, in order of their first line. A name reported twice
/// keeps its first line. Lines that are not condition lines are ignored.
pub fn conditions(output: &str) -> Vec<Condition> {
    let mut found: Vec<Condition> = Vec::new();
    for line in output.lines() {
        let Some(c) = condition(line.trim_end()) else {
            continue;
        };
        if found.len() < MAX_CONDITIONS && !found.iter().any(|f| f.name == c.name) {
            found.push(c);
        }
    }
    found
}

fn condition(line: &str) -> Option<Condition> {
    let (passed, rest) = if let Some(rest) = line.strip_prefix("PASS ") {
        (true, rest)
    } else {
        (false, line.strip_prefix("FAIL ")?)
    };
    let (name, reason) = match rest.split_once(':') {
        Some((name, reason)) if !passed => (name, reason.trim()),
        Some(_) => return None,
        None => (rest, ""),
    };
    let name = name.trim();
    let valid = !name.is_empty()
        && name.len() <= MAX_CONDITION_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    valid.then(|| Condition {
        name: name.to_string(),
        passed,
        reason: reason.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, passed: bool, reason: &str) -> Condition {
        Condition {
            name: name.into(),
            passed,
            reason: reason.into(),
        }
    }

    #[test]
    fn pass_and_fail_lines_are_conditions_and_the_rest_is_explanation() {
        let out = "checking the app\nPASS port-free\nFAIL app-up: nothing answers on :8080\n\
                   FAIL : no name\nPASS two words\nPASS x: a reason on a pass\nPASS port-free\n";
        assert_eq!(
            conditions(out),
            [
                c("port-free", true, ""),
                c("app-up", false, "nothing answers on :8080")
            ]
        );
        assert_eq!(conditions("all good\n"), []);
        assert_eq!(conditions("FAIL db\n"), [c("db", false, "")]);
    }

    #[test]
    fn a_flood_of_conditions_is_cut() {
        let out: String = (0..100).map(|i| format!("PASS c{i}\n")).collect();
        assert_eq!(conditions(&out).len(), MAX_CONDITIONS);
        let long = format!("PASS {}\n", "x".repeat(MAX_CONDITION_NAME + 1));
        assert_eq!(conditions(&long), []);
    }
}
