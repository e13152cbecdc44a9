//! Who is calling, and what they may call: the identity from the client certificate and
//! the per-RPC permission table, checked for every request in one tower layer before any
//! service sees it. Paths without an entry are refused (deny by default).

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use tandem_pki::ApiRole;
use tonic::Status;

/// The caller, from the verified client certificate: CN = user, OU = role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiIdentity {
    /// Certificate CN.
    pub user: String,
    /// Certificate OU, if it names a tandem role.
    pub role: Option<ApiRole>,
}

impl ApiIdentity {
    /// Admins see and manage every job.
    pub fn is_admin(&self) -> bool {
        self.role == Some(ApiRole::Admin)
    }

    /// Whether this caller may see a job owned by `owner`.
    pub fn may_see(&self, owner: &str) -> bool {
        self.is_admin() || self.user == owner
    }
}

/// Per-connection information attached to every request.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The verified caller.
    pub identity: Arc<ApiIdentity>,
    /// The client's address.
    pub remote: SocketAddr,
}

/// The verified caller of a request (the permission layer already refused anyone else).
pub fn caller<T>(req: &tonic::Request<T>) -> Result<Arc<ApiIdentity>, Status> {
    req.extensions()
        .get::<PeerInfo>()
        .map(|p| Arc::clone(&p.identity))
        .ok_or_else(|| Status::unauthenticated("no verified client certificate"))
}

/// Who may call an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcAccess {
    /// Admins and interviewers; the service scopes what interviewers see to their own.
    AnyRole,
    /// Admins only.
    AdminOnly,
}

/// Every RPC the server answers and who may call it. The test `every_rpc_has_an_entry`
/// checks this against the service descriptors.
pub const PERMISSIONS: &[(&str, RpcAccess)] = &[
    ("/tandem.v1.JobService/Start", RpcAccess::AnyRole),
    ("/tandem.v1.JobService/Stop", RpcAccess::AnyRole),
    ("/tandem.v1.JobService/Status", RpcAccess::AnyRole),
    ("/tandem.v1.JobService/List", RpcAccess::AnyRole),
    ("/tandem.v1.JobService/Logs", RpcAccess::AnyRole),
    ("/tandem.v1.JobService/Attach", RpcAccess::AnyRole),
    ("/tandem.v1.TaskService/List", RpcAccess::AnyRole),
    ("/tandem.v1.TaskService/Show", RpcAccess::AnyRole),
    ("/tandem.v1.TaskService/Run", RpcAccess::AnyRole),
    ("/tandem.v1.TaskService/Check", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/Create", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/List", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/Show", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/End", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/Extend", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/Reset", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/Reschedule", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/SetAccess", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/SetLock", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/Check", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/Recording", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/Timeline", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/Hint", RpcAccess::AnyRole),
    ("/tandem.v1.SessionService/Note", RpcAccess::AnyRole),
    ("/tandem.v1.ServerService/Info", RpcAccess::AnyRole),
    ("/grpc.health.v1.Health/Check", RpcAccess::AnyRole),
    ("/grpc.health.v1.Health/Watch", RpcAccess::AnyRole),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        RpcAccess::AdminOnly,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        RpcAccess::AdminOnly,
    ),
];

/// Decides whether `peer` may call `path`.
pub fn check(path: &str, peer: Option<&PeerInfo>) -> Result<(), Status> {
    let Some(peer) = peer else {
        return Err(Status::unauthenticated("no verified client certificate"));
    };
    let identity = &peer.identity;
    let Some(role) = identity.role else {
        return Err(Status::permission_denied(format!(
            "certificate of {:?} has no tandem role (its OU must be `admin` or `interviewer`)",
            identity.user
        )));
    };
    match PERMISSIONS.iter().find(|(p, _)| *p == path) {
        None => Err(Status::permission_denied(format!(
            "{path} is not an RPC of this server"
        ))),
        Some((_, RpcAccess::AdminOnly)) if role != ApiRole::Admin => {
            Err(Status::permission_denied(format!(
                "{path} is for admins; {:?} is an {role}",
                identity.user
            )))
        }
        Some(_) => Ok(()),
    }
}

/// Longest status message sent to a client, in bytes (before percent-encoding). Messages
/// quote what was wrong; a longer one (a 1 MB field quoted back) is cut, with "…". Without
/// this bound a quoted field became a `grpc-message` header of megabytes, which clients'
/// HTTP/2 stacks refuse by closing the connection (GOAWAY), failing every call on it.
pub const MAX_STATUS_MESSAGE: usize = 512;

/// `response` with its status message (if any) cut to [`MAX_STATUS_MESSAGE`] bytes.
fn bound_status_message<B>(mut response: http::Response<B>) -> http::Response<B> {
    let long = response
        .headers()
        .get("grpc-message")
        .is_some_and(|m| m.len() > MAX_STATUS_MESSAGE);
    if !long {
        return response;
    }
    if let Some(status) = Status::from_header_map(response.headers()) {
        let mut message = status.message().to_string();
        if message.len() > MAX_STATUS_MESSAGE {
            let mut cut = MAX_STATUS_MESSAGE - '…'.len_utf8();
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let _ = Status::new(status.code(), message).add_header(response.headers_mut());
    }
    response
}

/// Tower layer applying [`check`] to every request (and bounding the status message of
/// every answer, see [`MAX_STATUS_MESSAGE`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct PermissionLayer;

impl<S> tower::Layer<S> for PermissionLayer {
    type Service = PermissionService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        PermissionService { inner }
    }
}

/// [`bound_status_message`] as a function pointer (the type of the mapped future).
type BoundMessage<B> = fn(http::Response<B>) -> http::Response<B>;

/// The service [`PermissionLayer`] wraps around the router.
#[derive(Debug, Clone)]
pub struct PermissionService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for PermissionService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        futures_util::future::MapOk<S::Future, BoundMessage<ResBody>>,
        std::future::Ready<Result<http::Response<ResBody>, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let peer = req.extensions().get::<PeerInfo>();
        match check(req.uri().path(), peer) {
            Ok(()) => futures_util::future::Either::Left(futures_util::TryFutureExt::map_ok(
                self.inner.call(req),
                bound_status_message as BoundMessage<ResBody>,
            )),
            Err(status) => {
                if let Some(peer) = peer {
                    tracing::info!(
                        user = %peer.identity.user,
                        remote = %peer.remote,
                        path = req.uri().path(),
                        "permission denied"
                    );
                }
                futures_util::future::Either::Right(std::future::ready(Ok(bound_status_message(
                    status.into_http(),
                ))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn every_rpc_has_an_entry() {
        let sets = [
            tandem_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut paths = Vec::new();
        for bytes in sets {
            let set = prost_types::FileDescriptorSet::decode(bytes).unwrap();
            for file in set.file {
                for service in &file.service {
                    for method in &service.method {
                        paths.push(format!(
                            "/{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        assert!(paths.len() >= 8, "{paths:?}");
        for path in &paths {
            assert!(
                PERMISSIONS.iter().any(|(p, _)| p == path),
                "{path} has no entry in PERMISSIONS"
            );
        }
        for (p, _) in PERMISSIONS {
            assert!(paths.contains(&p.to_string()), "stale entry {p}");
        }
    }

    #[test]
    fn status_messages_are_bounded() {
        // A field of 1 MB quoted back (what `hostname: "hhh…" must be …` did): the answer
        // keeps its code and the start of its message, cut at a character boundary.
        let long = format!(
            "hostname: {:?} must be 1-64 characters",
            "é".repeat(1 << 19)
        );
        let response =
            bound_status_message(Status::invalid_argument(long.clone()).into_http::<()>());
        let header = response.headers().get("grpc-message").unwrap();
        assert!(
            header.len() <= 3 * MAX_STATUS_MESSAGE,
            "{} bytes",
            header.len()
        );
        let status = Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().len() <= MAX_STATUS_MESSAGE);
        assert!(status.message().ends_with('…'));
        assert!(long.starts_with(status.message().trim_end_matches('…')));
        // Short messages are left alone.
        let response =
            bound_status_message(Status::not_found("job_id: no such job").into_http::<()>());
        let status = Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.message(), "job_id: no such job");
    }

    fn peer(user: &str, role: Option<ApiRole>) -> PeerInfo {
        PeerInfo {
            identity: Arc::new(ApiIdentity {
                user: user.into(),
                role,
            }),
            remote: "127.0.0.1:1".parse().unwrap(),
        }
    }

    #[test]
    fn roles_are_enforced() {
        let start = "/tandem.v1.JobService/Start";
        let reflect = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        let admin = peer("root", Some(ApiRole::Admin));
        let alice = peer("alice", Some(ApiRole::Interviewer));
        let nobody = peer("eve", None);
        assert!(check(start, Some(&admin)).is_ok());
        assert!(check(start, Some(&alice)).is_ok());
        assert_eq!(
            check(start, Some(&nobody)).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            check(start, None).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert!(check(reflect, Some(&admin)).is_ok());
        assert_eq!(
            check(reflect, Some(&alice)).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            check("/tandem.v1.JobService/Nope", Some(&admin))
                .unwrap_err()
                .code(),
            tonic::Code::PermissionDenied
        );
        assert!(alice.identity.may_see("alice") && !alice.identity.may_see("bob"));
        assert!(admin.identity.may_see("bob"));
    }
}
