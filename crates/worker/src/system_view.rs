//! The **system view**: what a sandbox sees of the host, built once per manager under
//! `<state>/system/`.
//!
//! A sandbox's root is never the host's `/`. By default it is made of
//! * `root/`: a skeleton built here: the top-level directories (`/root`, `/home`, `/srv`,
//!   `/opt`, `/mnt`, `/tmp`, a `/var` tree …) empty, the host's `/bin` → `usr/bin`-style
//!   links where the host has them, and a synthesized `/etc` holding only what programs
//!   need: the sandbox's own `passwd`/`group`/`shadow`, and an allow-list of the host's
//!   package configuration ([`ETC_FILES`], [`ETC_DIRS`]). Never the host's users, shadow,
//!   SSH keys, machine-id, TLS private keys or anything not on the list;
//! * the host's `/usr` (and `/bin`, `/sbin`, `/lib*` where they are real directories),
//!   read-only underneath.
//!
//! Both are presented to the sandbox through idmapped mounts (host uid 0 appears as the
//! sandbox's root), under a copy-on-write layer of the sandbox's own.
//!
//! `pins/` is the layer that checks see *above* the candidate's files (see
//! `sandbox::check`): the root-level links and the configuration that decides which code a
//! program loads (`ld.so.cache`, a whiteout for `ld.so.preload`, Python's and Perl's
//! site configuration, OpenSSL's configuration), so that a root candidate cannot make a
//! check run their code.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tandem_limits::accounts::{self, GROUP, PASSWD};

/// Host `/etc` files copied into the view when present (symlinks stay symlinks).
pub const ETC_FILES: &[&str] = &[
    "adduser.conf",
    "bash.bashrc",
    "bindresvport.blacklist",
    "ca-certificates.conf",
    "debian_version",
    "deluser.conf",
    "e2scrub.conf",
    "environment",
    "ethertypes",
    "gai.conf",
    "host.conf",
    "inputrc",
    "issue",
    "issue.net",
    "ld.so.cache",
    "ld.so.conf",
    "locale.alias",
    "locale.gen",
    "localtime",
    "login.defs",
    "magic",
    "magic.mime",
    "manpath.config",
    "mime.types",
    "mke2fs.conf",
    "netconfig",
    "networks",
    "nsswitch.conf",
    "os-release",
    "pam.conf",
    "profile",
    "protocols",
    "rpc",
    "services",
    "shells",
    "timezone",
    "wgetrc",
    "xattr.conf",
    "default/useradd",
    "default/locale",
    "default/nss",
];

/// Host `/etc` directories copied recursively when present: package configuration that
/// programs read and that holds no secrets (`ssl/private` is left out of `ssl`).
pub const ETC_DIRS: &[&str] = &[
    "alternatives",
    "bash_completion.d",
    "ca-certificates",
    "iproute2",
    "ld.so.conf.d",
    "logrotate.d",
    "pam.d",
    "perl",
    "profile.d",
    "python3",
    "security",
    "skel",
    "ssl",
    "terminfo",
    "vim",
];

/// Paths below copied directories that are never copied (private keys, password history).
const ETC_NEVER: &[&str] = &["ssl/private", "security/opasswd"];

/// Top-level directories that are real directories of the host and are presented
/// read-only (each as its own copy-on-write layer) when the host has them as directories
/// rather than links into `/usr`.
pub const SYSTEM_DIRS: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Where a built view lives.
#[derive(Debug, Clone)]
pub(crate) struct SystemView {
    /// The skeleton root with the synthesized `/etc` (lowest layer of a sandbox's root).
    pub root: PathBuf,
    /// Host directories mounted read-only at the same path inside (`/usr`, …).
    pub system_dirs: Vec<PathBuf>,
    /// The layer checks see above the candidate's files.
    pub pins: PathBuf,
}

/// Why the view could not be built.
#[derive(Debug, thiserror::Error)]
#[error("build the sandbox system view: {what}: {error}")]
pub struct SystemViewError {
    what: String,
    #[source]
    error: io::Error,
}

fn ctx(what: impl Into<String>) -> impl FnOnce(io::Error) -> SystemViewError {
    let what = what.into();
    move |error| SystemViewError { what, error }
}

/// Builds the view of `host` (normally `/`) under `dir` (replacing an earlier one) and
/// returns where its parts are. Files keep the host's owners (uid 0 and so on): the idmapped
/// mounts present them as the sandbox's.
pub(crate) fn build(host: &Path, dir: &Path) -> Result<SystemView, SystemViewError> {
    // Build beside, then swap: an interrupted build never leaves a half view in place.
    let fresh = dir.with_extension("new");
    remove_if_present(&fresh)?;
    mkdir(&fresh, 0o755)?;
    let root = fresh.join("root");
    mkdir(&root, 0o755)?;
    let mut system_dirs = Vec::new();
    for name in SYSTEM_DIRS {
        let host_path = host.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&host_path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&host_path)
                .map_err(ctx(format!("read link {}", host_path.display())))?;
            std::os::unix::fs::symlink(&target, root.join(name))
                .map_err(ctx(format!("link /{name}")))?;
        } else if meta.is_dir() {
            mkdir(&root.join(name), meta.mode() & 0o7777)?;
            system_dirs.push(host_path);
        }
    }
    skeleton(&root)?;
    etc(host, &root.join("etc"))?;
    let pins = fresh.join("pins");
    build_pins(host, &root, &pins)?;

    remove_if_present(dir)?;
    std::fs::rename(&fresh, dir).map_err(ctx(format!("rename to {}", dir.display())))?;
    Ok(SystemView {
        root: dir.join("root"),
        system_dirs,
        pins: dir.join("pins"),
    })
}

/// Builds the check pins of a rootfs directory under `dir` (replacing earlier ones).
pub(crate) fn build_rootfs_pins(rootfs: &Path, dir: &Path) -> Result<PathBuf, SystemViewError> {
    remove_if_present(dir)?;
    build_pins(rootfs, rootfs, dir)?;
    Ok(dir.to_path_buf())
}

/// The empty directories of a Linux root, and `/var`'s usual tree.
fn skeleton(root: &Path) -> Result<(), SystemViewError> {
    for (path, mode) in [
        ("root", 0o700),
        ("home", 0o755),
        ("srv", 0o755),
        ("opt", 0o755),
        ("mnt", 0o755),
        ("media", 0o755),
        ("tmp", 0o1777),
        ("run", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("boot", 0o755),
        ("var", 0o755),
        ("var/backups", 0o755),
        ("var/cache", 0o755),
        ("var/lib", 0o755),
        ("var/local", 0o2775),
        ("var/log", 0o755),
        ("var/mail", 0o2775),
        ("var/opt", 0o755),
        ("var/spool", 0o755),
        ("var/tmp", 0o1777),
        ("var/www", 0o755),
    ] {
        mkdir(&root.join(path), mode)?;
    }
    for (link, target) in [("var/run", "/run"), ("var/lock", "/run/lock")] {
        std::os::unix::fs::symlink(target, root.join(link))
            .map_err(ctx(format!("link /{link}")))?;
    }
    Ok(())
}

/// `/etc/profile.d/tandem.sh`: what a tandem session needs of the candidate's login shell
/// (bash). `hint` prints the hints an interviewer revealed (the daemon writes them to
/// `/run/tandem/hints`). The marks tell the session where each command starts (`PS0`:
/// its directory) and ends (before the next prompt: its status and its text, from the
/// history); the session takes them out of the terminal output, so nobody sees them
/// (tandem-session's `marks.rs` reads them). Only builtins and expansions per command
/// (one `mktemp` at login). The user's own `PS0` and `PROMPT_COMMAND` still run.
pub(crate) const TANDEM_PROFILE: &str = r#"# tandem: the `hint` command and the command marks of the session's timeline.
hint() {
    if [ -s /run/tandem/hints ]; then cat /run/tandem/hints
    else echo "No hint has been revealed yet."; fi
}
if [ -n "$BASH_VERSION" ] && [ -n "$PS1" ] && __tandem_h=$(mktemp 2>/dev/null); then
    # The command's text: what `history -a` adds to a file of our own, read back with
    # `mapfile` (builtins: no fork per command). The mark is one `printf`, one write, so
    # input typed ahead and echoed meanwhile cannot land inside it.
    __tandem_end() {
        local __tandem_t=()
        builtin history -a "$__tandem_h"
        builtin mapfile -t __tandem_t <"$__tandem_h"
        : >"$__tandem_h"
        builtin printf '\033]6973;D;%s;%s\007' "$1" "${__tandem_t[*]}"
    }
    PS0='\e]6973;C;${PWD//[[:cntrl:];]/ }\a'"${PS0-}"
    PROMPT_COMMAND="__tandem_end \$?${PROMPT_COMMAND:+; $PROMPT_COMMAND}"
fi
"#;

/// The synthesized `/etc`.
fn etc(host: &Path, etc: &Path) -> Result<(), SystemViewError> {
    mkdir(etc, 0o755)?;
    let host_etc = host.join("etc");
    for name in ETC_FILES {
        copy_entry(&host_etc.join(name), &etc.join(name), &[])?;
    }
    for name in ETC_DIRS {
        copy_entry(&host_etc.join(name), &etc.join(name), ETC_NEVER)?;
    }
    // Python's site configuration lives in a versioned directory (`python3.11`, …).
    for entry in read_dir(&host_etc)? {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("python3.") {
            copy_entry(&entry.path(), &etc.join(&*name), &[])?;
        }
    }
    write(etc.join("passwd"), PASSWD, 0o644, 0)?;
    write(etc.join("group"), GROUP, 0o644, 0)?;
    let groups = accounts::groups(GROUP);
    // Locked passwords: nobody logs in with one; root's shell is opened by tandem.
    let shadow: String = PASSWD
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(|user| format!("{user}:*:19700:0:99999:7:::\n"))
        .collect();
    let shadow_gid = groups
        .iter()
        .find(|(n, _)| n == "shadow")
        .map_or(0, |g| g.1);
    write(etc.join("shadow"), &shadow, 0o640, shadow_gid)?;
    let gshadow: String = groups
        .iter()
        .map(|(name, _)| format!("{name}:*::\n"))
        .collect();
    write(etc.join("gshadow"), &gshadow, 0o640, shadow_gid)?;
    write(
        etc.join("resolv.conf"),
        "# A tandem sandbox has no network beyond its own loopback.\n",
        0o644,
        0,
    )?;
    write(etc.join("fstab"), "# no file systems to mount\n", 0o644, 0)?;
    write(etc.join("motd"), "", 0o644, 0)?;
    mkdir(&etc.join("profile.d"), 0o755)?;
    write(etc.join("profile.d/tandem.sh"), TANDEM_PROFILE, 0o644, 0)?;
    let mtab = etc.join("mtab");
    if std::fs::symlink_metadata(&mtab).is_err() {
        std::os::unix::fs::symlink("../proc/self/mounts", &mtab).map_err(ctx("link /etc/mtab"))?;
    }
    Ok(())
}

/// What checks see above the candidate's root: the root-level links of the view, and the
/// configuration that decides which code programs load, as the host has it.
fn build_pins(host: &Path, view_root: &Path, pins: &Path) -> Result<(), SystemViewError> {
    mkdir(pins, 0o755)?;
    for name in SYSTEM_DIRS {
        let link = view_root.join(name);
        if let Ok(target) = std::fs::read_link(&link) {
            std::os::unix::fs::symlink(&target, pins.join(name))
                .map_err(ctx(format!("pin /{name}")))?;
        }
    }
    let etc = pins.join("etc");
    mkdir(&etc, 0o755)?;
    let host_etc = host.join("etc");
    copy_entry(&host_etc.join("ld.so.cache"), &etc.join("ld.so.cache"), &[])?;
    let ssl = etc.join("ssl");
    mkdir(&ssl, 0o755)?;
    copy_entry(
        &host_etc.join("ssl/openssl.cnf"),
        &ssl.join("openssl.cnf"),
        &[],
    )?;
    // The checks' working directory: empty, whatever the candidate puts at that path.
    let check_dir = pins.join(crate::launch::CHECK_DIR.trim_start_matches('/'));
    mkdir(&check_dir, 0o755)?;
    set_opaque(&check_dir)?;
    // `alternatives`: about 80 commands of /usr/bin (awk, which, vi, iptables, …) are
    // links through it, so the candidate's links there would run their code in a check.
    let mut opaque = vec![etc.join("perl"), etc.join("alternatives")];
    for entry in read_dir(&host_etc)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "python3" || name.starts_with("python3.") {
            opaque.push(etc.join(&name));
        }
    }
    for dir in opaque {
        let name = dir.file_name().map(PathBuf::from).unwrap_or_default();
        copy_entry(&host_etc.join(&name), &dir, &[])?;
        if !dir.exists() {
            mkdir(&dir, 0o755)?;
        }
        // Opaque: the candidate's directory of the same name is not merged in.
        set_opaque(&dir)?;
    }
    // Whiteouts: the candidate's file of this name is hidden from checks (a preload list
    // would inject a library into every check process; `/nonexistent` is the checks' HOME,
    // so no rc file there reaches them).
    for path in [etc.join("ld.so.preload"), pins.join("nonexistent")] {
        whiteout(&path)?;
    }
    Ok(())
}

/// Copies a file, symlink or directory tree (modes and owners kept; sockets, fifos and
/// devices skipped). A missing source is not an error: hosts differ.
fn copy_entry(src: &Path, dst: &Path, never: &[&str]) -> Result<(), SystemViewError> {
    copy_below(src, dst, Path::new(""), never)
}

fn copy_below(
    src: &Path,
    dst: &Path,
    relative: &Path,
    never: &[&str],
) -> Result<(), SystemViewError> {
    let Ok(meta) = std::fs::symlink_metadata(src) else {
        return Ok(());
    };
    let rel_name = dst
        .file_name()
        .map(|n| relative.join(n))
        .unwrap_or_default();
    if never.iter().any(|n| rel_name == Path::new(n)) {
        return Ok(());
    }
    if let Some(parent) = dst.parent()
        && !parent.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(ctx(format!("create {}", parent.display())))?;
    }
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target =
            std::fs::read_link(src).map_err(ctx(format!("read link {}", src.display())))?;
        std::os::unix::fs::symlink(&target, dst).map_err(ctx(format!("link {}", dst.display())))?;
    } else if kind.is_file() {
        std::fs::copy(src, dst).map_err(ctx(format!("copy {}", src.display())))?;
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(ctx(format!("chmod {}", dst.display())))?;
    } else if kind.is_dir() {
        mkdir(dst, meta.mode() & 0o7777)?;
        let below = relative.join(dst.file_name().unwrap_or_default());
        // Sorted, so that two builds of the same host are identical.
        let names: BTreeSet<_> = read_dir(src)?.into_iter().map(|e| e.file_name()).collect();
        for name in names {
            copy_below(&src.join(&name), &dst.join(&name), &below, never)?;
        }
    } else {
        return Ok(());
    }
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))
        .map_err(ctx(format!("chown {}", dst.display())))
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, SystemViewError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.flatten().collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ctx(format!("list {}", dir.display()))(e)),
    }
}

fn mkdir(path: &Path, mode: u32) -> Result<(), SystemViewError> {
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(ctx(format!("create {}", path.display()))(e)),
    }
    // The umask may have cleared bits (1777 for tmp).
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(ctx(format!("chmod {}", path.display())))
}

fn write(path: PathBuf, content: &str, mode: u32, gid: u32) -> Result<(), SystemViewError> {
    std::fs::write(&path, content).map_err(ctx(format!("write {}", path.display())))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .map_err(ctx(format!("chmod {}", path.display())))?;
    std::os::unix::fs::chown(&path, Some(0), Some(gid))
        .map_err(ctx(format!("chown {}", path.display())))
}

/// An overlayfs whiteout: a character device 0:0.
fn whiteout(path: &Path) -> Result<(), SystemViewError> {
    use nix::sys::stat::{Mode, SFlag, mknod};
    mknod(path, SFlag::S_IFCHR, Mode::empty(), 0)
        .map_err(|e| ctx(format!("whiteout {}", path.display()))(e.into()))
}

/// Marks a directory opaque for overlayfs (`trusted.overlay.opaque=y`): the lower layers'
/// directory of the same name does not show through.
fn set_opaque(dir: &Path) -> Result<(), SystemViewError> {
    xattr_set(dir, "trusted.overlay.opaque", b"y")
        .map_err(ctx(format!("mark {} opaque", dir.display())))
}

fn xattr_set(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let name =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    crate::sys::lsetxattr(&path, &name, value)
}

fn remove_if_present(path: &Path) -> Result<(), SystemViewError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ctx(format!("remove {}", path.display()))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_copied_paths_are_below_copied_dirs() {
        for never in ETC_NEVER {
            let top = never.split('/').next().unwrap();
            assert!(ETC_DIRS.contains(&top), "{never} is not below a copied dir");
        }
    }
}
