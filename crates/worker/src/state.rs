//! Job records: `<state>/jobs/<id>/spec.json` (written once) and `status.json`
//! (rewritten at every state change), each written atomically (temporary file, rename),
//! so a daemon killed at any moment leaves either the old or the new record.
//!
//! Only what must outlive a power loss is synced ([`Sync::Durable`]): a job's final
//! status, its result. The spec and the `running` status written while a job starts are
//! not ([`Sync::Cached`]): a kill -9 of the daemon keeps the page cache, and a power loss
//! takes the job's processes and cgroups with it; a record lost then leaves a directory
//! without a readable spec, which recovery removes. That keeps two fsyncs (file and
//! directory, ~1 ms each here, far more on a busy disk) per record off the start path.

use crate::spec::JobSpec;
use crate::status::JobStatus;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io;
use std::path::Path;

/// Name of the spec record in a job directory.
pub(crate) const SPEC: &str = "spec.json";
/// Name of the status record in a job directory.
pub(crate) const STATUS: &str = "status.json";

/// Whether a record must survive a power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sync {
    /// Synced (file and directory) before `write` returns.
    Durable,
    /// Atomic for readers and a killed daemon; not synced.
    Cached,
}

/// Writes `value` as JSON to `dir/name` atomically (encoded in memory first: one write).
pub(crate) fn write(dir: &Path, name: &str, value: &impl Serialize, sync: Sync) -> io::Result<()> {
    let json = serde_json::to_vec(value).map_err(io::Error::other)?;
    match sync {
        Sync::Durable => tandem_fsutil::write_atomic(&dir.join(name), &json, 0o600),
        Sync::Cached => tandem_fsutil::replace(&dir.join(name), &json, 0o600),
    }
}

fn read<T: DeserializeOwned>(path: &Path) -> io::Result<T> {
    let text = std::fs::read(path)?;
    serde_json::from_slice(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A job found on disk: its spec and last recorded status (none if the daemon died
/// before the first status was written).
pub(crate) struct Record {
    pub(crate) spec: JobSpec,
    pub(crate) status: Option<JobStatus>,
}

/// Reads the records of a job directory; `None` if it holds no (readable) spec.
pub(crate) fn load(dir: &Path) -> Option<Record> {
    let spec = read::<JobSpec>(&dir.join(SPEC)).ok()?;
    let status = read::<JobStatus>(&dir.join(STATUS)).ok();
    Some(Record { spec, status })
}
