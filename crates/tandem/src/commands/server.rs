//! `tandem server info`: the server's facts (SSH host key fingerprint, SSH address,
//! version), for people and for scripts.

use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;
use tandem_proto::v1::ServerInfoRequest;
use tandem_proto::v1::ServerInfoResponse;
use tandem_proto::v1::server_service_client::ServerServiceClient;

use crate::Global;
use crate::connect::{connect, status_error};
use crate::render::{self, Format, print};

/// `tandem server …`.
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Show the SSH host key fingerprint (to check on first login), the SSH address and the version
    Info,
}

/// `tandem server …`.
pub async fn run(global: &Global, command: ServerCommand) -> anyhow::Result<ExitCode> {
    match command {
        ServerCommand::Info => run_info(global).await,
    }
}

/// `tandem server info`.
async fn run_info(global: &Global) -> anyhow::Result<ExitCode> {
    let info = ServerServiceClient::new(connect(global).await?)
        .info(ServerInfoRequest {})
        .await
        .map_err(|s| status_error(global, &s))?
        .into_inner();
    match global.output {
        Format::Text => print(&server_text(&info))?,
        Format::Json => print(&render::json(&ServerView::from(&info))?)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The server's facts as printed by `server info -o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerView {
    /// The SSH host key's SHA256 fingerprint, as OpenSSH shows it.
    pub ssh_host_key_fingerprint: String,
    /// The SSH address sessions' commands use.
    pub ssh_address: String,
    /// tandemd's version.
    pub version: String,
}

impl From<&ServerInfoResponse> for ServerView {
    fn from(info: &ServerInfoResponse) -> Self {
        ServerView {
            ssh_host_key_fingerprint: info.ssh_host_key_fingerprint.clone(),
            ssh_address: info.ssh_address.clone(),
            version: info.version.clone(),
        }
    }
}

/// `server info` for people: aligned `key: value` lines.
pub fn server_text(info: &ServerInfoResponse) -> String {
    format!(
        "ssh host key: {}\nssh address:  {}\nversion:      {}\n",
        info.ssh_host_key_fingerprint, info.ssh_address, info.version
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_info() {
        let info = ServerInfoResponse {
            ssh_host_key_fingerprint: "SHA256:abc".into(),
            ssh_address: "localhost:2222".into(),
            version: "0.1.0".into(),
        };
        assert_eq!(
            server_text(&info),
            "ssh host key: SHA256:abc\nssh address:  localhost:2222\nversion:      0.1.0\n"
        );
        assert_eq!(
            serde_json::to_value(ServerView::from(&info)).unwrap(),
            json!({"ssh_host_key_fingerprint": "SHA256:abc", "ssh_address": "localhost:2222", "version": "0.1.0"})
        );
    }
}
