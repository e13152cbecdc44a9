//! `tandem.v1.SessionService` and `ServerService`. Sessions belong to their creator:
//! others' ids answer NOT_FOUND (admins see all).

use crate::auth::{ApiIdentity, caller};
use crate::jobs::BoxStream;
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;
use tandem_proto::v1 as pb;
use tandem_proto::v1::server_service_server::ServerService;
use tandem_proto::v1::session_service_server::SessionService;
use tandem_scenario::Catalog;
use tandem_session::{
    ClockStart, CreateSession, ParticipantAccess, Schedule, SessionError, SessionId, SessionRecord,
    Sessions,
};
use tonic::{Request, Response, Status};

/// Where and how the SSH front end is reached (for the commands given to people).
#[derive(Debug, Clone)]
pub struct SshInfo {
    /// `host:port` people connect to.
    pub address: String,
    /// Host key fingerprint (`SHA256:…`).
    pub fingerprint: String,
}

/// The session service.
#[derive(Debug, Clone)]
pub struct SessionsService {
    pub(crate) sessions: Sessions,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) ssh: SshInfo,
    /// `https://host:port` of the web front end, if it runs.
    pub(crate) web: Option<String>,
}

fn session_id(field: &str, text: &str) -> Result<SessionId, Status> {
    text.parse()
        .map_err(|_| Status::invalid_argument(format!("{field}: {text:?} is not a session id")))
}

fn status_from(err: SessionError) -> Status {
    match err {
        SessionError::NotFound(_) => Status::not_found(err.to_string()),
        SessionError::InvalidArgument(m) => Status::invalid_argument(m),
        SessionError::FailedPrecondition(m) => Status::failed_precondition(m),
        SessionError::Scenario(e) => crate::tasks::status_from(e),
        SessionError::Internal(m) => Status::internal(m),
    }
}

/// A point in time from the wire: seconds since 1970 with valid nanoseconds.
fn timestamp(field: &str, t: prost_types::Timestamp) -> Result<SystemTime, Status> {
    if t.seconds < 0 || !(0..1_000_000_000).contains(&t.nanos) {
        return Err(Status::invalid_argument(format!(
            "{field}: not a time after 1970"
        )));
    }
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::new(t.seconds as u64, t.nanos as u32))
        .ok_or_else(|| Status::invalid_argument(format!("{field}: too far in the future")))
}

fn duration(field: &str, d: Option<prost_types::Duration>) -> Result<Option<Duration>, Status> {
    match d {
        None => Ok(None),
        Some(d) if d.seconds >= 0 && d.nanos >= 0 => {
            Ok(Some(Duration::new(d.seconds as u64, d.nanos as u32)))
        }
        Some(_) => Err(Status::invalid_argument(format!(
            "{field}: must not be negative"
        ))),
    }
}

impl SessionsService {
    /// The record of session `id` if `who` may see it.
    fn visible(&self, who: &ApiIdentity, id: &str) -> Result<SessionRecord, Status> {
        let id = session_id("id", id)?;
        match self.sessions.record(id) {
            Some(r) if who.may_see(&r.created_by) => Ok(r),
            _ => Err(status_from(SessionError::NotFound(id))),
        }
    }

    fn summary(&self, r: &SessionRecord) -> pb::SessionSummary {
        let live = self.sessions.get(r.id);
        pb::SessionSummary {
            id: r.id.to_string(),
            task: r.task.clone(),
            created_by: r.created_by.clone(),
            created_at: Some(r.created_at.into()),
            expires_at: Some(
                live.as_ref()
                    .map_or(r.expires_at, |s| s.info().expires_at)
                    .into(),
            ),
            ended: r.ended.clone().unwrap_or_default(),
            instance_id: r.instance.map(|i| i.to_string()).unwrap_or_default(),
            locked: live.as_ref().is_some_and(|s| s.is_locked()),
            state: r.state(live.is_some()).to_string(),
            scheduled_at: r.scheduled_at.map(Into::into),
            started_at: live
                .as_ref()
                .map_or(r.started_at, |s| s.info().started_at)
                .map(Into::into),
        }
    }

    fn live(&self, who: &ApiIdentity, id: &str) -> Result<Arc<tandem_session::Session>, Status> {
        let record = self.visible(who, id)?;
        self.sessions
            .get(record.id)
            .ok_or_else(|| Status::failed_precondition(format!("session {id} has ended")))
    }

    fn command(&self, user: &str) -> String {
        let (host, port) = self
            .ssh
            .address
            .rsplit_once(':')
            .unwrap_or((self.ssh.address.as_str(), "22"));
        format!("ssh -p {port} {user}@{host}")
    }
}

#[tonic::async_trait]
impl SessionService for SessionsService {
    async fn create(
        &self,
        req: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let task = self
            .catalog
            .get(&req.task)
            .ok_or_else(|| Status::not_found(format!("task: no task named {:?}", req.task)))?;
        let clock = match pb::ClockStart::try_from(req.clock) {
            Ok(pb::ClockStart::FirstLogin) => ClockStart::FirstLogin,
            Ok(pb::ClockStart::At) => ClockStart::At,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "clock: {} is not a clock start",
                    req.clock
                )));
            }
        };
        let at = req.at.map(|t| timestamp("at", t)).transpose()?;
        let create = CreateSession {
            task,
            created_by: who.user.clone(),
            duration: duration("duration", req.duration)?,
            candidate_keys: req.candidate_keys,
            interviewer_keys: req.interviewer_keys,
        };
        let (record, tokens) = match at {
            Some(at) => self
                .sessions
                .schedule(create, Schedule { at, clock })
                .map_err(status_from)?,
            None => {
                let (session, tokens) = self.sessions.create(create).await.map_err(status_from)?;
                let record = self
                    .sessions
                    .record(session.id)
                    .ok_or_else(|| Status::internal("session record missing"))?;
                (record, tokens)
            }
        };
        Ok(Response::new(pb::CreateSessionResponse {
            session: Some(self.summary(&record)),
            ssh: Some(pb::SessionLogins {
                candidate: self.command(&tokens.candidate),
                interviewer: self.command(&tokens.interviewer),
                observer: self.command(&tokens.observer),
            }),
            web: self
                .web
                .as_deref()
                .map(|base| web_links(base, &record.id, &tokens)),
            tokens: Some(pb::SessionLogins {
                candidate: tokens.candidate,
                interviewer: tokens.interviewer,
                observer: tokens.observer,
            }),
        }))
    }

    async fn list(
        &self,
        req: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let who = caller(&req)?;
        let sessions = self
            .sessions
            .records()
            .iter()
            .filter(|r| who.may_see(&r.created_by))
            .map(|r| self.summary(r))
            .collect();
        Ok(Response::new(pb::ListSessionsResponse { sessions }))
    }

    async fn show(
        &self,
        req: Request<pb::ShowSessionRequest>,
    ) -> Result<Response<pb::ShowSessionResponse>, Status> {
        let who = caller(&req)?;
        let record = self.visible(&who, &req.get_ref().id)?;
        let live = self.sessions.get(record.id);
        let participants = live
            .as_ref()
            .map(|s| {
                s.participants()
                    .iter()
                    .map(|p| {
                        let size = p.size();
                        pb::Participant {
                            number: p.number,
                            role: p.role.to_string(),
                            name: p.name.clone(),
                            access: match p.access() {
                                ParticipantAccess::Writer => "writer".into(),
                                ParticipantAccess::Observer => "observer".into(),
                            },
                            from: p.from.map(|a| a.to_string()).unwrap_or_default(),
                            connected_since: Some(p.joined_at.into()),
                            window: Some(pb::TerminalSize {
                                rows: size.rows.into(),
                                cols: size.cols.into(),
                            }),
                            via: p.via.to_string(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let terminal = live.as_ref().map(|s| {
            let t = s.terminal_size();
            pb::TerminalSize {
                rows: t.rows.into(),
                cols: t.cols.into(),
            }
        });
        Ok(Response::new(pb::ShowSessionResponse {
            session: Some(self.summary(&record)),
            participants,
            terminal,
        }))
    }

    async fn end(
        &self,
        req: Request<pb::EndSessionRequest>,
    ) -> Result<Response<pb::EndSessionResponse>, Status> {
        let who = caller(&req)?;
        let record = self.visible(&who, &req.get_ref().id)?;
        let open = self.sessions.get(record.id).is_some();
        let reason = if record.state(open) == "scheduled" {
            format!("{} by {}", tandem_session::CANCELLED, who.user)
        } else {
            format!("ended by {}", who.user)
        };
        self.sessions
            .end(record.id, &reason)
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::EndSessionResponse {}))
    }

    async fn reschedule(
        &self,
        req: Request<pb::RescheduleSessionRequest>,
    ) -> Result<Response<pb::RescheduleSessionResponse>, Status> {
        let who = caller(&req)?;
        let record = self.visible(&who, &req.get_ref().id)?;
        let at = req
            .get_ref()
            .at
            .ok_or_else(|| Status::invalid_argument("at: give the new start"))
            .and_then(|t| timestamp("at", t))?;
        let record = self
            .sessions
            .reschedule(record.id, at)
            .map_err(status_from)?;
        Ok(Response::new(pb::RescheduleSessionResponse {
            session: Some(self.summary(&record)),
        }))
    }

    async fn reset(
        &self,
        req: Request<pb::ResetSessionRequest>,
    ) -> Result<Response<pb::ResetSessionResponse>, Status> {
        let who = caller(&req)?;
        let record = self.visible(&who, &req.get_ref().id)?;
        let instance = self
            .sessions
            .reset(record.id, &who.user)
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::ResetSessionResponse {
            instance: Some(crate::tasks::instance(&instance)),
        }))
    }

    async fn extend(
        &self,
        req: Request<pb::ExtendSessionRequest>,
    ) -> Result<Response<pb::ExtendSessionResponse>, Status> {
        let who = caller(&req)?;
        let record = self.visible(&who, &req.get_ref().id)?;
        let by = duration("by", req.get_ref().by)?
            .filter(|d| !d.is_zero())
            .ok_or_else(|| Status::invalid_argument("by: give a positive duration, e.g. 15m"))?;
        let expires = self.sessions.extend(record.id, by).map_err(status_from)?;
        Ok(Response::new(pb::ExtendSessionResponse {
            expires_at: Some(expires.into()),
        }))
    }

    async fn set_access(
        &self,
        req: Request<pb::SetAccessRequest>,
    ) -> Result<Response<pb::SetAccessResponse>, Status> {
        let who = caller(&req)?;
        let session = self.live(&who, &req.get_ref().id)?;
        let access = match req.get_ref().access.as_str() {
            "observer" => ParticipantAccess::Observer,
            "writer" => ParticipantAccess::Writer,
            other => {
                return Err(Status::invalid_argument(format!(
                    "access: {other:?} is not observer or writer"
                )));
            }
        };
        if !session.set_access(req.get_ref().participant, access, &who.user) {
            return Err(Status::not_found(format!(
                "participant: no participant #{} is connected",
                req.get_ref().participant
            )));
        }
        Ok(Response::new(pb::SetAccessResponse {}))
    }

    async fn set_lock(
        &self,
        req: Request<pb::SetLockRequest>,
    ) -> Result<Response<pb::SetLockResponse>, Status> {
        let who = caller(&req)?;
        let session = self.live(&who, &req.get_ref().id)?;
        session.set_locked(req.get_ref().locked, &who.user);
        Ok(Response::new(pb::SetLockResponse {}))
    }

    async fn check(
        &self,
        req: Request<pb::SessionCheckRequest>,
    ) -> Result<Response<pb::CheckTaskResponse>, Status> {
        let who = caller(&req)?;
        let session = self.live(&who, &req.get_ref().id)?;
        let result = self
            .sessions
            .check(session.id, &who.user)
            .await
            .map_err(status_from)?;
        Ok(Response::new(crate::tasks::check_response(result)))
    }

    async fn timeline(
        &self,
        req: Request<pb::SessionTimelineRequest>,
    ) -> Result<Response<pb::SessionTimelineResponse>, Status> {
        let who = caller(&req)?;
        let record = self.visible(&who, &req.get_ref().id)?;
        let timeline = self.sessions.timeline(record.id).map_err(status_from)?;
        // As the session's task had them (recorded at its start); for a session recorded
        // before that was, the task's as it is now.
        let hints_total = timeline.hints_total.map_or_else(
            || {
                self.catalog
                    .get(&record.task)
                    .map_or(0, |t| t.hints.len() as u32)
            },
            |n| n as u32,
        );
        Ok(Response::new(crate::timeline::response(
            self.summary(&record),
            timeline,
            hints_total,
        )))
    }

    async fn hint(
        &self,
        req: Request<pb::SessionHintRequest>,
    ) -> Result<Response<pb::SessionHintResponse>, Status> {
        let who = caller(&req)?;
        let session = self.live(&who, &req.get_ref().id)?;
        let hint = self
            .sessions
            .hint(session.id, &who.user)
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::SessionHintResponse {
            number: hint.number as u32,
            total: hint.total as u32,
            text: hint.text,
        }))
    }

    async fn note(
        &self,
        req: Request<pb::SessionNoteRequest>,
    ) -> Result<Response<pb::SessionNoteResponse>, Status> {
        let who = caller(&req)?;
        let session = self.live(&who, &req.get_ref().id)?;
        self.sessions
            .note(session.id, &who.user, &req.get_ref().text)
            .map_err(status_from)?;
        Ok(Response::new(pb::SessionNoteResponse {}))
    }

    type RecordingStream = BoxStream<pb::RecordingChunk>;

    async fn recording(
        &self,
        req: Request<pb::RecordingRequest>,
    ) -> Result<Response<Self::RecordingStream>, Status> {
        let who = caller(&req)?;
        let record = self.visible(&who, &req.get_ref().id)?;
        let path = self.sessions.dir(record.id).join("recording.cast");
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Status::not_found(format!("recording of {}: {e}", record.id)))?;
        // The recording as it stands now: a live session's later output is not waited for.
        let len = file
            .metadata()
            .await
            .map_err(|e| Status::internal(format!("recording of {}: {e}", record.id)))?
            .len();
        Ok(Response::new(Box::pin(recording_chunks(file, len))))
    }
}

/// Chunks of a recording read from its file as the client takes them: however many ask
/// for one at the same time, the server holds a chunk each, not a copy of the file.
fn recording_chunks(
    file: tokio::fs::File,
    len: u64,
) -> impl futures_util::Stream<Item = Result<pb::RecordingChunk, Status>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    const CHUNK: usize = 64 * 1024;
    futures_util::stream::unfold(Some((file, len)), |state| async move {
        let (mut file, left) = state?;
        if left == 0 {
            return None;
        }
        let want = CHUNK.min(usize::try_from(left).unwrap_or(CHUNK));
        let mut data = vec![0; want];
        match file.read(&mut data).await {
            // Cut short under us (never, for a recording): what was there has been sent.
            Ok(0) => None,
            Ok(n) => {
                data.truncate(n);
                let next = Some((file, left - n as u64));
                Some((Ok(pb::RecordingChunk { data }), next))
            }
            Err(e) => Some((
                Err(Status::internal(format!("reading the recording: {e}"))),
                None,
            )),
        }
    })
}

/// The page links of a new session on the web front end at `base` (the route
/// `/s/<id>/` of `tandem-web`; the token in the fragment, which browsers never send).
/// None for the candidate, who uses ssh.
fn web_links(base: &str, id: &SessionId, tokens: &tandem_session::Tokens) -> pb::WebLinks {
    let base = base.trim_end_matches('/');
    pb::WebLinks {
        interviewer: format!("{base}/s/{id}/#{}", tokens.interviewer),
        observer: format!("{base}/s/{id}/#{}", tokens.observer),
    }
}

/// The server info service.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub(crate) ssh: SshInfo,
}

#[tonic::async_trait]
impl ServerService for ServerInfo {
    async fn info(
        &self,
        _req: Request<pb::ServerInfoRequest>,
    ) -> Result<Response<pb::ServerInfoResponse>, Status> {
        Ok(Response::new(pb::ServerInfoResponse {
            ssh_host_key_fingerprint: self.ssh.fingerprint.clone(),
            ssh_address: self.ssh.address.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }
}
