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
use nix::pty::{PtyMaster, grantpt, unlockpt};
use std::io::{self, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Where the master of a job's terminal comes from: the `ptmx` of the sandbox's own devpts
/// instance, mounted at `/dev/pts` (`ptmxmode=0666`).
const PTMX: &str = "/dev/pts/ptmx";

/// Opens a PTY pair of the given size: `(master, slave)`, both close-on-exec, the master
/// non-blocking.
///
/// Not `openpty(3)`: it returns inheritable descriptors, which is a leak in a
/// multi-threaded spawner. Not `posix_openpt(3)` either: it opens `/dev/ptmx`, and a
/// sandbox's `/dev` belongs to the candidate (root inside), who can replace that link
/// with `/dev/null`, a file or a fifo, and so take every later shell's terminal away.
/// `/dev/pts` is a mount point they cannot rename, remove or cover (EBUSY, no
/// CAP_SYS_ADMIN), and devpts holds no links or files of theirs; the path is resolved
/// without following any link, and what opens must be a devpts node.
/// `TIOCGPTPEER` opens the slave from the master without a path lookup (no race with a
/// reused `/dev/pts/N`).
pub(crate) fn open_pty(size: PtySize) -> io::Result<(OwnedFd, OwnedFd)> {
    let master = crate::sandbox::idmap::open_no_links(
        None,
        std::path::Path::new(PTMX),
        libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
    )
    .map_err(|e| io::Error::other(format!("open {PTMX}: {e}")))?;
    let fs = nix::sys::statfs::fstatfs(&master)?;
    if fs.filesystem_type() != nix::sys::statfs::DEVPTS_SUPER_MAGIC {
        return Err(io::Error::other(format!("{PTMX} is not on a devpts")));
    }
    // SAFETY: `master` is an open descriptor of the ptmx node of a devpts (checked above),
    // i.e. a terminal master, which is all `PtyMaster` asks.
    let master = unsafe { PtyMaster::from_owned_fd(master) };
    grantpt(&master)?;
    unlockpt(&master)?;
    let master = OwnedFd::from(master);
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

/// `CLONE_INTO_CGROUP` (libc's constant is an `i32` that overflows).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of `clone3(2)` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`, Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// A child started by [`spawn_into_cgroup`], known by its pidfd (no pid is ever reused
/// under it). Dropped before it was reaped, it is killed and reaped in the background, as
/// tokio's `kill_on_drop` children are.
#[derive(Debug)]
pub(crate) struct PidfdChild {
    pid: u32,
    /// `None` once reaped.
    pidfd: Option<tokio::io::unix::AsyncFd<OwnedFd>>,
    status: Option<std::process::ExitStatus>,
}

/// Spawns `program args` with an empty environment, `stdio` as 0, 1, 2 and `fds` in
/// place, in its own session, **born inside the cgroup `cgroup`** (a cgroup v2 directory)
/// by `clone3(CLONE_INTO_CGROUP)`: no migration, so none of the threadgroup lock's RCU
/// grace period that a write to `cgroup.procs` waits for. `Ok(None)` if this kernel has no
/// `clone3` or no `CLONE_INTO_CGROUP` (before 5.7): the caller joins the usual way.
///
/// Like `fork`, the child is a copy of this multi-threaded process with one thread: it
/// only makes async-signal-safe calls on memory prepared here, then execs. An exec failure
/// comes back through a close-on-exec pipe, as `std::process::Command` does it.
pub(crate) fn spawn_into_cgroup(
    program: &std::path::Path,
    args: &[std::ffi::OsString],
    stdio: &[OwnedFd; 3],
    fds: &InitFds,
    cgroup: &OwnedFd,
) -> io::Result<Option<PidfdChild>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cstring = |s: &std::ffi::OsStr| {
        CString::new(s.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let program = cstring(program.as_os_str())?;
    let args: Vec<CString> = args.iter().map(|a| cstring(a)).collect::<io::Result<_>>()?;
    let mut argv: Vec<*const libc::c_char> = vec![program.as_ptr()];
    argv.extend(args.iter().map(|a| a.as_ptr()));
    argv.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // Every descriptor to place, from a close-on-exec duplicate numbered ≥ 10 (so no
    // `dup2` clobbers another's source); the duplicates close at exec.
    let stdio_high = [
        dup_high(&stdio[0])?,
        dup_high(&stdio[1])?,
        dup_high(&stdio[2])?,
    ];
    let moves: Vec<(RawFd, RawFd)> = stdio_high
        .iter()
        .zip(0..)
        .map(|(fd, to)| (fd.as_raw_fd(), to))
        .chain(fds.high.iter().map(|(fd, to)| (fd.as_raw_fd(), *to)))
        .collect();
    let (err_read, err_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    // SAFETY: sigemptyset initialises the set it is given.
    let empty_mask = unsafe {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    };
    let mut pidfd: libc::c_int = -1;
    let clone_args = CloneArgs {
        flags: (libc::CLONE_PIDFD as u64) | CLONE_INTO_CGROUP,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM and without a stack is fork: the child runs on a
    // copy of this stack and address space. It returns 0 in the child, which goes straight
    // to `exec_child` and never returns; the parent gets the child's pid.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw const clone_args,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: in the child: see `exec_child`; every pointer points into memory that
        // was prepared above and is part of the child's copy.
        unsafe {
            exec_child(
                &moves,
                &program,
                &argv,
                &envp,
                &empty_mask,
                err_write.as_raw_fd(),
            )
        }
    }
    if pid < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            // No clone3 (before 5.3), or no `cgroup` field (before 5.7).
            Some(libc::ENOSYS | libc::E2BIG) => Ok(None),
            _ => Err(error),
        };
    }
    // SAFETY: CLONE_PIDFD stored a new descriptor for the child, owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(err_write);
    drop(stdio_high);
    // From here on, an early return kills and reaps it (`Drop`).
    let mut child = PidfdChild {
        // A pid is a positive `pid_t`.
        pid: pid as u32,
        pidfd: Some(register_async(pidfd)?),
        status: None,
    };
    // The pipe reaches EOF at the child's exec; four bytes are its errno instead.
    let mut errno = [0u8; 4];
    let mut got = 0;
    while got < errno.len() {
        match nix::unistd::read(&err_read, &mut errno[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if got == errno.len() {
        // It exits at once: reap it here so nothing is left.
        if let Some(pidfd) = &child.pidfd {
            child.status = waitid_pidfd(pidfd.get_ref(), libc::WEXITED)?;
        }
        return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)));
    }
    Ok(Some(child))
}

/// The child's side of [`spawn_into_cgroup`]: reset the signal mask and `SIGPIPE` (the
/// Rust runtime ignores it, and an ignored signal stays ignored across exec), own session,
/// descriptors into place, exec; on failure the errno into `err` and exit 127.
///
/// # Safety
/// Only in the child of a fork-like clone: it makes async-signal-safe system calls only,
/// does not allocate or panic, and never returns.
unsafe fn exec_child(
    moves: &[(RawFd, RawFd)],
    program: &std::ffi::CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    mask: &libc::sigset_t,
    err: RawFd,
) -> ! {
    // SAFETY: (all below) system calls on plain integers and on pointers to memory that is
    // valid in this copy of the address space.
    unsafe {
        let ok = libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) == 0
            && libc::signal(libc::SIGPIPE, libc::SIG_DFL) != libc::SIG_ERR
            && libc::setsid() != -1
            && moves.iter().all(|&(from, to)| libc::dup2(from, to) != -1);
        if ok {
            libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        }
        let errno = *libc::__errno_location();
        let bytes = errno.to_ne_bytes();
        libc::write(err, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    }
}

/// `waitid(P_PIDFD, fd, …, flags)`: the child's exit status if it was reaped now.
fn waitid_pidfd(
    pidfd: &OwnedFd,
    flags: libc::c_int,
) -> io::Result<Option<std::process::ExitStatus>> {
    use std::os::unix::process::ExitStatusExt;
    // SAFETY: a zeroed siginfo_t is a valid value; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `info` is a valid siginfo_t to fill; the id is our pidfd.
        let rc = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                flags,
            )
        };
        if rc == 0 {
            break;
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINTR) {
            return Err(error);
        }
    }
    // SAFETY: waitid filled `info` for a child (or left si_pid 0 with WNOHANG).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    // As a wait(2) status: exit code in bits 8–15; the signal in 0–6, 0x80 for a core.
    let raw = match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => status | 0x80,
        _ => status,
    };
    Ok(Some(std::process::ExitStatus::from_raw(raw)))
}

impl PidfdChild {
    pub(crate) fn id(&self) -> Option<u32> {
        self.status.is_none().then_some(self.pid)
    }

    /// Sends SIGKILL (nothing once it was reaped).
    pub(crate) fn start_kill(&mut self) -> io::Result<()> {
        let Some(pidfd) = &self.pidfd else {
            return Ok(());
        };
        // SAFETY: pidfd_send_signal on our pidfd, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.get_ref().as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for it to exit and reaps it (once; later calls return the same status).
    pub(crate) async fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        loop {
            if let Some(status) = self.status {
                return Ok(status);
            }
            let Some(pidfd) = &self.pidfd else {
                return Err(io::Error::other("the child's pidfd is gone"));
            };
            // A pidfd is readable once its process has exited.
            let mut ready = pidfd.readable().await?;
            match waitid_pidfd(pidfd.get_ref(), libc::WEXITED | libc::WNOHANG)? {
                Some(status) => {
                    self.status = Some(status);
                    self.pidfd = None;
                }
                None => ready.clear_ready(),
            }
        }
    }
}

impl Drop for PidfdChild {
    fn drop(&mut self) {
        if self.status.is_some() || self.pidfd.is_none() {
            return;
        }
        let _ = self.start_kill();
        let Some(pidfd) = self.pidfd.take() else {
            return;
        };
        if let Ok(Some(_)) = waitid_pidfd(pidfd.get_ref(), libc::WEXITED | libc::WNOHANG) {
            return;
        }
        // Killed but not gone yet: a task reaps it once it is (SIGKILL cannot be caught,
        // so the task ends soon); without a runtime, wait here.
        let mut rest = PidfdChild {
            pid: self.pid,
            pidfd: Some(pidfd),
            status: None,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = rest.wait().await;
                });
            }
            Err(_) => {
                if let Some(pidfd) = rest.pidfd.take() {
                    let _ = waitid_pidfd(pidfd.get_ref(), libc::WEXITED);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;

    /// A new cgroup under this process's own, on the cgroup2 mount (a pure v2 host's
    /// `/sys/fs/cgroup`, or a hybrid host's unified hierarchy); removed on drop.
    struct TestCgroup {
        dir: std::path::PathBuf,
        /// As `/proc/<pid>/cgroup` shows it (`0::<path>`).
        path: String,
    }

    impl TestCgroup {
        fn new(name: &str) -> Self {
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            let mount = info
                .lines()
                .find_map(|l| {
                    let (left, right) = l.split_once(" - ")?;
                    right
                        .starts_with("cgroup2 ")
                        .then(|| left.split(' ').nth(4).unwrap().to_string())
                })
                .expect("this test needs a cgroup2 mount (pure v2 or hybrid)");
            let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
            let own = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            let path = format!(
                "{}/{name}-{}",
                own.trim_end_matches('/'),
                std::process::id()
            );
            let dir = std::path::Path::new(&mount).join(path.trim_start_matches('/'));
            std::fs::create_dir(&dir).expect("create a test cgroup (needs root)");
            Self { dir, path }
        }

        fn target(&self) -> OwnedFd {
            std::fs::File::open(&self.dir).unwrap().into()
        }
    }

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }

    fn null() -> OwnedFd {
        std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .unwrap()
            .into()
    }

    fn init_fds() -> InitFds {
        InitFds::new(&null(), &null(), &null(), None).unwrap()
    }

    /// Needs root (it creates a cgroup). The child's first look at `/proc/self/cgroup`
    /// already shows the target: it was born there, not moved.
    #[tokio::test]
    async fn a_child_is_born_in_its_cgroup_and_its_exit_code_is_seen() {
        let cgroup = TestCgroup::new("tandem-clone3-exit");
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let write2 = write.try_clone().unwrap();
        let mut child = spawn_into_cgroup(
            std::path::Path::new("/bin/sh"),
            &["-c".into(), "cat /proc/self/cgroup; exit 7".into()],
            &[null(), write, write2],
            &init_fds(),
            &cgroup.target(),
        )
        .expect("clone3")
        .expect("this kernel has CLONE_INTO_CGROUP (5.7+)");
        assert!(child.id().is_some());
        let mut out = String::new();
        std::fs::File::from(read).read_to_string(&mut out).unwrap();
        assert!(
            out.lines().any(|l| l == format!("0::{}", cgroup.path)),
            "{out:?} does not place it in {}",
            cgroup.path
        );
        assert_eq!(child.wait().await.unwrap().code(), Some(7));
        assert_eq!(child.id(), None, "reaped");
        // Reaped and gone: the cgroup is empty and can be removed.
        std::fs::remove_dir(&cgroup.dir).expect("the cgroup is empty");
    }

    /// Needs root. A killed child is reported as killed by SIGKILL; an exec failure is
    /// the exec's own error, and nothing is left in the cgroup.
    #[tokio::test]
    async fn kill_and_exec_failure() {
        let cgroup = TestCgroup::new("tandem-clone3-kill");
        let mut child = spawn_into_cgroup(
            std::path::Path::new("/bin/sh"),
            &["-c".into(), "exec sleep 1000".into()],
            &[null(), null(), null()],
            &init_fds(),
            &cgroup.target(),
        )
        .unwrap()
        .unwrap();
        child.start_kill().unwrap();
        assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGKILL));

        // Dropped unreaped (a cancelled start), it is killed like a `kill_on_drop` child.
        let dropped = spawn_into_cgroup(
            std::path::Path::new("/bin/sh"),
            &["-c".into(), "exec sleep 1000".into()],
            &[null(), null(), null()],
            &init_fds(),
            &cgroup.target(),
        )
        .unwrap()
        .unwrap();
        let pid = dropped.id().unwrap() as libc::pid_t;
        // SAFETY: pidfd_open returns a new descriptor that we own.
        let watch =
            unsafe { OwnedFd::from_raw_fd(libc::syscall(libc::SYS_pidfd_open, pid, 0) as RawFd) };
        drop(dropped);
        let watch = register_async(watch).unwrap();
        // Readable once the process has exited.
        let _ = watch.readable().await.unwrap();

        let missing = spawn_into_cgroup(
            std::path::Path::new("/no/such/program"),
            &[],
            &[null(), null(), null()],
            &init_fds(),
            &cgroup.target(),
        );
        assert_eq!(
            missing.unwrap_err().kind(),
            io::ErrorKind::NotFound,
            "the exec's ENOENT"
        );
        std::fs::remove_dir(&cgroup.dir).expect("nothing is left in the cgroup");
    }
}
