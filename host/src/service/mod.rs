//! `wfhost serve`: one long-running host over one state database, running
//! many tenants' workflows side by side.
//!
//! - [`tenants`] reads the policy: API keys (hashed), allowed plugins,
//!   ceilings and concurrency per tenant;
//! - [`http`] is the JSON API over it;
//! - this module admits workflows (the tenant's plugins only, its ceilings,
//!   its cap on workflows in flight), runs each on a task of its own with
//!   attempts taking turns at one slot per core across tenants
//!   ([`FairScheduler`]), and at start resumes the workflows a stop or a
//!   crash cut off.
//!
//! Every record is keyed by tenant, and every lookup goes through the
//! caller's tenant, so a tenant cannot reach another's workflows, nor learn
//! that an id exists.

pub mod http;
pub mod tenants;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use thiserror::Error;

use tokio::sync::{Semaphore, oneshot};

use crate::executor::{
    Drain, FairScheduler, Observer, RunIdentity, RunMode, RunOptions, Workflow, cancel_stored,
    cores, new_workflow_id, stored_spec,
};
use crate::lock::lock;
use crate::report::{WorkflowReport, WorkflowStatus};
use crate::runtime::CancelToken;
use crate::runtime::Runtime;
use crate::spec::{self, WorkflowSpec};
use crate::store::{Store, StoreError, Usage, WorkflowRow};
pub use tenants::{Tenant, Tenants, key_hash};

/// What a request got wrong, or what went wrong serving it. The kind
/// decides the HTTP status; the message is the same the CLI would give.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub message: String,
}

/// The kinds of [`ServiceError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No API key, or one no tenant has.
    Unauthorized,
    /// No such workflow for this tenant (whether or not another has one).
    NotFound,
    /// The workflow or request is wrong: it would exit 2 on the CLI.
    InvalidInput,
    /// The tenant already has as many workflows in flight as it may.
    TooManyWorkflows,
    /// The workflow is already being run here.
    Conflict,
    /// The state database failed.
    Store,
}

impl ErrorKind {
    /// The kind's name in error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::TooManyWorkflows => "too_many_workflows",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Store => "store",
        }
    }
}

impl ServiceError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        Self::new(ErrorKind::Store, err.to_string())
    }
}

/// The service: the store, the runtime, the tenants, and the workflows in
/// flight per tenant.
pub struct Service {
    store: Store,
    runtime: Runtime,
    tenants: Tenants,
    in_flight: Mutex<HashMap<String, usize>>,
    /// One slot per core, taken in turn by the tenants with attempts ready.
    fair_share: Arc<FairScheduler>,
    /// The threads attempts run on, apart from those serving requests.
    attempt_pool: tokio::runtime::Handle,
    /// The workflows running here, by (tenant, id), to cancel them.
    running: Mutex<HashMap<(String, String), CancelToken>>,
    /// Stops new steps and waits for those under way, on shutdown.
    drain: Arc<Drain>,
    /// Each tenant's attempt slots, shared by all its workflows.
    tenant_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Service {
    /// A service whose attempts run on `attempt_pool` (a runtime with one
    /// thread per core, say), one slot per core shared fairly by tenants.
    pub fn new(
        store: Store,
        runtime: Runtime,
        tenants: Tenants,
        attempt_pool: tokio::runtime::Handle,
    ) -> Arc<Self> {
        Arc::new(Service {
            store,
            runtime,
            tenants,
            in_flight: Mutex::default(),
            fair_share: FairScheduler::new(cores()),
            attempt_pool,
            running: Mutex::default(),
            drain: Drain::new(),
            tenant_slots: Mutex::default(),
        })
    }

    /// The tenant whose API key is `key`.
    pub fn authenticate(&self, key: Option<&str>) -> Result<&Tenant, ServiceError> {
        key.and_then(|key| self.tenants.authenticate(key))
            .ok_or_else(|| {
                ServiceError::new(ErrorKind::Unauthorized, "a valid API key is required")
            })
    }

    /// The runtime a tenant's steps run in: the service's, under the
    /// tenant's ceilings.
    fn runtime_for(&self, tenant: &Tenant) -> Runtime {
        self.runtime.clone().with_ceilings(tenant.ceilings.clone())
    }

    /// Admits a workflow (a chain file's JSON) for `tenant` and starts it.
    /// Returns its row, and whether it started now (`false`: the id ran
    /// before, and this is its stored row).
    pub async fn submit(
        self: &Arc<Self>,
        tenant: &Tenant,
        body: &str,
    ) -> Result<(WorkflowRow, bool), ServiceError> {
        let spec = tenant_spec(tenant, body)?;
        let identity = RunIdentity {
            id: spec.id.clone().unwrap_or_else(new_workflow_id),
            tenant: tenant.name.clone(),
        };
        if let Some(row) = self.store.workflow(&identity.tenant, &identity.id)? {
            return Ok((row, false));
        }
        let workflow = Workflow::prepare(&self.runtime_for(tenant), spec)
            .await
            .map_err(|err| ServiceError::invalid(err.to_string()))?;
        let row = self
            .launch(tenant, workflow, identity, RunMode::Normal)
            .await?;
        Ok((row, true))
    }

    /// Admits `workflow` within `tenant`'s cap, starts it, and returns its
    /// row once it is on record, so that the caller's next request finds
    /// it. A workflow already running here is not started twice.
    async fn launch(
        self: &Arc<Self>,
        tenant: &Tenant,
        workflow: Workflow,
        identity: RunIdentity,
        mode: RunMode,
    ) -> Result<WorkflowRow, ServiceError> {
        let cancel = CancelToken::new();
        let key = (identity.tenant.clone(), identity.id.clone());
        {
            let mut running = lock(&self.running);
            if running.contains_key(&key) {
                return Err(ServiceError::new(
                    ErrorKind::Conflict,
                    format!("workflow {} is already running", identity.id),
                ));
            }
            self.admit(tenant)?;
            running.insert(key, cancel.clone());
        }
        self.start(tenant, workflow, identity, mode, cancel)
            .await
            .map_err(|_| ServiceError::new(ErrorKind::Store, "the workflow could not be recorded"))
    }

    /// The attempt slots all of `tenant`'s workflows share.
    fn slots_of(&self, tenant: &Tenant) -> Arc<Semaphore> {
        let mut slots = lock(&self.tenant_slots);
        let shared = slots
            .entry(tenant.name.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(tenant.max_running_steps)));
        Arc::clone(shared)
    }

    /// Counts a workflow in flight for `tenant`, within its cap.
    fn admit(&self, tenant: &Tenant) -> Result<(), ServiceError> {
        let mut in_flight = lock(&self.in_flight);
        let count = in_flight.entry(tenant.name.clone()).or_default();
        if *count >= tenant.max_workflows {
            return Err(ServiceError::new(
                ErrorKind::TooManyWorkflows,
                format!(
                    "tenant {} already has {} workflows in flight, its most",
                    tenant.name, tenant.max_workflows
                ),
            ));
        }
        *count += 1;
        Ok(())
    }

    /// Runs `workflow` (admitted and on the running list) on a task of its
    /// own; its slot in flight and its place on the list are given back
    /// when it ends. The receiver gets the workflow's row once it is
    /// recorded.
    fn start(
        self: &Arc<Self>,
        tenant: &Tenant,
        workflow: Workflow,
        identity: RunIdentity,
        mode: RunMode,
        cancel: CancelToken,
    ) -> oneshot::Receiver<WorkflowRow> {
        let runtime = self.runtime_for(tenant);
        let service = Arc::clone(self);
        let key = (identity.tenant.clone(), identity.id.clone());
        let options = RunOptions {
            concurrency: tenant.max_running_steps,
            fair_share: Some(Arc::clone(&self.fair_share)),
            attempt_pool: Some(self.attempt_pool.clone()),
            cancel,
            fuel_budget: tenant.max_workflow_fuel,
            drain: Some(Arc::clone(&self.drain)),
            shared_slots: Some(self.slots_of(tenant)),
        };
        let (recorded, on_record) = oneshot::channel();
        let observer = Recorded(Mutex::new(Some(recorded)));
        tokio::spawn(async move {
            let ended = workflow
                .run(
                    &runtime,
                    &service.store,
                    &identity,
                    mode,
                    &options,
                    &observer,
                )
                .await;
            if let Err(err) = ended {
                eprintln!(
                    "wfhost serve: workflow {} of {}: {err}",
                    identity.id, identity.tenant
                );
            }
            lock(&service.running).remove(&key);
            if let Some(count) = lock(&service.in_flight).get_mut(&identity.tenant) {
                *count = count.saturating_sub(1);
            }
        });
        on_record
    }

    /// The report of workflow `id` of `tenant`.
    pub fn report(&self, tenant: &Tenant, id: &str) -> Result<WorkflowReport, ServiceError> {
        self.store
            .report(&tenant.name, id)?
            .ok_or_else(|| not_found(id))
    }

    /// The workflows of `tenant`, optionally of one status.
    pub fn list(
        &self,
        tenant: &Tenant,
        status: Option<WorkflowStatus>,
    ) -> Result<Vec<WorkflowRow>, ServiceError> {
        Ok(self.store.workflows(Some(&tenant.name), status)?)
    }

    /// Cancels workflow `id` of `tenant`: steps not started never run and
    /// a running attempt is interrupted. Returns the row as it is now, and
    /// whether the workflow was running (a finished one is left as it is).
    pub async fn cancel(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<(WorkflowRow, bool), ServiceError> {
        let row = self
            .store
            .workflow(&tenant.name, id)?
            .ok_or_else(|| not_found(id))?;
        if row.status != WorkflowStatus::Running {
            return Ok((row, false));
        }
        let token = lock(&self.running)
            .get(&(tenant.name.clone(), id.to_string()))
            .cloned();
        match token {
            Some(token) => {
                token.cancel();
                Ok((row, true))
            }
            // On record as running but not running here: cut off, so
            // nothing to interrupt.
            None => Ok((cancel_stored(&self.store, row).await?, true)),
        }
    }

    /// Stops gracefully: no step starts from now on, and the steps under
    /// way get up to `grace` to finish and be committed. Workflows stay on
    /// record as running (cut off), for the next start to resume. Returns
    /// how many steps were still under way when the grace ran out.
    pub async fn stop(&self, grace: std::time::Duration) -> usize {
        self.drain.stop(grace).await
    }

    /// What `tenant`'s workflows have used.
    pub fn usage(&self, tenant: &Tenant) -> Result<Usage, ServiceError> {
        let usage = self.store.usage(Some(&tenant.name))?.pop();
        Ok(usage.unwrap_or_else(|| Usage {
            tenant: tenant.name.clone(),
            ..Usage::default()
        }))
    }

    /// Resumes workflow `id` of `tenant` if a stop or a crash cut it off
    /// (`resume`), or re-drives it from its failed step if it failed
    /// (`retry`). Returns its row, and whether it started now.
    pub async fn rerun(
        self: &Arc<Self>,
        tenant: &Tenant,
        id: &str,
        mode: RunMode,
    ) -> Result<(WorkflowRow, bool), ServiceError> {
        let row = self
            .store
            .workflow(&tenant.name, id)?
            .ok_or_else(|| not_found(id))?;
        let running_here = lock(&self.running).contains_key(&(tenant.name.clone(), id.to_string()));
        let wanted = match mode {
            RunMode::Normal => WorkflowStatus::Running,
            RunMode::RetryFailed => WorkflowStatus::Failed,
        };
        if row.status != wanted || running_here {
            return match mode {
                RunMode::Normal => Ok((row, false)),
                RunMode::RetryFailed => Err(ServiceError::invalid(format!(
                    "workflow {id} {}; only a failed workflow can be retried",
                    row.status.as_str()
                ))),
            };
        }
        let workflow = self
            .stored_workflow(tenant, &row)
            .await
            .map_err(|why| ServiceError::invalid(format!("workflow {id} cannot run: {why}")))?;
        let identity = RunIdentity {
            id: row.id.clone(),
            tenant: row.tenant.clone(),
        };
        let row = self.launch(tenant, workflow, identity, mode).await?;
        Ok((row, true))
    }

    /// The stored workflow of `row`, prepared under `tenant`'s policy.
    async fn stored_workflow(
        &self,
        tenant: &Tenant,
        row: &WorkflowRow,
    ) -> Result<Workflow, String> {
        let spec = stored_spec(&self.store, row).map_err(|err| err.to_string())?;
        Workflow::prepare(&self.runtime_for(tenant), spec)
            .await
            .map_err(|err| err.to_string())
    }

    /// Starts again every workflow a stop or a crash cut off, under its
    /// tenant's current policy. Returns how many were resumed.
    pub async fn resume_cut_off(self: &Arc<Self>) -> Result<usize, ServiceError> {
        let mut resumed = 0;
        for row in self.store.workflows(None, Some(WorkflowStatus::Running))? {
            let Some(tenant) = self.tenants.get(&row.tenant) else {
                eprintln!(
                    "wfhost serve: workflow {} belongs to tenant {}, which the policy no longer has; left as it is",
                    row.id, row.tenant
                );
                continue;
            };
            match self.stored_workflow(tenant, &row).await {
                Ok(workflow) => {
                    let identity = RunIdentity {
                        id: row.id.clone(),
                        tenant: row.tenant.clone(),
                    };
                    match self
                        .launch(tenant, workflow, identity, RunMode::Normal)
                        .await
                    {
                        Ok(_) => resumed += 1,
                        Err(err) => eprintln!(
                            "wfhost serve: workflow {} of {} cannot be resumed: {err}",
                            row.id, row.tenant
                        ),
                    }
                }
                Err(why) => eprintln!(
                    "wfhost serve: workflow {} of {} cannot be resumed: {why}",
                    row.id, row.tenant
                ),
            }
        }
        Ok(resumed)
    }
}

/// Passes a run's row on once it is recorded.
struct Recorded(Mutex<Option<oneshot::Sender<WorkflowRow>>>);

impl Observer for Recorded {
    fn workflow_recorded(&self, row: &WorkflowRow) {
        let sender = lock(&self.0).take();
        if let Some(sender) = sender {
            let _ = sender.send(row.clone());
        }
    }
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::new(ErrorKind::NotFound, format!("no workflow `{id}`"))
}

/// Reads a submitted chain file as `tenant`'s: it may name only the
/// tenant's plugins (all of them when it names none), which run from the
/// policy's files and hashes whatever the body says of them, and it may
/// not claim another tenant.
fn tenant_spec(tenant: &Tenant, body: &str) -> Result<WorkflowSpec, ServiceError> {
    let mut document: Value = serde_json::from_str(body)
        .map_err(|err| ServiceError::invalid(format!("malformed JSON: {err}")))?;
    let Some(fields) = document.as_object_mut() else {
        return Err(ServiceError::invalid(
            "at $: expected a chain file's object",
        ));
    };
    match fields.get("tenant") {
        Some(Value::String(name)) if name != &tenant.name => {
            return Err(ServiceError::invalid(format!(
                "at $.tenant: the workflow names tenant `{name}`, but the key is tenant `{}`'s",
                tenant.name
            )));
        }
        _ => {}
    }
    let named: Vec<String> = match fields.get("plugins") {
        None => tenant.plugins.keys().cloned().collect(),
        Some(Value::Object(plugins)) => plugins.keys().cloned().collect(),
        Some(_) => {
            return Err(ServiceError::invalid(
                "at $.plugins: expected an object of plugin names",
            ));
        }
    };
    let mut plugins = serde_json::Map::new();
    for name in named {
        let Some(allowed) = tenant.plugins.get(&name) else {
            return Err(ServiceError::invalid(format!(
                "at $.plugins.{name}: plugin `{name}` is not one tenant `{}` may use (it may use: {})",
                tenant.name,
                tenant
                    .plugins
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        plugins.insert(
            name,
            serde_json::json!({
                "path": allowed.path.display().to_string(),
                "sha256": allowed.sha256,
            }),
        );
    }
    fields.insert("plugins".into(), Value::Object(plugins));
    // The plugin paths are the policy's, which are absolute.
    spec::from_document(&document, Path::new("/"))
        .map_err(|issue| ServiceError::invalid(issue.to_string()))
}
