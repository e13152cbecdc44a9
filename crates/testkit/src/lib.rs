//! Test helpers shared by tandem's integration tests (a dev-dependency only): a temporary
//! PKI, the real API server on `127.0.0.1:0` with a temporary state dir, and the paths of
//! the workspace's binaries. Tests that run jobs need root and say so.
#![allow(missing_docs)]
// Driving `ssh` on a pseudo-terminal needs a few raw calls; they are allowed only in `ssh.rs`.
#![deny(unsafe_code)]

mod daemon;
#[allow(unsafe_code)]
mod ssh;
pub use daemon::Daemon;
pub use ssh::SshClient;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tandem_client::ClientTls;
use tandem_pki::{ApiRole, Validity};
use tandem_proto::v1::job_service_client::JobServiceClient;
use tandem_worker::{InitProgram, JobId, JobManager, JobManagerConfig};
use tokio::sync::{oneshot, watch};
use tonic::transport::Channel;

/// Panics with a clear message unless running as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: jobs run in namespaces and cgroups (run the tests as root)"
    );
}

/// A binary of this workspace, built next to the running test (`target/<profile>/NAME`).
/// `cargo test --workspace` builds every binary before any test runs.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is not built; run `cargo build --workspace` (or `cargo test --workspace`) first",
        bin.display()
    );
    bin
}

/// A job manager for tests: its state dir under /var/tmp (on the root filesystem, so
/// hiding it from jobs is exercised), its own cgroup parent, the workspace's
/// `tandem-init`. On drop it kills what tests left running and removes its cgroups (the
/// test's runtime, gone by then, will not run the jobs' supervisors).
pub struct TestManager {
    pub manager: JobManager,
    pub state: tempfile::TempDir,
}

impl TestManager {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// Like [`new`](Self::new), with a chance to adjust the configuration.
    pub fn with(adjust: impl FnOnce(&mut JobManagerConfig)) -> Self {
        require_root();
        let state = tempfile::Builder::new()
            .prefix("tandem-test-")
            .tempdir_in("/var/tmp")
            .expect("state dir");
        let mut config = JobManagerConfig::new(
            state.path(),
            InitProgram::binary(workspace_bin("tandem-init")),
        );
        config.cgroup_parent = format!("tandem-test-{}", JobId::new_random());
        adjust(&mut config);
        let manager = JobManager::new(config).expect("job manager");
        Self { manager, state }
    }
}

impl Default for TestManager {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for TestManager {
    type Target = JobManager;
    fn deref(&self) -> &JobManager {
        &self.manager
    }
}

impl Drop for TestManager {
    fn drop(&mut self) {
        self.manager.abort_all();
        self.manager.remove_cgroups_blocking(Duration::from_secs(5));
    }
}

/// A temporary PKI: CA, server (localhost, 127.0.0.1), `admin`, and interviewers `alice`
/// and `bob`.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
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

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

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
    pub addr: SocketAddr,
    pub pki: Pki,
    pub manager: JobManager,
    /// Live Logs/Attach streams on the server.
    pub streams: watch::Receiver<usize>,
    /// The server's health reporter (overall status `""` starts SERVING here).
    pub health: tonic_health::server::HealthReporter,
    /// The server's jobs (killed and cleaned up on drop).
    pub jobs: TestManager,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with_catalog(tandem_scenario::Catalog::default()).await
    }

    /// The server offering the tasks of `catalog`.
    pub async fn start_with_catalog(catalog: tandem_scenario::Catalog) -> Self {
        require_root();
        let pki = Pki::new();
        let jobs = TestManager::with(|config| config.hide_paths.push(pki.path().to_path_buf()));
        let manager = jobs.manager.clone();
        let tls = tandem_api::tls::server_config(pki.path()).expect("server TLS");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let server = tandem_api::Server::new(manager.clone(), tls)
            .with_catalog(std::sync::Arc::new(catalog));
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
