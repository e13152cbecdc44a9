//! tandem's PKI for mutual TLS.
//!
//! One directory (by default `certs/`) holds a private certificate authority and every
//! certificate it issued, each as a PEM pair `NAME.crt` / `NAME.key`:
//!
//! | file | what |
//! | --- | --- |
//! | `ca.crt`, `ca.key` | the CA (ECDSA P-256, self-signed, path length 0) |
//! | `server.crt`, `server.key` | `tandemd`'s server certificate: CN `tandemd`, the host names and IP addresses as SANs, EKU serverAuth |
//! | `admin.crt`, `admin.key` | the first client certificate: CN `admin`, OU `admin`, EKU clientAuth |
//! | `NAME.crt`, `NAME.key` | further client certificates from [`issue`]: CN = user name, OU = [`ApiRole`] |
//!
//! The server authorizes a client by its certificate alone: [`identity_from_der`] turns the
//! verified peer certificate into a [`CertIdentity`] (user from the CN, role from the first OU).
//!
//! Private keys are PKCS#8 PEM files of mode 0600, certificates mode 0644, and a directory
//! this crate creates has mode 0700. Every file is written atomically (a temporary file in
//! the same directory, then a rename), so a reader never sees half a key.
//!
//! ```no_run
//! use std::path::Path;
//! use tandem_pki::{ApiRole, Validity};
//!
//! let dir = Path::new("certs");
//! tandem_pki::init(dir, &["localhost".into(), "127.0.0.1".into()], false, Validity::default())?;
//! tandem_pki::issue(dir, "alice", ApiRole::Interviewer, false, Validity::default())?;
//! # Ok::<(), tandem_pki::PkiError>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod certs;
mod error;
mod files;
#[cfg(test)]
mod tests;

pub use certs::{CertIdentity, cert_not_after, identity_from_der, load_certs, load_key};
pub use error::PkiError;

use certs::{parse_der, pem_certs};
use error::generate_error;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType,
};
use time::{Duration, OffsetDateTime};

/// Appended to "file not found" errors for the CA files.
const INIT_HINT: &str = " (run `tandem certs init` first)";
/// How far into the past `notBefore` is set, to tolerate clocks that are a little behind.
const BACKDATE: Duration = Duration::hours(1);
/// The name of the first client certificate, made by [`init`].
const ADMIN: &str = "admin";
/// Longest accepted certificate name.
const MAX_NAME_LEN: usize = 64;

/// What a client certificate allows its holder to do; stored as the certificate's OU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiRole {
    /// Full control: every job, every task, issuing access.
    Admin,
    /// Runs and watches interviews.
    Interviewer,
}

impl ApiRole {
    /// The role's name as written in certificates and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            ApiRole::Admin => "admin",
            ApiRole::Interviewer => "interviewer",
        }
    }
}

impl fmt::Display for ApiRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApiRole {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(ApiRole::Admin),
            "interviewer" => Ok(ApiRole::Interviewer),
            _ => Err(PkiError::InvalidRole(s.to_string())),
        }
    }
}

/// How long new certificates are valid, in days from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Lifetime of the CA certificate made by [`init`].
    pub ca_days: u32,
    /// Lifetime of server and client certificates (never beyond the CA's own expiry).
    pub leaf_days: u32,
}

impl Default for Validity {
    /// Five years for the CA, one year for the other certificates.
    fn default() -> Self {
        Validity {
            ca_days: 5 * 365,
            leaf_days: 365,
        }
    }
}

/// The file names inside a PKI directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    /// The PKI directory.
    pub dir: PathBuf,
}

impl PkiPaths {
    /// The paths of the PKI directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PkiPaths { dir: dir.into() }
    }

    /// `DIR/ca.crt`: the CA certificate, which clients and server trust.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// `DIR/ca.key`: the CA's private key.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// `DIR/server.crt`: the daemon's certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    /// `DIR/server.key`: the daemon's private key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// `DIR/NAME.crt`: a client certificate.
    pub fn user_cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.crt"))
    }

    /// `DIR/NAME.key`: a client's private key.
    pub fn user_key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    /// The six files [`init`] writes, certificate before key.
    fn init_files(&self) -> Vec<PathBuf> {
        vec![
            self.ca_cert(),
            self.ca_key(),
            self.server_cert(),
            self.server_key(),
            self.user_cert(ADMIN),
            self.user_key(ADMIN),
        ]
    }
}

/// Creates a CA, the server certificate and the `admin` client certificate in `dir`.
///
/// `dir` is created (mode 0700) if missing. Writes `ca.crt`/`ca.key`,
/// `server.crt`/`server.key` (CN `tandemd`; each of `hosts` as a SAN: IP addresses as IP
/// SANs, anything else as a DNS name; EKU serverAuth) and `admin.crt`/`admin.key` (CN and OU
/// `admin`, EKU clientAuth). Returns the paths written.
///
/// Without `force`, refuses with [`PkiError::Exists`] if any of those files exists, and
/// writes nothing. `hosts` must not be empty.
pub fn init(
    dir: &Path,
    hosts: &[String],
    force: bool,
    validity: Validity,
) -> Result<Vec<PathBuf>, PkiError> {
    let sans = parse_hosts(hosts)?;
    let paths = PkiPaths::new(dir);
    let targets = paths.init_files();
    if !force {
        refuse_existing(&targets)?;
    }

    let now = OffsetDateTime::now_utc();
    let not_before = now - BACKDATE;
    let ca_not_after = days_after(now, validity.ca_days, "ca_days")?;
    let leaf_not_after = days_after(now, validity.leaf_days, "leaf_days")?.min(ca_not_after);

    let ca_key = new_key()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "tandem");
    // A CN of its own per CA, so that two tandem CAs are told apart (by people and by
    // verifiers, which match issuers by name): "tandem CA" + 8 hex digits of the public key.
    let tag: String = ca_key.der_bytes()[1..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("tandem CA {tag}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = ca_not_after;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(generate_error)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let server = sign_leaf(
        &Leaf {
            cn: "tandemd",
            ou: None,
            sans,
            usage: ExtendedKeyUsagePurpose::ServerAuth,
            not_before,
            not_after: leaf_not_after,
        },
        &issuer,
    )?;
    let admin = sign_leaf(
        &Leaf {
            cn: ADMIN,
            ou: Some(ApiRole::Admin.as_str()),
            sans: Vec::new(),
            usage: ExtendedKeyUsagePurpose::ClientAuth,
            not_before,
            not_after: leaf_not_after,
        },
        &issuer,
    )?;

    files::create_dir(dir)?;
    files::write_atomic(&paths.ca_key(), ca_key_pem.as_bytes(), files::KEY_MODE)?;
    files::write_atomic(&paths.ca_cert(), ca_cert.pem().as_bytes(), files::CERT_MODE)?;
    server.write(&paths.server_cert(), &paths.server_key())?;
    admin.write(&paths.user_cert(ADMIN), &paths.user_key(ADMIN))?;
    Ok(targets)
}

/// Issues a client certificate `NAME.crt`/`NAME.key` in `dir`, signed by the CA there.
///
/// The certificate has CN = `name`, OU = `role`, EKU clientAuth, and is valid for
/// `validity.leaf_days` (never beyond the CA's expiry). `name` must be 1 to 64 characters
/// from `A-Z a-z 0-9 . _ -`, must not start with `.` or `-`, and must not be `ca` or
/// `server`. Without `force`, refuses with [`PkiError::Exists`] if either file exists.
/// Returns the paths written (certificate, then key).
pub fn issue(
    dir: &Path,
    name: &str,
    role: ApiRole,
    force: bool,
    validity: Validity,
) -> Result<Vec<PathBuf>, PkiError> {
    check_name(name)?;
    let paths = PkiPaths::new(dir);
    let targets = vec![paths.user_cert(name), paths.user_key(name)];
    if !force {
        refuse_existing(&targets)?;
    }
    let ca = LoadedCa::load(&paths)?;
    let now = OffsetDateTime::now_utc();
    if ca.not_after <= now {
        return Err(PkiError::bad_file(
            &paths.ca_cert(),
            format!(
                "the CA certificate expired on {} (run `tandem certs init --force` to make a new CA)",
                ca.not_after.date()
            ),
        ));
    }
    let not_after = days_after(now, validity.leaf_days, "leaf_days")?.min(ca.not_after);
    issue_client(&paths, &ca, name, role.as_str(), now - BACKDATE, not_after)?;
    Ok(targets)
}

/// For tests: issues a client certificate with any OU and any validity period.
///
/// Like [`issue`], but the OU is `ou` as given (an empty `ou` leaves the OU out), the
/// validity is exactly `not_before..not_after` (which may lie in the past, to make an
/// expired certificate), and existing `NAME.crt`/`NAME.key` are overwritten.
pub fn issue_with(
    dir: &Path,
    name: &str,
    ou: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Vec<PathBuf>, PkiError> {
    check_name(name)?;
    let paths = PkiPaths::new(dir);
    let ca = LoadedCa::load(&paths)?;
    issue_client(&paths, &ca, name, ou, not_before, not_after)?;
    Ok(vec![paths.user_cert(name), paths.user_key(name)])
}

/// Makes a PKI on the daemon's first start.
///
/// If `ca.crt`, `server.crt` and `admin.crt` exist, does nothing and returns `Ok(false)`.
/// If none of the six files of [`init`] exists, runs [`init`] with `hosts` and the default
/// [`Validity`] and returns `Ok(true)`. Any other mix is an error ([`PkiError::Partial`])
/// telling which files exist and which are missing.
pub fn dev_pki_if_missing(dir: &Path, hosts: &[String]) -> Result<bool, PkiError> {
    let paths = PkiPaths::new(dir);
    let needed = [paths.ca_cert(), paths.server_cert(), paths.user_cert(ADMIN)];
    if needed.iter().all(|p| p.exists()) {
        return Ok(false);
    }
    let all = paths.init_files();
    let present = files::existing(&all);
    if present.is_empty() {
        init(dir, hosts, false, Validity::default())?;
        return Ok(true);
    }
    let missing = all.into_iter().filter(|p| !present.contains(p)).collect();
    Err(PkiError::Partial {
        dir: dir.to_path_buf(),
        present,
        missing,
    })
}

fn refuse_existing(targets: &[PathBuf]) -> Result<(), PkiError> {
    let existing = files::existing(targets);
    if existing.is_empty() {
        Ok(())
    } else {
        Err(PkiError::Exists(existing))
    }
}

fn days_after(now: OffsetDateTime, days: u32, what: &str) -> Result<OffsetDateTime, PkiError> {
    if days == 0 {
        return Err(PkiError::InvalidValidity(format!(
            "{what} must be at least 1"
        )));
    }
    now.checked_add(Duration::days(i64::from(days)))
        .filter(|t| t.year() <= 9999)
        .ok_or_else(|| PkiError::InvalidValidity(format!("{what} = {days} ends after year 9999")))
}

fn check_name(name: &str) -> Result<(), PkiError> {
    let invalid = |why: &str| {
        Err(PkiError::InvalidName(format!(
            "invalid name `{name}`: {why}"
        )))
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return invalid("use 1 to 64 characters");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return invalid(&format!(
            "character {c:?} is not allowed (use A-Z a-z 0-9 . _ -)"
        ));
    }
    if name.starts_with(['.', '-']) {
        return invalid("must not start with `.` or `-`");
    }
    if name == "ca" || name == "server" {
        return invalid("reserved for the CA's and the server's own files");
    }
    Ok(())
}

fn parse_hosts(hosts: &[String]) -> Result<Vec<SanType>, PkiError> {
    if hosts.is_empty() {
        return Err(PkiError::NoHosts);
    }
    let mut sans = Vec::with_capacity(hosts.len());
    for host in hosts {
        let invalid = |reason| PkiError::InvalidHost {
            host: host.clone(),
            reason,
        };
        let h = host.trim();
        let unbracketed = h
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h);
        let san = if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            SanType::IpAddress(ip)
        } else {
            let labels = h.strip_prefix("*.").unwrap_or(h);
            if h.is_empty() {
                return Err(invalid("empty"));
            }
            if h.len() > 253 {
                return Err(invalid("longer than 253 characters"));
            }
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            };
            if !labels.split('.').all(label_ok) {
                return Err(invalid(
                    "not an IP address nor a DNS name (labels of A-Z a-z 0-9 -, separated by dots)",
                ));
            }
            let name = rcgen::string::Ia5String::try_from(h.to_ascii_lowercase())
                .map_err(|_| invalid("not ASCII"))?;
            SanType::DnsName(name)
        };
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

fn new_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_error)
}

/// What goes into a server or client certificate.
struct Leaf<'a> {
    cn: &'a str,
    ou: Option<&'a str>,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

/// A signed certificate and its new key, both PEM.
struct Signed {
    cert_pem: String,
    key_pem: String,
}

impl Signed {
    /// Writes the key (0600), then the certificate (0644).
    fn write(&self, cert: &Path, key: &Path) -> Result<(), PkiError> {
        files::write_atomic(key, self.key_pem.as_bytes(), files::KEY_MODE)?;
        files::write_atomic(cert, self.cert_pem.as_bytes(), files::CERT_MODE)
    }
}

fn sign_leaf(leaf: &Leaf<'_>, issuer: &Issuer<'_, KeyPair>) -> Result<Signed, PkiError> {
    let key = new_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, leaf.cn);
    if let Some(ou) = leaf.ou {
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, ou);
    }
    params.subject_alt_names = leaf.sans.clone();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![leaf.usage.clone()];
    params.use_authority_key_identifier_extension = true;
    params.not_before = leaf.not_before;
    params.not_after = leaf.not_after;
    let cert = params.signed_by(&key, issuer).map_err(generate_error)?;
    Ok(Signed {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn issue_client(
    paths: &PkiPaths,
    ca: &LoadedCa,
    name: &str,
    ou: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(), PkiError> {
    let signed = sign_leaf(
        &Leaf {
            cn: name,
            ou: (!ou.is_empty()).then_some(ou),
            sans: Vec::new(),
            usage: ExtendedKeyUsagePurpose::ClientAuth,
            not_before,
            not_after,
        },
        &ca.issuer,
    )?;
    files::create_dir(&paths.dir)?;
    signed.write(&paths.user_cert(name), &paths.user_key(name))
}

/// The CA of a PKI directory, ready to sign.
struct LoadedCa {
    issuer: Issuer<'static, KeyPair>,
    not_after: OffsetDateTime,
}

impl LoadedCa {
    fn load(paths: &PkiPaths) -> Result<Self, PkiError> {
        let key_path = paths.ca_key();
        let key_pem = files::read(&key_path, INIT_HINT)?;
        let key = std::str::from_utf8(&key_pem)
            .ok()
            .and_then(|pem| KeyPair::from_pem(pem).ok())
            .ok_or_else(|| {
                PkiError::bad_file(&key_path, "not a PEM private key of a supported type")
            })?;

        let cert_path = paths.ca_cert();
        let cert_pem = files::read(&cert_path, INIT_HINT)?;
        let der = pem_certs(&cert_path, &cert_pem)?.swap_remove(0);
        let cert = parse_der(&der).map_err(|e| PkiError::bad_file(&cert_path, e.to_string()))?;
        if !cert.is_ca() {
            return Err(PkiError::bad_file(&cert_path, "not a CA certificate"));
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err(PkiError::KeyMismatch {
                key: key_path,
                cert: cert_path,
            });
        }
        let not_after = cert.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&der, key)
            .map_err(|e| PkiError::bad_file(&cert_path, format!("unusable CA certificate: {e}")))?;
        Ok(LoadedCa { issuer, not_after })
    }
}
