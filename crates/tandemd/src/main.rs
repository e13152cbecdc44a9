//! `tandemd`: the tandem daemon. Runs the job worker and serves the gRPC API over mutual
//! TLS. On first start it creates a development PKI in the certificates directory.
#![forbid(unsafe_code)]

mod settings;

use anyhow::Context;
use clap::Parser;
use settings::{Cli, LogFormat, Settings};
use std::sync::Arc;
use tandem_worker::{InitProgram, JobManager, JobManagerConfig};

fn main() -> std::process::ExitCode {
    // Before anything else (and before any thread exists): the worker re-executes this
    // binary as every job's init.
    if std::env::args().nth(1).as_deref() == Some(tandem_worker::INIT_ARG) {
        tandem_worker::init::main();
    }
    let cli = match settings::resolve(Cli::parse()) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("tandemd: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match cli.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }
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

async fn run(cli: Settings) -> anyhow::Result<()> {
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
    // The tasks (their checks and solutions) are hidden even where the system view shows
    // them: a tasks directory under /usr (the Docker layout) would be in every sandbox.
    if let Ok(tasks) = std::fs::canonicalize(&cli.tasks_dir) {
        config.hide_paths.push(tasks);
    }
    config.output_cap = cli.output_cap;
    config.io_device = cli.io_device.clone();
    config.default_limits.memory = cli.default_memory.or(config.default_limits.memory);
    config.default_limits.pids = cli.default_pids.or(config.default_limits.pids);
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
    let (host_key, created) = tandem_ssh::host_key(&cli.state_dir.join("ssh_host_ed25519_key"))?;
    let fingerprint = tandem_ssh::fingerprint(&host_key);
    if created {
        tracing::info!(%fingerprint, "generated the SSH host key");
    }
    let ssh_listener = tokio::net::TcpListener::bind(cli.ssh_listen)
        .await
        .with_context(|| format!("listen on {} (SSH)", cli.ssh_listen))?;
    let ssh_port = ssh_listener.local_addr()?.port();
    let ssh_address = cli
        .ssh_address
        .clone()
        .unwrap_or_else(|| format!("localhost:{ssh_port}"));

    let web_tls = tandem_web::server_config(&certs_dir)?;
    let web_listener = tokio::net::TcpListener::bind(cli.web_listen)
        .await
        .with_context(|| format!("listen on {} (web)", cli.web_listen))?;
    let web_address = cli
        .web_address
        .clone()
        .unwrap_or_else(|| format!("https://localhost:{}", port_of(&web_listener)));

    let catalog = Arc::new(catalog);
    let server = tandem_api::Server::new(manager.clone(), tls)
        .with_catalog(Arc::clone(&catalog))
        .with_web(web_address.clone());
    // Sandboxes set up ahead of time, so that a session starts at once.
    let pools = server.instances().keep_warm(Arc::clone(&catalog), cli.warm);
    let sessions = tandem_session::Sessions::new(server.instances(), &cli.state_dir)
        .context("sessions directory")?
        .with_recording_cap(cli.recording_cap)
        .with_schedule_times(cli.schedule);
    // Sessions scheduled by an earlier run come back, and open when due.
    sessions.restore_scheduled(&catalog);
    let server = server.with_sessions(
        sessions.clone(),
        tandem_api::sessions::SshInfo {
            address: ssh_address.clone(),
            fingerprint: fingerprint.clone(),
        },
    );
    tracing::info!(
        address = %ssh_listener.local_addr()?,
        %fingerprint,
        "SSH listening"
    );
    tracing::info!(
        address = %web_listener.local_addr()?,
        url = %web_address,
        "web listening (HTTPS, TLS 1.3)"
    );
    tracing::info!(
        "next: tandem session create --task {}   (logins: ssh -p {ssh_port} <token>@{})",
        names.first().map_or("<task>", String::as_str),
        ssh_address
            .rsplit_once(':')
            .map_or(ssh_address.as_str(), |(h, _)| h),
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Health says SERVING only once the worker, the tasks and SSH are all up.
    let health = server.health();
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let mut api_stop = stop_rx.clone();
    let api = tokio::spawn(server.serve(listener, async move {
        let _ = api_stop.wait_for(|s| *s).await;
    }));
    let ssh = tokio::spawn(tandem_ssh::serve(
        ssh_listener,
        host_key,
        sessions.clone(),
        cli.ssh_limits,
        stop_rx.clone(),
    ));
    let web = tokio::spawn(tandem_web::serve(
        web_listener,
        web_tls,
        sessions.clone(),
        cli.web_limits,
        stop_rx.clone(),
    ));
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    tracing::info!("ready");
    shutdown_signal().await;
    tracing::info!("shutting down: ending sessions, stopping jobs");
    sessions.end_all("tandemd is shutting down").await;
    pools.stop().await;
    let _ = stop_tx.send(true);
    let _ = ssh.await;
    let _ = web.await;
    if let Ok(Err(e)) = api.await {
        tracing::warn!(error = %e, "the API server ended with an error");
    }
    manager.shutdown(cli.shutdown_grace).await;
    tracing::info!("stopped");
    Ok(())
}

/// The port a listener is bound to (0 if it cannot say, which it always can once bound).
fn port_of(listener: &tokio::net::TcpListener) -> u16 {
    listener.local_addr().map_or(0, |a| a.port())
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
