//! What the commands' outputs share: the output [`Format`], one JSON document, tables,
//! the values that several commands print (byte sizes, limits, RFC 3339 times,
//! shell-quoted command lines), and writing to stdout. Each command's own views and texts
//! live in its module under `commands/`.
//!
//! The JSON views are serde structs rather than derives on the generated protobuf types,
//! so that each document's shape is stable and readable: states are lower-case names
//! (`oom_killed`), absent values are `null`, and times are RFC 3339.

use std::io::{self, Write};
use std::time::SystemTime;

use serde::Serialize;
use tandem_proto::v1::Limits;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people: `key: value` lines and tables.
    Text,
    /// For scripts: one JSON document on stdout.
    Json,
}

/// Resource limits as printed by `-o json`; `null` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LimitsView {
    /// CPU, in cores.
    pub cpu_cores: Option<f64>,
    /// Memory, bytes.
    pub memory_bytes: Option<u64>,
    /// Processes and threads.
    pub pids: Option<u64>,
    /// Disk read bandwidth, bytes per second.
    pub io_read_bytes_per_second: Option<u64>,
    /// Disk write bandwidth, bytes per second.
    pub io_write_bytes_per_second: Option<u64>,
    /// Disk read operations per second.
    pub io_read_ops_per_second: Option<u64>,
    /// Disk write operations per second.
    pub io_write_ops_per_second: Option<u64>,
}

impl From<&Limits> for LimitsView {
    fn from(l: &Limits) -> Self {
        LimitsView {
            cpu_cores: l.cpu_cores,
            memory_bytes: l.memory_bytes,
            pids: l.pids,
            io_read_bytes_per_second: l.io_read_bytes_per_second,
            io_write_bytes_per_second: l.io_write_bytes_per_second,
            io_read_ops_per_second: l.io_read_ops_per_second,
            io_write_ops_per_second: l.io_write_ops_per_second,
        }
    }
}

/// A value as one pretty-printed JSON document with a trailing newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Rows as a table: every column but the last padded to its widest cell, two spaces
/// between columns.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (n, cell) in row.iter().enumerate() {
            if n + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[n]));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `text` safe to print on a terminal: control characters other than line ends and tabs
/// (an escape sequence the candidate printed, which a session's timeline or report may
/// carry) become U+FFFD, so nothing reaches the reader's terminal as a command; so do
/// bidirectional overrides and isolates, which would show text in another order than it
/// was typed.
pub fn terminal_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if bidi || (c.is_control() && c != '\n' && c != '\t') {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// A command and its arguments as a shell would need them typed: arguments with spaces or
/// special characters are single-quoted.
pub fn command_line(command: &str, args: &[String]) -> String {
    std::iter::once(command)
        .chain(args.iter().map(String::as_str))
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` as is when it is safe to type bare, otherwise in single quotes.
fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Limits in words, `none` when nothing is limited.
pub fn limits_text(limits: Option<&Limits>) -> String {
    let Some(l) = limits else {
        return "none".to_string();
    };
    let mut parts = Vec::new();
    if let Some(cpu) = l.cpu_cores {
        parts.push(format!("cpu {cpu} cores"));
    }
    if let Some(memory) = l.memory_bytes {
        parts.push(format!("memory {}", format_bytes(memory)));
    }
    if let Some(pids) = l.pids {
        parts.push(format!("pids {pids}"));
    }
    if let Some(rate) = l.io_read_bytes_per_second {
        parts.push(format!("disk read {}/s", format_bytes(rate)));
    }
    if let Some(rate) = l.io_write_bytes_per_second {
        parts.push(format!("disk write {}/s", format_bytes(rate)));
    }
    if let Some(iops) = l.io_read_ops_per_second {
        parts.push(format!("disk read {iops} ops/s"));
    }
    if let Some(iops) = l.io_write_ops_per_second {
        parts.push(format!("disk write {iops} ops/s"));
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

/// A byte count with a binary unit: `512 B`, `64 MiB`, `1.5 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    let mut scale: u64 = 1024;
    while unit + 1 < UNITS.len() && bytes / scale >= 1024 {
        unit += 1;
        scale *= 1024;
    }
    if bytes.is_multiple_of(scale) {
        format!("{} {}", bytes / scale, UNITS[unit])
    } else {
        format!("{:.1} {}", bytes as f64 / scale as f64, UNITS[unit])
    }
}

/// A protobuf timestamp as RFC 3339 (`2025-01-02T03:04:05Z`); `None` when unset or
/// outside 1970 to 9999 (which RFC 3339 output cannot show and no job has).
pub fn timestamp(ts: Option<&prost_types::Timestamp>) -> Option<String> {
    /// The first second of the year 10000.
    const YEAR_10000: u64 = 253_402_300_800;
    let time = SystemTime::try_from(*ts?).ok()?;
    let since_epoch = time.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    if since_epoch.as_secs() >= YEAR_10000 {
        return None;
    }
    Some(humantime::format_rfc3339_seconds(time).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_quoting() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1 KiB");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
        assert_eq!(format_bytes(u64::MAX), "16.0 EiB");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("/bin/ls"), "/bin/ls");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(command_line("echo", &["$HOME".into()]), "echo '$HOME'");
    }

    #[test]
    fn timestamps_out_of_range_are_absent() {
        let ts = prost_types::Timestamp {
            seconds: -5,
            nanos: 0,
        };
        assert_eq!(timestamp(Some(&ts)), None);
        assert_eq!(timestamp(None), None);
        let far = prost_types::Timestamp {
            seconds: 253_402_300_800,
            nanos: 0,
        };
        assert_eq!(timestamp(Some(&far)), None);
    }
}
