//! The web front end's TLS: the server certificate and key of tandem's PKI (the gRPC
//! API's), TLS 1.3 only, no client certificate (browsers log in with a session token),
//! ALPN `http/1.1` (WebSockets run over HTTP/1.1 upgrades).

use crate::WebError;
use std::path::Path;
use std::sync::Arc;

/// The TLS configuration from `server.crt` and `server.key` in the certificates `dir`.
pub fn server_config(dir: &Path) -> Result<Arc<rustls::ServerConfig>, WebError> {
    let paths = tandem_pki::PkiPaths {
        dir: dir.to_path_buf(),
    };
    let chain = tandem_pki::load_certs(&paths.server_cert())?;
    let key = tandem_pki::load_key(&paths.server_key())?;
    // The provider is passed explicitly: with more than one rustls crypto backend compiled
    // in, relying on a process default would panic.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
