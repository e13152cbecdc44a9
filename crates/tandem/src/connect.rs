//! Connecting to tandemd with the configured certificates, and failed calls as errors
//! with a human message (`tandem: …` on stderr, exit status 1).

use std::io;

use anyhow::anyhow;
use tandem_client::ClientError;
use tonic::transport::Channel;

use crate::Global;

/// Connects to the server with the configured certificates.
pub async fn connect(global: &Global) -> anyhow::Result<Channel> {
    let config = tandem_client::client_config(&global.tls()).map_err(|e| {
        let hint = match &e {
            ClientError::Pki(tandem_pki::PkiError::Io { error, .. })
                if error.kind() == io::ErrorKind::NotFound =>
            {
                " (make certificates with `tandem certs init`, or choose them with \
                 --certs-dir and --user, or --cert, --key and --ca)"
            }
            _ => "",
        };
        anyhow!("{e}{hint}")
    })?;
    tandem_client::connect(&global.server, config)
        .await
        .map_err(|e| anyhow!("{e}"))
}

/// A failed call as an error with a human message.
pub fn status_error(global: &Global, status: &tonic::Status) -> anyhow::Error {
    anyhow!(tandem_client::describe_status(&global.server, status))
}
