//! Connecting to tandemd's gRPC API: a rustls client configuration (ring provider, TLS
//! 1.3 only, the tandem CA as the only root, a client certificate), a tonic `Channel`
//! over it, and error messages a person can act on ("connection refused (is tandemd
//! running?)", "the server rejected the client certificate") instead of transport dumps.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

/// Files a client authenticates with.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The tandem CA certificate (the only trusted root).
    pub ca: PathBuf,
    /// The client certificate (CN = user, OU = role).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl ClientTls {
    /// `dir/ca.crt`, `dir/<user>.crt`, `dir/<user>.key`.
    pub fn from_dir(dir: &Path, user: &str) -> Self {
        let paths = tandem_pki::PkiPaths::new(dir);
        Self {
            ca: paths.ca_cert(),
            cert: paths.user_cert(user),
            key: paths.user_key(user),
        }
    }
}

/// Why a connection or call failed, in words.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A certificate or key file is missing or bad.
    #[error(transparent)]
    Pki(#[from] tandem_pki::PkiError),
    /// rustls refused the client material.
    #[error("TLS client configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The server address is not `HOST:PORT`.
    #[error("invalid server address {0:?}: expected HOST:PORT")]
    Address(String),
    /// Connecting failed; the message explains.
    #[error("{0}")]
    Connect(String),
}

/// The TLS client configuration for `tls`.
pub fn client_config(tls: &ClientTls) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in tandem_pki::load_certs(&tls.ca)? {
        roots.add(cert)?;
    }
    let chain = tandem_pki::load_certs(&tls.cert)?;
    let key = tandem_pki::load_key(&tls.key)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Connects to `server` (`HOST:PORT`) with `config`. The TCP connection and TLS handshake
/// happen here, so an unreachable server or a refused certificate is reported now.
pub async fn connect(
    server: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<Channel, ClientError> {
    let (host, _port) = server
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        .ok_or_else(|| ClientError::Address(server.to_string()))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|_| ClientError::Address(server.to_string()))?;
    let connector = TlsConnector::from(config);
    let address = server.to_string();
    // The URI only names the authority for HTTP/2; the connector below dials and does TLS.
    let endpoint = Endpoint::from_shared(format!("http://{server}"))
        .map_err(|_| ClientError::Address(server.to_string()))?
        .tcp_nodelay(true);
    let dial = tower::service_fn(move |_: Uri| {
        let connector = connector.clone();
        let name = name.clone();
        let address = address.clone();
        async move {
            let tcp = TcpStream::connect(&address).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    endpoint
        .connect_with_connector(dial)
        .await
        .map_err(|e| ClientError::Connect(describe_error(server, &e)))
}

/// A human sentence for a failed call or connection to `server`: walks the error's
/// sources for the I/O or TLS error underneath.
pub fn describe_error(server: &str, err: &(dyn std::error::Error + 'static)) -> String {
    // The chain of causes. An io::Error's `source()` skips the error it wraps, so step
    // into its inner error explicitly (tokio-rustls wraps rustls errors that way).
    let mut chain: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        chain.push(e);
        cause = match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    if let Some(tls) = chain.iter().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return describe_tls(server, tls);
    }
    // An alert read after the handshake reaches us only as text (the I/O layers between
    // rustls and tonic keep the message, not the error value).
    if let Some(alert) = chain.iter().find_map(|e| {
        let text = e.to_string();
        text.split_once("received fatal alert: ")
            .map(|(_, name)| name.trim().to_string())
    }) {
        return describe_alert(server, &alert);
    }
    if let Some(io) = chain.iter().find_map(|e| e.downcast_ref::<io::Error>()) {
        return match io.kind() {
            io::ErrorKind::ConnectionRefused => {
                format!("cannot connect to {server}: connection refused (is tandemd running?)")
            }
            io::ErrorKind::TimedOut => format!("cannot connect to {server}: timed out"),
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => format!(
                "{server} closed the connection (if the server requires TLS 1.3 and a \
                 tandem client certificate, check both)"
            ),
            _ => format!("cannot connect to {server}: {io}"),
        };
    }
    format!("cannot reach {server}: {err}")
}

/// A human sentence for a failed call.
pub fn describe_status(server: &str, status: &tonic::Status) -> String {
    use std::error::Error;
    if let Some(source) = status.source() {
        let text = describe_error(server, source);
        if !text.starts_with("cannot reach") {
            return text;
        }
    }
    format!("{:?}: {}", status.code(), status.message())
}

fn describe_alert(server: &str, alert: &str) -> String {
    match alert {
        "CertificateRequired"
        | "BadCertificate"
        | "UnknownCA"
        | "CertificateUnknown"
        | "DecryptError" => format!(
            "{server} rejected the client certificate ({alert}: missing, or not issued by its CA)"
        ),
        "CertificateExpired" => {
            format!("{server} rejected the client certificate: it has expired")
        }
        "ProtocolVersion" => {
            format!("{server} refused the TLS version (tandemd speaks TLS 1.3 only)")
        }
        other => format!("TLS with {server} failed: the server sent the alert {other}"),
    }
}

fn describe_tls(server: &str, err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::AlertReceived(alert) => describe_alert(server, &format!("{alert:?}")),
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => format!(
            "the certificate of {server} is not signed by the tandem CA given (--ca / certs dir)"
        ),
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            format!("the certificate of {server} is not valid for that host name")
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            format!("the certificate of {server} has expired")
        }
        other => format!("TLS with {server} failed: {other}"),
    }
}
