//! `wfhost serve`: one long-running host over one state database, running
//! many tenants' workflows side by side.
//!
//! - [`tenants`] reads the policy: API keys (hashed), allowed plugins,
//!   ceilings and concurrency per tenant;
//! - [`http`] is the JSON API over it;
//! - `admission` counts each tenant's workflows in flight, within its cap;
//! - [`metrics`] counts what ran, for `/metrics`;
//! - `error` is what a request got wrong, `reading` what the service
//!   reads for its callers;
//! - this module begins workflows through the [`Host`] under the tenant's
//!   policy (its plugins only, its ceilings), runs each on a task of its own
//!   with attempts taking turns at one slot per core across tenants
//!   ([`FairScheduler`]), and at start resumes the workflows a stop or a
//!   crash cut off.
//!
//! Every record is keyed by tenant, and every lookup goes through the
//! caller's tenant, so a tenant cannot reach another's workflows, nor learn
//! that an id exists.

pub mod http;
pub mod metrics;
pub mod tenants;

mod admission;
mod dashboard;
mod error;
mod events;
mod extract;
mod reading;
mod schedules;
mod storage;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, oneshot};

use crate::executor::{Drain, FairScheduler, Observer, RunIdentity, RunOptions, cores};
use crate::lifecycle::{Begun, Cancellation, Host, Intent, Ready, new_workflow_id};
use crate::lock::lock;
use crate::records::{StepRecord, WorkflowReport, WorkflowRow, WorkflowStatus};
use crate::runtime::Runtime;
use crate::spec::{self, WorkflowSpec};
use crate::store::Store;
use admission::{Admission, Admitted};
use error::with_causes;
pub use error::{ErrorKind, ServiceError};
use metrics::Metrics;
use storage::StorageQuota;
pub use tenants::{Tenant, Tenants, key_hash};

/// The service: the host, the tenants, and the workflows in flight per
/// tenant.
pub struct Service {
    host: Host,
    /// The policy: replaced whole when it is read again (SIGHUP), so a
    /// request sees one policy from its start to its end.
    tenants: std::sync::RwLock<Arc<Tenants>>,
    admission: Admission,
    storage: StorageQuota,
    /// One slot per core, taken in turn by the tenants with attempts ready.
    fair_share: Arc<FairScheduler>,
    /// The threads attempts run on, apart from those serving requests.
    attempt_pool: tokio::runtime::Handle,
    /// Stops new steps and waits for those under way, on shutdown.
    drain: Arc<Drain>,
    /// Each tenant's attempt slots, shared by all its workflows, with how
    /// many there are.
    tenant_slots: Mutex<HashMap<String, (usize, Arc<Semaphore>)>>,
    /// What ran, counted for `/metrics`.
    metrics: Arc<Metrics>,
    /// Each workflow this process ran, as it ends.
    ended: tokio::sync::broadcast::Sender<RunIdentity>,
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
            host: Host::new(runtime, store),
            tenants: std::sync::RwLock::new(Arc::new(tenants)),
            admission: Admission::default(),
            storage: StorageQuota::default(),
            fair_share: FairScheduler::new(cores()),
            attempt_pool,
            drain: Drain::new(),
            tenant_slots: Mutex::default(),
            metrics: Arc::default(),
            ended: tokio::sync::broadcast::channel(ENDED_BACKLOG).0,
        })
    }

    /// The policy as it is now.
    pub fn tenants(&self) -> Arc<Tenants> {
        crate::lock::read(&self.tenants).clone()
    }

    /// Takes `tenants` as the policy from the next request on; requests
    /// and workflows under way keep the one they started with. A tenant
    /// whose `max_running_steps` changed gets slots of the new number for
    /// the workflows it starts from then on (those running keep theirs
    /// until they end).
    pub fn replace_tenants(&self, tenants: Tenants) {
        lock(&self.tenant_slots).retain(|name, (count, _)| {
            tenants
                .get(name)
                .is_some_and(|tenant| tenant.max_running_steps == *count)
        });
        *crate::lock::write(&self.tenants) = Arc::new(tenants);
    }

    /// Who calls with `key`: a tenant, or the operator (the policy's
    /// `[admin]` key), who may name any tenant as `tenant`. A tenant
    /// naming another is refused as if that tenant did not exist.
    pub fn caller(&self, key: Option<&str>, tenant: Option<&str>) -> Result<Scope, ServiceError> {
        let tenants = self.tenants();
        if key.is_some_and(|key| tenants.is_admin(key)) {
            return match tenant {
                None => Ok(Scope::All),
                Some(name) => tenants
                    .resolve(name)
                    .map(|tenant| Scope::Tenant(Box::new(tenant)))
                    .ok_or_else(|| {
                        ServiceError::new(ErrorKind::NotFound, format!("no tenant `{name}`"))
                    }),
            };
        }
        let own = self.authenticate(key)?;
        match tenant {
            Some(name) if name != own.name => Err(ServiceError::new(
                ErrorKind::NotFound,
                format!("no tenant `{name}`"),
            )),
            _ => Ok(Scope::Tenant(Box::new(own.clone()))),
        }
    }

    /// The tenant whose API key is `key`.
    pub fn authenticate(&self, key: Option<&str>) -> Result<Tenant, ServiceError> {
        key.and_then(|key| self.tenants().authenticate(key).cloned())
            .ok_or_else(|| {
                ServiceError::new(ErrorKind::Unauthorized, "a valid API key is required")
            })
    }

    /// The workflow a chain file's JSON submits for `tenant`, and the
    /// identity it runs under (a new id when the file names none), once
    /// the tenant has room for it in the state file.
    fn submitted(
        &self,
        tenant: &Tenant,
        body: &str,
    ) -> Result<(WorkflowSpec, RunIdentity), ServiceError> {
        let spec = tenant_spec(tenant, body)?;
        self.storage.check(self.host.store(), tenant)?;
        let identity = RunIdentity {
            id: spec.id.clone().unwrap_or_else(new_workflow_id),
            tenant: tenant.name.clone(),
        };
        Ok((spec, identity))
    }

    /// Admits a workflow (a chain file's JSON) for `tenant` and starts it.
    /// Returns its row, and whether it started now (`false`: the id ran
    /// before, or runs now, and this is its row).
    pub async fn submit(
        self: &Arc<Self>,
        tenant: &Tenant,
        body: &str,
    ) -> Result<(WorkflowRow, bool), ServiceError> {
        let (spec, identity) = self.submitted(tenant, body)?;
        self.begin(tenant, identity, Intent::Start(spec), true)
            .await
    }

    /// Admits and starts a workflow as [`Service::submit`] does, and
    /// returns its report once it ends, or as it is when `wait` has passed.
    /// Nobody hears of its start before that, so the start is not flushed
    /// on its own before the first step ([`RunOptions::start_announced`]):
    /// the end's commit carries it, or, when the wait is over first, a
    /// commit made then, before the report is read.
    pub async fn submit_and_wait(
        self: &Arc<Self>,
        tenant: &Tenant,
        body: &str,
        wait: std::time::Duration,
    ) -> Result<WorkflowReport, ServiceError> {
        let (spec, identity) = self.submitted(tenant, body)?;
        let deadline = tokio::time::Instant::now() + wait;
        // Listening before it starts: its end is not missed.
        let mut ended = self.ended.subscribe();
        let (_, started) = self
            .begin(tenant, identity.clone(), Intent::Start(spec), false)
            .await?;
        if started {
            if heard_end(&mut ended, &identity, deadline).await {
                return Ok(self.host.report(&identity)?);
            }
            let store = self.host.store();
            store.sync(&identity.tenant, &identity.id).await?;
        }
        self.report_by(&identity, deadline, ended).await
    }

    /// Resumes workflow `id` of `tenant` if a stop or a crash cut it off.
    /// Returns its row, and whether it started now.
    pub async fn resume(
        self: &Arc<Self>,
        tenant: &Tenant,
        id: &str,
    ) -> Result<(WorkflowRow, bool), ServiceError> {
        let identity = RunIdentity::new(&tenant.name, id);
        self.begin(tenant, identity, Intent::Resume, true).await
    }

    /// Re-drives workflow `id` of `tenant` from its failed step. Returns
    /// its row, and whether it started now.
    pub async fn retry(
        self: &Arc<Self>,
        tenant: &Tenant,
        id: &str,
    ) -> Result<(WorkflowRow, bool), ServiceError> {
        let identity = RunIdentity::new(&tenant.name, id);
        self.begin(tenant, identity, Intent::retry(), true).await
    }

    /// Asks the host what `intent` does with `identity` under `tenant`'s
    /// ceilings, and starts what is ready; `announced` says whether the
    /// caller tells anyone of the start before the workflow ends.
    async fn begin(
        self: &Arc<Self>,
        tenant: &Tenant,
        identity: RunIdentity,
        intent: Intent,
        announced: bool,
    ) -> Result<(WorkflowRow, bool), ServiceError> {
        let begun = self
            .host
            .begin_within(identity, intent, &tenant.ceilings)
            .await?;
        match begun {
            Begun::Ready(ready) => Ok((self.launch(tenant, *ready, announced).await?, true)),
            Begun::Finished(row) | Begun::Running(row) => Ok((row, false)),
        }
    }

    /// Admits `ready` within `tenant`'s cap, starts it, and returns its row
    /// once it is on record, so that the caller's next request finds it.
    async fn launch(
        self: &Arc<Self>,
        tenant: &Tenant,
        ready: Ready,
        announced: bool,
    ) -> Result<WorkflowRow, ServiceError> {
        let admitted = self
            .admission
            .admit(&tenant.name, tenant.max_workflows)
            .map_err(|count| {
                ServiceError::new(
                    ErrorKind::TooManyWorkflows,
                    format!(
                        "tenant {} already has {count} workflows in flight, its most",
                        tenant.name
                    ),
                )
            })?;
        self.start(tenant, ready, admitted, announced)
            .await
            .map_err(|_| ServiceError::new(ErrorKind::Store, "the workflow could not be recorded"))
    }

    /// The attempt slots all of `tenant`'s workflows share.
    fn slots_of(&self, tenant: &Tenant) -> Arc<Semaphore> {
        let mut slots = lock(&self.tenant_slots);
        let (_, shared) = slots.entry(tenant.name.clone()).or_insert_with(|| {
            let count = tenant.max_running_steps;
            (count, Arc::new(Semaphore::new(count)))
        });
        Arc::clone(shared)
    }

    /// Runs `ready` on a task of its own, holding its place in flight
    /// until the task ends. The receiver gets the workflow's row once it is
    /// recorded.
    fn start(
        self: &Arc<Self>,
        tenant: &Tenant,
        ready: Ready,
        admitted: Admitted,
        announced: bool,
    ) -> oneshot::Receiver<WorkflowRow> {
        let service = Arc::clone(self);
        let options = RunOptions::new()
            .start_announced(announced)
            .shared_slots(self.slots_of(tenant))
            .fair_share(Arc::clone(&self.fair_share))
            .attempt_pool(self.attempt_pool.clone())
            .fuel_budget(tenant.max_workflow_fuel)
            .drain(Arc::clone(&self.drain))
            .park_pauses(crate::executor::PARK_AFTER);
        let (recorded, on_record) = oneshot::channel();
        let observer = Observed {
            recorded: Mutex::new(Some(recorded)),
            tenant: tenant.name.clone(),
            metrics: Arc::clone(&self.metrics),
        };
        tokio::spawn(async move {
            let _admitted = admitted;
            let identity = ready.identity().clone();
            let ended = service.host.execute(ready, &options, &observer).await;
            // Whoever waits on it hears at once (no one listening is fine).
            let _ = service.ended.send(identity.clone());
            if let Err(err) = ended {
                tracing::error!(
                    tenant = %identity.tenant,
                    id = %identity.id,
                    error = %with_causes(&err),
                    "the workflow's run failed"
                );
            }
        });
        on_record
    }

    /// Cancels workflow `id` of `tenant`: steps not started never run and
    /// a running attempt is interrupted. Returns the row as it is now, and
    /// whether the workflow was running (a finished one is left as it is).
    pub async fn cancel(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<(WorkflowRow, bool), ServiceError> {
        let identity = RunIdentity::new(&tenant.name, id);
        Ok(match self.host.cancel(&identity).await? {
            Cancellation::Requested(row) | Cancellation::Cancelled(row) => (row, true),
            Cancellation::AlreadyEnded(row) => (row, false),
        })
    }

    /// Sends `tenant`'s workflow `id` signal `name` with `payload`
    /// ([`Host::signal`]).
    pub async fn signal(
        &self,
        tenant: &Tenant,
        id: &str,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<WorkflowRow, ServiceError> {
        let identity = RunIdentity::new(&tenant.name, id);
        Ok(self.host.signal(&identity, name, payload).await?)
    }

    /// Starts no step from now on: what a stop does first, before the
    /// service stops answering.
    pub fn stop_starting(&self) {
        self.drain.stop_starting();
    }

    /// Stops gracefully: no step starts from now on, and the steps under
    /// way get up to `grace` to finish and be committed. Workflows stay on
    /// record as running (cut off), for the next start to resume. Returns
    /// how many steps were still under way when the grace ran out.
    pub async fn stop(&self, grace: std::time::Duration) -> usize {
        let cut_off = self.drain.stop(grace).await;
        // The steps that finished are recorded, but a pure step's record
        // may still wait for its commit.
        self.host.store().flush();
        cut_off
    }

    /// Whether the service takes work: it is not stopping and its state
    /// database answers.
    pub fn ready(&self) -> Result<(), ServiceError> {
        if self.drain.is_stopping() {
            return Err(ServiceError::new(
                ErrorKind::Unavailable,
                "the service is stopping",
            ));
        }
        self.host.list(Some(""), None)?;
        // Unavailable, not a store error, and without the file's path,
        // which is the operator's: readiness needs no key.
        self.host.store().check_leases().map_err(|err| {
            let cause = std::error::Error::source(&err).map_or_else(String::new, |c| c.to_string());
            ServiceError::new(
                ErrorKind::Unavailable,
                format!("the state database's workflow leases cannot be taken: {cause}"),
            )
        })
    }

    /// The host the service runs workflows on.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Starts again every workflow a stop or a crash cut off, under its
    /// tenant's current policy. Returns how many were resumed.
    pub async fn resume_cut_off(self: &Arc<Self>) -> Result<usize, ServiceError> {
        let mut resumed = 0;
        for row in self.host.list(None, Some(WorkflowStatus::CutOff))? {
            let Some(tenant) = self.tenants().get(&row.tenant).cloned() else {
                tracing::warn!(
                    tenant = %row.tenant,
                    id = %row.id,
                    "a cut-off workflow's tenant is no longer in the policy: left as it is"
                );
                continue;
            };
            match self.resume(&tenant, &row.id).await {
                Ok((_, true)) => resumed += 1,
                Ok((_, false)) => {}
                Err(err) => tracing::warn!(
                    tenant = %row.tenant,
                    id = %row.id,
                    error = %err,
                    "a cut-off workflow cannot be resumed"
                ),
            }
        }
        Ok(resumed)
    }
}

/// Which workflows a list shows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only those of this status.
    pub status: Option<WorkflowStatus>,
    /// Only those whose id, or a step's task, holds this text.
    pub search: Option<String>,
}

/// Whose workflows a request addresses.
#[derive(Debug, Clone)]
pub enum Scope {
    /// One tenant's.
    Tenant(Box<Tenant>),
    /// Every tenant's: the operator's key naming no tenant.
    All,
}

/// Ends told to waiters that a slow one may miss (then it looks again).
const ENDED_BACKLOG: usize = 1024;

impl Scope {
    /// The one tenant addressed, or `None` for every tenant.
    pub fn tenant(&self) -> Option<&Tenant> {
        match self {
            Scope::Tenant(tenant) => Some(tenant),
            Scope::All => None,
        }
    }
}

/// How often a request that waits on a workflow looks at it again.
pub const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// What the service watches of a run: its row, passed on once it is
/// recorded, and its steps, counted for `/metrics`.
struct Observed {
    recorded: Mutex<Option<oneshot::Sender<WorkflowRow>>>,
    tenant: String,
    metrics: Arc<Metrics>,
}

impl Observer for Observed {
    fn workflow_recorded(&self, row: &WorkflowRow) {
        let sender = lock(&self.recorded).take();
        if let Some(sender) = sender {
            let _ = sender.send(row.clone());
        }
    }

    fn step_finished(&self, record: &StepRecord) {
        self.metrics.step_finished(&self.tenant, record);
    }
}

pub(super) fn not_found(id: &str) -> ServiceError {
    ServiceError::new(ErrorKind::NotFound, format!("no workflow `{id}`"))
}

/// Waits until `ended` says that this process's run of `identity` ended,
/// or until `deadline`; true if it heard the end. A receiver that fell
/// behind may have missed it, and says so as if the deadline had come.
pub(super) async fn heard_end(
    ended: &mut tokio::sync::broadcast::Receiver<RunIdentity>,
    identity: &RunIdentity,
    deadline: tokio::time::Instant,
) -> bool {
    loop {
        tokio::select! {
            heard = ended.recv() => match heard {
                Ok(end) if end == *identity => return true,
                Ok(_) => {}
                Err(_) => return false,
            },
            () = tokio::time::sleep_until(deadline) => return false,
        }
    }
}

/// Reads a submitted chain file as `tenant`'s (see [`spec::parse_submitted`]).
fn tenant_spec(tenant: &Tenant, body: &str) -> Result<WorkflowSpec, ServiceError> {
    let policy = spec::Submitter {
        tenant: &tenant.name,
        plugins: &tenant.plugins,
        root: tenant.root.as_deref(),
    };
    spec::parse_submitted(body, &policy).map_err(|err| ServiceError::invalid(err.to_string()))
}
