//! The real API server on `127.0.0.1:0` for tests (the `test-server` feature; a
//! dev-dependency only): a temporary PKI, a job manager with a temporary state dir, and
//! connected clients. It lives in this crate, behind a feature, so that this crate's own
//! tests and the CLI's can use it without a dependency cycle.
//!
//! [`TestServer::start`] runs jobs and needs root; [`TestServer::start_unprivileged`]
//! serves everything but starting jobs (TLS, permissions, listing) and needs no root.
//! Both serve the session service too (SSH is not served: the logins it hands out
//! point at `localhost:2222`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tandem_client::ClientTls;
use tandem_pki::{ApiRole, Validity};
use tandem_proto::v1::job_service_client::JobServiceClient;
use tandem_testkit_worker::TestManager;
use tandem_worker::{JobManager, JobManagerConfig};
use tokio::sync::{oneshot, watch};
use tonic::transport::Channel;

/// A temporary PKI: CA, server (localhost, 127.0.0.1), `admin`, and interviewers `alice`
/// and `bob`.
pub struct Pki {
    /// The directory with `ca.crt`, `server.crt`, `NAME.crt` and their keys.
    pub dir: tempfile::TempDir,
}

impl Pki {
    /// Makes the PKI in a new temporary directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let hosts = ["localhost".to_string(), "127.0.0.1".to_string()];
        tandem_pki::init(dir.path(), &hosts, false, Validity::default()).expect("pki init");
        for user in ["alice", "bob"] {
            tandem_pki::issue(
                dir.path(),
                user,
                ApiRole::Interviewer,
                false,
                Validity::default(),
            )
            .expect("issue interviewer");
        }
        Self { dir }
    }

    /// The PKI's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The client certificate files of `user`.
    pub fn client_tls(&self, user: &str) -> ClientTls {
        ClientTls::from_dir(self.path(), user)
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// The real API server on 127.0.0.1:0 over a job manager with a temporary state dir.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its PKI (the server's certificate and the clients').
    pub pki: Pki,
    /// Its job manager (a clone of `jobs`'s).
    pub manager: JobManager,
    /// Live Logs/Attach streams on the server.
    pub streams: watch::Receiver<usize>,
    /// The server's health reporter (overall status `""` starts SERVING here).
    pub health: tonic_health::server::HealthReporter,
    /// The server's jobs (killed and cleaned up on drop).
    pub jobs: TestManager,
    /// The server's interview sessions.
    pub sessions: tandem_session::Sessions,
    /// Tells the server to shut down.
    shutdown: Option<oneshot::Sender<()>>,
    /// The server's task.
    task: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl TestServer {
    /// The server without tasks, over a manager that runs jobs (needs root).
    pub async fn start() -> Self {
        Self::start_with_catalog(tandem_scenario::Catalog::default()).await
    }

    /// The server offering the tasks of `catalog` (needs root).
    pub async fn start_with_catalog(catalog: tandem_scenario::Catalog) -> Self {
        tandem_testkit::require_root();
        Self::serve(catalog, TestManager::with).await
    }

    /// The server over a manager that is never asked to start a job, for tests of TLS,
    /// permissions and answers that need no job: it needs no root. (Starting a job
    /// through it fails without root.)
    pub async fn start_unprivileged() -> Self {
        Self::start_unprivileged_with_catalog(tandem_scenario::Catalog::default()).await
    }

    /// Like [`start_unprivileged`](Self::start_unprivileged), offering the tasks of
    /// `catalog` (calls that would start an instance fail without root).
    pub async fn start_unprivileged_with_catalog(catalog: tandem_scenario::Catalog) -> Self {
        Self::serve(catalog, TestManager::unprivileged).await
    }

    /// Serves on 127.0.0.1:0 over the manager `make_jobs` makes (the PKI's directory is
    /// hidden from jobs).
    async fn serve(
        catalog: tandem_scenario::Catalog,
        make_jobs: impl FnOnce(Box<dyn FnOnce(&mut JobManagerConfig)>) -> TestManager,
    ) -> Self {
        let pki = Pki::new();
        let hidden = pki.path().to_path_buf();
        let jobs = make_jobs(Box::new(move |config| config.hide_paths.push(hidden)));
        let manager = jobs.manager.clone();
        // The warm slots (an idle tandem-init and its descriptors each) are part of the
        // idle daemon: suites that compare its resources before and after start from there.
        manager.warm_slots_ready().await;
        let tls = crate::tls::server_config(pki.path()).expect("server TLS");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let server =
            crate::Server::new(manager.clone(), tls).with_catalog(std::sync::Arc::new(catalog));
        let sessions = tandem_session::Sessions::new(server.instances(), jobs.state.path())
            .expect("sessions directory");
        let server = server.with_sessions(
            sessions.clone(),
            crate::sessions::SshInfo {
                address: "localhost:2222".into(),
                fingerprint: "SHA256:not-served-by-the-test-server".into(),
            },
        );
        let streams = server.stream_count();
        let health = server.health();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.serve(listener, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            pki,
            manager,
            streams,
            health,
            jobs,
            sessions,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `HOST:PORT` of the server.
    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    /// A connected client authenticating as `user`.
    pub async fn client(&self, user: &str) -> JobServiceClient<Channel> {
        JobServiceClient::new(self.channel(&self.pki.client_tls(user)).await)
    }

    /// A channel with explicit client TLS files.
    pub async fn channel(&self, tls: &ClientTls) -> Channel {
        let config = tandem_client::client_config(tls).expect("client TLS config");
        tandem_client::connect(&self.server(), config)
            .await
            .expect("connect")
    }

    /// Shuts the server down (live streams end) and waits for it.
    pub async fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("server shut down within 30 s")
                .expect("server task")
                .expect("server result");
        }
    }

    /// Waits until no Logs/Attach stream is alive on the server.
    pub async fn streams_drained(&mut self) {
        tokio::time::timeout(Duration::from_secs(30), self.streams.wait_for(|n| *n == 0))
            .await
            .expect("streams ended within 30 s")
            .expect("stream counter");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // `jobs` cleans up what the test left running.
    }
}
