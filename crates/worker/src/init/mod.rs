//! `tandem-init`: the small, single-threaded program that becomes a job.
//!
//! The daemon is multi-threaded, so it never forks into namespaces itself: it spawns this
//! program (the `tandem-init` binary, or the daemon re-exec'ing itself with
//! [`INIT_ARG`]) with the [protocol](crate::protocol) file descriptors. Two processes of it
//! make up a job:
//!
//! * the **monitor**, in the daemon's PID namespace, is the worker's only child. It creates
//!   the job's PID namespace, forks the init, and relays control bytes into signals for it.
//!   On `K` or on EOF of the control pipe (the daemon went away) it SIGKILLs the init.
//! * the **init** is PID 1 of the new namespace. It creates the job's other namespaces and
//!   root filesystem ([`crate::sandbox`]), allocates the job's terminal in the job's own
//!   devpts instance and sends its master to the worker, locks itself down (seccomp,
//!   capabilities), then forks and execs the user's command, reports exec success or the
//!   exact OS error, reaps every zombie, forwards stop signals to the command's process
//!   group, and when the command ends it reports how and exits.
//!   The kernel then kills everything left in the namespace (daemonized grandchildren
//!   included) before the monitor sees the init exit, so "the monitor exited" means "no
//!   process of the job is left".

mod command;

use crate::protocol::{
    CONFIG_FD, CONTROL_FD, CONTROL_KILL, CONTROL_TERMINATE, EVENT_FD, ExitOutcome, InitConfig,
    InitEvent, JOIN_FD, Mode, USERNS_FD,
};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, killpg, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{IoSlice, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// The lowest descriptor number the protocol does not use.
const FIRST_UNUSED_FD: u32 = USERNS_FD as u32 + 1;

/// First argument that makes a binary embedding the worker behave as `tandem-init`.
pub const INIT_ARG: &str = "__tandem_init";

/// `PATH` used to find the command when the job's environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Signals init handles through a signalfd instead of default dispositions. SIGUSR1 from
/// the monitor means "kill the command now" (join mode, where killing the init alone would
/// leave the command running in the sandbox).
const HANDLED: [Signal; 6] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
];

/// Last argument that makes `tandem-init` start **warm**: already inside a job cgroup,
/// it waits on [`CONFIG_FD`] (a seqpacket socket) for a job's descriptors, then runs as
/// usual. See the daemon's `warm.rs`.
pub const WARM_ARG: &str = "__tandem_warm";

/// Most descriptors a warm init accepts: stdin, stdout, stderr and fds 3 to 7 (the
/// daemon sends 0 to 5: only new sandboxes take a slot).
const MAX_WARM_FDS: usize = USERNS_FD as usize + 1;

/// Entry point of `tandem-init`. Never returns.
pub fn main() -> ! {
    if std::env::args_os().last().is_some_and(|a| a == WARM_ARG) {
        receive_job();
    }
    // Whatever the daemon's own parent left open without close-on-exec (a shell's
    // descriptors, a directory handle…) would otherwise reach every job: close everything
    // above the protocol's descriptors before anything else.
    // SAFETY: close_range takes plain integers; closing descriptors nothing here uses.
    if unsafe { libc::syscall(libc::SYS_close_range, FIRST_UNUSED_FD, u32::MAX, 0) } == -1 {
        eprintln!(
            "tandem-init: cannot close inherited descriptors: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(2);
    }
    for fd in [CONFIG_FD, EVENT_FD, CONTROL_FD] {
        // SAFETY: only probes whether the descriptor number is open; nothing is dereferenced.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            eprintln!(
                "tandem-init: file descriptor {fd} is not open; this program is started by the \
                 tandem worker, not by hand"
            );
            std::process::exit(2);
        }
    }
    // SAFETY: EVENT_FD was checked open above and nothing else in this process owns it.
    let events = Events(unsafe { OwnedFd::from_raw_fd(EVENT_FD) });
    monitor(events)
}

/// A warm init's wait: the next message on [`CONFIG_FD`] carries the job's descriptors,
/// which are put at 0, 1, 2, … in the order sent. EOF (the slot was discarded, or the
/// daemon is gone) ends the process.
fn receive_job() {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
    let fail = |what: &str, e: Errno| -> ! {
        eprintln!("tandem-init: warm start: {what}: {e}");
        std::process::exit(2)
    };
    // Nothing but the slot's socket and stdio is needed while waiting, however long.
    // SAFETY: close_range takes plain integers; closing descriptors nothing here uses.
    unsafe { libc::syscall(libc::SYS_close_range, CONFIG_FD as u32 + 1, u32::MAX, 0) };
    let mut buf = [0u8; 8];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; MAX_WARM_FDS]);
    let (bytes, received) = loop {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        match recvmsg::<UnixAddr>(
            CONFIG_FD,
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            Err(e) => fail("receive the job's descriptors", e),
            Ok(msg) => {
                let mut fds = Vec::new();
                for cmsg in msg.cmsgs().unwrap_or_else(|e| fail("read descriptors", e)) {
                    if let ControlMessageOwned::ScmRights(raw) = cmsg {
                        fds.extend(raw);
                    }
                }
                break (msg.bytes, fds);
            }
        }
    };
    if bytes == 0 {
        std::process::exit(0);
    }
    if received.len() < CONTROL_FD as usize + 1 || received.len() > MAX_WARM_FDS {
        fail("wrong number of descriptors", Errno::EINVAL);
    }
    // The received numbers may be any of the targets: move them all above the protocol's
    // range first (main() closes everything there), then into place.
    let mut high = Vec::with_capacity(received.len());
    for fd in received {
        // SAFETY: `fd` came with SCM_RIGHTS just now; F_DUPFD_CLOEXEC only takes integers.
        let moved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64) };
        if moved == -1 {
            fail("move a descriptor", Errno::last());
        }
        // SAFETY: closes the received original, which nothing else refers to.
        unsafe { libc::close(fd) };
        high.push(moved);
    }
    for (target, fd) in high.into_iter().enumerate() {
        // SAFETY: dup2 takes two integers; `fd` is open, the target is replaced (the slot
        // socket at CONFIG_FD among them, which is then closed).
        if unsafe { libc::dup2(fd, target as i32) } == -1 {
            fail("place a descriptor", Errno::last());
        }
    }
}

/// Sends [`InitEvent`]s to the worker, one per seqpacket message. Errors are ignored: if
/// the worker is gone, the control pipe's EOF kills the job anyway.
struct Events(OwnedFd);

impl Events {
    fn send(&mut self, event: &InitEvent) {
        self.send_with_fds(event, &[]);
    }

    fn send_with_fds(&mut self, event: &InitEvent, fds: &[BorrowedFd<'_>]) {
        let Ok(message) = serde_json::to_vec(event) else {
            return;
        };
        let fds: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let cmsgs: Vec<ControlMessage<'_>> = if fds.is_empty() {
            Vec::new()
        } else {
            vec![ControlMessage::ScmRights(&fds)]
        };
        let _ = sendmsg::<UnixAddr>(
            self.0.as_raw_fd(),
            &[IoSlice::new(&message)],
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        );
    }

    fn fail(&mut self, step: impl Into<String>, errno: Errno) -> ! {
        self.send(&InitEvent::Failed {
            step: step.into(),
            errno: errno as i32,
        });
        std::process::exit(1)
    }
}

fn monitor(mut events: Events) -> ! {
    for fd in [EVENT_FD, CONTROL_FD] {
        if let Err(e) = set_cloexec(fd) {
            events.fail("set close-on-exec on init's descriptors", e);
        }
    }
    let config = match read_config() {
        Ok(config) => config,
        Err(e) => events.fail(format!("read init config: {e}"), Errno::EINVAL),
    };
    // SAFETY: CONTROL_FD was checked open in main() and is owned by nobody else here.
    let control = unsafe { OwnedFd::from_raw_fd(CONTROL_FD) };

    let mut mask = SigSet::empty();
    for sig in HANDLED {
        mask.add(sig);
    }
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None) {
        events.fail("block signals", e);
    }
    let signals = match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    {
        Ok(s) => s,
        Err(e) => events.fail("create signalfd", e),
    };

    let join = !matches!(config.mode, Mode::Create(_));
    let namespaces = match &config.mode {
        Mode::Create(sandbox) => {
            let ns = match crate::sandbox::userns::create(sandbox.ids) {
                Ok(ns) => ns,
                Err((step, e)) => events.fail(step, e),
            };
            if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
                let hint = if e == Errno::EPERM {
                    " (needs CAP_SYS_ADMIN: run the daemon as root)"
                } else {
                    ""
                };
                events.fail(format!("create PID namespace{hint}"), e);
            }
            Some(ns)
        }
        Mode::Join | Mode::Check(_) => {
            for (fd, what) in [
                (JOIN_FD, "its init's pidfd"),
                (USERNS_FD, "its user namespace"),
            ] {
                // SAFETY: only probes whether the descriptor number is open.
                if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
                    events.fail(
                        format!("join a sandbox: {what} (fd {fd}) is missing"),
                        Errno::EBADF,
                    );
                }
            }
            // SAFETY: JOIN_FD and USERNS_FD were checked open above and nothing else owns
            // them.
            let (target, user) = unsafe {
                (
                    OwnedFd::from_raw_fd(JOIN_FD),
                    OwnedFd::from_raw_fd(USERNS_FD),
                )
            };
            // Entering the PID namespace applies to children: the init forked below lives
            // there. Everything else applies to this process, which locks itself down
            // before forking, so that nothing inside ever sees a process of ours with more
            // privilege than its own.
            let joined = match &config.mode {
                Mode::Check(check) => {
                    crate::sandbox::join_check(check, &target, &user, config.caps)
                }
                _ => crate::sandbox::join(&target, &user, config.caps),
            };
            if let Err((step, e)) = joined {
                events.fail(step, e);
            }
            None
        }
    };

    // SAFETY: this process is single-threaded (tandem-init never starts threads), so the
    // child may run arbitrary code after fork.
    match unsafe { fork() } {
        Err(e) => events.fail("fork init", e),
        Ok(ForkResult::Child) => {
            drop(signals);
            drop(control);
            init(config, events, mask, namespaces)
        }
        Ok(ForkResult::Parent { child }) => {
            if let Some(ns) = namespaces {
                // Later jobs join this sandbox through a pidfd of its init and its user
                // namespace. The pidfd is opened here, by the init's parent, before the
                // init can have been reaped: it cannot refer to a recycled pid.
                match pidfd_open(child) {
                    Ok(pidfd) => {
                        events.send_with_fds(&InitEvent::Sandbox, &[pidfd.as_fd(), ns.user.as_fd()])
                    }
                    Err(e) => {
                        let _ = kill(child, Signal::SIGKILL);
                        events.fail("open a pidfd of the sandbox's init", e);
                    }
                }
            }
            drop(events);
            let _ = redirect_stdio_to_null();
            monitor_loop(child, signals, control, join)
        }
    }
}

fn pidfd_open(pid: Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh descriptor owned by nothing else (pidfds are close-on-exec).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Relays control bytes and signals to the init until it has exited.
fn monitor_loop(init: Pid, signals: SignalFd, control: OwnedFd, join: bool) -> ! {
    let mut control = Some(File::from(control));
    // Killing a sandbox's init takes its whole PID namespace with it. A joined init is not
    // PID 1 of anything: it is told to kill its command instead.
    let kill_signal = if join {
        Signal::SIGUSR1
    } else {
        Signal::SIGKILL
    };
    loop {
        let (sig_ready, ctl_ready) = {
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            if let Some(c) = &control {
                fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(_) => (true, true),
                Ok(_) => (ready(&fds[0]), fds.get(1).is_some_and(ready)),
            }
        };
        if sig_ready {
            while let Ok(Some(info)) = signals.read_signal() {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                if sig != Signal::SIGCHLD {
                    let _ = kill(init, sig);
                }
            }
            match waitpid(init, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
                _ => std::process::exit(0),
            }
        }
        if ctl_ready && let Some(c) = control.as_mut() {
            let mut byte = [0u8; 1];
            match c.read(&mut byte) {
                Ok(1) if byte[0] == CONTROL_TERMINATE => {
                    let _ = kill(init, Signal::SIGTERM);
                }
                Ok(1) if byte[0] != CONTROL_KILL => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // CONTROL_KILL, EOF (the worker is gone) or a broken pipe: kill the job.
                _ => {
                    let _ = kill(init, kill_signal);
                    control = None;
                }
            }
        }
    }
}

/// PID 1 of the job's namespace.
fn init(
    config: InitConfig,
    mut events: Events,
    mask: SigSet,
    namespaces: Option<crate::sandbox::Namespaces>,
) -> ! {
    // If the monitor dies (only a SIGKILL can do that) the job must die with it. The
    // monitor cannot have died before this line without the worker having killed it, in
    // which case the worker also kills the job's cgroup.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        events.fail("set parent-death signal", e);
    }
    if let Err((step, e)) = crate::sandbox::not_dumpable() {
        events.fail(step, e);
    }
    let signals = match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    {
        Ok(s) => s,
        Err(e) => events.fail("create signalfd", e),
    };
    // Create mode: build the sandbox (a joining init arrives locked down already).
    let create = match (&config.mode, namespaces) {
        (Mode::Create(sandbox), Some(ns)) => {
            if let Err((step, e)) = crate::sandbox::enter(sandbox, ns) {
                events.fail(step, e);
            }
            true
        }
        _ => false,
    };
    // The terminal comes from the job's own devpts instance, so that `tty`, `ttyname` and
    // programs that check them work inside; the worker gets the master.
    let terminal = match config.pty {
        None => None,
        Some(size) => match crate::sys::open_pty(size) {
            Ok((master, slave)) => {
                events.send_with_fds(&InitEvent::Terminal, &[master.as_fd()]);
                Some(slave)
            }
            Err(e) => events.fail(
                "open the job's terminal",
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            ),
        },
    };
    if create && let Err((step, e)) = crate::sandbox::lock_down(config.caps, false) {
        events.fail(step, e);
    }

    // A check's processes end with it: whatever it started (a service it probed, or the
    // candidate's code it ran) would otherwise live on in the sandbox, as the check's
    // uid, and could forge the next check. Orphans of the check come to this init, which
    // kills them all before it reports the end.
    let check = matches!(config.mode, Mode::Check(_));
    if check && let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        events.fail("become the check's subreaper", e);
    }
    let main = if config.argv.is_empty() {
        // A sandbox without a command: it holds until stopped; commands join it later.
        None
    } else {
        Some(start_command(&config, terminal, &signals, &mut events))
    };
    // Opened now, while /proc is still the one the sandbox mounted: the command could
    // mount over it later, but an open procfs file keeps reading the real process.
    let main_stat = main.and_then(MainStat::open);
    events.send(&InitEvent::Running);
    let _ = redirect_stdio_to_null();

    let mut stop_delivered = false;
    loop {
        let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => events.fail("poll signalfd", e),
        }
        let mut forward = Vec::new();
        while let Ok(Some(info)) = signals.read_signal() {
            // ssi_pid is 0 for senders outside this PID namespace: only the monitor may stop
            // the job; processes of the job cannot signal their init.
            if info.ssi_signo != Signal::SIGCHLD as u32
                && info.ssi_pid == 0
                && let Ok(sig) = Signal::try_from(info.ssi_signo as i32)
            {
                forward.push(sig);
            }
        }
        // Reap before forwarding, so that a command which already exited on its own is
        // reported as a natural exit even when a stop races it.
        let reaped = reap(main);
        let finished = match main {
            Some(_) => reaped.main,
            // Holding: done once stopped and every process of the sandbox is gone.
            None => (stop_delivered && reaped.none_left).then_some(ExitOutcome::Code(0)),
        };
        if let Some(outcome) = finished {
            if check {
                kill_descendants();
            }
            events.send(&InitEvent::Exited {
                outcome,
                stop_delivered,
            });
            // Exiting as PID 1 makes the kernel SIGKILL every other process of the job.
            std::process::exit(0);
        }
        for sig in forward {
            let sig = if sig == Signal::SIGUSR1 {
                Signal::SIGKILL
            } else {
                sig
            };
            // A command already on its way out (it closed its output and is in exit, or is
            // a zombie not reaped yet) ended on its own: the signal cannot change that. The
            // stop's caller often sees the output end first and stops at once.
            if (sig == Signal::SIGTERM || sig == Signal::SIGKILL)
                && !main_stat.as_ref().is_some_and(MainStat::exiting)
            {
                stop_delivered = true;
            }
            match main {
                Some(main) => {
                    if sig == Signal::SIGTERM && config.pty.is_some() {
                        // What a terminal hang-up would do: interactive shells ignore
                        // SIGTERM but honour SIGHUP.
                        let _ = killpg(main, Signal::SIGHUP);
                    }
                    let _ = killpg(main, sig);
                }
                // Holding init of a sandbox: every other process of the namespace.
                None => {
                    let _ = kill(Pid::from_raw(-1), sig);
                }
            }
        }
        if main.is_none() && stop_delivered && reap(None).none_left {
            events.send(&InitEvent::Exited {
                outcome: ExitOutcome::Code(0),
                stop_delivered,
            });
            std::process::exit(0);
        }
    }
}

/// Forks and execs the command; returns its pid once exec succeeded, or reports the OS
/// error and exits.
fn start_command(
    config: &InitConfig,
    terminal: Option<OwnedFd>,
    signals: &SignalFd,
    events: &mut Events,
) -> Pid {
    let (err_read, err_write) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => events.fail("create exec status pipe", e),
    };
    // SAFETY: single-threaded process (see monitor()).
    let main = match unsafe { fork() } {
        Err(e) => events.fail("fork command", e),
        Ok(ForkResult::Child) => {
            drop(err_read);
            // The child must not keep init's descriptors: close the signalfd and the event
            // socket (exec would close them too, being close-on-exec).
            let _ = nix::unistd::close(std::os::fd::AsRawFd::as_raw_fd(signals));
            let _ = nix::unistd::close(std::os::fd::AsRawFd::as_raw_fd(&events.0));
            command::exec_command(config, terminal, err_write)
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(err_write);
    // Only the command holds the terminal now: when it and its children are gone, the
    // worker reads EIO (end of output) from the master.
    drop(terminal);
    let mut report = Vec::new();
    let _ = File::from(err_read).read_to_end(&mut report);
    if !report.is_empty() {
        // The child wrote "<errno> <step>" and _exit'ed; reap it before reporting.
        let _ = waitpid(main, None);
        let text = String::from_utf8_lossy(&report);
        let (errno, step) = text.split_once(' ').unwrap_or(("0", "start command"));
        let errno = Errno::from_raw(errno.parse().unwrap_or(0));
        events.fail(step.to_string(), errno);
    }
    main
}

/// The main command's `/proc/<pid>/stat`, to tell whether it is already exiting.
struct MainStat(File);

/// `PF_EXITING` in the flags of `/proc/<pid>/stat`: the task is in `do_exit`.
const PF_EXITING: u64 = 0x4;

impl MainStat {
    /// Opens the stat file of `main`, if this /proc shows init's own child under that
    /// pid (it is not this PID namespace's /proc otherwise).
    fn open(main: Pid) -> Option<Self> {
        let file = File::open(format!("/proc/{main}/stat")).ok()?;
        let stat = Self(file);
        let (pid, ppid, _) = stat.read()?;
        (pid == main.as_raw() && ppid == nix::unistd::getpid().as_raw()).then_some(stat)
    }

    /// True when the command is exiting or exited (not reaped yet). False when it is
    /// alive, and when that cannot be told (reaped: then the next reap reports it).
    fn exiting(&self) -> bool {
        self.read().is_some_and(|(_, _, (state, flags))| {
            matches!(state, 'Z' | 'X') || flags & PF_EXITING != 0
        })
    }

    fn read(&self) -> Option<(i32, i32, (char, u64))> {
        let mut buf = [0u8; 512];
        let n = nix::sys::uio::pread(&self.0, &mut buf, 0).ok()?;
        parse_stat(&buf[..n])
    }
}

/// Pid, parent pid, state and flags from the text of `/proc/<pid>/stat`. The command's
/// name (in parentheses) may hold spaces and parentheses: fields are counted after the
/// last `)`.
fn parse_stat(text: &[u8]) -> Option<(i32, i32, (char, u64))> {
    let text = std::str::from_utf8(text).ok()?;
    let (head, tail) = text.rsplit_once(')')?;
    let pid = head.split_once(" (")?.0.parse().ok()?;
    let mut fields = tail.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    // pgrp, session, tty_nr, tpgid, then flags.
    let flags = fields.nth(4)?.parse().ok()?;
    Some((pid, ppid, (state, flags)))
}

/// Kills and reaps every process below this one (a subreaper: orphans of its
/// descendants are its children) until none is left. A process killed while it forks
/// leaves children, which then come here and are killed in the next pass. Bounded, so
/// that a process this init may not signal cannot keep it from exiting.
fn kill_descendants() {
    let me = nix::unistd::getpid();
    for _ in 0..10_000 {
        let children = children_of(me);
        let killed = children
            .iter()
            .filter(|&&child| kill(child, Signal::SIGKILL).is_ok())
            .count();
        if killed == 0 && !children.is_empty() {
            // None of them may be signalled: waiting would never end.
            return;
        }
        let flags = if killed == 0 {
            // Nothing seen alive: reap what is dead; a child that came after the scan
            // is found by the next one.
            Some(WaitPidFlag::WNOHANG)
        } else {
            // A killed child will end: wait for it.
            None
        };
        if let Err(Errno::ECHILD) = waitpid(None::<Pid>, flags) {
            return;
        }
    }
}

/// The pids whose parent is `parent`, from `/proc/<pid>/stat`.
fn children_of(parent: Pid) -> Vec<Pid> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
        let (_, ppid, _) = parse_stat(&stat)?;
        (ppid == parent.as_raw()).then(|| Pid::from_raw(pid))
    })
    .collect()
}

/// What one pass of reaping found.
struct Reaped {
    /// How the main command ended, if it was reaped.
    main: Option<ExitOutcome>,
    /// No child is left at all.
    none_left: bool,
}

/// Reaps every exited child; reports how `main` ended if it was among them.
fn reap(main: Option<Pid>) -> Reaped {
    let mut reaped = Reaped {
        main: None,
        none_left: false,
    };
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if Some(pid) == main => {
                reaped.main = Some(ExitOutcome::Code(code))
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if Some(pid) == main => {
                reaped.main = Some(ExitOutcome::Signal(sig as i32))
            }
            Ok(WaitStatus::StillAlive) => return reaped,
            Err(Errno::ECHILD) => {
                reaped.none_left = true;
                return reaped;
            }
            Err(_) => return reaped,
            Ok(_) => {}
        }
    }
}

fn read_config() -> std::io::Result<InitConfig> {
    // SAFETY: CONFIG_FD was checked open in main() and nothing else owns it; the File
    // closes it when dropped.
    let mut file = unsafe { File::from_raw_fd(CONFIG_FD) };
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}

fn set_cloexec(fd: i32) -> Result<(), Errno> {
    // SAFETY: fd was checked open by main() and outlives this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map(drop)
}

fn ready(fd: &PollFd<'_>) -> bool {
    fd.revents().is_some_and(|r| !r.is_empty())
}

/// Points stdin, stdout and stderr at /dev/null so this process no longer holds the
/// job's output pipe or terminal open (readers see EOF when the command's side closes).
fn redirect_stdio_to_null() -> std::io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(OsStr::from_bytes(b"/dev/null"))?;
    for target in 0..3 {
        // SAFETY: dup2 onto 0..2 replaces this process's stdio atomically; `null` stays
        // valid for the duration of the call.
        if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), target) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = b"42 (a) b (c) R) S 1 42 42 0 -1 4194564 12 0 0 0\n";
        assert_eq!(parse_stat(line), Some((42, 1, ('S', 4194564))));
        assert_eq!(4194564 & PF_EXITING, PF_EXITING);
        assert_eq!(
            parse_stat(b"7 (sh) Z 1 7 7 0 -1 4194304 0"),
            Some((7, 1, ('Z', 4194304)))
        );
        assert_eq!(parse_stat(b"7 (sh"), None);
        assert_eq!(parse_stat(b"7 (sh) R 1"), None);
    }

    #[test]
    fn a_child_reads_as_alive_then_exiting_once_it_is_a_zombie() {
        // SAFETY: the child only calls async-signal-safe functions (pause, _exit).
        let child = match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                // SAFETY: plain syscalls.
                unsafe {
                    libc::pause();
                    libc::_exit(0)
                }
            }
            ForkResult::Parent { child } => child,
        };
        let stat = MainStat::open(child).expect("this process's own child in /proc");
        assert!(!stat.exiting(), "a paused child is alive");
        kill(child, Signal::SIGKILL).unwrap();
        // waitid with WNOWAIT: wait for the zombie without reaping it.
        let id = nix::sys::wait::Id::Pid(child);
        nix::sys::wait::waitid(id, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT).unwrap();
        assert!(stat.exiting(), "a zombie is exiting");
        waitpid(child, None).unwrap();
        assert!(
            !stat.exiting(),
            "reaped: nothing to tell, the reap reports it"
        );
        assert!(
            MainStat::open(Pid::from_raw(1)).is_none(),
            "not this process's child"
        );
    }
}
