//! Mutual TLS for the API: a hand-built rustls `ServerConfig` (ring provider, TLS 1.3
//! only, client certificate required and verified against the tandem CA, ALPN h2) and an
//! accept loop that handshakes every connection in its own task with a timeout, so a
//! stalled or malicious client never holds up anyone else.

use crate::auth::{ApiIdentity, PeerInfo};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, TryAcquireError, mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; a connection beyond makes the oldest one give way.
const MAX_HANDSHAKES: usize = 256;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file is missing or unreadable.
    #[error(transparent)]
    Pki(#[from] tandem_pki::PkiError),
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built from the CA.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The server's TLS configuration from `ca.crt`, `server.crt` and `server.key` in `dir`.
pub fn server_config(dir: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let paths = tandem_pki::PkiPaths {
        dir: dir.to_path_buf(),
    };
    let ca = tandem_pki::load_certs(&paths.ca_cert())?;
    let chain = tandem_pki::load_certs(&paths.server_cert())?;
    let key = tandem_pki::load_key(&paths.server_key())?;
    // The provider is passed explicitly: with more than one rustls crypto backend compiled
    // in, relying on a process default would panic.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in ca {
        roots.add(cert)?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS connection whose client certificate was verified, with the identity in it.
pub struct AuthedStream {
    /// The TLS stream.
    inner: TlsStream<TcpStream>,
    /// Who is on the other end; attached to every request of this connection.
    peer: PeerInfo,
}

impl tonic::transport::server::Connected for AuthedStream {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for AuthedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for AuthedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts TCP connections until `shutdown` turns true, handshakes each in its own task
/// (bounded by [`HANDSHAKE_TIMEOUT`] and [`MAX_HANDSHAKES`]) and hands verified ones to
/// `out`. Handshake tasks are owned here and aborted when this returns. With
/// [`MAX_HANDSHAKES`] in progress, a new connection ends the oldest handshake (as SSH's
/// queue of connections waiting to log in does): connections that stall their handshake
/// can delay a client by one handshake, never lock everybody out for the timeout.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    out: mpsc::Sender<io::Result<AuthedStream>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let mut handshakes = JoinSet::new();
    // Handshakes in progress, oldest first.
    let mut pending: VecDeque<AbortHandle> = VecDeque::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        {
            {
                let (tcp, remote) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // E.g. EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                pending.retain(|h| !h.is_finished());
                let permit = match Arc::clone(&permits).try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(TryAcquireError::NoPermits) => {
                        if let Some(oldest) = pending.pop_front() {
                            tracing::info!("TLS handshake ended: too many in progress");
                            oldest.abort();
                        }
                        // The aborted task's permit comes back as soon as it is dropped.
                        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                            break;
                        };
                        permit
                    }
                    Err(TryAcquireError::Closed) => break,
                };
                let acceptor = acceptor.clone();
                let out = out.clone();
                let handshake = handshakes.spawn(async move {
                    let _permit = permit;
                    let _ = tcp.set_nodelay(true);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let peer = peer_info(&tls, remote);
                            tracing::debug!(%remote, user = %peer.identity.user, "TLS client connected");
                            let _ = out.send(Ok(AuthedStream { inner: tls, peer })).await;
                        }
                        Ok(Err(e)) => tracing::info!(%remote, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::info!(%remote, "TLS handshake timed out"),
                    }
                });
                pending.push_back(handshake);
            }
        }
    }
    handshakes.abort_all();
}

fn peer_info(tls: &TlsStream<TcpStream>, remote: SocketAddr) -> PeerInfo {
    let (_, conn) = tls.get_ref();
    // The verifier required a certificate, so one is present; a CN the parser cannot read
    // yields an identity without a role, which every RPC refuses.
    let identity = conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|cert| tandem_pki::identity_from_der(cert.as_ref()).ok())
        .map(|id| ApiIdentity {
            user: id.user,
            role: id.role,
        })
        .unwrap_or_else(|| ApiIdentity {
            user: String::new(),
            role: None,
        });
    PeerInfo {
        identity: Arc::new(identity),
        remote,
    }
}
