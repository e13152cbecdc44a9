//! tandem's private command marks on the shared terminal, read and removed before the
//! hub and the recording see the output.
//!
//! The sandbox's shell profile (`/etc/profile.d/tandem.sh`, written by the worker's
//! system view) prints, at each command's start (bash's `PS0`), `ESC ] 6973 ; C ; <cwd>
//! BEL`, and before each prompt (`PROMPT_COMMAND`), `ESC ] 6973 ; D ; <exit status> ;
//! <command line> BEL` (the lines the history gained, joined by spaces, after a
//! `#<seconds>` stamp once HISTTIMEFORMAT was ever set; empty when it gained none). Nobody's terminal ever gets
//! them: [`MarkFilter`] takes them out of the stream (across reads), and the session
//! records a command from each C … D pair. The candidate can print such marks
//! themselves; the raw input stays recorded anyway.

/// A mark read off the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mark {
    /// A command starts in this working directory.
    Start {
        /// Working directory.
        cwd: String,
    },
    /// The last command ended (also printed before the first prompt, and after an empty
    /// line: the session ignores an end without a start).
    End {
        /// Exit status.
        status: i32,
        /// The command line (from the history; control characters as spaces).
        text: String,
    },
}

const START: &[u8] = b"\x1b]6973;";
/// A mark longer than this is not one of ours: it goes through as output.
const MAX_MARK: usize = 8192;

/// Takes the marks out of terminal output, across reads.
#[derive(Debug, Default)]
pub(crate) struct MarkFilter {
    /// The start of a mark (or of what may be one) the next read continues.
    carry: Vec<u8>,
}

impl MarkFilter {
    /// [`feed`](Self::feed) for the pump: output without a mark (nearly all of it) is
    /// passed on as is, without a copy.
    pub(crate) fn feed_bytes(&mut self, data: &bytes::Bytes) -> (bytes::Bytes, Vec<Mark>) {
        let clean = self.carry.is_empty()
            && find(data, START).is_none()
            && !(1..START.len()).any(|n| data.ends_with(&START[..n]));
        if clean {
            return (data.clone(), Vec::new());
        }
        let (out, marks) = self.feed(data);
        (bytes::Bytes::from(out), marks)
    }

    /// The output without its marks, and the marks, in order. A mark cut between two
    /// reads is held back until its end arrives.
    pub(crate) fn feed(&mut self, data: &[u8]) -> (Vec<u8>, Vec<Mark>) {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(data);
        let mut out = Vec::with_capacity(buf.len());
        let mut marks = Vec::new();
        let mut i = 0;
        while i < buf.len() {
            let Some(found) = find(&buf[i..], START) else {
                // A tail that may begin a mark waits for the next read.
                let rest = &buf[i..];
                let keep = (1..START.len().min(rest.len() + 1))
                    .rev()
                    .find(|&n| rest.ends_with(&START[..n]))
                    .unwrap_or(0);
                out.extend_from_slice(&rest[..rest.len() - keep]);
                self.carry = rest[rest.len() - keep..].to_vec();
                return (out, marks);
            };
            out.extend_from_slice(&buf[i..i + found]);
            let body_start = i + found + START.len();
            match buf[body_start..].iter().position(|&b| b == 0x07) {
                Some(len) => {
                    if let Some(mark) = parse(&buf[body_start..body_start + len]) {
                        marks.push(mark);
                    }
                    i = body_start + len + 1;
                }
                None if buf.len() - (i + found) <= MAX_MARK => {
                    self.carry = buf[i + found..].to_vec();
                    return (out, marks);
                }
                None => {
                    // Not ours after all: let it through.
                    out.extend_from_slice(&buf[i + found..body_start]);
                    i = body_start;
                }
            }
        }
        (out, marks)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse(body: &[u8]) -> Option<Mark> {
    let body = String::from_utf8_lossy(body);
    let (kind, rest) = body.split_once(';')?;
    match kind {
        // The directory is the candidate's to name: no control characters (escape
        // sequences for whoever reads the timeline on a terminal).
        "C" => Some(Mark::Start {
            cwd: rest
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        }),
        "D" => {
            let (status, text) = rest.split_once(';').unwrap_or((rest, ""));
            // The history file has a `#<seconds>` line before each command once
            // HISTTIMEFORMAT was ever set.
            let text = text.trim();
            let text = match text.strip_prefix('#').map(|t| t.split_once(' ')) {
                Some(Some((secs, rest))) if secs.bytes().all(|b| b.is_ascii_digit()) => rest,
                _ => text,
            };
            let text: String = text
                .trim()
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            Some(Mark::End {
                status: status.trim().parse().ok()?,
                text,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STREAM: &[u8] = b"\x1b]6973;D;0;\x07root@box:~# ls; echo a\r\n\x1b]6973;C;/root\x07\
        file\r\na\r\n\x1b]6973;D;0;#1796025787 ls; echo a\x07root@box:~# for i in 1\r\n> do false\r\n\
        > done\r\n\x1b]6973;C;/tmp\x07\x1b]6973;D;1;for i in 1 do false done\x07\
        \x1b]2;title\x07root@box:/tmp# ";

    fn marks() -> Vec<Mark> {
        vec![
            Mark::End {
                status: 0,
                text: String::new(),
            },
            Mark::Start {
                cwd: "/root".into(),
            },
            Mark::End {
                status: 0,
                text: "ls; echo a".into(),
            },
            Mark::Start { cwd: "/tmp".into() },
            Mark::End {
                status: 1,
                text: "for i in 1 do false done".into(),
            },
        ]
    }

    const CLEAN: &[u8] = b"root@box:~# ls; echo a\r\nfile\r\na\r\nroot@box:~# for i in 1\r\n\
        > do false\r\n> done\r\n\x1b]2;title\x07root@box:/tmp# ";

    proptest! {
        /// However the stream is cut into reads, the output is the stream without the
        /// marks, and the marks come out whole and in order.
        #[test]
        fn marks_are_taken_out_however_the_reads_cut_them(
            cuts in prop::collection::vec(0..STREAM.len(), 0..12)
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut filter = MarkFilter::default();
            let (mut out, mut found) = (Vec::new(), Vec::new());
            let mut start = 0;
            for cut in cuts.into_iter().chain([STREAM.len()]) {
                let (o, m) = filter.feed_bytes(&bytes::Bytes::copy_from_slice(&STREAM[start..cut]));
                out.extend(o);
                found.extend(m);
                start = cut;
            }
            prop_assert_eq!(out, CLEAN.to_vec());
            prop_assert_eq!(found, marks());
        }

        /// Output without marks goes through unchanged, whatever its bytes.
        #[test]
        fn other_output_is_untouched(data in prop::collection::vec(any::<u8>(), 0..300)) {
            prop_assume!(find(&data, START).is_none());
            let mut filter = MarkFilter::default();
            let (mut out, marks) = filter.feed(&data);
            out.extend(filter.feed(b"!").0);
            prop_assert!(marks.is_empty());
            let mut want = data.clone();
            want.push(b'!');
            prop_assert_eq!(out, want);
        }
    }

    #[test]
    fn a_marks_directory_keeps_no_control_characters() {
        // A mark the candidate printed by hand, with escape sequences in its directory.
        let Some(Mark::Start { cwd }) = parse(b"C;/root\x1b[2J\x1b]52;c;eA==\x9c") else {
            panic!("not a start mark");
        };
        assert!(!cwd.chars().any(char::is_control), "{cwd:?}");
        assert!(cwd.starts_with("/root "), "{cwd:?}");
    }

    #[test]
    fn an_unterminated_mark_is_let_through_once_too_long() {
        let mut filter = MarkFilter::default();
        let (out, _) = filter.feed(START);
        assert!(out.is_empty());
        let (out, marks) = filter.feed(&vec![b'x'; MAX_MARK + 10]);
        assert!(marks.is_empty());
        assert!(out.starts_with(START), "{:?}", &out[..10]);
        assert_eq!(out.len(), START.len() + MAX_MARK + 10);
    }
}
