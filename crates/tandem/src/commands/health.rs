//! `tandem health`: whether the server is serving (exit status 0 only when it is).

use std::process::ExitCode;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::Global;
use crate::connect::{connect, status_error};
use crate::render::{self, Format, print};

/// `tandem health`.
pub async fn run(global: &Global) -> anyhow::Result<ExitCode> {
    let channel = connect(global).await?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|s| status_error(global, &s))?
        .into_inner();
    let status = ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown);
    let name = status.as_str_name();
    match global.output {
        Format::Text => print(&format!("{name}\n"))?,
        Format::Json => print(&render::json(&serde_json::json!({ "status": name }))?)?,
    }
    Ok(if status == ServingStatus::Serving {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
