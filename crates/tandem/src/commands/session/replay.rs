//! `tandem session replay`: playing a session's asciicast v2 recording in this terminal.
//!
//! An asciicast v2 file is a header (a JSON object on the first line) followed by one
//! event per line, `[time, code, data]`: `time` in seconds since the start, `code` `o`
//! (output), `i` (input), `r` (resize, data `COLSxROWS`) or others such as `m` (marker).
//! Only output is played; everything else prints nothing.
//!
//! [`parse`] reads the whole file (a bad line is an error naming its line number),
//! [`frames`] turns the output events into the moments to write them at (pauses capped,
//! then divided by the speed), and [`play`] writes them at those moments.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use serde_json::Value;

/// The header's fields that playing uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    /// The recorded terminal's width in columns.
    pub width: Option<u64>,
    /// Its height in rows.
    pub height: Option<u64>,
    /// Idle time (seconds) the recording asks players to cut pauses to.
    pub idle_time_limit: Option<f64>,
}

/// One event line.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the start of the recording.
    pub time: f64,
    /// `o`, `i`, `r`, `m`, …
    pub code: String,
    /// The event's data (for `o`, the terminal output).
    pub data: String,
}

/// A parsed recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cast {
    /// The header.
    pub header: Header,
    /// The events, in file order.
    pub events: Vec<Event>,
}

/// A line of the recording that is not asciicast v2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Output to write `at` after the start of playing.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// When to write it, from the start of playing.
    pub at: Duration,
    /// The bytes to write.
    pub data: String,
}

/// Parses a whole asciicast v2 recording. Blank lines are skipped. A last line without
/// its newline that does not parse is dropped: a live session's recording may be read
/// while a line is being written.
pub fn parse(bytes: &[u8]) -> Result<Cast, ParseError> {
    let complete = bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let last = lines.len();
    let mut header = None;
    let mut events = Vec::new();
    for (index, line) in lines.into_iter().enumerate() {
        let number = index + 1;
        let error = |message: String| ParseError {
            line: number,
            message,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = std::str::from_utf8(line)
            .map_err(|_| error("not UTF-8 text".to_string()))
            .and_then(|text| {
                serde_json::from_str::<Value>(text).map_err(|e| error(format!("not JSON: {e}")))
            });
        let value = match parsed {
            Ok(value) => value,
            Err(_) if number == last && !complete && header.is_some() => break,
            Err(e) => return Err(e),
        };
        match header {
            None => header = Some(parse_header(&value).map_err(error)?),
            Some(_) => match parse_event(&value) {
                Ok(event) => events.push(event),
                Err(_) if number == last && !complete => break,
                Err(message) => return Err(error(message)),
            },
        }
    }
    let header = header.ok_or_else(|| ParseError {
        line: 1,
        message: "the recording is empty (no asciicast header)".to_string(),
    })?;
    Ok(Cast { header, events })
}

/// The header line: a JSON object with `"version": 2`.
fn parse_header(value: &Value) -> Result<Header, String> {
    let Some(object) = value.as_object() else {
        return Err("expected the asciicast header, a JSON object".to_string());
    };
    match object.get("version").and_then(Value::as_u64) {
        Some(2) => {}
        Some(other) => {
            return Err(format!(
                "asciicast version {other} is not supported (only version 2)"
            ));
        }
        None => return Err("the asciicast header has no \"version\" number".to_string()),
    }
    Ok(Header {
        width: object.get("width").and_then(Value::as_u64),
        height: object.get("height").and_then(Value::as_u64),
        idle_time_limit: object
            .get("idle_time_limit")
            .and_then(Value::as_f64)
            .filter(|limit| limit.is_finite() && *limit >= 0.0),
    })
}

/// An event line: `[time, code, data]`.
fn parse_event(value: &Value) -> Result<Event, String> {
    let shape = "expected an event [time, code, data]";
    let Some([time, code, data, ..]) = value.as_array().map(Vec::as_slice) else {
        return Err(shape.to_string());
    };
    let time = time
        .as_f64()
        .filter(|t| t.is_finite() && *t >= 0.0)
        .ok_or_else(|| format!("{shape}: the time {time} is not a number of seconds >= 0"))?;
    let code = code
        .as_str()
        .ok_or_else(|| format!("{shape}: the code {code} is not a string"))?;
    let data = data
        .as_str()
        .ok_or_else(|| format!("{shape}: the data of a {code:?} event is not a string"))?;
    Ok(Event {
        time,
        code: code.to_string(),
        data: data.to_string(),
    })
}

/// The output events of `cast` with the moment to write each. A pause between two
/// outputs (or before the first) longer than `max_idle` is cut to `max_idle`; the times
/// are then divided by `speed` (which must be positive). Events whose time goes back are
/// written right after the previous one.
pub fn frames(cast: &Cast, speed: f64, max_idle: Option<Duration>) -> Vec<Frame> {
    let cap = max_idle.map(|d| d.as_secs_f64());
    let mut recorded = 0.0_f64;
    let mut played = 0.0_f64;
    let mut out = Vec::new();
    for event in cast.events.iter().filter(|e| e.code == "o") {
        let pause = (event.time - recorded).max(0.0);
        recorded = recorded.max(event.time);
        played += cap.map_or(pause, |cap| pause.min(cap));
        out.push(Frame {
            // Out of range only for absurd speeds (e.g. 1e-300): never, in practice.
            at: Duration::try_from_secs_f64(played / speed).unwrap_or(Duration::MAX),
            data: event.data.clone(),
        });
    }
    out
}

/// Writes each frame's data to `out` at its moment (from now), flushing after each.
pub async fn play(frames: &[Frame], out: &mut impl Write) -> std::io::Result<()> {
    let start = tokio::time::Instant::now();
    for frame in frames {
        match start.checked_add(frame.at) {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            // Further away than the clock can say: wait until interrupted.
            None => std::future::pending::<()>().await,
        }
        out.write_all(frame.data.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAST: &str = r#"{"version": 2, "width": 100, "height": 30, "timestamp": 1700000000}
[0.5, "o", "$ "]
[1.0, "i", "l"]
[1.25, "o", "ls\r\n"]
[1.5, "r", "120x40"]
[11.25, "o", "file\r\n"]
"#;

    /// The frames' moments in whole milliseconds.
    fn at(frames: &[Frame]) -> Vec<u64> {
        frames
            .iter()
            .map(|f| (f.at.as_secs_f64() * 1000.0).round() as u64)
            .collect()
    }

    #[test]
    fn parses_header_and_events() {
        let cast = parse(CAST.as_bytes()).unwrap();
        assert_eq!(
            cast.header,
            Header {
                width: Some(100),
                height: Some(30),
                idle_time_limit: None
            }
        );
        assert_eq!(cast.events.len(), 5);
        assert_eq!(
            cast.events[3],
            Event {
                time: 1.5,
                code: "r".into(),
                data: "120x40".into()
            }
        );
    }

    #[test]
    fn only_output_is_played_at_its_time() {
        let cast = parse(CAST.as_bytes()).unwrap();
        let frames = frames(&cast, 1.0, None);
        assert_eq!(at(&frames), [500, 1250, 11250]);
        let data: String = frames.iter().map(|f| f.data.as_str()).collect();
        assert_eq!(data, "$ ls\r\nfile\r\n");
    }

    #[test]
    fn speed_divides_and_max_idle_caps_pauses() {
        let cast = parse(CAST.as_bytes()).unwrap();
        assert_eq!(at(&frames(&cast, 2.0, None)), [250, 625, 5625]);
        // Pauses: 0.5, 0.75, 10 → 0.5, 0.75, 2.
        let capped = frames(&cast, 1.0, Some(Duration::from_secs(2)));
        assert_eq!(at(&capped), [500, 1250, 3250]);
        // The cap applies to the recording's pauses, then the speed.
        let both = frames(&cast, 2.0, Some(Duration::from_millis(600)));
        assert_eq!(at(&both), [250, 550, 850]);
    }

    #[test]
    fn time_going_back_does_not_rewind() {
        let cast =
            parse(b"{\"version\":2}\n[2,\"o\",\"a\"]\n[1,\"o\",\"b\"]\n[3,\"o\",\"c\"]\n").unwrap();
        assert_eq!(at(&frames(&cast, 1.0, None)), [2000, 2000, 3000]);
    }

    #[test]
    fn bad_lines_name_their_number() {
        let cases: [(&str, usize, &str); 9] = [
            ("", 1, "empty"),
            ("[0, \"o\", \"x\"]\n", 1, "header"),
            ("{\"version\": 1}\n", 1, "version 1"),
            ("{\"width\": 80}\n", 1, "no \"version\""),
            (
                "{\"version\": 2}\n[0.1, \"o\", \"a\"]\nnot json\n",
                3,
                "not JSON",
            ),
            (
                "{\"version\": 2}\n\n[0.1, \"o\"]\n",
                3,
                "[time, code, data]",
            ),
            ("{\"version\": 2}\n[-1, \"o\", \"a\"]\n", 2, ">= 0"),
            (
                "{\"version\": 2}\n[\"0\", \"o\", \"a\"]\n",
                2,
                "number of seconds",
            ),
            ("{\"version\": 2}\n[0, \"o\", 5]\n", 2, "not a string"),
        ];
        for (text, line, words) in cases {
            let err = parse(text.as_bytes()).expect_err(text);
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(words), "{text:?}: {err}");
            assert!(err.to_string().starts_with(&format!("line {line}: ")));
        }
        let err = parse(b"{\"version\": 2}\n[0, \"o\", \"\xff\"]\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: not UTF-8 text");
    }

    #[test]
    fn unterminated_last_line_of_a_live_recording_is_dropped() {
        let cast = parse(b"{\"version\": 2}\n[0.1, \"o\", \"a\"]\n[0.2, \"o\", \"b").unwrap();
        assert_eq!(cast.events.len(), 1);
        // Complete, it counts; broken in the middle, it is an error.
        let cast = parse(b"{\"version\": 2}\n[0.1, \"o\", \"a\"]\n[0.2, \"o\", \"b\"]").unwrap();
        assert_eq!(cast.events.len(), 2);
        assert!(parse(b"{\"version\": 2}\n[0.1, \"o\"\n[0.2, \"o\", \"b\"]\n").is_err());
    }

    #[test]
    fn header_idle_limit_is_read() {
        let cast = parse(b"{\"version\": 2, \"idle_time_limit\": 1.5}\n").unwrap();
        assert_eq!(cast.header.idle_time_limit, Some(1.5));
        assert!(cast.events.is_empty());
    }

    #[tokio::test]
    async fn play_writes_in_order_and_waits() {
        let frames = [
            Frame {
                at: Duration::ZERO,
                data: "a".into(),
            },
            Frame {
                at: Duration::from_millis(40),
                data: "b".into(),
            },
        ];
        let mut out = Vec::new();
        let start = std::time::Instant::now();
        play(&frames, &mut out).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(40));
        assert_eq!(out, b"ab");
    }
}
