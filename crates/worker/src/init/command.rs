//! The command of a job, in the child init forks for it: default signal dispositions, its
//! own session, the terminal as controlling TTY, the user, the working directory, and
//! `execve` with execvpe's `PATH` search; or the exact step and errno that failed, written
//! to init over a close-on-exec pipe.

use super::DEFAULT_PATH;
use crate::protocol::InitConfig;
use nix::errno::Errno;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use std::convert::Infallible;
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

/// Runs in the forked child: becomes the user's command or reports why it could not.
pub(super) fn exec_command(
    config: &InitConfig,
    terminal: Option<OwnedFd>,
    err_write: OwnedFd,
) -> ! {
    let (step, errno) = match prepare_and_exec(config, terminal) {
        Err(failure) => failure,
        Ok(never) => match never {},
    };
    let mut pipe = File::from(err_write);
    let _ = write!(pipe, "{} {}", errno as i32, step);
    // SAFETY: _exit is always safe; it skips atexit handlers that belong to the parent.
    unsafe { libc::_exit(127) }
}

fn prepare_and_exec(
    config: &InitConfig,
    terminal: Option<OwnedFd>,
) -> Result<Infallible, (String, Errno)> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| ("unblock signals".to_string(), e))?;
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: installs the default disposition, which has no handler code to be
            // unsafe about. Ignored signals would otherwise stay ignored across exec.
            let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
        }
    }
    nix::unistd::setsid().map_err(|e| ("create session".to_string(), e))?;
    if let Some(slave) = terminal {
        for target in 0..3 {
            // SAFETY: dup2 onto 0..2 with a valid source descriptor.
            if unsafe { libc::dup2(slave.as_raw_fd(), target) } == -1 {
                return Err(("attach the terminal".to_string(), Errno::last()));
            }
        }
        drop(slave);
        // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal), fd 0 is the slave.
        let rc = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
        if rc == -1 {
            return Err(("set controlling terminal".to_string(), Errno::last()));
        }
    }
    let mut env = config.env.clone();
    let mut home = None;
    if let Some(user) = &config.user {
        let entry = become_user(user)?;
        // A login-like environment unless the spec says otherwise.
        for (key, value) in [
            ("HOME", entry.dir.to_string_lossy().into_owned()),
            ("USER", entry.name.clone()),
            ("LOGNAME", entry.name.clone()),
        ] {
            if !env.iter().any(|(k, _)| k == key) {
                env.push((key.to_string(), value));
            }
        }
        home = Some(entry.dir).filter(|d| d.is_dir());
    }
    let cwd = config
        .cwd
        .as_deref()
        .or(home.as_deref())
        .unwrap_or("/".as_ref());
    nix::unistd::chdir(cwd).map_err(|e| (format!("change directory to {}", cwd.display()), e))?;

    let cstring = |s: &str| CString::new(s).map_err(|_| (format!("argument {s:?}"), Errno::EINVAL));
    let argv = config
        .argv
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<Vec<_>, _>>()?;
    let env = env
        .iter()
        .map(|(k, v)| cstring(&format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    let program = config.argv.first().map(String::as_str).unwrap_or_default();
    let step = format!("exec {program}");
    if program.contains('/') {
        let path = cstring(program)?;
        let Err(err) = nix::unistd::execve(&path, &argv, &env);
        return Err((step, err));
    }
    let path_var = config
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    // execvpe(3) semantics: ENOENT/ENOTDIR mean "try the next directory"; EACCES is
    // remembered; anything else is final.
    let mut saw_eacces = false;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = cstring(&format!("{dir}/{program}"))?;
        let Err(err) = nix::unistd::execve(&candidate, &argv, &env);
        match err {
            Errno::ENOENT | Errno::ENOTDIR | Errno::ESTALE | Errno::ENODEV | Errno::ETIMEDOUT => {}
            Errno::EACCES => saw_eacces = true,
            other => return Err((step, other)),
        }
    }
    let errno = if saw_eacces {
        Errno::EACCES
    } else {
        Errno::ENOENT
    };
    Err((format!("{step} (searched PATH={path_var})"), errno))
}

/// Switches to `user` (a name or numeric uid from the sandbox's /etc/passwd) with its
/// primary and supplementary groups.
fn become_user(user: &str) -> Result<nix::unistd::User, (String, Errno)> {
    use nix::unistd::{User, initgroups, setgid, setuid};
    let entry = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(uid.into()),
        Err(_) => User::from_name(user),
    };
    let entry = match entry {
        Ok(Some(entry)) => entry,
        Ok(None) => {
            return Err((
                format!("user {user:?} is not in the sandbox's /etc/passwd"),
                Errno::ENOENT,
            ));
        }
        Err(e) => return Err((format!("look up user {user:?}"), e)),
    };
    let name = CString::new(entry.name.as_str())
        .map_err(|_| (format!("user name {:?}", entry.name), Errno::EINVAL))?;
    initgroups(&name, entry.gid).map_err(|e| (format!("set the groups of {user:?}"), e))?;
    setgid(entry.gid).map_err(|e| (format!("switch to the group of {user:?}"), e))?;
    setuid(entry.uid).map_err(|e| (format!("switch to user {user:?}"), e))?;
    Ok(entry)
}
