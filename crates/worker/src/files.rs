//! Placing files into a new sandbox's root before it starts: they are written into the
//! overlay's upper layer, so they appear in the job's root and nowhere on the host.

use crate::spec::FileSpec;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path};

/// Writes `files` under `upper`. Directories on the way are created with the metadata the
/// same directory has in `lower` (an upper directory's mode and owner win over the lower's
/// in the merged view, so a plain `mkdir` would change e.g. `/var/www`'s owner).
pub(crate) fn place(lower: &Path, upper: &Path, files: &[FileSpec]) -> Result<(), String> {
    for (i, file) in files.iter().enumerate() {
        let relative: std::path::PathBuf = file
            .path
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        let mut dir = upper.to_path_buf();
        let mut below = lower.to_path_buf();
        if let Some(parents) = relative.parent() {
            for part in parents.components() {
                dir.push(part);
                below.push(part);
                if dir.exists() {
                    continue;
                }
                std::fs::create_dir(&dir)
                    .map_err(|e| format!("files[{i}]: create {}: {e}", dir.display()))?;
                let (mode, uid, gid) = match std::fs::symlink_metadata(&below) {
                    Ok(m) if m.is_dir() => (m.mode() & 0o7777, m.uid(), m.gid()),
                    Ok(_) => {
                        return Err(format!(
                            "files[{i}].path: {} is not a directory in the root filesystem",
                            Path::new("/")
                                .join(below.strip_prefix(lower).unwrap_or(&below))
                                .display()
                        ));
                    }
                    Err(_) => (0o755, 0, 0),
                };
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("files[{i}]: chmod {}: {e}", dir.display()))?;
                std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                    .map_err(|e| format!("files[{i}]: chown {}: {e}", dir.display()))?;
            }
        }
        let target = upper.join(&relative);
        std::fs::write(&target, &file.content)
            .map_err(|e| format!("files[{i}]: write {}: {e}", file.path.display()))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))
            .map_err(|e| format!("files[{i}]: chmod {}: {e}", file.path.display()))?;
        std::os::unix::fs::chown(
            &target,
            Some(file.uid.unwrap_or(0)),
            Some(file.gid.unwrap_or(0)),
        )
        .map_err(|e| format!("files[{i}]: chown {}: {e}", file.path.display()))?;
    }
    Ok(())
}
