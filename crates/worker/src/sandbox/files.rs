//! Placing a new sandbox's files (a task's `files:`, the sandbox's hostname and hosts):
//! written by init as the sandbox's root, after the pivot, before anything else runs. So
//! every path resolves inside the sandbox's own root, and the files land in its writable
//! layer, owned as the sandbox sees them.

use super::Failure;
use crate::spec::FileSpec;
use nix::errno::Errno;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

pub(super) fn place(files: &[FileSpec]) -> Result<(), Failure> {
    for file in files {
        let path = &file.path;
        let fail = |what: &str, e: std::io::Error| {
            (
                format!("place {}: {what}", path.display()),
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            )
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail("create its directory", e))?;
        }
        // The file replaces whatever is at its path: a symlink there (say /etc/localtime)
        // is removed, not followed.
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(path).map_err(|e| fail("remove the link there", e))?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| fail("open", e))?;
        out.write_all(&file.content).map_err(|e| fail("write", e))?;
        drop(out);
        std::os::unix::fs::chown(
            path,
            Some(file.uid.unwrap_or(0)),
            Some(file.gid.unwrap_or(0)),
        )
        .map_err(|e| fail("chown", e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(file.mode))
            .map_err(|e| fail("chmod", e))?;
    }
    Ok(())
}
