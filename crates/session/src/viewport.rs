//! A clipped view of the shared screen for a window smaller than the terminal: a
//! viewport onto the session's screen model that follows the cursor, drawn without
//! wrapping, with a marker line saying how much is hidden, and updated by redrawing only
//! the rows that changed.
//!
//! The raw terminal stream cannot be shown in a smaller window (lines wrap, full-screen
//! programs turn into garbage), so such a client gets pictures of the screen instead: the
//! hub asks for a frame at most every [`FRAME_INTERVAL`] while there is new output, and
//! [`Viewport::frame`] returns the bytes that turn the client's last frame into the
//! current one (`None` if nothing visible changed).

use std::fmt::Write;
use std::time::Duration;

/// Shortest time between two frames of one clipped client (bursts of output cost one
/// redraw per interval, not one per chunk).
pub(crate) const FRAME_INTERVAL: Duration = Duration::from_millis(16);

/// One clipped client's view: where its viewport is and what it shows now.
#[derive(Debug, Clone)]
pub(crate) struct Viewport {
    /// The client's window (rows, cols).
    window: (u16, u16),
    /// Top-left cell of the screen shown at the window's top-left.
    top: u16,
    left: u16,
    /// What the client shows now, row by row (empty: it needs a full redraw).
    shown: Vec<String>,
    /// The marker line it shows now.
    marker: String,
    /// The input modes (cursor keys, keypad, bracketed paste, mouse) it was given.
    modes: String,
    /// Where its cursor is and whether it is visible.
    cursor: (u16, u16, bool),
}

/// The SGR attributes of one cell, compared to know when to emit a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attrs {
    fg: vt100::Color,
    bg: vt100::Color,
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
    inverse: bool,
}

impl Attrs {
    const DEFAULT: Self = Self {
        fg: vt100::Color::Default,
        bg: vt100::Color::Default,
        bold: false,
        dim: false,
        italic: false,
        underline: false,
        inverse: false,
    };

    fn of(cell: &vt100::Cell) -> Self {
        Self {
            fg: cell.fgcolor(),
            bg: cell.bgcolor(),
            bold: cell.bold(),
            dim: cell.dim(),
            italic: cell.italic(),
            underline: cell.underline(),
            inverse: cell.inverse(),
        }
    }

    /// `ESC [ 0 ; … m`: from any state to exactly these attributes.
    fn write_sgr(&self, out: &mut String) {
        out.push_str("\x1b[0");
        for (on, code) in [
            (self.bold, "1"),
            (self.dim, "2"),
            (self.italic, "3"),
            (self.underline, "4"),
            (self.inverse, "7"),
        ] {
            if on {
                out.push(';');
                out.push_str(code);
            }
        }
        color(out, self.fg, 30, 90, 38);
        color(out, self.bg, 40, 100, 48);
        out.push('m');
    }
}

fn color(out: &mut String, color: vt100::Color, base: u8, bright: u8, extended: u8) {
    // Writing to a String cannot fail.
    let _ = match color {
        vt100::Color::Default => Ok(()),
        vt100::Color::Idx(n) if n < 8 => write!(out, ";{}", base + n),
        vt100::Color::Idx(n) if n < 16 => write!(out, ";{}", bright + n - 8),
        vt100::Color::Idx(n) => write!(out, ";{extended};5;{n}"),
        vt100::Color::Rgb(r, g, b) => write!(out, ";{extended};2;{r};{g};{b}"),
    };
}

impl Viewport {
    /// A view for a window of `rows` × `cols` (at least 1 × 1).
    pub(crate) fn new(rows: u16, cols: u16) -> Self {
        Self {
            window: (rows.max(1), cols.max(1)),
            top: 0,
            left: 0,
            shown: Vec::new(),
            marker: String::new(),
            modes: String::new(),
            cursor: (0, 0, false),
        }
    }

    /// The window changed: the next frame redraws everything.
    pub(crate) fn resize(&mut self, rows: u16, cols: u16) {
        *self = Self {
            top: self.top,
            left: self.left,
            ..Self::new(rows, cols)
        };
    }

    /// The next frame redraws everything (the client's screen is unknown).
    pub(crate) fn invalidate(&mut self) {
        self.shown.clear();
        self.marker.clear();
        self.modes.clear();
    }

    /// The bytes that bring the client from its last frame to `screen` now, or `None` if
    /// what it shows would not change.
    pub(crate) fn frame(&mut self, screen: &vt100::Screen) -> Option<Vec<u8>> {
        let (rows, cols) = screen.size();
        let (rows, cols) = (rows.get(), cols.get());
        let (win_rows, win_cols) = self.window;
        // The last window row is the marker, unless the window has only one.
        let view_rows = if win_rows > 1 { win_rows - 1 } else { 1 }.min(rows);
        let view_cols = win_cols.min(cols);
        let (cursor_row, cursor_col) = screen.cursor_position();
        self.top = follow(self.top, cursor_row, view_rows, rows);
        // Lines start at the left: while the cursor is within the first columns, they
        // are shown; further right, the view moves as little as it can.
        self.left = if cursor_col < view_cols {
            0
        } else {
            follow(self.left, cursor_col, view_cols, cols)
        };

        let full = self.shown.is_empty();
        let mut out = String::new();
        if full {
            out.push_str("\x1b[0m\x1b[H\x1b[2J");
        }
        let mut changed = full;
        let mut shown = Vec::with_capacity(usize::from(view_rows));
        for i in 0..view_rows {
            let row = self.row(screen, self.top + i, view_cols);
            if full || self.shown.get(usize::from(i)) != Some(&row) {
                changed = true;
                let _ = write!(out, "\x1b[{};1H{row}\x1b[0m\x1b[K", i + 1);
            }
            shown.push(row);
        }
        self.shown = shown;

        let hidden = rows > view_rows || cols > view_cols;
        let marker = if hidden && win_rows > 1 {
            let text = format!(
                " tandem: rows {}-{} and columns {}-{} of the {cols}x{rows} terminal; \
                 enlarge your window to see it all ",
                self.top + 1,
                self.top + view_rows,
                self.left + 1,
                self.left + view_cols,
            );
            let mut line: String = text.chars().take(usize::from(win_cols)).collect();
            let pad = usize::from(win_cols).saturating_sub(line.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
            line
        } else {
            String::new()
        };
        if full || marker != self.marker {
            changed = true;
            if win_rows > 1 {
                let _ = write!(out, "\x1b[{win_rows};1H\x1b[0;7m{marker}\x1b[0m\x1b[K");
            }
            self.marker = marker;
        }

        let modes = screen.input_mode_formatted();
        if full || modes != self.modes {
            changed = true;
            out.push_str(&modes);
            self.modes = modes;
        }

        let visible = !screen.hide_cursor();
        let cursor = (cursor_row - self.top, cursor_col - self.left, visible);
        if changed || cursor != self.cursor {
            let _ = write!(out, "\x1b[{};{}H", cursor.0 + 1, cursor.1 + 1);
            out.push_str(if visible { "\x1b[?25h" } else { "\x1b[?25l" });
            self.cursor = cursor;
            changed = true;
        }
        changed.then(|| out.into_bytes())
    }

    /// Row `row` of the screen from column `self.left`, `width` cells, with its
    /// attributes, starting and ending in default attributes' terms of the caller.
    fn row(&self, screen: &vt100::Screen, row: u16, width: u16) -> String {
        let mut out = String::new();
        let mut attrs = Attrs::DEFAULT;
        let mut col = self.left;
        let end = self.left + width;
        while col < end {
            let Some(cell) = screen.cell(row, col) else {
                break;
            };
            let here = Attrs::of(cell);
            if here != attrs {
                here.write_sgr(&mut out);
                attrs = here;
            }
            if cell.is_wide_continuation() {
                // The first half was cut off at the left edge.
                out.push(' ');
                col += 1;
                continue;
            }
            if cell.is_wide() && col + 1 >= end {
                // Half of it would stick out at the right edge.
                out.push(' ');
                break;
            }
            let contents = cell.contents();
            out.push_str(if contents.is_empty() { " " } else { contents });
            col += if cell.is_wide() { 2 } else { 1 };
        }
        // Trailing blanks in default colours are what `ESC [ K` draws anyway.
        if attrs == Attrs::DEFAULT {
            let trimmed = out.trim_end_matches(' ').len();
            out.truncate(trimmed);
        }
        out
    }
}

/// The first visible line (or column) after moving as little as possible from `start` so
/// that `cursor` is among the `shown` of `total`.
fn follow(start: u16, cursor: u16, shown: u16, total: u16) -> u16 {
    let mut start = start.min(total.saturating_sub(shown));
    if cursor < start {
        start = cursor;
    } else if cursor >= start + shown {
        start = cursor + 1 - shown;
    }
    start.min(total.saturating_sub(shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A screen of `rows` × `cols` after `input`.
    fn screen(rows: u16, cols: u16, input: &[u8]) -> vt100::Parser {
        let mut p = vt100::Parser::new(
            std::num::NonZeroU16::new(rows).unwrap(),
            std::num::NonZeroU16::new(cols).unwrap(),
            0,
        );
        p.process(input);
        p
    }

    /// What a client's terminal of `rows` × `cols` shows after `frames`.
    fn client(rows: u16, cols: u16, frames: &[Vec<u8>]) -> vt100::Parser {
        let mut p = screen(rows, cols, b"");
        for f in frames {
            p.process(f);
        }
        p
    }

    /// Rows of the model, `top..top+n`, columns `left..left+w`, as text.
    fn region(model: &vt100::Screen, top: u16, n: u16, left: u16, w: u16) -> Vec<String> {
        (top..top + n)
            .map(|r| {
                (left..left + w)
                    .map(|c| {
                        let cell = model.cell(r, c).unwrap();
                        if cell.contents().is_empty() {
                            " ".to_string()
                        } else {
                            cell.contents().to_string()
                        }
                    })
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    fn rows_of(client: &vt100::Screen, n: u16) -> Vec<String> {
        let (_, cols) = client.size();
        region(client, 0, n, 0, cols.get())
    }

    #[test]
    fn a_smaller_window_shows_the_region_around_the_cursor_unwrapped() {
        // vim-like: a 100-column status line at the bottom, the cursor on it.
        let mut input = b"\x1b[2J\x1b[H".to_vec();
        for i in 1..=29 {
            input.extend_from_slice(format!("~ line {i}\r\n").as_bytes());
        }
        input.extend_from_slice(
            format!("\x1b[7m\"f\" 3L, 18B{}END\x1b[0m", " ".repeat(84)).as_bytes(),
        );
        input.extend_from_slice(b"\x1b[30;5H");
        let model = screen(30, 100, &input);
        let mut view = Viewport::new(15, 60);
        let frame = view.frame(model.screen()).unwrap();
        let shown = client(15, 60, &[frame]);
        // 14 rows of the model (the last is the marker), the cursor's: rows 17-30.
        assert_eq!(
            rows_of(shown.screen(), 14),
            region(model.screen(), 16, 14, 0, 60)
        );
        assert_eq!(shown.screen().cursor_position(), (13, 4));
        // The status line is clipped, not wrapped, and keeps its attributes.
        let status = shown.screen().cell(13, 0).unwrap();
        assert!(status.inverse());
        assert_eq!(shown.screen().cell(13, 59).unwrap().contents(), " ");
        let marker: String = rows_of(shown.screen(), 15)[14].clone();
        assert!(
            marker.contains("rows 17-30 and columns 1-60 of the 100x30 terminal"),
            "{marker:?}"
        );
        assert!(shown.screen().cell(14, 0).unwrap().inverse());
    }

    #[test]
    fn the_viewport_follows_the_cursor_right_and_back() {
        let mut model = screen(10, 100, b"");
        let mut view = Viewport::new(6, 40);
        let mut frames = vec![view.frame(model.screen()).unwrap()];
        model.process(format!("{}>here<", "x".repeat(80)).as_bytes());
        frames.push(view.frame(model.screen()).unwrap());
        let shown = client(6, 40, &frames);
        // The cursor (column 87) is visible: columns 48-87 are shown.
        assert_eq!(shown.screen().cursor_position(), (0, 39));
        assert!(rows_of(shown.screen(), 1)[0].ends_with(">here<"));
        model.process(b"\r");
        frames.push(view.frame(model.screen()).unwrap());
        let shown = client(6, 40, &frames);
        assert_eq!(shown.screen().cursor_position(), (0, 0));
        assert_eq!(rows_of(shown.screen(), 1)[0], "x".repeat(40));
    }

    #[test]
    fn only_changed_rows_are_redrawn_and_an_unchanged_screen_costs_nothing() {
        let mut model = screen(30, 100, b"one\r\ntwo\r\nthree");
        let mut view = Viewport::new(10, 50);
        let first = view.frame(model.screen()).unwrap();
        assert_eq!(view.frame(model.screen()), None);
        model.process(b"!");
        let diff = view.frame(model.screen()).unwrap();
        assert!(diff.len() < 40, "{:?}", String::from_utf8_lossy(&diff));
        let shown = client(10, 50, &[first, diff]);
        assert_eq!(rows_of(shown.screen(), 3), ["one", "two", "three!"]);
    }

    #[test]
    fn colours_and_wide_characters_survive_the_clip() {
        let model = screen(
            5,
            20,
            "\x1b[31;1mred\x1b[0m \x1b[38;5;200mpink\x1b[0m 日本語\r".as_bytes(),
        );
        let mut view = Viewport::new(3, 14);
        let shown = client(3, 14, &[view.frame(model.screen()).unwrap()]);
        let red = shown.screen().cell(0, 0).unwrap();
        assert_eq!(red.fgcolor(), vt100::Color::Idx(1));
        assert!(red.bold());
        assert_eq!(
            shown.screen().cell(0, 4).unwrap().fgcolor(),
            vt100::Color::Idx(200)
        );
        // "日" at columns 9-10, "本" at 11-12, "語" would straddle the edge: a blank.
        assert_eq!(shown.screen().cell(0, 9).unwrap().contents(), "日");
        assert_eq!(shown.screen().cell(0, 11).unwrap().contents(), "本");
        assert_eq!(shown.screen().cell(0, 13).unwrap().contents(), "");
    }

    #[test]
    fn input_modes_follow_the_screen() {
        let mut model = screen(30, 100, b"");
        let mut view = Viewport::new(10, 40);
        view.frame(model.screen());
        model.process(b"\x1b[?1h\x1b[?2004h");
        let frame = String::from_utf8(view.frame(model.screen()).unwrap()).unwrap();
        assert!(frame.contains("\x1b[?1h"), "{frame:?}");
        assert!(frame.contains("\x1b[?2004h"), "{frame:?}");
    }

    #[test]
    fn follow_moves_as_little_as_it_can() {
        assert_eq!(follow(0, 5, 10, 30), 0);
        assert_eq!(follow(0, 12, 10, 30), 3);
        assert_eq!(follow(3, 3, 10, 30), 3);
        assert_eq!(follow(20, 2, 10, 30), 2);
        assert_eq!(follow(25, 29, 10, 30), 20);
        assert_eq!(follow(0, 0, 40, 30), 0);
    }
}
