//! Idmapped mounts (Linux ≥ 5.12; as overlayfs layers ≥ 5.19): a detached copy of a host
//! directory's mount whose files appear with their owners shifted into the sandbox's user
//! namespace (host uid 0 shows as the sandbox's root), read-only.

use super::Failure;
use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `struct mount_attr` (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x0000_0004;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x0000_0040;

/// Options of an idmapped copy (always `nodev`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Ignore setuid/setgid bits.
    pub nosuid: bool,
    /// Writable (only for a spec's writable binds).
    pub writable: bool,
}

impl Options {
    /// A read-only layer or view that may hold setuid programs.
    pub const LAYER: Self = Self {
        nosuid: false,
        writable: false,
    };
    /// A read-only view without setuid.
    pub const PRISTINE: Self = Self {
        nosuid: true,
        writable: false,
    };
}

/// A detached idmapped copy of the mount at `source` (not its submounts), `nodev`.
pub(crate) fn detached_copy(
    source: &Path,
    userns: &OwnedFd,
    options: Options,
) -> Result<OwnedFd, Failure> {
    let tree =
        open_tree(source).map_err(|e| (format!("copy the mount of {}", source.display()), e))?;
    let mut set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NODEV;
    if options.nosuid {
        set |= MOUNT_ATTR_NOSUID;
    }
    if !options.writable {
        set |= MOUNT_ATTR_RDONLY;
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: mount_setattr reads `size` bytes of `attr`, which is a valid mount_attr.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        let errno = Errno::last();
        let hint = match errno {
            Errno::EINVAL => format!(
                ": its file system ({}) does not support idmapped mounts here; ext4, xfs and \
                 btrfs do, tmpfs from Linux 6.3, overlayfs not at all",
                fs_name(source)
            ),
            Errno::ENOSYS => ": this kernel has no mount_setattr (needs Linux ≥ 5.12)".into(),
            _ => String::new(),
        };
        return Err((
            format!(
                "map {} into the sandbox's user namespace{hint}",
                source.display()
            ),
            errno,
        ));
    }
    Ok(tree)
}

/// A detached copy of the mount at `path` (absolute, inside the current root) with
/// everything mounted below it, as it is (no idmap, same flags); `None` when nothing is
/// at `path`. No symlink is followed on the way: in a sandbox's tree they are the
/// candidate's.
pub(crate) fn clone_tree_nofollow(path: &Path) -> Result<Option<OwnedFd>, Failure> {
    let root =
        open_path(None, Path::new("/")).map_err(|e| ("open the sandbox's root".to_string(), e))?;
    let at = match open_path(Some(&root), path) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => {
            return Err((
                format!("reach {} without following links", path.display()),
                e,
            ));
        }
    };
    // SAFETY: open_tree takes a dirfd, a NUL-terminated path and flags; returns a new fd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            at.as_raw_fd(),
            c"".as_ptr(),
            OPEN_TREE_CLONE
                | libc::AT_EMPTY_PATH as libc::c_uint
                | libc::AT_RECURSIVE as libc::c_uint
                | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err((
            format!("copy the mounts at {}", path.display()),
            Errno::last(),
        ));
    }
    // SAFETY: a fresh descriptor owned by nothing else.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

/// Attaches a detached mount at `path` beneath the directory `root`, following no
/// symlink on the way (a link planted in the candidate's tree must not redirect it).
pub(crate) fn attach_beneath(tree: &OwnedFd, root: &OwnedFd, path: &Path) -> Result<(), Failure> {
    let target = open_path(Some(root), path).map_err(|e| {
        (
            format!("reach {} without following links", path.display()),
            e,
        )
    })?;
    // SAFETY: move_mount takes two (dirfd, path) pairs and flags; all valid here.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err((
            format!("attach a mount at {}", path.display()),
            Errno::last(),
        ));
    }
    Ok(())
}

/// An `O_PATH` descriptor of `path` (relative to `dir`, or absolute with none), resolved
/// by `openat2` beneath `dir` without following any symlink.
pub(crate) fn open_path(dir: Option<&OwnedFd>, path: &Path) -> Result<OwnedFd, Errno> {
    open_no_links(dir, path, libc::O_PATH | libc::O_CLOEXEC)
}

/// `path` opened with `flags` (relative to `dir`, or absolute with none), resolved by
/// `openat2` beneath `dir` without following any symlink or magic link.
pub(crate) fn open_no_links(
    dir: Option<&OwnedFd>,
    path: &Path,
    flags: libc::c_int,
) -> Result<OwnedFd, Errno> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    const RESOLVE_NO_SYMLINKS: u64 = 0x04;
    const RESOLVE_BENEATH: u64 = 0x08;
    let (dirfd, relative) = match dir {
        Some(d) => (d.as_raw_fd(), path.strip_prefix("/").unwrap_or(path)),
        None => (libc::AT_FDCWD, path),
    };
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    let c_path = CString::new(relative.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS
            | RESOLVE_NO_MAGICLINKS
            | if dir.is_some() { RESOLVE_BENEATH } else { 0 },
    };
    // SAFETY: openat2 reads `size` bytes of `how` and a NUL-terminated path.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            c_path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh descriptor owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `open_tree(OPEN_TREE_CLONE)`: a detached copy of the mount at `path` (a host path
/// the daemon chose).
fn open_tree(path: &Path) -> Result<OwnedFd, Errno> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: open_tree takes a dirfd, a NUL-terminated path and flags; returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c_path.as_ptr(), flags) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh descriptor owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches a detached mount at `target`.
pub(crate) fn attach(tree: &OwnedFd, target: &Path) -> Result<(), Failure> {
    let path = cstring(target)?;
    // SAFETY: move_mount takes two (dirfd, path) pairs and flags; all valid here.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            path.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err((
            format!("attach a mount at {}", target.display()),
            Errno::last(),
        ));
    }
    Ok(())
}

/// The name of the file system under `path`, for messages.
fn fs_name(path: &Path) -> String {
    use nix::sys::statfs::{OVERLAYFS_SUPER_MAGIC, TMPFS_MAGIC, statfs};
    match statfs(path).map(|s| s.filesystem_type()) {
        Ok(t) if t == OVERLAYFS_SUPER_MAGIC => "overlayfs".into(),
        Ok(t) if t == TMPFS_MAGIC => "tmpfs".into(),
        Ok(t) => format!("type {:#x}", t.0),
        Err(_) => "unknown".into(),
    }
}

fn cstring(path: &Path) -> Result<CString, Failure> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| (format!("path {}", path.display()), Errno::EINVAL))
}
