//! The host: one runtime, one store and a policy, and the one place that
//! decides what becomes of a workflow — whether an id starts, continues,
//! runs again or is only reported — and records each change of its row.
//! The CLI and the HTTP service are adapters over it.
//!
//! - [`state`] is the workflow state machine: what each request may do
//!   with a workflow as it stands on record;
//! - [`claims`] knows which workflows run here now, to run none twice and
//!   to cancel the ones that do; their leases in the store keep other
//!   processes from running them too;
//! - [`requests`] hears requests to cancel made by other processes;
//! - [`retention`] removes workflows: on request, by age, past a retention;
//! - [`error`] is why a request is refused, [`reading`] what the host
//!   reads for its callers.

mod claims;
mod error;
mod reading;
mod requests;
mod retention;
mod state;

pub use error::HostError;
pub use retention::Purge;
pub use state::{Intent, new_workflow_id};

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::durable;
use crate::executor::{Continuation, Observer, PreparedWorkflow, RunIdentity, RunOptions, Silent};
use crate::records::{WorkflowRow, WorkflowStatus};
use crate::runtime::{Ceilings, Runtime};
use crate::spec::WorkflowSpec;
use crate::store::Store;
use claims::{Claim, Claims};
use requests::CancelRequests;
use state::{Decision, Refusal};

/// The largest signal payload, in bytes of JSON: a signal is a message to
/// a workflow, not a way to hand it data in bulk.
pub const MAX_SIGNAL_BYTES: usize = 1 << 20;

/// A workflow host: runs workflows durably in one store, and answers for
/// them.
///
/// ```no_run
/// # async fn example() -> anyhow::Result<()> {
/// use wfhost::{Host, RunIdentity, runtime::Runtime, spec, store::Store};
///
/// let host = Host::new(Runtime::new()?, Store::in_memory()?);
/// let chain = r#"{"plugins": {"math": "math.wasm"},
///                 "workflow": [{"task": "math.add", "args": [2, 2]}]}"#;
/// let row = host.run(spec::parse(chain, ".".as_ref())?, RunIdentity::new("me", "wf-1")).await?;
/// println!("{:?}: {:?}", row.status, row.result);
/// # Ok(())
/// # }
/// ```
pub struct Host {
    runtime: Runtime,
    store: Store,
    ceilings: Ceilings,
    claims: Claims,
    cancel_requests: CancelRequests,
    /// Wakes this process's waker when a workflow parks, or a parked one
    /// is woken by a signal.
    parking_changed: tokio::sync::Notify,
}

/// Points each plugin of `spec` named in `plugins` to its new file, to be
/// loaded whatever its sha256 (and pinned to it once loaded); returns their
/// names.
fn replace_plugins(
    spec: &mut WorkflowSpec,
    plugins: BTreeMap<String, PathBuf>,
    id: &str,
) -> Result<Vec<String>, HostError> {
    let known: Vec<String> = spec.plugins.keys().cloned().collect();
    let mut replaced = Vec::new();
    for (name, path) in plugins {
        let Some(plugin) = spec.plugins.get_mut(&name) else {
            return Err(HostError::NoSuchPlugin {
                id: id.to_string(),
                name,
                known,
            });
        };
        plugin.path = std::path::absolute(&path).unwrap_or(path);
        plugin.sha256 = None;
        replaced.push(name);
    }
    Ok(replaced)
}

/// What [`Host::begin`] found.
#[non_exhaustive]
pub enum Begun {
    /// The workflow is prepared and claimed: [`Host::execute`] runs it.
    Ready(Box<Ready>),
    /// The workflow's outcome is on record; nothing runs.
    Finished(WorkflowRow),
    /// The workflow is running already, here or in another process;
    /// nothing more runs.
    Running(WorkflowRow),
}

/// A workflow about to run: prepared, and claimed so that nothing else runs
/// it meanwhile.
pub struct Ready {
    workflow: PreparedWorkflow,
    identity: RunIdentity,
    continuation: Continuation,
    /// The row on record, for a workflow that continues.
    row: Option<WorkflowRow>,
    /// The plugins it continues with new files of, by name.
    replaced: Vec<String>,
    claim: Claim,
}

impl Ready {
    /// Whether it starts, resumes or is re-driven.
    pub fn continuation(&self) -> &Continuation {
        &self.continuation
    }

    /// Who it runs as.
    pub fn identity(&self) -> &RunIdentity {
        &self.identity
    }

    /// How many steps it has before any replacement expands.
    pub fn planned_steps(&self) -> usize {
        self.workflow.planned_steps()
    }

    /// What would not stop it, but fails a step if that step runs (see
    /// [`PreparedWorkflow::warnings`]).
    pub fn warnings(&self) -> &[crate::executor::StepProblem] {
        self.workflow.warnings()
    }
}

/// What [`Host::cancel`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum Cancellation {
    /// It runs, here or in another process: it stops soon (within
    /// moments when it runs elsewhere), its running attempt interrupted,
    /// and ends `cancelled`. The row is as it was.
    Requested(WorkflowRow),
    /// It was cut off, and is now on record as cancelled.
    Cancelled(WorkflowRow),
    /// It had ended already; nothing changed.
    AlreadyEnded(WorkflowRow),
}

impl Host {
    /// A host over `store` whose attempts run in `runtime`, with no
    /// ceilings.
    pub fn new(runtime: Runtime, store: Store) -> Self {
        Host {
            runtime,
            store,
            ceilings: Ceilings::default(),
            claims: Claims::default(),
            cancel_requests: CancelRequests::default(),
            parking_changed: tokio::sync::Notify::new(),
        }
    }

    /// Caps what any attempt of a workflow begun with [`Host::begin`] may
    /// be given; a workflow asking for more is refused before it runs. By
    /// default there are no ceilings.
    pub fn with_ceilings(mut self, ceilings: Ceilings) -> Self {
        self.ceilings = ceilings;
        self
    }

    /// Ready once a workflow of this host parks, or a parked one is woken
    /// by a signal sent here: a waker's cue to look again.
    pub(crate) fn parking_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.parking_changed.notified()
    }

    /// The ceilings every workflow's limits are held to.
    pub(crate) fn ceilings(&self) -> &Ceilings {
        &self.ceilings
    }

    /// The runtime attempts run in.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The state database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Ends the use of the host by a process that exits next: the store is
    /// left as [`Store::exit`] says, and the runtime is not torn down, since
    /// the system reclaims it with the process. A process that goes on
    /// drops the host instead.
    pub fn exit(self) {
        self.store.exit();
        // The process exits next, and the system reclaims the engine's
        // instance pool at once, sooner than unmapping it piece by piece.
        std::mem::forget(self.runtime);
    }

    /// Decides what `intent` does with workflow `identity` under the host's
    /// ceilings, and prepares what is to run; see [`Host::begin_within`].
    pub async fn begin(&self, identity: RunIdentity, intent: Intent) -> Result<Begun, HostError> {
        self.begin_within(identity, intent, &self.ceilings).await
    }

    /// Decides what `intent` does with workflow `identity`: a new id starts,
    /// a cut-off one continues from its stored form, a failed one is
    /// re-driven when retried, and one that has finished is only reported.
    /// What is to run is loaded and checked under `ceilings`, and claimed,
    /// so that it runs once however many ask.
    pub async fn begin_within(
        &self,
        identity: RunIdentity,
        intent: Intent,
        ceilings: &Ceilings,
    ) -> Result<Begun, HostError> {
        // Claimed before the record is read, so that what is read stays
        // true while the claim is held.
        let claim = self.claims.claim(&self.store, &identity)?;
        let stored = self.store.workflow(&identity.tenant, &identity.id)?;
        if let (Intent::Start(spec), Some(row)) = (&intent, &stored) {
            self.check_same_content(spec, row)?;
        }
        let decision = state::decide(intent, stored).map_err(|refusal| match refusal {
            Refusal::NotFound => self.not_found(&identity),
            Refusal::NotRetryable(row) => HostError::NotRetryable { row },
        })?;
        let (spec, continuation, row, replaced) = match decision {
            Decision::Report(row) => return Ok(Begun::Finished(row)),
            Decision::Start(spec) => (spec, Continuation::Fresh, None, Vec::new()),
            Decision::Continue {
                row,
                continuation,
                plugins,
            } => {
                if claim.is_none() {
                    return Ok(Begun::Running(row));
                }
                if self.cancel_requests.requested(&self.store, &identity) {
                    // Its process ended before it answered the request.
                    return Ok(Begun::Finished(self.record_cancelled(row).await?));
                }
                let mut spec = durable::stored_spec(&self.store, &row)?;
                let replaced = replace_plugins(&mut spec, plugins, &row.id)?;
                (spec, continuation, Some(row), replaced)
            }
        };
        let Some(claim) = claim else {
            return Err(HostError::AlreadyStarting { id: identity.id });
        };
        let workflow = self.prepare(&identity, spec, ceilings).await?;
        Ok(Begun::Ready(Box::new(Ready {
            workflow,
            identity,
            continuation,
            row,
            replaced,
            claim,
        })))
    }

    /// Refuses `spec` under the id of `row` unless it is the workflow on
    /// record: the stored digest of its content says so at once, and the
    /// stored workflow, read back, says where they differ.
    fn check_same_content(&self, spec: &WorkflowSpec, row: &WorkflowRow) -> Result<(), HostError> {
        let stored_digest = self
            .store
            .head(&row.tenant, &row.id)?
            .and_then(|head| head.content_sha256);
        if stored_digest == Some(crate::content::digest(spec).map_err(HostError::Spool)?) {
            return Ok(());
        }
        let stored = durable::stored_spec(&self.store, row)?;
        match crate::content::first_difference(&stored, spec).map_err(HostError::Spool)? {
            None => Ok(()),
            Some(difference) => Err(HostError::OtherContent {
                id: row.id.clone(),
                difference,
            }),
        }
    }

    async fn prepare(
        &self,
        identity: &RunIdentity,
        spec: WorkflowSpec,
        ceilings: &Ceilings,
    ) -> Result<PreparedWorkflow, HostError> {
        PreparedWorkflow::prepare(&self.runtime, spec, ceilings.clone())
            .await
            .map_err(|source| HostError::Invalid {
                id: identity.id.clone(),
                source,
            })
    }

    /// Runs a workflow [`Host::begin`] made ready, durably, to its end:
    /// records it as started, resumed or re-driven (then `observer` hears
    /// of its row), runs it, and records how it ended. Returns its row.
    pub async fn execute(
        &self,
        ready: Ready,
        options: &RunOptions,
        observer: &dyn Observer,
    ) -> Result<WorkflowRow, HostError> {
        let Ready {
            workflow,
            identity,
            continuation,
            row,
            replaced,
            claim,
        } = ready;
        let row = match row {
            None => {
                let row = state::started(&identity);
                let announced = options.start_announced;
                durable::record_start(&self.store, &workflow, &row, announced).await?;
                row
            }
            Some(stored) => {
                if self
                    .store
                    .parked_until(&identity.tenant, &identity.id)?
                    .is_some()
                {
                    self.store.unpark(&identity.tenant, &identity.id).await?;
                }
                let (row, event, detail) = state::continued(stored, &continuation);
                if replaced.is_empty() {
                    self.store.put_workflow(&row, event, detail).await?;
                } else {
                    durable::record_new_plugins(
                        &self.store,
                        &workflow,
                        &row,
                        event,
                        detail,
                        &replaced,
                    )
                    .await?;
                }
                row
            }
        };
        observer.workflow_recorded(&row);
        let started = std::time::Instant::now();
        tracing::info!(
            tenant = %identity.tenant.escape_debug(),
            id = %identity.id.escape_debug(),
            how = ?continuation,
            steps = workflow.planned_steps(),
            "workflow started"
        );
        let (park, parked) = tokio::sync::oneshot::channel();
        let run = workflow.run(
            &self.runtime,
            &self.store,
            &identity,
            &continuation,
            options,
            claim.cancel_token(),
            observer,
            Some(park),
        );
        let requests = self
            .cancel_requests
            .answer(&self.store, &identity, claim.cancel_token());
        let parked = async {
            match parked.await {
                Ok(parked) => parked,
                // The run ended without parking.
                Err(_) => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            outcome = run => outcome?,
            never = requests => match never {},
            parked = parked => {
                // The run waits in a sleep or a wait, everything before it
                // on record: it is let go of here, and resumed by a waker.
                let (tenant, id) = (&identity.tenant, &identity.id);
                self.store.park(tenant, id, parked.due_ms, Some(parked.why)).await?;
                tracing::info!(
                    tenant = %tenant.escape_debug(),
                    id = %id.escape_debug(),
                    "workflow parked"
                );
                drop(claim);
                self.parking_changed.notify_waiters();
                return Ok(row);
            }
        };
        let (row, event) = state::ended(row, outcome);
        self.store.put_workflow(&row, event, None).await?;
        tracing::info!(
            tenant = %row.tenant.escape_debug(),
            id = %row.id.escape_debug(),
            status = row.status.as_str(),
            took_ms = started.elapsed().as_secs_f64() * 1000.0,
            "workflow ended"
        );
        drop(claim);
        Ok(row)
    }

    /// Runs `spec` as `identity` to its end with the default options: a new
    /// id starts, a cut-off one continues, a finished one is reported.
    pub async fn run(
        &self,
        spec: WorkflowSpec,
        identity: RunIdentity,
    ) -> Result<WorkflowRow, HostError> {
        self.begin_and_execute(identity, Intent::Start(spec)).await
    }

    /// Continues workflow `identity`, which a crash or a stop cut off, to
    /// its end with the default options; a finished one is reported.
    pub async fn resume(&self, identity: RunIdentity) -> Result<WorkflowRow, HostError> {
        self.begin_and_execute(identity, Intent::Resume).await
    }

    /// Runs the failed workflow `identity` again from its failed step, to
    /// its end with the default options.
    pub async fn retry(&self, identity: RunIdentity) -> Result<WorkflowRow, HostError> {
        self.begin_and_execute(identity, Intent::retry()).await
    }

    async fn begin_and_execute(
        &self,
        identity: RunIdentity,
        intent: Intent,
    ) -> Result<WorkflowRow, HostError> {
        match self.begin(identity, intent).await? {
            Begun::Ready(ready) => self.execute(*ready, &RunOptions::new(), &Silent).await,
            Begun::Finished(row) | Begun::Running(row) => Ok(row),
        }
    }

    /// Cancels workflow `identity`: if it runs, here or in another process,
    /// its steps not started never run and its running attempt is
    /// interrupted; if a crash or a stop cut it off, it is recorded as
    /// cancelled, so that `resume` leaves it.
    pub async fn cancel(&self, identity: &RunIdentity) -> Result<Cancellation, HostError> {
        let row = self.workflow(identity)?;
        if !matches!(row.status, WorkflowStatus::Running | WorkflowStatus::CutOff) {
            return Ok(Cancellation::AlreadyEnded(row));
        }
        if let Some(token) = self.claims.cancel_token(identity) {
            token.cancel();
            return Ok(Cancellation::Requested(row));
        }
        // Claimed while the cut-off row is recorded, so that it does not
        // start meanwhile.
        let Some(_claim) = self.claims.claim(&self.store, identity)? else {
            // It runs elsewhere, or has just started to here: its run hears
            // the request either way.
            self.store
                .request_cancel(&identity.tenant, &identity.id)
                .await?;
            return Ok(Cancellation::Requested(row));
        };
        // Read again under the claim: it may have ended meanwhile.
        let row = self.workflow(identity)?;
        if row.status != WorkflowStatus::Running {
            return Ok(Cancellation::AlreadyEnded(row));
        }
        Ok(Cancellation::Cancelled(self.record_cancelled(row).await?))
    }

    /// Records the cut-off workflow of `row`, claimed, as cancelled.
    async fn record_cancelled(&self, row: WorkflowRow) -> Result<WorkflowRow, HostError> {
        if self.store.parked_until(&row.tenant, &row.id)?.is_some() {
            self.store.unpark(&row.tenant, &row.id).await?;
        }
        let row = state::cancelled(row);
        self.store
            .put_workflow(&row, "workflow_cancelled", None)
            .await?;
        Ok(row)
    }

    /// Sends workflow `identity` signal `name` with `payload`: on the disk
    /// when this returns, it is the result of the workflow's oldest wait
    /// for `name` that has not taken one, reached already or later — in
    /// whichever process runs the workflow, or on `resume` if none does. A
    /// workflow that has ended is refused ([`HostError::Ended`]).
    pub async fn signal(
        &self,
        identity: &RunIdentity,
        name: &str,
        payload: Value,
    ) -> Result<WorkflowRow, HostError> {
        let name = wfhost_canvas::pause::signal_name(name).map_err(HostError::BadSignal)?;
        let bytes = payload.to_string().len();
        if bytes > MAX_SIGNAL_BYTES {
            return Err(HostError::BadSignal(format!(
                "a signal's payload is at most {MAX_SIGNAL_BYTES} bytes of JSON, not {bytes}"
            )));
        }
        let row = self.workflow(identity)?;
        if !matches!(row.status, WorkflowStatus::Running | WorkflowStatus::CutOff) {
            return Err(HostError::Ended { row: Box::new(row) });
        }
        let (tenant, id) = (&identity.tenant, &identity.id);
        self.store.put_signal(tenant, id, &name, payload).await?;
        // A parked workflow is woken to look for it.
        let now = crate::records::now_ms();
        if self
            .store
            .parked_until(tenant, id)?
            .is_some_and(|due| due > now)
        {
            self.store.park(tenant, id, now, None).await?;
            self.parking_changed.notify_waiters();
        }
        Ok(row)
    }
}
