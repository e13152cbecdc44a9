//! File-system helpers every tandem crate may use (it depends on no other tandem crate).
//!
//! * [`write_atomic`]: replace a file so that readers see the old contents or the new,
//!   never a partial file, and a crash right after it returns keeps the new one. The
//!   session registry (`session.json`), the SSH host key and the PKI files use it.
//! * [`replace`]: the same without the syncs (atomic for readers and against a killed
//!   process, not against power loss).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `contents` to `path` atomically, with exactly `mode` (the umask does not apply).
///
/// The data goes to a new temporary file in the same directory (so the rename cannot
/// cross file systems), created with `mode` so that it is never readable by others; it is
/// written, synced, renamed over `path`, and then the directory is synced so that the
/// rename itself survives a crash. On failure the temporary file is removed and `path` is
/// untouched.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    write_replacing(path, contents, mode, true)
}

/// [`write_atomic`] without the syncs: readers, and a process killed at any moment, still
/// see the old contents or the new, never a partial file; after a power loss or kernel
/// crash the file may be missing, old or empty. For records whose loss on power loss is
/// harmless (e.g. a job's spec while the job starts: its processes and cgroups die with
/// the machine too), where two fsyncs would cost more than the rest of the write.
pub fn replace(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    write_replacing(path, contents, mode, false)
}

fn write_replacing(path: &Path, contents: &[u8], mode: u32, sync: bool) -> io::Result<()> {
    /// Distinguishes temporary files of concurrent writers in this process.
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?
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
            // A leftover of an earlier process with the same pid: take the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };

    let result = (|| {
        // The umask may have removed bits from `mode` (e.g. 0644 under umask 077).
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        if sync {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename durable; failing to sync a directory is not worth an error (the
    // file itself is complete either way).
    if sync && let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_the_file_with_the_exact_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        write_atomic(&path, b"newer", 0o644).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o644);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["key"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // Renaming a file over a non-empty directory fails.
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), "x").unwrap();
        assert!(write_atomic(&path, b"data", 0o644).is_err());
        assert!(path.is_dir());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        let err = write_atomic(Path::new("/"), b"", 0o644).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
