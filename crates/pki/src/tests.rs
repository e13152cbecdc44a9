//! The PKI end to end in a temporary directory: what `init` and `issue` write, refusals,
//! identities, validity, and the certificates as a TLS stack verifies them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration as StdDuration, SystemTime};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

use super::*;

fn hosts() -> Vec<String> {
    vec!["127.0.0.1".into(), "localhost".into()]
}

/// A fresh PKI in a temporary directory; the directory itself is `certs` inside it.
fn pki() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    init(&dir, &hosts(), false, Validity::default()).unwrap();
    (tmp, dir)
}

fn cert(path: &Path) -> CertificateDer<'static> {
    let mut certs = load_certs(path).unwrap();
    assert_eq!(certs.len(), 1, "{}", path.display());
    certs.remove(0)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Verifies `leaf` against the CA in `dir` with webpki, for client or server use.
fn verify(dir: &Path, leaf: &CertificateDer<'_>, client: bool) -> Result<(), webpki::Error> {
    let ca = cert(&PkiPaths::new(dir).ca_cert());
    let anchor = webpki::anchor_from_trusted_cert(&ca).unwrap().to_owned();
    let ee = webpki::EndEntityCert::try_from(leaf).unwrap();
    let usage = if client {
        webpki::KeyUsage::client_auth()
    } else {
        webpki::KeyUsage::server_auth()
    };
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        UnixTime::now(),
        usage,
        None,
        None,
    )
    .map(|_| ())
}

#[test]
fn init_writes_six_files_with_private_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    let written = init(&dir, &hosts(), false, Validity::default()).unwrap();
    let p = PkiPaths::new(&dir);
    assert_eq!(
        written,
        vec![
            p.ca_cert(),
            p.ca_key(),
            p.server_cert(),
            p.server_key(),
            p.user_cert("admin"),
            p.user_key("admin"),
        ]
    );
    assert_eq!(mode(&dir), 0o700);
    for path in &written {
        let expected = if path.extension().unwrap() == "key" {
            0o600
        } else {
            0o644
        };
        assert_eq!(mode(path), expected, "{}", path.display());
    }
    // Exactly the six files: no temporary file left behind.
    assert_eq!(
        names(&dir),
        [
            "admin.crt",
            "admin.key",
            "ca.crt",
            "ca.key",
            "server.crt",
            "server.key"
        ]
    );
    // Keys are PKCS#8 PEM and load.
    for key in [p.ca_key(), p.server_key(), p.user_key("admin")] {
        assert!(
            fs::read_to_string(&key)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(matches!(load_key(&key).unwrap(), PrivateKeyDer::Pkcs8(_)));
    }
    let admin = identity_from_der(&cert(&p.user_cert("admin"))).unwrap();
    assert_eq!(
        admin,
        CertIdentity {
            user: "admin".into(),
            role: Some(ApiRole::Admin),
            ou: Some("admin".into()),
        }
    );
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let (_tmp, dir) = pki();
    let p = PkiPaths::new(&dir);
    let ca_before = fs::read(p.ca_cert()).unwrap();

    let err = init(&dir, &hosts(), false, Validity::default()).unwrap_err();
    match &err {
        PkiError::Exists(paths) => assert_eq!(paths.len(), 6),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("ca.key"), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(fs::read(p.ca_cert()).unwrap(), ca_before);

    // One existing file is enough to refuse, and only it is listed.
    fs::remove_file(p.ca_key()).unwrap();
    fs::remove_file(p.server_cert()).unwrap();
    fs::remove_file(p.server_key()).unwrap();
    fs::remove_file(p.user_cert("admin")).unwrap();
    fs::remove_file(p.user_key("admin")).unwrap();
    match init(&dir, &hosts(), false, Validity::default()) {
        Err(PkiError::Exists(paths)) => assert_eq!(paths, vec![p.ca_cert()]),
        other => panic!("unexpected {other:?}"),
    }

    init(&dir, &hosts(), true, Validity::default()).unwrap();
    assert_ne!(fs::read(p.ca_cert()).unwrap(), ca_before);
    assert_eq!(names(&dir).len(), 6);
    assert_eq!(mode(&p.ca_key()), 0o600);
}

#[test]
fn init_needs_hosts_and_checks_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    assert!(matches!(
        init(&dir, &[], false, Validity::default()),
        Err(PkiError::NoHosts)
    ));
    for bad in ["", "a b", "exa_mple.com", "-x.com", "a..b"] {
        let err = init(&dir, &[bad.to_string()], false, Validity::default()).unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidHost { .. }),
            "{bad}: {err:?}"
        );
    }
    let err = init(
        &dir,
        &hosts(),
        false,
        Validity {
            ca_days: 10,
            leaf_days: 0,
        },
    )
    .unwrap_err();
    assert!(matches!(err, PkiError::InvalidValidity(_)), "{err:?}");
    assert!(!dir.exists(), "nothing may be written on a refused init");
}

#[test]
fn issue_interviewer() {
    let (_tmp, dir) = pki();
    let written = issue(
        &dir,
        "alice",
        ApiRole::Interviewer,
        false,
        Validity::default(),
    )
    .unwrap();
    assert_eq!(written, vec![dir.join("alice.crt"), dir.join("alice.key")]);
    assert_eq!(mode(&written[1]), 0o600);
    assert_eq!(mode(&written[0]), 0o644);
    let id = identity_from_der(&cert(&written[0])).unwrap();
    assert_eq!(
        id,
        CertIdentity {
            user: "alice".into(),
            role: Some(ApiRole::Interviewer),
            ou: Some("interviewer".into()),
        }
    );

    // Again: refused without force, replaced with it.
    let before = fs::read(&written[0]).unwrap();
    let err = issue(&dir, "alice", ApiRole::Admin, false, Validity::default()).unwrap_err();
    assert!(
        matches!(&err, PkiError::Exists(p) if p.len() == 2),
        "{err:?}"
    );
    assert_eq!(fs::read(&written[0]).unwrap(), before);
    issue(&dir, "alice", ApiRole::Admin, true, Validity::default()).unwrap();
    let id = identity_from_der(&cert(&written[0])).unwrap();
    assert_eq!(id.role, Some(ApiRole::Admin));
}

#[test]
fn issue_with_arbitrary_ou_and_dates() {
    let (_tmp, dir) = pki();
    let now = OffsetDateTime::now_utc();
    let written = issue_with(&dir, "mallory", "hacker", now, now + Duration::days(1)).unwrap();
    let id = identity_from_der(&cert(&written[0])).unwrap();
    assert_eq!(id.user, "mallory");
    assert_eq!(id.role, None);
    assert_eq!(id.ou.as_deref(), Some("hacker"));

    issue_with(&dir, "nobody", "", now, now + Duration::days(1)).unwrap();
    let id = identity_from_der(&cert(&dir.join("nobody.crt"))).unwrap();
    assert_eq!((id.role, id.ou), (None, None));

    // Role names are case-sensitive.
    issue_with(&dir, "shouty", "ADMIN", now, now + Duration::days(1)).unwrap();
    let id = identity_from_der(&cert(&dir.join("shouty.crt"))).unwrap();
    assert_eq!((id.role, id.ou.as_deref()), (None, Some("ADMIN")));

    // An expired certificate: webpki refuses it as expired.
    let old = issue_with(
        &dir,
        "old",
        "interviewer",
        now - Duration::days(30),
        now - Duration::days(1),
    )
    .unwrap();
    let old = cert(&old[0]);
    assert!(cert_not_after(&old).unwrap() < SystemTime::now());
    let err = verify(&dir, &old, true).unwrap_err();
    assert!(matches!(err, webpki::Error::CertExpired { .. }), "{err:?}");
}

#[test]
fn invalid_names_are_rejected() {
    let (_tmp, dir) = pki();
    let long = "a".repeat(65);
    for bad in [
        "", "ca", "server", "a/b", "../x", "..", ".hidden", "-rf", "a b", "é", "x\n", &long,
    ] {
        let err = issue(&dir, bad, ApiRole::Interviewer, false, Validity::default()).unwrap_err();
        assert!(matches!(err, PkiError::InvalidName(_)), "{bad:?}: {err:?}");
        assert!(err.to_string().contains("invalid name"), "{err}");
        let now = OffsetDateTime::now_utc();
        let err = issue_with(&dir, bad, "x", now, now + Duration::days(1)).unwrap_err();
        assert!(matches!(err, PkiError::InvalidName(_)), "{bad:?}: {err:?}");
    }
    let before = names(&dir);
    assert_eq!(before.len(), 6);
    for good in ["a", "bob.smith_1-x", &"b".repeat(64)] {
        issue(&dir, good, ApiRole::Interviewer, false, Validity::default()).unwrap();
    }
    assert_eq!(names(&dir).len(), 12);
}

#[test]
fn issue_without_ca_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let err = issue(
        tmp.path(),
        "alice",
        ApiRole::Interviewer,
        false,
        Validity::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, PkiError::Io { path, .. } if path.ends_with("ca.key")),
        "{err:?}"
    );
    assert_eq!(
        msg,
        format!(
            "{}: No such file or directory (run `tandem certs init` first)",
            tmp.path().join("ca.key").display()
        )
    );

    // A CA certificate that is not PEM.
    let (_tmp2, dir) = pki();
    fs::write(dir.join("ca.crt"), "garbage").unwrap();
    let err = issue(
        &dir,
        "alice",
        ApiRole::Interviewer,
        false,
        Validity::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PkiError::BadFile { path, .. } if path.ends_with("ca.crt")),
        "{err:?}"
    );
    assert!(err.to_string().contains("ca.crt"), "{err}");

    // The CA key of another PKI.
    let (_tmp3, other) = pki();
    let (_tmp4, dir) = pki();
    fs::copy(other.join("ca.key"), dir.join("ca.key")).unwrap();
    let err = issue(
        &dir,
        "alice",
        ApiRole::Interviewer,
        false,
        Validity::default(),
    )
    .unwrap_err();
    assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err:?}");
    assert!(!dir.join("alice.crt").exists());
}

#[test]
fn server_cert_has_sans_and_server_auth() {
    let (_tmp, dir) = pki();
    let der = cert(&dir.join("server.crt"));
    let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn = x509
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(cn, "tandemd");
    assert!(!x509.is_ca());
    let sans = &x509
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert!(
        sans.iter()
            .any(|n| matches!(n, GeneralName::DNSName("localhost"))),
        "{sans:?}"
    );
    assert!(
        sans.iter()
            .any(|n| matches!(n, GeneralName::IPAddress(b) if *b == [127, 0, 0, 1])),
        "{sans:?}"
    );
    assert_eq!(sans.len(), 2);
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);

    let admin = cert(&dir.join("admin.crt"));
    let (_, x509) = x509_parser::parse_x509_certificate(&admin).unwrap();
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);

    let ca = cert(&dir.join("ca.crt"));
    let (_, x509) = x509_parser::parse_x509_certificate(&ca).unwrap();
    assert!(x509.is_ca());

    // webpki agrees: valid for its names, not for others.
    let ee = webpki::EndEntityCert::try_from(&der).unwrap();
    for name in ["localhost", "127.0.0.1"] {
        let name = ServerName::try_from(name).unwrap();
        ee.verify_is_valid_for_subject_name(&name).unwrap();
    }
    let other = ServerName::try_from("example.com").unwrap();
    assert!(ee.verify_is_valid_for_subject_name(&other).is_err());
}

#[test]
fn certs_verify_against_the_ca() {
    let (_tmp, dir) = pki();
    issue(
        &dir,
        "alice",
        ApiRole::Interviewer,
        false,
        Validity::default(),
    )
    .unwrap();
    let alice = cert(&dir.join("alice.crt"));
    let admin = cert(&dir.join("admin.crt"));
    let server = cert(&dir.join("server.crt"));
    verify(&dir, &alice, true).unwrap();
    verify(&dir, &admin, true).unwrap();
    verify(&dir, &server, false).unwrap();
    // The EKUs are enforced: a client certificate cannot serve, nor the server's be a client.
    assert!(verify(&dir, &alice, false).is_err());
    assert!(verify(&dir, &server, true).is_err());

    // A certificate from another CA does not verify.
    let (_tmp2, other) = pki();
    let stranger = cert(&other.join("admin.crt"));
    let err = verify(&dir, &stranger, true).unwrap_err();
    assert!(matches!(err, webpki::Error::UnknownIssuer), "{err:?}");
}

#[test]
fn expiry_follows_validity() {
    let (_tmp, dir) = pki();
    let year = StdDuration::from_secs(365 * 86400);
    let slack = StdDuration::from_secs(3600);
    let server = cert_not_after(&cert(&dir.join("server.crt"))).unwrap();
    let expected = SystemTime::now() + year;
    assert!(
        server > expected - slack && server < expected + slack,
        "{server:?}"
    );
    let ca = cert_not_after(&cert(&dir.join("ca.crt"))).unwrap();
    let expected = SystemTime::now() + 5 * year;
    assert!(ca > expected - slack && ca < expected + slack, "{ca:?}");

    // Short validity, and a leaf never outlives its CA.
    let tmp = tempfile::tempdir().unwrap();
    init(
        tmp.path(),
        &hosts(),
        false,
        Validity {
            ca_days: 2,
            leaf_days: 1,
        },
    )
    .unwrap();
    let server = cert_not_after(&cert(&tmp.path().join("server.crt"))).unwrap();
    let day = StdDuration::from_secs(86400);
    assert!(server < SystemTime::now() + day + slack);
    issue(
        tmp.path(),
        "bob",
        ApiRole::Interviewer,
        false,
        Validity {
            ca_days: 2,
            leaf_days: 100,
        },
    )
    .unwrap();
    let bob = cert_not_after(&cert(&tmp.path().join("bob.crt"))).unwrap();
    let ca = cert_not_after(&cert(&tmp.path().join("ca.crt"))).unwrap();
    assert_eq!(bob, ca);
}

#[test]
fn dev_pki_is_made_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state").join("certs");
    assert!(dev_pki_if_missing(&dir, &hosts()).unwrap());
    assert_eq!(names(&dir).len(), 6);
    let ca = fs::read(dir.join("ca.crt")).unwrap();
    assert!(!dev_pki_if_missing(&dir, &hosts()).unwrap());
    assert_eq!(fs::read(dir.join("ca.crt")).unwrap(), ca);

    fs::remove_file(dir.join("admin.crt")).unwrap();
    fs::remove_file(dir.join("server.key")).unwrap();
    let err = dev_pki_if_missing(&dir, &hosts()).unwrap_err();
    match &err {
        PkiError::Partial {
            present, missing, ..
        } => {
            assert_eq!(present.len(), 4);
            assert_eq!(
                missing,
                &vec![dir.join("server.key"), dir.join("admin.crt")]
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("missing server.key, admin.crt"), "{msg}");
    assert!(
        msg.contains("found ca.crt, ca.key, server.crt, admin.key"),
        "{msg}"
    );
    assert!(msg.contains("tandem certs init --force"), "{msg}");
    assert_eq!(fs::read(dir.join("ca.crt")).unwrap(), ca);
}

#[test]
fn loading_pem_files() {
    let (_tmp, dir) = pki();
    // Several certificates in one file come back in order.
    let bundle = dir.join("bundle.pem");
    let ca = fs::read_to_string(dir.join("ca.crt")).unwrap();
    let server = fs::read_to_string(dir.join("server.crt")).unwrap();
    fs::write(&bundle, format!("{server}{ca}")).unwrap();
    let certs = load_certs(&bundle).unwrap();
    assert_eq!(
        certs,
        vec![cert(&dir.join("server.crt")), cert(&dir.join("ca.crt"))]
    );

    let empty = dir.join("empty.pem");
    fs::write(&empty, "").unwrap();
    let err = load_certs(&empty).unwrap_err();
    assert!(
        err.to_string().starts_with(&empty.display().to_string()),
        "{err}"
    );
    // A key file holds no certificate, and a certificate file no key.
    assert!(load_certs(&dir.join("ca.key")).is_err());
    let err = load_key(&dir.join("ca.crt")).unwrap_err();
    assert!(err.to_string().contains("ca.crt"), "{err}");
    let err = load_key(&dir.join("missing.key")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: No such file or directory",
            dir.join("missing.key").display()
        )
    );
    assert!(identity_from_der(b"not DER").is_err());
    assert!(cert_not_after(b"").is_err());
}

#[test]
fn role_names() {
    for role in [ApiRole::Admin, ApiRole::Interviewer] {
        assert_eq!(role.to_string().parse::<ApiRole>().unwrap(), role);
    }
    assert_eq!(ApiRole::Interviewer.to_string(), "interviewer");
    let err = "root".parse::<ApiRole>().unwrap_err().to_string();
    assert!(
        err.contains("admin") && err.contains("interviewer") && err.contains("root"),
        "{err}"
    );
    assert!("Admin".parse::<ApiRole>().is_err());
}

#[test]
fn paths() {
    let p = PkiPaths::new("certs");
    assert_eq!(p.ca_cert(), Path::new("certs/ca.crt"));
    assert_eq!(p.ca_key(), Path::new("certs/ca.key"));
    assert_eq!(p.server_cert(), Path::new("certs/server.crt"));
    assert_eq!(p.server_key(), Path::new("certs/server.key"));
    assert_eq!(p.user_cert("bob"), Path::new("certs/bob.crt"));
    assert_eq!(p.user_key("bob"), Path::new("certs/bob.key"));
    assert_eq!(
        Validity::default(),
        Validity {
            ca_days: 1825,
            leaf_days: 365
        }
    );
}
