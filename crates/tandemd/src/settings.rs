//! tandemd's settings: each one a flag, an environment variable `TANDEM_…`, and a key in
//! an optional TOML file (`--config FILE`). Flags and variables win over the file; the
//! file wins over the defaults. Unknown keys and bad values in the file are errors that
//! name the line and the key.

use clap::Parser;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tandem_scenario::units::parse_size;

/// The tandem daemon: isolated jobs, interview sessions over SSH, and a gRPC API with
/// mutual TLS. Every flag can also be given as an environment variable (shown) or as a
/// key with the same name (underscores for dashes) in the `--config` TOML file.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// TOML file with any of the settings below (e.g. `grpc_listen = "0.0.0.0:50051"`).
    #[arg(long, env = "TANDEM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the gRPC API [default: 127.0.0.1:50051].
    #[arg(long, env = "TANDEM_GRPC_LISTEN", value_name = "ADDR")]
    pub grpc_listen: Option<SocketAddr>,
    /// Address of the SSH front end [default: 0.0.0.0:2222].
    #[arg(long, env = "TANDEM_SSH_LISTEN", value_name = "ADDR")]
    pub ssh_listen: Option<SocketAddr>,
    /// The `host:port` people are told to connect to in the `ssh` commands a session
    /// gives out [default: localhost and the SSH port].
    #[arg(long, env = "TANDEM_SSH_ADDRESS", value_name = "HOST:PORT")]
    pub ssh_address: Option<String>,
    /// Address of the web front end (HTTPS: interviewers' and observers' pages)
    /// [default: 127.0.0.1:8443].
    #[arg(long, env = "TANDEM_WEB_LISTEN", value_name = "ADDR")]
    pub web_listen: Option<SocketAddr>,
    /// The `https://host:port` of the page links a session gives out [default: https://,
    /// localhost and the web port].
    #[arg(long, env = "TANDEM_WEB_ADDRESS", value_name = "URL")]
    pub web_address: Option<String>,
    /// Directory for job state, output logs, sessions, recordings and the SSH host key
    /// [default: ./.tandem].
    #[arg(long, env = "TANDEM_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Directory with the PKI (ca.crt, server.crt/key, user certificates). A development
    /// PKI is created there if it holds none [default: ./certs].
    #[arg(long, env = "TANDEM_CERTS_DIR", value_name = "DIR")]
    pub certs_dir: Option<PathBuf>,
    /// Directory of task scenarios (`<name>/task.yaml`); invalid tasks are left out with
    /// the reason in the log [default: ./tasks].
    #[arg(long, env = "TANDEM_TASKS_DIR", value_name = "DIR")]
    pub tasks_dir: Option<PathBuf>,
    /// Host names and IPs the development server certificate is valid for
    /// [default: localhost,127.0.0.1].
    #[arg(
        long,
        env = "TANDEM_CERT_HOSTS",
        value_delimiter = ',',
        value_name = "HOSTS"
    )]
    pub cert_hosts: Option<Vec<String>>,
    /// Output kept per job; beyond it a marker and a count of dropped bytes [default: 64M].
    #[arg(long, env = "TANDEM_OUTPUT_CAP", value_name = "SIZE")]
    pub output_cap: Option<String>,
    /// Block device for disk IO limits [default: the disk under the state dir].
    #[arg(long, env = "TANDEM_IO_DEVICE", value_name = "DEV")]
    pub io_device: Option<PathBuf>,
    /// How long stopping a job waits between SIGTERM and SIGKILL at shutdown [default: 10s].
    #[arg(long, env = "TANDEM_SHUTDOWN_GRACE", value_name = "DURATION")]
    pub shutdown_grace: Option<String>,
    /// Memory limit of a job or task that sets none [default: 2G, or half the machine's
    /// memory if less].
    #[arg(long, env = "TANDEM_DEFAULT_MEMORY", value_name = "SIZE")]
    pub default_memory: Option<String>,
    /// Process limit of a job or task that sets none [default: 4096].
    #[arg(long, env = "TANDEM_DEFAULT_PIDS", value_name = "N")]
    pub default_pids: Option<u64>,
    /// Time an SSH connection has to log in before it is closed [default: 20s].
    #[arg(long, env = "TANDEM_SSH_PRE_AUTH_TIMEOUT", value_name = "DURATION")]
    pub ssh_pre_auth_timeout: Option<String>,
    /// SSH connections waiting to log in, at most; a new one beyond makes the oldest
    /// leave [default: 256].
    #[arg(long, env = "TANDEM_SSH_MAX_UNAUTHENTICATED", value_name = "N")]
    pub ssh_max_unauthenticated: Option<usize>,
    /// SSH connections, at most [default: 1024].
    #[arg(long, env = "TANDEM_SSH_MAX_CONNECTIONS", value_name = "N")]
    pub ssh_max_connections: Option<usize>,
    /// Session channels per SSH connection, at most [default: 4].
    #[arg(long, env = "TANDEM_SSH_MAX_CHANNELS", value_name = "N")]
    pub ssh_max_channels: Option<usize>,
    /// Web connections, at most; when all are taken, a new one replaces the oldest that
    /// has not logged in [default: 512].
    #[arg(long, env = "TANDEM_WEB_MAX_CONNECTIONS", value_name = "N")]
    pub web_max_connections: Option<usize>,
    /// Live web pages open at once per session and role [default: 32].
    #[arg(long, env = "TANDEM_WEB_MAX_PAGES", value_name = "N")]
    pub web_max_pages: Option<usize>,
    /// Time a web client has for its TLS handshake, a request's headers, and its body
    /// [default: 10s].
    #[arg(long, env = "TANDEM_WEB_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub web_request_timeout: Option<String>,
    /// Recording kept per session of each kind of the candidate's traffic (terminal
    /// traffic in recording.cast; typed input, commands, joins, automatic checks in
    /// events.jsonl); beyond it a marker. The session's own events have their own
    /// budget, at least 64M [default: 64M].
    #[arg(long, env = "TANDEM_RECORDING_CAP", value_name = "SIZE")]
    pub recording_cap: Option<String>,
    /// Sandboxes kept set up ahead of time for every task, instead of each task's own
    /// `warm` count (0: no warm pools) [default: each task's, 1 unless it says].
    #[arg(long, env = "TANDEM_WARM", value_name = "N")]
    pub warm: Option<u32>,
    /// Most warm sandboxes in all tasks' pools together [default: 8].
    #[arg(long, env = "TANDEM_WARM_MAX", value_name = "N")]
    pub warm_max: Option<u32>,
    /// How long before its start a scheduled session opens (its box is made, logins are
    /// let in) [default: 10m].
    #[arg(long, env = "TANDEM_SCHEDULE_OPENS_BEFORE", value_name = "DURATION")]
    pub schedule_opens_before: Option<String>,
    /// How long after the start a scheduled session whose clock starts at the first login
    /// waits for the candidate before it ends as a no-show [default: 15m].
    #[arg(long, env = "TANDEM_NO_SHOW_GRACE", value_name = "DURATION")]
    pub no_show_grace: Option<String>,
    /// Log format: text or json [default: text]. Verbosity comes from RUST_LOG.
    #[arg(long, env = "TANDEM_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The file's keys: the same names as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    grpc_listen: Option<SocketAddr>,
    ssh_listen: Option<SocketAddr>,
    ssh_address: Option<String>,
    web_listen: Option<SocketAddr>,
    web_address: Option<String>,
    state_dir: Option<PathBuf>,
    certs_dir: Option<PathBuf>,
    tasks_dir: Option<PathBuf>,
    cert_hosts: Option<Vec<String>>,
    output_cap: Option<String>,
    io_device: Option<PathBuf>,
    shutdown_grace: Option<String>,
    default_memory: Option<String>,
    default_pids: Option<u64>,
    ssh_pre_auth_timeout: Option<String>,
    ssh_max_unauthenticated: Option<usize>,
    ssh_max_connections: Option<usize>,
    ssh_max_channels: Option<usize>,
    web_max_connections: Option<usize>,
    web_max_pages: Option<usize>,
    web_request_timeout: Option<String>,
    recording_cap: Option<String>,
    warm: Option<u32>,
    warm_max: Option<u32>,
    schedule_opens_before: Option<String>,
    no_show_grace: Option<String>,
    log_format: Option<LogFormat>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub grpc_listen: SocketAddr,
    pub ssh_listen: SocketAddr,
    pub ssh_address: Option<String>,
    pub web_listen: SocketAddr,
    pub web_address: Option<String>,
    pub state_dir: PathBuf,
    pub certs_dir: PathBuf,
    pub tasks_dir: PathBuf,
    pub cert_hosts: Vec<String>,
    pub output_cap: u64,
    pub io_device: Option<PathBuf>,
    pub shutdown_grace: Duration,
    /// Overrides of the worker's default limits (`None`: the worker's).
    pub default_memory: Option<u64>,
    pub default_pids: Option<u64>,
    pub ssh_limits: tandem_ssh::SshLimits,
    pub web_limits: tandem_web::WebLimits,
    pub recording_cap: u64,
    pub warm: tandem_scenario::WarmSettings,
    pub schedule: tandem_session::ScheduleTimes,
    pub log_format: LogFormat,
}

/// The duration setting `name` (humantime text), or `default` without one: positive, and
/// with a `max` (whole hours) between 1s and it.
fn duration(
    name: &str,
    text: Option<String>,
    default: Duration,
    max: Option<Duration>,
) -> Result<Duration, String> {
    let Some(text) = text else {
        return Ok(default);
    };
    let d = humantime::parse_duration(&text).map_err(|e| format!("{name}: {text:?}: {e}"))?;
    match max {
        None if d.is_zero() => Err(format!("{name}: must be positive")),
        Some(max) if d < Duration::from_secs(1) || d > max => Err(format!(
            "{name}: must be between 1s and {}h",
            max.as_secs() / 3600
        )),
        _ => Ok(d),
    }
}

/// Merges flags/environment, the config file and the defaults. `Err` is a message for
/// the user (a usage problem: exit 2).
pub fn resolve(cli: Cli) -> Result<Settings, String> {
    let file = match &cli.config {
        Some(path) => read_file(path)?,
        None => File::default(),
    };
    let output_cap = cli.output_cap.or(file.output_cap);
    let shutdown_grace = cli.shutdown_grace.or(file.shutdown_grace);
    let defaults = tandem_ssh::SshLimits::default();
    let count = |name: &str, value: Option<usize>, default: usize| match value {
        Some(0) => Err(format!("{name}: must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    let ssh_limits = tandem_ssh::SshLimits {
        pre_auth_timeout: duration(
            "ssh_pre_auth_timeout",
            cli.ssh_pre_auth_timeout.or(file.ssh_pre_auth_timeout),
            defaults.pre_auth_timeout,
            None,
        )?,
        max_unauthenticated: count(
            "ssh_max_unauthenticated",
            cli.ssh_max_unauthenticated.or(file.ssh_max_unauthenticated),
            defaults.max_unauthenticated,
        )?,
        max_connections: count(
            "ssh_max_connections",
            cli.ssh_max_connections.or(file.ssh_max_connections),
            defaults.max_connections,
        )?,
        max_channels: count(
            "ssh_max_channels",
            cli.ssh_max_channels.or(file.ssh_max_channels),
            defaults.max_channels,
        )?,
    };
    let web_defaults = tandem_web::WebLimits::default();
    let web_limits = tandem_web::WebLimits {
        max_connections: count(
            "web_max_connections",
            cli.web_max_connections.or(file.web_max_connections),
            web_defaults.max_connections,
        )?,
        max_pages: count(
            "web_max_pages",
            cli.web_max_pages.or(file.web_max_pages),
            web_defaults.max_pages,
        )?,
        handshake_timeout: duration(
            "web_request_timeout",
            cli.web_request_timeout.or(file.web_request_timeout),
            web_defaults.handshake_timeout,
            None,
        )?,
        ..web_defaults
    };
    let default_memory = match cli.default_memory.or(file.default_memory) {
        Some(text) => Some(parse_size(&text).map_err(|e| format!("default_memory: {e}"))?),
        None => None,
    };
    let default_pids = cli.default_pids.or(file.default_pids);
    let defaults = tandem_worker::Limits {
        memory: default_memory,
        pids: default_pids,
        ..Default::default()
    };
    defaults
        .validate()
        .map_err(|e| e.replace("limits.", "default_"))?;
    let recording_cap = match cli.recording_cap.or(file.recording_cap) {
        Some(text) => parse_size(&text).map_err(|e| format!("recording_cap: {e}"))?,
        None => tandem_session::DEFAULT_RECORDING_CAP,
    };
    let warm_defaults = tandem_scenario::WarmSettings::default();
    let warm = tandem_scenario::WarmSettings {
        per_task: match cli.warm.or(file.warm) {
            Some(n) if n > tandem_scenario::task::MAX_WARM => {
                return Err(format!(
                    "warm: {n} is more than the {} a task may keep ready",
                    tandem_scenario::task::MAX_WARM
                ));
            }
            n => n,
        },
        max_total: cli
            .warm_max
            .or(file.warm_max)
            .unwrap_or(warm_defaults.max_total),
    };
    let schedule_defaults = tandem_session::ScheduleTimes::default();
    let day = Some(Duration::from_secs(24 * 3600));
    let schedule = tandem_session::ScheduleTimes {
        opens_before: duration(
            "schedule_opens_before",
            cli.schedule_opens_before.or(file.schedule_opens_before),
            schedule_defaults.opens_before,
            day,
        )?,
        grace: duration(
            "no_show_grace",
            cli.no_show_grace.or(file.no_show_grace),
            schedule_defaults.grace,
            day,
        )?,
    };
    Ok(Settings {
        grpc_listen: cli
            .grpc_listen
            .or(file.grpc_listen)
            .unwrap_or_else(|| ([127, 0, 0, 1], 50051).into()),
        ssh_listen: cli
            .ssh_listen
            .or(file.ssh_listen)
            .unwrap_or_else(|| ([0, 0, 0, 0], 2222).into()),
        ssh_address: cli.ssh_address.or(file.ssh_address),
        web_listen: cli
            .web_listen
            .or(file.web_listen)
            .unwrap_or_else(|| ([127, 0, 0, 1], 8443).into()),
        web_address: cli.web_address.or(file.web_address),
        state_dir: cli
            .state_dir
            .or(file.state_dir)
            .unwrap_or_else(|| ".tandem".into()),
        certs_dir: cli
            .certs_dir
            .or(file.certs_dir)
            .unwrap_or_else(|| "certs".into()),
        tasks_dir: cli
            .tasks_dir
            .or(file.tasks_dir)
            .unwrap_or_else(|| "tasks".into()),
        cert_hosts: cli
            .cert_hosts
            .or(file.cert_hosts)
            .unwrap_or_else(|| vec!["localhost".into(), "127.0.0.1".into()]),
        output_cap: match output_cap {
            Some(text) => parse_size(&text).map_err(|e| format!("output_cap: {e}"))?,
            None => tandem_worker::DEFAULT_OUTPUT_CAP,
        },
        io_device: cli.io_device.or(file.io_device),
        shutdown_grace: match shutdown_grace {
            Some(text) => humantime::parse_duration(&text)
                .map_err(|e| format!("shutdown_grace: {text:?}: {e}"))?,
            None => tandem_worker::DEFAULT_STOP_GRACE,
        },
        default_memory,
        default_pids,
        ssh_limits,
        web_limits,
        recording_cap,
        warm,
        schedule,
        log_format: cli
            .log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Text),
    })
}

fn read_file(path: &Path) -> Result<File, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let position = e
            .span()
            .map(|span| {
                let line = text[..span.start].matches('\n').count() + 1;
                let column = span.start - text[..span.start].rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(":{line}:{column}")
            })
            .unwrap_or_default();
        format!("{}{position}: {}", path.display(), e.message())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("tandemd").chain(args.iter().copied()))
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandemd.toml");
        std::fs::write(
            &path,
            "grpc_listen = \"0.0.0.0:6000\"\nstate_dir = \"/srv/tandem\"\noutput_cap = \"1M\"\n",
        )
        .unwrap();
        let s = resolve(cli(&[
            "--config",
            path.to_str().unwrap(),
            "--grpc-listen",
            "127.0.0.1:7000",
        ]))
        .unwrap();
        assert_eq!(s.grpc_listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(s.state_dir, PathBuf::from("/srv/tandem"));
        assert_eq!(s.output_cap, 1 << 20);
        assert_eq!(s.ssh_listen, "0.0.0.0:2222".parse().unwrap());
        assert_eq!(s.web_listen, "127.0.0.1:8443".parse().unwrap());
    }

    #[test]
    fn ssh_bounds_and_the_recording_cap_are_settings() {
        let s = resolve(cli(&[
            "--ssh-pre-auth-timeout",
            "5s",
            "--ssh-max-channels",
            "2",
            "--recording-cap",
            "1M",
        ]))
        .unwrap();
        assert_eq!(s.ssh_limits.pre_auth_timeout, Duration::from_secs(5));
        assert_eq!(s.ssh_limits.max_channels, 2);
        assert_eq!(s.ssh_limits.max_connections, 1024);
        assert_eq!(s.recording_cap, 1 << 20);
        let err = resolve(cli(&["--ssh-max-unauthenticated", "0"])).unwrap_err();
        assert!(
            err.starts_with("ssh_max_unauthenticated: must be at least 1"),
            "{err}"
        );
        let err = resolve(cli(&["--ssh-pre-auth-timeout", "0s"])).unwrap_err();
        assert!(
            err.starts_with("ssh_pre_auth_timeout: must be positive"),
            "{err}"
        );
    }

    #[test]
    fn warm_pools_are_settings() {
        let s = resolve(cli(&[])).unwrap();
        assert_eq!(s.warm, tandem_scenario::WarmSettings::default());
        let s = resolve(cli(&["--warm", "0", "--warm-max", "3"])).unwrap();
        assert_eq!(s.warm.per_task, Some(0));
        assert_eq!(s.warm.max_total, 3);
        let err = resolve(cli(&["--warm", "17"])).unwrap_err();
        assert!(err.starts_with("warm: 17 is more than the 16"), "{err}");
    }

    #[test]
    fn a_bad_file_names_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandemd.toml");
        std::fs::write(&path, "state_dir = \"/srv\"\ngrpc_lisen = \"x\"\n").unwrap();
        let err = resolve(cli(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(err.contains("tandemd.toml:2:1"), "{err}");
        assert!(err.contains("grpc_lisen"), "{err}");
        std::fs::write(&path, "grpc_listen = \"not an address\"\n").unwrap();
        let err = resolve(cli(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(err.contains(":1:15"), "{err}");
    }
}
