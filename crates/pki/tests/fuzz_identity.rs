//! Property tests of the certificate identity parser the API authorizes every call with
//! (`identity_from_der`): random bytes and mutated real certificates never make it panic,
//! and certificates with arbitrary names give back exactly their CN and first OU. Longer:
//! `PROPTEST_CASES=20000 cargo test -p tandem-pki --test fuzz_identity` (docs/TESTING.md).

use proptest::prelude::*;
use rcgen::{CertificateParams, DnType, KeyPair};
use std::sync::OnceLock;
use tandem_pki::{ApiRole, Validity, identity_from_der};

/// `default` cases unless PROPTEST_CASES asks for more (or fewer).
fn cases(default: u32) -> ProptestConfig {
    let mut config = ProptestConfig {
        // Failures are saved beside this file (`*.proptest-regressions`) and replayed first.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default;
    }
    config
}

/// DER of real certificates from a tandem PKI: the admin's, an interviewer's, the CA's.
fn real_certs() -> &'static [Vec<u8>] {
    static CERTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        tandem_pki::init(
            dir.path(),
            &["localhost".into()],
            false,
            Validity::default(),
        )
        .unwrap();
        tandem_pki::issue(
            dir.path(),
            "alice",
            ApiRole::Interviewer,
            false,
            Validity::default(),
        )
        .unwrap();
        ["admin.crt", "alice.crt", "ca.crt", "server.crt"]
            .iter()
            .map(|f| {
                tandem_pki::load_certs(&dir.path().join(f)).unwrap()[0]
                    .as_ref()
                    .to_vec()
            })
            .collect()
    })
}

fn key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate().unwrap())
}

/// A self-signed certificate with these subject attributes.
fn cert_with(cn: Option<&str>, ous: &[String]) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    for ou in ous {
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, ou.as_str());
    }
    params.self_signed(key()).unwrap().der().to_vec()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, x)| Mutation::Flip(at, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, b)| Mutation::Insert(at, b)),
        (any::<usize>(), 1..16usize).prop_map(|(at, n)| Mutation::Remove(at, n)),
    ]
}

fn mutate(der: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut der = der.to_vec();
    for m in mutations {
        let at = |n: usize, len: usize| n % (len + 1);
        match m {
            Mutation::Flip(i, x) if !der.is_empty() => {
                let i = i % der.len();
                der[i] ^= x;
            }
            Mutation::Flip(..) => {}
            Mutation::Truncate(n) => der.truncate(at(*n, der.len())),
            Mutation::Insert(i, bytes) => {
                let i = at(*i, der.len());
                der.splice(i..i, bytes.iter().copied());
            }
            Mutation::Remove(i, n) => {
                let i = at(*i, der.len());
                let end = (i + n).min(der.len());
                der.drain(i..end);
            }
        }
    }
    der
}

proptest! {
    #![proptest_config(cases(1_000))]

    /// Random bytes: an error, never a panic.
    #[test]
    fn random_bytes_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = identity_from_der(&bytes);
        let _ = tandem_pki::cert_not_after(&bytes);
    }

    /// Real certificates with a few bytes changed: no panic; what still parses has a user.
    #[test]
    fn mutated_certificates_never_panic(
        which in 0..4usize,
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let der = mutate(&real_certs()[which], &mutations);
        if let Ok(id) = identity_from_der(&der) {
            prop_assert!(!id.user.is_empty());
            prop_assert_eq!(id.role, id.ou.as_deref().and_then(|ou| ou.parse().ok()));
        }
        let _ = tandem_pki::cert_not_after(&der);
    }
}

proptest! {
    #![proptest_config(cases(200))]

    /// Whatever the names (any Unicode, empty), the identity is the CN and the OU,
    /// exactly; a role only for an OU that names one; no CN, no identity. (rcgen keeps one
    /// attribute per type, so certificates with several OUs are not generated here.)
    #[test]
    fn names_round_trip(
        cn in prop::option::weighted(0.9, "\\PC{0,40}"),
        ous in prop::collection::vec(prop_oneof!["\\PC{0,20}", Just("admin".to_string()), Just("interviewer".to_string())], 0..=1),
    ) {
        let der = cert_with(cn.as_deref(), &ous);
        match (identity_from_der(&der), cn.as_deref()) {
            (Ok(id), Some(cn)) => {
                prop_assert!(!cn.is_empty());
                prop_assert_eq!(&id.user, cn);
                prop_assert_eq!(&id.ou, &ous.first().cloned());
                let role = match ous.first().map(String::as_str) {
                    Some("admin") => Some(ApiRole::Admin),
                    Some("interviewer") => Some(ApiRole::Interviewer),
                    _ => None,
                };
                prop_assert_eq!(id.role, role);
            }
            (Err(e), Some(cn)) => prop_assert!(cn.is_empty(), "{:?} refused: {}", cn, e),
            (Ok(id), None) => prop_assert!(false, "no CN, yet {:?}", id),
            (Err(_), None) => {}
        }
    }
}

#[test]
fn the_real_certificates_have_their_identities() {
    let ids: Vec<_> = real_certs()
        .iter()
        .map(|der| identity_from_der(der).unwrap())
        .collect();
    assert_eq!(ids[0].user, "admin");
    assert_eq!(ids[0].role, Some(ApiRole::Admin));
    assert_eq!(ids[1].user, "alice");
    assert_eq!(ids[1].role, Some(ApiRole::Interviewer));
}
