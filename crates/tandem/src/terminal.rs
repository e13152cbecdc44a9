//! The local terminal's size, which `job start --tty`, `task run`, `job attach` and
//! `session replay` ask for. The one unsafe call of the CLI (the `TIOCGWINSZ` ioctl) is
//! here.

use std::os::fd::AsRawFd;

use tandem_proto::v1::TerminalSize;

/// The terminal size used when no terminal can be asked (24 rows, 80 columns).
pub const DEFAULT_SIZE: TerminalSize = TerminalSize { rows: 24, cols: 80 };

nix::ioctl_read_bad!(
    /// `TIOCGWINSZ`: the window size of the terminal on `fd`.
    tiocgwinsz,
    nix::libc::TIOCGWINSZ,
    nix::libc::winsize
);

/// The size of the terminal on stdout, stdin or stderr (the first that is one), or `None`
/// when none is a terminal (or it reports a zero size).
#[allow(unsafe_code)]
pub fn terminal_size() -> Option<TerminalSize> {
    [
        std::io::stdout().as_raw_fd(),
        std::io::stdin().as_raw_fd(),
        std::io::stderr().as_raw_fd(),
    ]
    .into_iter()
    .find_map(|fd| {
        let mut size = nix::libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: `fd` is one of the process's standard descriptors (an invalid or
        // non-terminal one makes the ioctl fail with an error, not misbehave), and `size`
        // is a valid, writable `winsize`, which is what TIOCGWINSZ writes.
        let ok = unsafe { tiocgwinsz(fd, &mut size) }.is_ok();
        (ok && size.ws_row > 0 && size.ws_col > 0).then(|| TerminalSize {
            rows: u32::from(size.ws_row),
            cols: u32::from(size.ws_col),
        })
    })
}
