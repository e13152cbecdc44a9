//! Durable job records: `<state>/jobs/<id>/spec.json` (written once) and `status.json`
//! (rewritten at every state change), each written atomically (temporary file, fsync,
//! rename), so a daemon killed at any moment leaves either the old or the new record.

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

/// Writes `value` as JSON to `dir/name` atomically (encoded in memory first: one write).
pub(crate) fn write(dir: &Path, name: &str, value: &impl Serialize) -> io::Result<()> {
    let json = serde_json::to_vec(value).map_err(io::Error::other)?;
    tandem_fsutil::write_atomic(&dir.join(name), &json, 0o600)
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
