//! File-system helpers: the PKI directory and atomic, permission-exact writes.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::PkiError;

/// Mode of private key files.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificate files.
pub(crate) const CERT_MODE: u32 = 0o644;
/// Mode of a PKI directory this crate creates.
pub(crate) const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) with mode 0700; an existing directory is left as is.
pub(crate) fn create_dir(dir: &Path) -> Result<(), PkiError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| PkiError::io(dir, e))
}

/// The paths among `paths` that exist (a dangling symlink counts: renaming over it would
/// replace it too).
pub(crate) fn existing(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .filter(|p| fs::symlink_metadata(p).is_ok())
        .cloned()
        .collect()
}

/// Reads a whole file; a missing file gets `hint` appended to the error message.
pub(crate) fn read(path: &Path, hint: &'static str) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(|error| {
        let hint = if error.kind() == io::ErrorKind::NotFound {
            hint
        } else {
            ""
        };
        PkiError::Io {
            path: path.to_path_buf(),
            error,
            hint,
        }
    })
}

/// Writes `contents` to `path` atomically with exactly `mode` (the umask does not apply).
///
/// The data goes to a new temporary file in the same directory, created with `mode` so
/// that it is never readable by others, which is synced and then renamed over `path`.
/// Readers see the old file or the new one, never a partial one.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| PkiError::io(path, io::Error::other("not a file path")))?
        .to_string_lossy();

    let (tmp, mut file) = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(PkiError::io(path, e)),
        }
    };

    let result = (|| {
        // The umask may have removed bits from `mode` (e.g. 0644 under umask 077).
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(PkiError::io(path, e));
    }
    // Make the rename durable; failing to sync a directory is not worth an error.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
