//! The daemon side's direct system calls: PTY pairs, descriptor plumbing for
//! `tandem-init`, and the `pre_exec` hook. Every `unsafe` of the worker outside
//! [`init`](crate::init) and `sandbox` lives here (the crate denies it elsewhere).
//!
//! The daemon is multi-threaded and other threads may spawn processes at any moment, so
//! every descriptor is created close-on-exec atomically (`O_CLOEXEC`, `TIOCGPTPEER`,
//! `F_DUPFD_CLOEXEC`); a descriptor that were inheritable even briefly could leak one job's
//! terminal or pipe into another job.

use crate::protocol::{CONFIG_FD, CONTROL_FD, EVENT_FD, JOIN_FD, USERNS_FD};
use crate::spec::PtySize;
use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, unlockpt};
use std::io::{self, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

/// Opens a PTY pair of the given size: `(master, slave)`, both close-on-exec, the master
/// non-blocking.
///
/// Not `openpty(3)`: it returns inheritable descriptors, which is a leak in a
/// multi-threaded spawner. `TIOCGPTPEER` opens the slave from the master without a path
/// lookup (no race with a reused `/dev/pts/N`).
pub(crate) fn open_pty(size: PtySize) -> io::Result<(OwnedFd, OwnedFd)> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    // SAFETY: posix_openpt returned a valid, owned descriptor; we take over ownership.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags as an integer and returns a new descriptor.
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the ioctl returned a fresh descriptor that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    set_winsize(master.as_fd(), size)?;
    nix::fcntl::fcntl(
        master.as_fd(),
        nix::fcntl::FcntlArg::F_SETFL(OFlag::O_RDWR | OFlag::O_NONBLOCK),
    )?;
    Ok((master, slave))
}

/// Sets a terminal's size (on the master, the kernel then sends SIGWINCH to the
/// terminal's foreground process group).
pub(crate) fn set_winsize(fd: impl AsFd, size: PtySize) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `struct winsize` from the pointer, which is valid here.
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A close-on-exec memfd holding `bytes`, positioned at 0.
pub(crate) fn memfd_with(name: &str, bytes: &[u8]) -> io::Result<OwnedFd> {
    let fd = nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    file.rewind()?;
    Ok(file.into())
}

/// Descriptors handed to `tandem-init` as fds 3, 4, 5 (and 6, 7 in the join modes).
pub(crate) struct InitFds {
    /// Duplicates numbered ≥ 10 so that the `dup2` calls in the child cannot clobber one
    /// another's source; close-on-exec, so only the `dup2` targets survive exec.
    high: Vec<(OwnedFd, RawFd)>,
}

impl InitFds {
    pub(crate) fn new(
        config: &OwnedFd,
        events: &OwnedFd,
        control: &OwnedFd,
        join: Option<(&OwnedFd, &OwnedFd)>,
    ) -> io::Result<Self> {
        let mut high = vec![
            (dup_high(config)?, CONFIG_FD),
            (dup_high(events)?, EVENT_FD),
            (dup_high(control)?, CONTROL_FD),
        ];
        if let Some((pidfd, userns)) = join {
            high.push((dup_high(pidfd)?, JOIN_FD));
            high.push((dup_high(userns)?, USERNS_FD));
        }
        Ok(Self { high })
    }

    /// A warm init's only descriptor: its end of the slot socket, as [`CONFIG_FD`], where
    /// it waits for the job's descriptors (see `warm.rs`).
    pub(crate) fn warm(socket: &OwnedFd) -> io::Result<Self> {
        Ok(Self {
            high: vec![(dup_high(socket)?, CONFIG_FD)],
        })
    }

    /// Installs the `pre_exec` hook that joins the job's cgroups (writing `0` to each
    /// pre-opened `cgroup.procs`, so nothing of the job ever runs unlimited), gives the
    /// child its own session and moves the descriptors into place. The descriptors must
    /// stay open until `spawn` returns, so the caller keeps `self` and `cgroup_procs`
    /// alive until then.
    pub(crate) fn install(&self, cmd: &mut tokio::process::Command, cgroup_procs: &[OwnedFd]) {
        let moves: Vec<(RawFd, RawFd)> = self
            .high
            .iter()
            .map(|(fd, to)| (fd.as_raw_fd(), *to))
            .collect();
        let joins: Vec<RawFd> = cgroup_procs.iter().map(AsRawFd::as_raw_fd).collect();
        let hook = move || {
            // Runs between fork and exec in a copy of a multi-threaded process: only
            // async-signal-safe calls, no allocation (iterating the Vec does not allocate).
            // SAFETY: write, setsid and dup2 are async-signal-safe and take plain
            // integers and a valid one-byte buffer.
            unsafe {
                for &fd in &joins {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                // Own session and process group: the daemon's terminal (e.g. Ctrl-C in
                // the example) never signals jobs directly.
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                for &(from, to) in &moves {
                    if libc::dup2(from, to) == -1 {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        };
        // SAFETY: the hook only performs async-signal-safe system calls (see above).
        unsafe {
            cmd.pre_exec(hook);
        }
    }
}

fn dup_high(fd: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor (≥ 10) that we own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if new == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor from fcntl, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// `lsetxattr(2)`: sets an extended attribute on `path` itself (not a link's target).
pub(crate) fn lsetxattr(
    path: &std::ffi::CStr,
    name: &std::ffi::CStr,
    value: &[u8],
) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and `value` is valid for `value.len()` bytes.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Registers an owned descriptor with the tokio reactor.
pub(crate) fn register_async(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd is a valid open descriptor, and AsyncFd keeps ownership of it (we
    // never swap the inner value), so it stays open and the same for the AsyncFd's life.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(io::Error::from)
}

/// A `SOCK_SEQPACKET` pair for init's events: `(worker end, init end)`, close-on-exec.
pub(crate) fn event_socket() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Receives one event message and the descriptors attached to it (close-on-exec).
/// `Ok((0, []))` is EOF: every sender has closed its end.
pub(crate) fn recv_event(fd: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<UnixAddr>(
        fd.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: SCM_RIGHTS installed these descriptors in this process just now;
            // nothing else owns them.
            fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    if msg
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "event from tandem-init was truncated",
        ));
    }
    Ok((msg.bytes, fds))
}

/// Sends `fds` (in order) with a one-byte message over a seqpacket socket: a warm init's
/// descriptors, which it places at 0, 1, 2, … by their order.
pub(crate) fn send_fds(socket: &OwnedFd, fds: &[&OwnedFd]) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let sent = sendmsg::<UnixAddr>(
        socket.as_raw_fd(),
        &[io::IoSlice::new(b"J")],
        &[ControlMessage::ScmRights(&raw)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if sent != 1 {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short send"));
    }
    Ok(())
}
