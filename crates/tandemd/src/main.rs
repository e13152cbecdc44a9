//! `tandemd`: the tandem daemon. Runs the job worker and serves the gRPC API over mutual
//! TLS. On first start it creates a development PKI in the certificates directory.

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tandem_worker::{InitProgram, JobManager, JobManagerConfig};

/// The tandem daemon: isolated jobs, served over a gRPC API with mutual TLS.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address of the gRPC API.
    #[arg(long, env = "TANDEM_GRPC_LISTEN", default_value = "127.0.0.1:50051")]
    grpc_listen: SocketAddr,
    /// Directory with the PKI (ca.crt, server.crt/key, user certificates). A development
    /// PKI is created there if it holds none.
    #[arg(long, env = "TANDEM_CERTS_DIR", default_value = "./certs")]
    certs_dir: PathBuf,
    /// Directory for job state and output logs.
    #[arg(long, env = "TANDEM_STATE_DIR", default_value = "./.tandem")]
    state_dir: PathBuf,
    /// Directory of task scenarios (`<name>/task.yaml`). Invalid tasks are left out, with
    /// the reason in the log; the others load.
    #[arg(long, env = "TANDEM_TASKS_DIR", default_value = "./tasks")]
    tasks_dir: PathBuf,
    /// Host names and IP addresses the development server certificate is valid for.
    #[arg(
        long,
        env = "TANDEM_CERT_HOSTS",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1"
    )]
    cert_hosts: Vec<String>,
}

fn main() -> std::process::ExitCode {
    // Before anything else (and before any thread exists): the worker re-executes this
    // binary as every job's init.
    if std::env::args().nth(1).as_deref() == Some(tandem_worker::INIT_ARG) {
        tandem_worker::init::main();
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tandemd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tandemd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        tracing::warn!(
            "not running as root: jobs cannot start (namespaces, cgroups and overlay mounts need \
             root); the API still answers"
        );
    }
    if tandem_pki::dev_pki_if_missing(&cli.certs_dir, &cli.cert_hosts)? {
        tracing::info!(
            dir = %cli.certs_dir.display(),
            "created a development PKI (CA, server and admin certificates); use it with: \
             tandem --certs-dir {} job list",
            cli.certs_dir.display()
        );
    }
    let certs_dir = std::fs::canonicalize(&cli.certs_dir)
        .with_context(|| format!("certificates directory {}", cli.certs_dir.display()))?;
    let mut config = JobManagerConfig::new(&cli.state_dir, InitProgram::reexec_self());
    config.hide_paths.push(certs_dir.clone());
    let manager = JobManager::new(config)?;
    let tls = tandem_api::tls::server_config(&certs_dir)?;
    let listener = tokio::net::TcpListener::bind(cli.grpc_listen)
        .await
        .with_context(|| format!("listen on {}", cli.grpc_listen))?;
    tracing::info!(
        address = %listener.local_addr()?,
        cgroup_version = manager.cgroup_version(),
        state_dir = %cli.state_dir.display(),
        "gRPC API listening (mutual TLS 1.3)"
    );
    let tasks_dir = cli.tasks_dir.clone();
    // Validation runs `bash -n` on scripts: blocking work, off the async threads.
    let (catalog, problems) =
        tokio::task::spawn_blocking(move || tandem_scenario::Catalog::load_dir(&tasks_dir)).await?;
    for problem in &problems {
        tracing::error!("task not loaded: {problem}");
    }
    let names: Vec<String> = catalog.list().iter().map(|t| t.name.clone()).collect();
    tracing::info!(
        dir = %cli.tasks_dir.display(),
        loaded = names.len(),
        tasks = %names.join(", "),
        "tasks loaded"
    );
    let server = tandem_api::Server::new(manager.clone(), tls).with_catalog(Arc::new(catalog));
    server.serve(listener, shutdown_signal()).await?;
    tracing::info!("stopping jobs");
    manager.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop tandemd with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
