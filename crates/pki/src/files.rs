//! File-system helpers: the PKI directory and atomic, permission-exact writes.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

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

/// Writes `contents` to `path` atomically with exactly `mode` (the umask does not apply):
/// readers see the old file or the new one, never a partial one (see
/// [`tandem_fsutil::write_atomic`]).
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    tandem_fsutil::write_atomic(path, contents, mode).map_err(|e| PkiError::io(path, e))
}
