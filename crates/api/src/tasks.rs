//! `tandem.v1.TaskService`: the task catalog and task instances. Instances belong to the
//! user who started them: others' instance ids answer NOT_FOUND, like jobs.

use crate::auth::caller;
use crate::convert;
use std::sync::Arc;
use tandem_proto::v1 as pb;
use tandem_proto::v1::task_service_server::TaskService;
use tandem_scenario::{
    Catalog, CheckOutcome, Difficulty, Instance, InstanceState, Instances, ScenarioError, Task,
};
use tandem_worker::PtySize;
use tonic::{Request, Response, Status};

/// The task service.
#[derive(Debug, Clone)]
pub struct Tasks {
    /// Tasks offered.
    catalog: Arc<Catalog>,
    /// Running instances.
    instances: Instances,
}

impl Tasks {
    pub(crate) fn new(catalog: Arc<Catalog>, instances: Instances) -> Self {
        Self { catalog, instances }
    }

    fn task(&self, name: &str) -> Result<Arc<Task>, Status> {
        self.catalog
            .get(name)
            .ok_or_else(|| Status::not_found(format!("no task named {name:?}")))
    }

    /// The task as listed, with its warm pool.
    fn summary(&self, task: &Task) -> pb::TaskSummary {
        let mut s = summary(task);
        s.warm = self
            .instances
            .pool_status(&task.name)
            .map(|p| pb::WarmPool {
                target: p.target,
                ready: p.ready,
                starting: p.starting,
                error: p.error.unwrap_or_default(),
                retry_at: p.retry_at.map(prost_types::Timestamp::from),
            });
        s
    }
}

fn summary(task: &Task) -> pb::TaskSummary {
    let mut s = pb::TaskSummary {
        name: task.name.clone(),
        title: task.title.clone(),
        time_limit: prost_types::Duration::try_from(task.time_limit).ok(),
        description: task.description.clone(),
        ..Default::default()
    };
    s.set_difficulty(match task.difficulty {
        Difficulty::Easy => pb::Difficulty::Easy,
        Difficulty::Medium => pb::Difficulty::Medium,
        Difficulty::Hard => pb::Difficulty::Hard,
    });
    s
}

/// An instance as the API shows it.
pub fn instance(i: &Instance) -> pb::TaskInstance {
    let mut out = pb::TaskInstance {
        id: i.id.to_string(),
        task: i.task.name.clone(),
        owner: i.owner.clone(),
        shell_job_id: i.shell().map(|j| j.to_string()).unwrap_or_default(),
        setup_job_id: i.setup.map(|j| j.to_string()).unwrap_or_default(),
        created_at: Some(prost_types::Timestamp::from(i.created_at)),
        warm: i.warm,
        ..Default::default()
    };
    let state = match i.state() {
        InstanceState::SettingUp => pb::InstanceState::SettingUp,
        InstanceState::Ready => pb::InstanceState::Ready,
        InstanceState::Failed { reason } => {
            out.failure_reason = reason;
            pb::InstanceState::Failed
        }
        InstanceState::Ended => pb::InstanceState::Ended,
    };
    out.set_state(state);
    out
}

/// A check result as the API shows it.
pub fn check_response(result: tandem_scenario::CheckResult) -> pb::CheckTaskResponse {
    let mut out = pb::CheckTaskResponse {
        output: result.output,
        duration_ms: result.duration.as_millis() as u64,
        conditions: result
            .conditions
            .into_iter()
            .map(|c| pb::CheckCondition {
                name: c.name,
                passed: c.passed,
                reason: c.reason,
            })
            .collect(),
        ..Default::default()
    };
    out.set_outcome(match result.outcome {
        CheckOutcome::Passed => pb::CheckOutcome::Passed,
        CheckOutcome::Failed => pb::CheckOutcome::Failed,
        CheckOutcome::Error => pb::CheckOutcome::Error,
    });
    out
}

/// A scenario error as a gRPC status.
pub fn status_from(err: ScenarioError) -> Status {
    match err {
        ScenarioError::NoSuchTask(_) | ScenarioError::NotFound(_) => {
            Status::not_found(err.to_string())
        }
        ScenarioError::Job(e) => convert::status_from(e),
        ScenarioError::SetupFailed { .. }
        | ScenarioError::NotRunning(_)
        | ScenarioError::Write { .. } => Status::failed_precondition(err.to_string()),
        ScenarioError::Internal(_) => Status::internal(err.to_string()),
    }
}

#[tonic::async_trait]
impl TaskService for Tasks {
    async fn list(
        &self,
        _req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        Ok(Response::new(pb::ListTasksResponse {
            tasks: self
                .catalog
                .list()
                .iter()
                .map(|t| self.summary(t))
                .collect(),
        }))
    }

    async fn show(
        &self,
        req: Request<pb::ShowTaskRequest>,
    ) -> Result<Response<pb::ShowTaskResponse>, Status> {
        let task = self.task(&req.get_ref().name)?;
        let l = &task.limits;
        Ok(Response::new(pb::ShowTaskResponse {
            task: Some(self.summary(&task)),
            hints: task.hints.clone(),
            solution: task.solution.clone(),
            user: task.user.clone(),
            limits: Some(crate::convert::limits(l)),
            setup: task.setup.clone().unwrap_or_default(),
            check: task.check.clone(),
        }))
    }

    async fn run(
        &self,
        req: Request<pb::RunTaskRequest>,
    ) -> Result<Response<pb::RunTaskResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let task = self.task(&req.name)?;
        let size = match &req.terminal {
            Some(t) => convert::terminal_size("terminal", t)?,
            None => PtySize::default(),
        };
        let started = self
            .instances
            .start(task, &who.user, size)
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::RunTaskResponse {
            instance: Some(instance(&started)),
        }))
    }

    async fn check(
        &self,
        req: Request<pb::CheckTaskRequest>,
    ) -> Result<Response<pb::CheckTaskResponse>, Status> {
        let who = caller(&req)?;
        let id = convert::job_id("instance_id", &req.get_ref().instance_id)?;
        match self.instances.get(id) {
            Some(i) if who.may_see(&i.owner) => {}
            _ => return Err(status_from(ScenarioError::NotFound(id))),
        }
        let result = self.instances.check(id).await.map_err(status_from)?;
        Ok(Response::new(check_response(result)))
    }
}
