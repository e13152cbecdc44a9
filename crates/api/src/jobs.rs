//! `tandem.v1.JobService` over the worker. Interviewers see and touch only their own jobs:
//! anyone else's id answers NOT_FOUND, exactly like an id that does not exist.

use crate::auth::{ApiIdentity, caller};
use crate::convert::{self, status_from};
use crate::streams::{StreamGuard, StreamTracker};
use futures_util::Stream;
use std::pin::Pin;

use tandem_proto::v1 as pb;
use tandem_proto::v1::job_service_server::JobService;
use tandem_worker::{JobId, JobInfo, JobManager, OutputReader};
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

/// A boxed server stream.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The job service.
#[derive(Debug, Clone)]
pub struct Jobs {
    /// The worker.
    manager: JobManager,
    /// Counts live streams (logs, attach) so tests can see none is left behind.
    streams: StreamTracker,
    /// Turns true when the server shuts down; live streams end then.
    shutdown: watch::Receiver<bool>,
    /// Live sessions: their sandboxes and terminals are reached only through them.
    sessions: Option<tandem_session::Sessions>,
}

impl Jobs {
    pub(crate) fn new(
        manager: JobManager,
        streams: StreamTracker,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            manager,
            streams,
            shutdown,
            sessions: None,
        }
    }

    /// Refuses Attach and Stop on the jobs of `sessions`' live sessions.
    pub(crate) fn with_sessions(mut self, sessions: Option<tandem_session::Sessions>) -> Self {
        self.sessions = sessions;
        self
    }

    /// FAILED_PRECONDITION when `job` is a live session's sandbox or terminal: every byte
    /// into a session's terminal goes through the session (its roles, lock and
    /// recording), and its sandbox ends with the session's own verbs.
    fn not_a_session_job(&self, job: JobId, verb: &str) -> Result<(), Status> {
        let Some(session) = self.sessions.as_ref().and_then(|s| s.session_of_job(job)) else {
            return Ok(());
        };
        Err(Status::failed_precondition(format!(
            "job {job} belongs to session {session}: {verb} it through the session \
             (its ssh login to type; `tandem session reset` or `end` to stop it)"
        )))
    }

    /// The job `id` if `caller` may see it; NOT_FOUND otherwise (existence is not leaked).
    fn visible(&self, caller: &ApiIdentity, field: &str, id: &str) -> Result<JobInfo, Status> {
        let id = convert::job_id(field, id)?;
        match self.manager.info(id) {
            Ok(info) if caller.may_see(&info.spec.owner) => Ok(info),
            Ok(_) => Err(status_from(tandem_worker::JobError::NotFound(id))),
            Err(e) => Err(status_from(e)),
        }
    }
}

#[tonic::async_trait]
impl JobService for Jobs {
    async fn start(
        &self,
        req: Request<pb::StartJobRequest>,
    ) -> Result<Response<pb::StartJobResponse>, Status> {
        let who = caller(&req)?;
        let spec = convert::spec_from_request(req.into_inner(), &who.user)?;
        let command = spec.command.clone();
        let id = self.manager.start(spec).await.map_err(status_from)?;
        tracing::info!(job = %id, user = %who.user, %command, "job started");
        Ok(Response::new(pb::StartJobResponse {
            job_id: id.to_string(),
        }))
    }

    async fn stop(
        &self,
        req: Request<pb::StopJobRequest>,
    ) -> Result<Response<pb::StopJobResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let info = self.visible(&who, "job_id", &req.job_id)?;
        let grace = convert::grace(req.grace)?;
        self.not_a_session_job(info.id, "stop")?;
        tracing::info!(job = %info.id, user = %who.user, ?grace, "job stop requested");
        self.manager
            .stop(info.id, grace)
            .await
            .map_err(status_from)?;
        let info = self.manager.info(info.id).map_err(status_from)?;
        Ok(Response::new(pb::StopJobResponse {
            job: Some(convert::job(&info)),
        }))
    }

    async fn status(
        &self,
        req: Request<pb::JobStatusRequest>,
    ) -> Result<Response<pb::JobStatusResponse>, Status> {
        let who = caller(&req)?;
        let info = self.visible(&who, "job_id", &req.get_ref().job_id)?;
        Ok(Response::new(pb::JobStatusResponse {
            job: Some(convert::job(&info)),
        }))
    }

    async fn list(
        &self,
        req: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let who = caller(&req)?;
        let jobs = self
            .manager
            .list()
            .iter()
            .filter(|info| who.may_see(&info.spec.owner))
            .map(convert::job)
            .collect();
        Ok(Response::new(pb::ListJobsResponse { jobs }))
    }

    type LogsStream = BoxStream<pb::LogsResponse>;

    async fn logs(
        &self,
        req: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let info = self.visible(&who, "job_id", &req.job_id)?;
        let reader = self
            .manager
            .output_from(info.id, req.offset)
            .map_err(status_from)?;
        // Without follow: what exists now, then the end.
        let end = (!req.follow).then_some(info.status.output_bytes);
        let state = LogsState {
            reader,
            end,
            shutdown: self.shutdown.clone(),
            done: false,
            _guard: self.streams.guard(),
        };
        let stream = futures_util::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            if st.end.is_some_and(|end| st.reader.offset() >= end) {
                return None;
            }
            let offset = st.reader.offset();
            let next = tokio::select! {
                chunk = st.reader.next_chunk() => Some(chunk),
                _ = st.shutdown.wait_for(|s| *s) => None,
            };
            let Some(next) = next else {
                st.done = true;
                return Some((Err(shutting_down()), st));
            };
            match next {
                Ok(Some(mut data)) => {
                    if let Some(end) = st.end {
                        data.truncate((end - offset).min(data.len() as u64) as usize);
                    }
                    Some((
                        Ok(pb::LogsResponse {
                            offset,
                            data: data.to_vec(),
                        }),
                        st,
                    ))
                }
                Ok(None) => None,
                Err(e) => {
                    st.done = true;
                    Some((Err(Status::internal(format!("reading output: {e}"))), st))
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type AttachStream = BoxStream<pb::AttachResponse>;

    async fn attach(
        &self,
        req: Request<Streaming<pb::AttachRequest>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let who = caller(&req)?;
        let mut inbound = req.into_inner();
        let open = match inbound.message().await? {
            Some(pb::AttachRequest {
                event: Some(pb::attach_request::Event::Open(open)),
            }) => open,
            _ => {
                return Err(Status::invalid_argument(
                    "open: the first attach message must be `open` with the job id",
                ));
            }
        };
        let info = self.visible(&who, "open.job_id", &open.job_id)?;
        self.not_a_session_job(info.id, "reach")?;
        if info.spec.pty.is_none() {
            return Err(Status::failed_precondition(format!(
                "job {} has no terminal (start it with a terminal, or read its output with Logs)",
                info.id
            )));
        }
        let id = info.id;
        let reader = self
            .manager
            .output_from(id, open.output_offset)
            .map_err(status_from)?;
        tracing::info!(job = %id, user = %who.user, "attached to job");
        let input = tokio::spawn(forward_input(self.manager.clone(), id, inbound));
        let state = AttachState {
            reader,
            manager: self.manager.clone(),
            id,
            shutdown: self.shutdown.clone(),
            done: false,
            _input: AbortOnDrop(input),
            _guard: self.streams.guard(),
        };
        let stream = futures_util::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            let next = tokio::select! {
                chunk = st.reader.next_chunk() => Some(chunk),
                _ = st.shutdown.wait_for(|s| *s) => None,
            };
            let Some(next) = next else {
                st.done = true;
                return Some((Err(shutting_down()), st));
            };
            let event = match next {
                Ok(Some(data)) => pb::attach_response::Event::Output(data.to_vec()),
                Ok(None) => {
                    st.done = true;
                    // The output is complete once the job's processes are gone; the final
                    // state follows when its cgroup is cleaned up.
                    let _ = st.manager.wait(st.id).await;
                    let info = match st.manager.info(st.id) {
                        Ok(info) => info,
                        Err(e) => return Some((Err(status_from(e)), st)),
                    };
                    pb::attach_response::Event::Ended(convert::job(&info))
                }
                Err(e) => {
                    st.done = true;
                    return Some((Err(Status::internal(format!("reading output: {e}"))), st));
                }
            };
            Some((Ok(pb::AttachResponse { event: Some(event) }), st))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

fn shutting_down() -> Status {
    Status::unavailable("tandemd is shutting down")
}

/// Applies the client's input and resizes to the job until the client stops sending (or
/// goes away). Owned by the attach stream, which aborts it when dropped.
async fn forward_input(manager: JobManager, id: JobId, mut inbound: Streaming<pb::AttachRequest>) {
    while let Ok(Some(msg)) = inbound.message().await {
        let result = match msg.event {
            Some(pb::attach_request::Event::Input(bytes)) => manager.write_input(id, &bytes).await,
            Some(pb::attach_request::Event::Resize(size)) => {
                match convert::terminal_size("resize", &size) {
                    Ok(size) => manager.resize(id, size),
                    Err(status) => {
                        tracing::debug!(job = %id, %status, "ignored a bad resize");
                        Ok(())
                    }
                }
            }
            Some(pb::attach_request::Event::Open(_)) | None => Ok(()),
        };
        if result.is_err() {
            // The job ended: nothing more to type into.
            return;
        }
    }
}

/// State of one Logs stream.
struct LogsState {
    reader: OutputReader,
    /// Stop here (no follow), or follow to the end of the job.
    end: Option<u64>,
    shutdown: watch::Receiver<bool>,
    done: bool,
    _guard: StreamGuard,
}

/// State of one Attach stream.
struct AttachState {
    reader: OutputReader,
    manager: JobManager,
    id: JobId,
    shutdown: watch::Receiver<bool>,
    done: bool,
    _input: AbortOnDrop,
    _guard: StreamGuard,
}

/// Aborts the task when dropped: ties the input task's life to its stream.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
