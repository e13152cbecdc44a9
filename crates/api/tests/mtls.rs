//! Authentication: only TLS 1.3 clients with a valid certificate from the tandem CA and a
//! tandem role get anywhere; each failure is a handshake failure or the right gRPC code.
//!
//! No root needed: the server's job manager is never asked to start a job (the calls
//! made are listings, health and reflection), so it is made without root.

use std::sync::Arc;
use std::time::SystemTime;
use tandem_api::test_server::{Pki, TestServer};
use tandem_proto::v1 as pb;
use tandem_proto::v1::job_service_client::JobServiceClient;
use tonic::Code;

/// A client config like the CLI's, with the given client auth (or none) and versions.
fn config(
    pki_ca: &std::path::Path,
    client: Option<(&std::path::Path, &std::path::Path)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in tandem_pki::load_certs(pki_ca).unwrap() {
        roots.add(c).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                tandem_pki::load_certs(cert).unwrap(),
                tandem_pki::load_key(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Connects and makes one call; returns the human description of whatever failed.
async fn attempt(server: &TestServer, config: Arc<rustls::ClientConfig>) -> Result<(), String> {
    let channel = tandem_client::connect(&server.server(), config)
        .await
        .map_err(|e| e.to_string())?;
    JobServiceClient::new(channel)
        .list(pb::ListJobsRequest {})
        .await
        .map(drop)
        .map_err(|s| tandem_client::describe_status(&server.server(), &s))
}

#[tokio::test]
async fn valid_certificates_of_both_roles_are_accepted() {
    let server = TestServer::start_unprivileged().await;
    for user in ["admin", "alice"] {
        let tls = server.pki.client_tls(user);
        let config = tandem_client::client_config(&tls).unwrap();
        assert_eq!(attempt(&server, config).await, Ok(()), "{user}");
    }
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let server = TestServer::start_unprivileged().await;
    let ca = server.pki.path().join("ca.crt");
    let err = attempt(&server, config(&ca, None, &[&rustls::version::TLS13]))
        .await
        .unwrap_err();
    eprintln!("no client certificate: {err}");
    assert!(err.contains("rejected the client certificate"), "{err}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let server = TestServer::start_unprivileged().await;
    let other = Pki::new();
    let ca = server.pki.path().join("ca.crt");
    let cert = other.path().join("admin.crt");
    let key = other.path().join("admin.key");
    let err = attempt(
        &server,
        config(&ca, Some((&cert, &key)), &[&rustls::version::TLS13]),
    )
    .await
    .unwrap_err();
    eprintln!("certificate from another CA: {err}");
    assert!(err.contains("rejected the client certificate"), "{err}");
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let server = TestServer::start_unprivileged().await;
    let now = time::OffsetDateTime::now_utc();
    tandem_pki::issue_with(
        server.pki.path(),
        "old",
        "admin",
        now - time::Duration::days(30),
        now - time::Duration::days(1),
    )
    .unwrap();
    let tls = server.pki.client_tls("old");
    let not_after =
        tandem_pki::cert_not_after(tandem_pki::load_certs(&tls.cert).unwrap()[0].as_ref()).unwrap();
    assert!(not_after < SystemTime::now());
    let err = attempt(&server, tandem_client::client_config(&tls).unwrap())
        .await
        .unwrap_err();
    eprintln!("expired certificate: {err}");
    assert!(err.contains("expired"), "{err}");
}

#[tokio::test]
async fn a_tls12_only_client_is_refused() {
    let server = TestServer::start_unprivileged().await;
    let p = server.pki.path();
    let err = attempt(
        &server,
        config(
            &p.join("ca.crt"),
            Some((&p.join("admin.crt"), &p.join("admin.key"))),
            &[&rustls::version::TLS12],
        ),
    )
    .await
    .unwrap_err();
    eprintln!("TLS 1.2-only client: {err}");
    assert!(err.contains("TLS 1.3 only"), "{err}");
}

#[tokio::test]
async fn a_certificate_without_a_tandem_role_is_denied_every_rpc() {
    let server = TestServer::start_unprivileged().await;
    let now = time::OffsetDateTime::now_utc();
    tandem_pki::issue_with(
        server.pki.path(),
        "mallory",
        "hacker",
        now - time::Duration::hours(1),
        now + time::Duration::days(1),
    )
    .unwrap();
    let mut client = server.client("mallory").await;
    let status = client.list(pb::ListJobsRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("OU"), "{}", status.message());
    let status = client
        .start(pb::StartJobRequest {
            command: "/bin/true".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(server.manager.list().is_empty(), "nothing may have started");
}

#[tokio::test]
async fn reflection_is_for_admins_and_health_for_everyone() {
    let server = TestServer::start_unprivileged().await;
    let alice = server.channel(&server.pki.client_tls("alice")).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(alice.clone());
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "tandem.v1.JobService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    // Reflection as an interviewer: refused before it reaches the service.
    let mut grpc = tonic::client::Grpc::new(alice);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    );
    let status = grpc
        .unary::<pb::ListJobsRequest, pb::ListJobsResponse, _>(
            tonic::Request::new(pb::ListJobsRequest {}),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
}

#[tokio::test]
async fn health_follows_what_the_daemon_reports() {
    let server = TestServer::start_unprivileged().await;
    let channel = server.channel(&server.pki.client_tls("admin")).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let overall = || tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    };
    // tandemd marks the server NOT_SERVING until tasks and SSH are up, then SERVING.
    server
        .health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let status = health.check(overall()).await.unwrap().into_inner().status();
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::NotServing
    );
    server
        .health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let status = health.check(overall()).await.unwrap().into_inner().status();
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}

#[tokio::test]
async fn a_stalled_handshake_does_not_block_other_clients() {
    let server = TestServer::start_unprivileged().await;
    // Connections that never send a byte: each holds only its own handshake task.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    let tls = server.pki.client_tls("admin");
    let config = tandem_client::client_config(&tls).unwrap();
    assert_eq!(attempt(&server, config).await, Ok(()));
    drop(stalled);
}
