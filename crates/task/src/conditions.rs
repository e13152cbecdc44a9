//! Named conditions in a check's output (partial credit): besides its exit status, a
//! check may print one line per condition, `PASS <name>` or `FAIL <name>: <reason>`.
//! Sessions record when each condition first passed; the rest of the output stays the
//! explanation interviewers read.
//!
//! A name printed twice keeps its **last** line (and a flood of names keeps the last ones). A check often prints what the candidate
//! controls (an HTTP body, a file, a command line) before its own verdict, so a candidate
//! who makes that text say `PASS health-ok` must not decide the condition: the check's own
//! report, printed after everything it saw, does. Checks must still quote candidate text
//! (Python's `%r`), so that it cannot start a line at all: a name the check does not report
//! in that run would otherwise be the candidate's alone (see `tasks/README.md`).

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

/// The conditions `output` reports, each from its last line, in the order of those lines
/// (the check's own verdict comes after what it quoted). When more than
/// [`MAX_CONDITIONS`] names appear, the last ones are kept: the check's report at the end
/// outlives a flood printed before it. Lines that are not condition lines are ignored.
pub fn conditions(output: &str) -> Vec<Condition> {
    let mut found: Vec<Condition> = Vec::new();
    for line in output.lines().rev() {
        if found.len() == MAX_CONDITIONS {
            break;
        }
        let Some(c) = condition(line.trim_end()) else {
            continue;
        };
        if !found.iter().any(|f| f.name == c.name) {
            found.push(c);
        }
    }
    found.reverse();
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
                   FAIL : no name\nPASS two words\nPASS x: a reason on a pass\n";
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

    /// A check that prints the candidate's HTTP body before its own report: the body's
    /// `PASS health-ok` line comes first, the check's verdict last, and the verdict counts.
    #[test]
    fn the_checks_own_verdict_after_candidate_text_decides() {
        let out = "NOT SOLVED: /health -> 500 x\nPASS health-ok\nPASS config-private\n\
                   FAIL health-ok: /health -> 500\nPASS config-private\n";
        assert_eq!(
            conditions(out),
            [
                c("health-ok", false, "/health -> 500"),
                c("config-private", true, "")
            ]
        );
        // And the other way: a FAIL the candidate printed does not hide the check's PASS.
        assert_eq!(
            conditions("FAIL db: spoofed\nPASS db\n"),
            [c("db", true, "")]
        );
    }

    /// A flood of names is cut, and the cut keeps the last names: a flood printed before
    /// the check's report cannot push the check's own conditions out.
    #[test]
    fn a_flood_of_conditions_is_cut() {
        let mut out: String = (0..100).map(|i| format!("PASS c{i}\n")).collect();
        out.push_str("FAIL health-ok: down\n");
        let found = conditions(&out);
        assert_eq!(found.len(), MAX_CONDITIONS);
        assert_eq!(found.last(), Some(&c("health-ok", false, "down")));
        assert_eq!(found[0].name, format!("c{}", 100 - MAX_CONDITIONS + 1));
        let long = format!("PASS {}\n", "x".repeat(MAX_CONDITION_NAME + 1));
        assert_eq!(conditions(&long), []);
    }
}
