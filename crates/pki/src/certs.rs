//! Reading certificates and keys: who a certificate belongs to ([`CertIdentity`], from
//! its CN and first OU), when it expires, and PEM certificate and key files.

use std::path::Path;
use std::time::SystemTime;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;

use crate::{ApiRole, PkiError, files};

/// Who a client certificate belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The user name: the certificate's common name (CN).
    pub user: String,
    /// The role named by the first OU; `None` when there is no OU or it names no role.
    pub role: Option<ApiRole>,
    /// The certificate's first organizational unit (OU), as written.
    pub ou: Option<String>,
}

/// The identity in a DER certificate: user from the CN (required), role from the first OU.
pub fn identity_from_der(cert_der: &[u8]) -> Result<CertIdentity, PkiError> {
    let cert = parse_der(cert_der)?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()
        .ok_or_else(|| PkiError::InvalidCert("no common name (CN) in the subject".into()))?
        .as_str()
        .map_err(|e| PkiError::InvalidCert(format!("common name (CN) is not a string: {e}")))?;
    if user.is_empty() {
        return Err(PkiError::InvalidCert("empty common name (CN)".into()));
    }
    let ou = match subject.iter_organizational_unit().next() {
        Some(attr) => Some(attr.as_str().map_err(|e| {
            PkiError::InvalidCert(format!("organizational unit (OU) is not a string: {e}"))
        })?),
        None => None,
    };
    Ok(CertIdentity {
        user: user.to_string(),
        role: ou.and_then(|ou| ou.parse().ok()),
        ou: ou.map(str::to_string),
    })
}

/// When a DER certificate expires (its `notAfter`).
pub fn cert_not_after(cert_der: &[u8]) -> Result<SystemTime, PkiError> {
    let cert = parse_der(cert_der)?;
    Ok(cert.validity().not_after.to_datetime().into())
}

/// Reads every certificate of a PEM file, in order. A file without one is an error.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let pem = files::read(path, "")?;
    pem_certs(path, &pem)
}

/// Reads the first private key of a PEM file (PKCS#8; SEC1 and PKCS#1 are accepted too).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let pem = files::read(path, "")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            PkiError::bad_file(path, "no PEM private key (`BEGIN PRIVATE KEY`) found")
        }
        e => PkiError::bad_file(path, format!("not a valid PEM private key: {e}")),
    })
}

pub(crate) fn pem_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::bad_file(path, format!("not a valid PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(PkiError::bad_file(
            path,
            "no PEM certificate (`BEGIN CERTIFICATE`) found",
        ));
    }
    Ok(certs)
}

pub(crate) fn parse_der(cert_der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    x509_parser::parse_x509_certificate(cert_der)
        .map(|(_, cert)| cert)
        .map_err(|e| PkiError::InvalidCert(format!("cannot parse X.509 DER: {e}")))
}
