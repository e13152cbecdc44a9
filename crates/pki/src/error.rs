//! The crate's one error type: messages meant for people, naming the file concerned.

use std::io;
use std::path::{Path, PathBuf};

/// Errors of this crate. Messages are meant for people and name the file concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A file or directory could not be read, written or created.
    #[error("{}: {}{hint}", path.display(), io_message(error))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
        /// Advice appended to the message (may be empty).
        hint: &'static str,
    },
    /// A file exists but does not hold what it should (PEM certificate, PEM key, CA).
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA's key is not the key of the CA's certificate.
    #[error("{} does not belong to {}: the key's public key differs from the certificate's", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// Files that would be overwritten exist and `force` was not given.
    #[error("refusing to overwrite {}: use --force to replace them", list_paths(.0))]
    Exists(Vec<PathBuf>),
    /// Some but not all of the files of [`init`](crate::init) exist, so the daemon cannot make a fresh PKI.
    #[error(
        "{}: incomplete PKI: found {}; missing {}. Run `tandem certs init --force` to make a new CA, server and admin certificate (certificates issued by the old CA stop working)",
        dir.display(), list_names(present), list_names(missing)
    )]
    Partial {
        /// The PKI directory.
        dir: PathBuf,
        /// The files that exist.
        present: Vec<PathBuf>,
        /// The files that are missing.
        missing: Vec<PathBuf>,
    },
    /// A certificate name is not acceptable.
    #[error("{0}")]
    InvalidName(String),
    /// A role name is neither `admin` nor `interviewer`.
    #[error("unknown role `{0}`: expected `admin` or `interviewer`")]
    InvalidRole(String),
    /// No host names or IP addresses for the server certificate.
    #[error("no host names or IP addresses given for the server certificate")]
    NoHosts,
    /// A host for the server certificate is neither an IP address nor a DNS name.
    #[error("invalid host `{host}` for the server certificate: {reason}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The requested validity is unusable.
    #[error("invalid validity: {0}")]
    InvalidValidity(String),
    /// A DER certificate (e.g. a TLS peer's) could not be parsed or lacks a required field.
    #[error("invalid certificate: {0}")]
    InvalidCert(String),
    /// Generating a key or signing a certificate failed.
    #[error("cannot generate certificate: {0}")]
    Generate(String),
}

impl PkiError {
    pub(crate) fn io(path: &Path, error: io::Error) -> Self {
        PkiError::Io {
            path: path.to_path_buf(),
            error,
            hint: "",
        }
    }

    pub(crate) fn bad_file(path: &Path, reason: impl Into<String>) -> Self {
        PkiError::BadFile {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// An I/O error's message without the " (os error N)" suffix.
fn io_message(error: &io::Error) -> String {
    let s = error.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    let v: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    v.join(", ")
}

fn list_names(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nothing".to_string();
    }
    let v: Vec<String> = paths
        .iter()
        .map(|p| match p.file_name() {
            Some(n) => n.to_string_lossy().into_owned(),
            None => p.display().to_string(),
        })
        .collect();
    v.join(", ")
}

pub(crate) fn generate_error(e: rcgen::Error) -> PkiError {
    PkiError::Generate(e.to_string())
}
