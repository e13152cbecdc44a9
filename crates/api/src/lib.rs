//! tandem's gRPC API: the services (jobs, health, reflection) over the worker, served on
//! mutual TLS (TLS 1.3 only, client certificates from the tandem CA; CN = user, OU = role),
//! with one permission table checked for every RPC.
//!
//! The server takes a bound listener and a shutdown future (tests run it on port 0).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod convert;
pub mod jobs;
pub mod sessions;
mod streams;
pub mod tasks;
#[cfg(feature = "test-server")]
pub mod test_server;
mod timeline;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use tandem_proto::v1::job_service_server::JobServiceServer;
use tandem_proto::v1::server_service_server::ServerServiceServer;
use tandem_proto::v1::session_service_server::SessionServiceServer;
use tandem_proto::v1::task_service_server::TaskServiceServer;
use tandem_scenario::{Catalog, Instances};
use tandem_worker::JobManager;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

pub use auth::{ApiIdentity, PeerInfo};

/// Largest request message any service decodes (tonic's `max_decoding_message_size`, set
/// on every service): a bigger one is refused with OUT_OF_RANGE ("decoded message length
/// too large") before it is buffered. 4 MiB holds the largest valid request (a job's
/// arguments and environment, 256 KiB each; 32 keys of 8 KiB per role) many times over.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;
pub use streams::StreamTracker;

/// The API server: configure, then [`serve`](Self::serve).
pub struct Server {
    /// The worker the services drive.
    manager: JobManager,
    /// TLS configuration (see [`tls::server_config`]).
    tls: Arc<rustls::ServerConfig>,
    /// Live stream counter.
    streams: StreamTracker,
    /// Tasks offered.
    catalog: Arc<Catalog>,
    /// Task instances.
    instances: Instances,
    /// Interview sessions and how SSH reaches them (absent: no session service).
    sessions: Option<(tandem_session::Sessions, sessions::SshInfo)>,
    /// Health reporter: SERVING for the job service once serving.
    health: tonic_health::server::HealthReporter,
    /// `https://host:port` of the web front end, for new sessions' page links.
    web: Option<String>,
}

impl Server {
    /// A server for `manager` with the given TLS configuration.
    pub fn new(manager: JobManager, tls: Arc<rustls::ServerConfig>) -> Self {
        Self {
            instances: Instances::new(manager.clone()),
            manager,
            tls,
            streams: StreamTracker::default(),
            catalog: Arc::default(),
            sessions: None,
            health: tonic_health::server::HealthReporter::new(),
            web: None,
        }
    }

    /// Serves the session service over `sessions` (which must use [`Self::instances`]),
    /// reached through SSH at `ssh`.
    pub fn with_sessions(
        mut self,
        sessions: tandem_session::Sessions,
        ssh: sessions::SshInfo,
    ) -> Self {
        self.sessions = Some((sessions, ssh));
        self
    }

    /// New sessions get page links on the web front end at `base` (`https://host:port`).
    pub fn with_web(mut self, base: String) -> Self {
        self.web = Some(base);
        self
    }

    /// Offers the tasks of `catalog`.
    pub fn with_catalog(mut self, catalog: Arc<Catalog>) -> Self {
        self.catalog = catalog;
        self
    }

    /// The task instances (shared with other front ends, e.g. SSH sessions).
    pub fn instances(&self) -> Instances {
        self.instances.clone()
    }

    /// The health reporter, for the daemon to mark other parts (SSH, tasks) ready.
    pub fn health(&self) -> tonic_health::server::HealthReporter {
        self.health.clone()
    }

    /// Watches the number of live Logs/Attach streams.
    pub fn stream_count(&self) -> watch::Receiver<usize> {
        self.streams.watch()
    }

    /// Serves until `shutdown` completes: then stops accepting, ends live streams with
    /// UNAVAILABLE, and waits for in-flight calls to finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), tonic::transport::Error> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (conn_tx, conn_rx) = mpsc::channel(64);
        let accept = tokio::spawn(tls::accept_loop(
            listener,
            self.tls,
            conn_tx,
            stop_rx.clone(),
        ));
        self.health
            .set_serving::<JobServiceServer<jobs::Jobs>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tandem_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .expect("the embedded descriptor sets are valid (checked by every_rpc_has_an_entry)");
        let jobs = jobs::Jobs::new(self.manager, self.streams, stop_rx.clone())
            .with_sessions(self.sessions.as_ref().map(|(s, _)| s.clone()));
        let (session_service, info_service) = match self.sessions {
            Some((sessions, ssh)) => (
                Some(SessionServiceServer::new(sessions::SessionsService {
                    sessions,
                    catalog: Arc::clone(&self.catalog),
                    ssh: ssh.clone(),
                    web: self.web.clone(),
                })),
                Some(ServerServiceServer::new(sessions::ServerInfo { ssh })),
            ),
            None => (None, None),
        };
        let tasks = tasks::Tasks::new(self.catalog, self.instances);
        let mut stop_signal = stop_rx.clone();
        let result = tonic::transport::Server::builder()
            .layer(auth::PermissionLayer)
            .add_service(
                tonic_health::pb::health_server::HealthServer::new(
                    tonic_health::server::HealthService::from_health_reporter(self.health),
                )
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            )
            .add_service(reflection.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(JobServiceServer::new(jobs).max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(TaskServiceServer::new(tasks).max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_optional_service(
                session_service.map(|s| s.max_decoding_message_size(MAX_REQUEST_BYTES)),
            )
            .add_optional_service(
                info_service.map(|s| s.max_decoding_message_size(MAX_REQUEST_BYTES)),
            )
            .serve_with_incoming_shutdown(ReceiverStream::new(conn_rx), async move {
                shutdown.await;
                tracing::info!("API server shutting down");
                let _ = stop_tx.send(true);
                let _ = stop_signal.wait_for(|s| *s).await;
            })
            .await;
        let _ = accept.await;
        result
    }
}
