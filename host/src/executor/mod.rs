//! The executor: runs a workflow's plan, feeding each result into the next
//! step, running group members in parallel, retrying under each step's
//! policy, expanding replacements in place, and stopping at a failure.
//! Every state change is committed to the store before the run moves on.

mod drain;
mod fair;
mod nodes;
mod plugins;
mod retry;

pub use drain::{Drain, Working};
pub use fair::{FairScheduler, Slot};
pub use plugins::{PluginSet, StepProblem, ValidationError};
pub use retry::RetryPolicy;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use wfhost_canvas::{Canvas, Limit, Signature, StepOptions};

use crate::failure::{Failure, FailureKind};
use crate::plan::{self, Node, PlannedStep};
use crate::report::{StepRecord, StepStatus, WorkflowError, WorkflowStatus};
use crate::runtime::{Attempt, AttemptResult, CancelToken, Invocation, Limits, Plugin, Runtime};
use crate::spec::{self, WorkflowSpec};
use crate::store::{Flush, StepTotals, Store, StoreError, WorkflowRow, now_ms};
use nodes::{Nodes, spool_error};
use retry::seconds_to_duration;

/// Replacements may nest this deep; a task that keeps replacing itself
/// fails instead of running forever.
const MAX_REPLACE_DEPTH: usize = 64;

/// Elements stored per commit when a workflow starts.
const ELEMENT_BATCH: usize = 1024;

/// Nodes recorded as skipped per commit.
const SKIP_BATCH: usize = 1024;

tokio::task_local! {
    /// Set while a group member runs: see [`Run::attempt`].
    static IN_GROUP: ();
}

/// Hears about a run as it goes, e.g. to show progress.
pub trait Observer: Send + Sync {
    /// The workflow's row is recorded (started, resumed or re-driven):
    /// from here on `status` finds it.
    fn workflow_recorded(&self, _row: &WorkflowRow) {}
    /// A step finished (succeeded, failed or was replaced).
    fn step_finished(&self, _record: &StepRecord) {}
    /// A step will be tried again after `delay`.
    fn retrying(&self, _record: &StepRecord, _reason: &str, _delay: Duration) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}

/// Who runs a workflow: its id and tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIdentity {
    pub id: String,
    pub tenant: String,
}

/// How a run may use the machine.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How many attempts may run at once (group members run in parallel).
    pub concurrency: usize,
    /// Slots shared with other tenants' runs: each attempt also waits for
    /// its tenant's turn at one.
    pub fair_share: Option<Arc<FairScheduler>>,
    /// Threads of their own for attempts: guest code then never holds up
    /// the threads that commit, answer requests and run other tenants'
    /// bookkeeping. Without it, attempts run on the caller's runtime.
    pub attempt_pool: Option<tokio::runtime::Handle>,
    /// Cancels the run: steps not started never run, a running attempt is
    /// interrupted, and the workflow ends `cancelled`.
    pub cancel: CancelToken,
    /// Fuel all the workflow's attempts together may use (retries,
    /// callbacks and earlier runs of the same workflow included); each
    /// attempt gets at most what is left.
    pub fuel_budget: Option<u64>,
    /// Lets the host stop gracefully: no step starts once it is stopping,
    /// and the steps under way finish and are committed.
    pub drain: Option<Arc<Drain>>,
    /// Slots shared with other runs (a tenant's other workflows, say) in
    /// place of `concurrency`: their attempts together stay within it.
    pub shared_slots: Option<Arc<Semaphore>>,
}

impl RunOptions {
    /// `concurrency` attempts at once, with no shared slots.
    pub fn with_concurrency(concurrency: usize) -> Self {
        RunOptions {
            concurrency,
            fair_share: None,
            attempt_pool: None,
            cancel: CancelToken::new(),
            fuel_budget: None,
            drain: None,
            shared_slots: None,
        }
    }
}

impl Default for RunOptions {
    /// One attempt per core.
    fn default() -> Self {
        Self::with_concurrency(cores())
    }
}

/// The cores this process may use. Asked of the system once: each asking
/// reads the cgroup's quota files, about 30 µs.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// What to do with a workflow that has already failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Report its stored outcome.
    Normal,
    /// Run it again from its failed step (`wfhost retry`).
    RetryFailed,
}

/// A workflow whose plugins are loaded and whose steps all name existing
/// tasks within the host's ceilings: ready to run.
pub struct Workflow {
    spec: WorkflowSpec,
    plugins: PluginSet,
    /// Steps before any replacement expands.
    steps: usize,
}

/// How one step ended.
enum StepEnd {
    Value(Value),
    Replace(Vec<Node>),
    Failed(Failure),
}

/// The outcome of a chain or group: its result, or the error of the step
/// that stopped it. The outer `Result` is the store's: a failed commit ends
/// the run, since nothing after it would be durable.
type Outcome = Result<Result<Value, WorkflowError>, StoreError>;
type BoxedOutcome<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

impl Workflow {
    /// Loads the workflow's plugins and checks, before anything runs,
    /// that every task exists, every step's arguments bind to its
    /// parameters, and every step's limits fit under the host's ceilings.
    /// All problems are reported, each with its step. The workflow is
    /// planned one element at a time, so a long one is never planned whole.
    pub async fn prepare(runtime: &Runtime, spec: WorkflowSpec) -> Result<Self, ValidationError> {
        let plugins = PluginSet::load(runtime, &spec.plugins).await?;
        let mut problems = Vec::new();
        let mut steps = 0;
        for (index, canvas) in spec.workflow.canvases().enumerate() {
            let nodes = plan::element(&canvas?, index);
            steps += plan::steps(&nodes).len();
            // Only the workflow's first step starts without an input.
            let first_has_input = index > 0;
            problems.extend(node_problems(
                runtime,
                &plugins,
                &spec.defaults,
                &nodes,
                first_has_input,
            ));
        }
        if let Some(on_error) = &spec.on_error {
            let on_error = PlannedStep {
                id: "on_error".into(),
                signature: on_error.clone(),
            };
            problems.extend(plugins.problems([(&on_error, true)]));
            problems.extend(ceiling_problems(runtime, &spec.defaults, [&on_error]));
        }
        if !problems.is_empty() {
            return Err(ValidationError::Steps(problems));
        }
        Ok(Workflow {
            spec,
            plugins,
            steps,
        })
    }

    /// How many steps the workflow has before any replacement expands.
    pub fn planned_steps(&self) -> usize {
        self.steps
    }

    /// The loaded plugins.
    pub fn plugins(&self) -> &PluginSet {
        &self.plugins
    }

    /// The workflow as its file describes it.
    pub fn spec(&self) -> &WorkflowSpec {
        &self.spec
    }

    /// The workflow's stored head (see [`WorkflowSpec::stored_head`]), with
    /// every plugin pinned to its absolute path and the sha256 of the
    /// component that was loaded, so that `resume` runs the same code or
    /// refuses to.
    pub fn pinned_head(&self) -> Vec<u8> {
        let mut plugins = self.spec.plugins.clone();
        for (name, plugin_ref) in plugins.iter_mut() {
            if let Some(plugin) = self.plugins.get(name) {
                plugin_ref.path = std::fs::canonicalize(plugin.path())
                    .unwrap_or_else(|_| plugin.path().to_path_buf());
                plugin_ref.sha256 = Some(plugin.sha256().to_string());
            }
        }
        self.spec.stored_head(&plugins)
    }

    /// Records the workflow as started: its elements in batches, the last
    /// batch with its row and head, so a short workflow starts in one
    /// commit and a long one is never in one transaction whole.
    async fn record_start(&self, store: &Store, row: &WorkflowRow) -> Result<(), StoreError> {
        let mut batch = Vec::new();
        let mut first = 0;
        for json in self.spec.workflow.json() {
            if batch.len() == ELEMENT_BATCH {
                let full = std::mem::take(&mut batch);
                store
                    .put_elements(&row.tenant, &row.id, first, full)
                    .await?;
                first += ELEMENT_BATCH as u64;
            }
            batch.push(json.map_err(spool_error)?);
        }
        store
            .start_workflow(row, self.pinned_head(), first, batch)
            .await
    }

    /// Runs the workflow `identity` names, durably.
    ///
    /// A workflow the store does not know starts; one that is still running
    /// (cut off by a crash or a stop) continues where it stopped, reusing
    /// every step that succeeded; one that has finished is not run again and
    /// its stored outcome is returned, unless `mode` re-drives a failed one
    /// from its failed step.
    pub async fn run(
        &self,
        runtime: &Runtime,
        store: &Store,
        identity: &RunIdentity,
        mode: RunMode,
        options: &RunOptions,
        observer: &dyn Observer,
    ) -> Result<WorkflowRow, StoreError> {
        let existing = store.workflow(&identity.tenant, &identity.id)?;
        let (mut row, earlier) = match existing {
            None => {
                let now = now_ms();
                let row = WorkflowRow {
                    id: identity.id.clone(),
                    tenant: identity.tenant.clone(),
                    status: WorkflowStatus::Running,
                    created_at_ms: now,
                    updated_at_ms: now,
                    result: None,
                    error: None,
                };
                self.record_start(store, &row).await?;
                (row, None)
            }
            Some(row) => match (row.status, mode) {
                (WorkflowStatus::Running, _) => {
                    store.put_workflow(&row, "workflow_resumed", None).await?;
                    let earlier = Earlier {
                        redriven_from: None,
                    };
                    (row, Some(earlier))
                }
                (WorkflowStatus::Failed, RunMode::RetryFailed) => {
                    let mut row = row;
                    let failed_step = row.error.take().map(|error| error.step);
                    row.status = WorkflowStatus::Running;
                    row.updated_at_ms = now_ms();
                    store
                        .put_workflow(&row, "workflow_retried", failed_step.clone())
                        .await?;
                    let earlier = Earlier {
                        redriven_from: failed_step,
                    };
                    (row, Some(earlier))
                }
                _ => {
                    observer.workflow_recorded(&row);
                    return Ok(row);
                }
            },
        };
        observer.workflow_recorded(&row);
        let totals = match earlier {
            Some(_) => store.step_totals(&identity.tenant, &identity.id)?,
            None => StepTotals::default(),
        };
        let run = Run {
            workflow: self,
            runtime,
            store,
            identity,
            observer,
            earlier,
            next_seq: AtomicU64::new(totals.next_seq),
            slots: options
                .shared_slots
                .clone()
                .unwrap_or_else(|| Arc::new(Semaphore::new(options.concurrency.max(1)))),
            fair_share: options.fair_share.clone(),
            attempt_pool: options.attempt_pool.clone(),
            cancel: options.cancel.clone(),
            fuel_budget: options.fuel_budget,
            fuel_spent: AtomicU64::new(totals.fuel_used),
            drain: options.drain.clone(),
        };
        let elements = Nodes::elements(&self.spec.workflow);
        let outcome = run.chain(elements, None, None, true).await?;
        let event = match outcome {
            Ok(result) => {
                row.status = WorkflowStatus::Succeeded;
                row.result = Some(result);
                "workflow_succeeded"
            }
            Err(error) if error.kind == FailureKind::Cancelled => {
                row.status = WorkflowStatus::Cancelled;
                row.error = Some(error);
                "workflow_cancelled"
            }
            Err(error) => {
                row.status = WorkflowStatus::Failed;
                row.error = Some(error);
                "workflow_failed"
            }
        };
        row.updated_at_ms = now_ms();
        store.put_workflow(&row, event, None).await?;
        Ok(row)
    }

    /// Checks a replacement's tasks and limits; a bad one fails the step.
    fn check_replacement(&self, runtime: &Runtime, step_id: &str, children: Vec<Node>) -> StepEnd {
        if step_id.split('.').count() > MAX_REPLACE_DEPTH {
            return StepEnd::Failed(Failure::new(
                FailureKind::InvalidOutput,
                format!("replacements nested more than {MAX_REPLACE_DEPTH} deep"),
            ));
        }
        // A replacement starts afresh: its first step gets no input.
        let defaults = &self.spec.defaults;
        let problems = node_problems(runtime, &self.plugins, defaults, &children, false);
        if problems.is_empty() {
            return StepEnd::Replace(children);
        }
        StepEnd::Failed(Failure::new(
            FailureKind::InvalidOutput,
            format!(
                "the replacement cannot run: {}",
                ValidationError::Steps(problems)
            ),
        ))
    }
}

/// Marks a workflow that is on record as running, but that no process
/// runs (it was cut off), as cancelled, so that `resume` leaves it.
/// Returns the row as stored.
pub async fn cancel_stored(store: &Store, mut row: WorkflowRow) -> Result<WorkflowRow, StoreError> {
    if row.status == WorkflowStatus::Running {
        row.status = WorkflowStatus::Cancelled;
        row.updated_at_ms = now_ms();
        store.put_workflow(&row, "workflow_cancelled", None).await?;
    }
    Ok(row)
}

/// Why a stored workflow cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum StoredWorkflowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("workflow {id}: the stored workflow is unreadable: {reason}")]
    Unreadable { id: String, reason: String },
}

/// The workflow `row` names, as it was stored when it started: its head
/// and its elements, read back a batch at a time into a spool.
pub fn stored_spec(store: &Store, row: &WorkflowRow) -> Result<WorkflowSpec, StoredWorkflowError> {
    let unreadable = |reason: String| StoredWorkflowError::Unreadable {
        id: row.id.clone(),
        reason,
    };
    let head = store
        .workflow_spec(&row.tenant, &row.id)?
        .ok_or_else(|| unreadable("it is missing".into()))?;
    let count = spec::stored_element_count(&head);
    let mut elements = spec::Elements::new();
    while (elements.len() as u64) < count {
        let next = elements.len() as u64;
        let batch = store.elements(&row.tenant, &row.id, next, ELEMENT_BATCH)?;
        if batch.is_empty() {
            return Err(unreadable(format!(
                "it has {count} elements, of which {next} are stored"
            )));
        }
        for json in batch.iter().take((count - next) as usize) {
            elements
                .push_checked_json(json)
                .map_err(|err| unreadable(format!("element {}: {err}", elements.len())))?;
        }
    }
    spec::from_stored(&head, elements).map_err(|issue| unreadable(issue.to_string()))
}

/// A fresh workflow id: milliseconds since the epoch and randomness, in hex.
pub fn new_workflow_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("wf-{millis:x}-{:08x}", fastrand::u32(..))
}

/// Which stored steps a re-driven workflow keeps: all but the errbacks of
/// the failure, which run again if the step fails again. The failed step's
/// record stays, so its attempts continue where they stopped.
fn redrive_keeps(step: &StepRecord, failed_step: Option<&str>) -> bool {
    let errback_of_failure = step.id == "on_error"
        || failed_step.is_some_and(|failed| step.id.starts_with(&format!("{failed}.link_error.")));
    !errback_of_failure
}

/// An earlier run of the workflow that this run continues.
struct Earlier {
    /// The step that failed, when the workflow is re-driven from it.
    redriven_from: Option<String>,
}

/// One run of a workflow: what every step needs, and whether an earlier run
/// of the same workflow recorded steps it must reuse.
struct Run<'a> {
    workflow: &'a Workflow,
    runtime: &'a Runtime,
    store: &'a Store,
    identity: &'a RunIdentity,
    observer: &'a dyn Observer,
    /// The run this one continues, whose records it reuses; they are read
    /// from the store step by step, so that a long workflow's records are
    /// never all in memory.
    earlier: Option<Earlier>,
    next_seq: AtomicU64,
    /// Attempts running at once are bounded by the run's concurrency.
    slots: Arc<Semaphore>,
    /// Slots shared with other tenants' runs, if any.
    fair_share: Option<Arc<FairScheduler>>,
    /// Where attempts run, if not beside the run.
    attempt_pool: Option<tokio::runtime::Handle>,
    cancel: CancelToken,
    fuel_budget: Option<u64>,
    /// Fuel the workflow's attempts have used, this run and earlier ones.
    fuel_spent: AtomicU64,
    drain: Option<Arc<Drain>>,
}

impl Run<'_> {
    fn take_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The record an earlier run left for `id` that this run reuses. Each
    /// step id is visited once in a run, so each record is reused once.
    fn take_stored(&self, id: &str) -> Result<Option<StepRecord>, StoreError> {
        let Some(earlier) = &self.earlier else {
            return Ok(None);
        };
        let record = self
            .store
            .step(&self.identity.tenant, &self.identity.id, id)?;
        Ok(record.filter(|step| redrive_keeps(step, earlier.redriven_from.as_deref())))
    }

    /// A new record for `id`, keeping the position of an earlier one.
    fn new_record(
        &self,
        id: &str,
        parent: Option<String>,
        task: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        previous: Option<&StepRecord>,
    ) -> StepRecord {
        let mut record = StepRecord::new(id, parent, task, args, kwargs);
        record.seq = previous.map_or_else(|| self.take_seq(), |previous| previous.seq);
        record
    }

    /// Commits records with one event; the run moves on only once this returns.
    async fn commit(
        &self,
        records: &[&StepRecord],
        event: &str,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        self.commit_flushed(records, event, detail, Flush::BeforeReturning)
            .await
    }

    /// Commits the record of a node that succeeded; one that ends the
    /// workflow reaches the disk with the workflow's end.
    async fn commit_success(
        &self,
        record: &StepRecord,
        event: &str,
        ends_workflow: bool,
    ) -> Result<(), StoreError> {
        let flush = if ends_workflow {
            Flush::WithWorkflowEnd
        } else {
            Flush::BeforeReturning
        };
        self.commit_flushed(&[record], event, None, flush).await
    }

    async fn commit_flushed(
        &self,
        records: &[&StepRecord],
        event: &str,
        detail: Option<String>,
        flush: Flush,
    ) -> Result<(), StoreError> {
        self.store
            .put_steps(
                &self.identity.tenant,
                &self.identity.id,
                records,
                event,
                detail,
                flush,
            )
            .await
    }

    /// Runs a chain of nodes, `input` going to the first. Returns the last
    /// result (the input when the chain is empty), or the error of the step
    /// that stopped it; the nodes it did not reach are recorded as skipped.
    ///
    /// The plan is walked in place, not copied, so a long chain costs no
    /// second copy of itself; only a replacement's nodes are owned here,
    /// queued in front of the rest.
    ///
    /// `ends_workflow` says whether the chain's last node is the last thing
    /// the workflow runs.
    fn chain<'n>(
        &'n self,
        nodes: Nodes<'n>,
        input: Option<Value>,
        parent: Option<String>,
        ends_workflow: bool,
    ) -> BoxedOutcome<'n> {
        Box::pin(async move {
            let mut replacements: VecDeque<Node> = VecDeque::new();
            let mut rest = nodes;
            let mut input = input;
            let mut parent = parent;
            loop {
                let node = match replacements.pop_front() {
                    Some(node) => Cow::Owned(node),
                    None => match rest.next()? {
                        Some(node) => node,
                        None => break,
                    },
                };
                if self.cancel.is_cancelled() {
                    let error = WorkflowError {
                        step: node.id().to_string(),
                        task: node.task().to_string(),
                        attempts: 0,
                        kind: FailureKind::Cancelled,
                        message: "cancelled before it started".to_string(),
                    };
                    let this = std::slice::from_ref(&*node);
                    self.skip(&[this, replacements.make_contiguous()]).await?;
                    self.skip_rest(&mut rest).await?;
                    return Ok(Err(error));
                }
                let last = ends_workflow && replacements.is_empty() && rest.is_empty()?;
                let outcome = match &*node {
                    Node::Step(step) => {
                        match self.step(step, input.take(), parent.take(), last).await? {
                            StepOutcome::Value(value) => Ok(value),
                            StepOutcome::Replace(children) => {
                                for child in children.into_iter().rev() {
                                    replacements.push_front(child);
                                }
                                // The replacement starts afresh, as in Celery:
                                // its first step gets no previous result.
                                parent = Some(step.id.clone());
                                continue;
                            }
                            StepOutcome::Failed(error) => Err(error),
                        }
                    }
                    Node::Group { id, members } => {
                        self.group(id, "group", members, input.take(), parent.take(), last)
                            .await?
                    }
                    Node::Chord { id, header, body } => {
                        match self
                            .group(id, "chord", header, input.take(), parent.take(), false)
                            .await?
                        {
                            Ok(results) => {
                                let body = Nodes::planned(body);
                                self.chain(body, Some(results), Some(id.clone()), last)
                                    .await?
                            }
                            Err(error) => {
                                self.skip(&[body]).await?;
                                Err(error)
                            }
                        }
                    }
                };
                match outcome {
                    Ok(value) => {
                        input = Some(value);
                        parent = Some(node.id().to_string());
                    }
                    Err(error) => {
                        self.skip(&[replacements.make_contiguous()]).await?;
                        self.skip_rest(&mut rest).await?;
                        return Ok(Err(error));
                    }
                }
            }
            Ok(Ok(input.unwrap_or(Value::Null)))
        })
    }

    /// Runs group members in parallel on the same input and records the
    /// group. Every member runs to its end; the group fails with the first
    /// failed member's error, in member order.
    async fn group(
        &self,
        id: &str,
        kind: &str,
        members: &[Vec<Node>],
        input: Option<Value>,
        parent: Option<String>,
        ends_workflow: bool,
    ) -> Outcome {
        let previous = self.take_stored(id)?;
        if let Some(done) = previous
            .as_ref()
            .filter(|done| done.status == StepStatus::Succeeded)
        {
            self.observer.step_finished(done);
            return Ok(Ok(done.result.clone().unwrap_or_default()));
        }
        // Recorded from the start, so the group lists before its members.
        let mut record =
            self.new_record(id, parent, kind, Vec::new(), Map::new(), previous.as_ref());
        let started = Instant::now();
        let runs = members.iter().map(|member| {
            let member = Nodes::planned(member);
            let member = self.chain(member, input.clone(), Some(id.to_string()), false);
            IN_GROUP.scope((), member)
        });
        let outcomes = futures::future::join_all(runs).await;
        record.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut results = Vec::with_capacity(outcomes.len());
        let mut first_error = None;
        for outcome in outcomes {
            match outcome? {
                Ok(value) => results.push(value),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        let outcome = match first_error {
            None => {
                record.status = StepStatus::Succeeded;
                record.result = Some(Value::Array(results));
                Ok(record.result.clone().unwrap_or_default())
            }
            Some(error) => {
                record.status = StepStatus::Failed;
                record.error = Some(Failure::new(
                    error.kind,
                    format!("member step {} failed: {}", error.step, error.message),
                ));
                Err(error)
            }
        };
        if outcome.is_ok() {
            self.commit_success(&record, "group_succeeded", ends_workflow)
                .await?;
        } else {
            self.commit(&[&record], "group_failed", None).await?;
        }
        self.observer.step_finished(&record);
        Ok(outcome)
    }

    /// Runs (or replays) one step and its callbacks.
    async fn step(
        &self,
        step: &PlannedStep,
        input: Option<Value>,
        parent: Option<String>,
        ends_workflow: bool,
    ) -> Result<StepOutcome, StoreError> {
        let mut args = step.signature.args.clone();
        if let Some(previous) = input
            && !step.signature.immutable
        {
            args.insert(0, previous);
        }
        let previous = self.take_stored(&step.id)?;
        // Held until the step's outcome is committed, so a graceful stop
        // lets it finish.
        let mut working = None;
        let (mut record, end, replayed) = match previous {
            Some(done) if done.status == StepStatus::Succeeded => {
                let value = done.result.clone().unwrap_or_default();
                (done, StepEnd::Value(value), true)
            }
            Some(done) if done.status == StepStatus::Replaced => {
                let end = replacement(done.result.as_ref().unwrap_or(&Value::Null), &done.id);
                (done, end, true)
            }
            previous => {
                working = self.begin_step().await;
                let signature = &step.signature;
                let mut record = self.new_record(
                    &step.id,
                    parent,
                    &signature.task,
                    args,
                    signature.kwargs.clone(),
                    previous.as_ref(),
                );
                let end = self
                    .run_step(signature, &mut record, previous.as_ref())
                    .await?;
                (record, end, false)
            }
        };
        let end = match end {
            StepEnd::Replace(children) => {
                self.workflow
                    .check_replacement(self.runtime, &step.id, children)
            }
            other => other,
        };
        match end {
            StepEnd::Value(value) => {
                if !replayed {
                    record.status = StepStatus::Succeeded;
                    record.result = Some(value.clone());
                    // Link callbacks run after it: then it is not the last.
                    let last = ends_workflow && step.signature.options.link.is_empty();
                    self.commit_success(&record, "step_succeeded", last).await?;
                }
                self.observer.step_finished(&record);
                drop(working);
                self.callbacks(&step.id, "link", &step.signature.options.link, &value)
                    .await?;
                Ok(StepOutcome::Value(value))
            }
            StepEnd::Replace(children) => {
                if !replayed {
                    record.status = StepStatus::Replaced;
                    self.commit(&[&record], "step_replaced", None).await?;
                }
                self.observer.step_finished(&record);
                drop(working);
                Ok(StepOutcome::Replace(children))
            }
            StepEnd::Failed(failure) => {
                let error_record = record.error_record(&self.identity.id, &failure);
                let error = WorkflowError::of(&record, &failure);
                record.status = StepStatus::Failed;
                record.error = Some(failure.clone());
                self.commit(&[&record], "step_failed", Some(failure.to_string()))
                    .await?;
                self.observer.step_finished(&record);
                // Callbacks count as steps of their own.
                drop(working);
                // A cancelled step did not fail: as with Celery's revoke,
                // no error callback runs for it.
                if failure.kind != FailureKind::Cancelled {
                    let errbacks = &step.signature.options.link_error;
                    self.callbacks(&step.id, "link_error", errbacks, &error_record)
                        .await?;
                    if let Some(on_error) = &self.workflow.spec.on_error {
                        self.callback("on_error".to_string(), &step.id, on_error, &error_record)
                            .await?;
                    }
                }
                Ok(StepOutcome::Failed(error))
            }
        }
    }

    /// Records the nodes `rest` has left as skipped, a batch of them per
    /// commit, so a long workflow stopped early is not skipped in one
    /// transaction whole.
    async fn skip_rest(&self, rest: &mut Nodes<'_>) -> Result<(), StoreError> {
        if let Nodes::Planned(nodes) = rest {
            return self.skip(&[nodes.as_slice()]).await;
        }
        loop {
            let batch: Vec<Node> = rest
                .take_batch(SKIP_BATCH)?
                .into_iter()
                .map(Cow::into_owned)
                .collect();
            if batch.is_empty() {
                return Ok(());
            }
            self.skip(&[&batch]).await?;
        }
    }

    /// Records the steps of the node lists `runs` as skipped, in one commit.
    async fn skip(&self, runs: &[&[Node]]) -> Result<(), StoreError> {
        let skipped: Vec<StepRecord> = runs
            .iter()
            .flat_map(|nodes| plan::steps(nodes))
            .map(|step| {
                let previous = self.take_stored(&step.id)?;
                let signature = &step.signature;
                Ok(self.new_record(
                    &step.id,
                    None,
                    &signature.task,
                    signature.args.clone(),
                    signature.kwargs.clone(),
                    previous.as_ref(),
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        if skipped.is_empty() {
            return Ok(());
        }
        let refs: Vec<&StepRecord> = skipped.iter().collect();
        self.commit(
            &refs,
            "steps_skipped",
            Some(format!("{} steps", skipped.len())),
        )
        .await
    }

    /// Runs a step's `link` or `link_error` callbacks with one argument.
    async fn callbacks(
        &self,
        step_id: &str,
        kind: &str,
        callbacks: &[Signature],
        argument: &Value,
    ) -> Result<(), StoreError> {
        for (index, callback) in callbacks.iter().enumerate() {
            let id = format!("{step_id}.{kind}.{index}");
            self.callback(id, step_id, callback, argument).await?;
        }
        Ok(())
    }

    /// Runs one callback as a durable step of its own, once: a callback an
    /// earlier run finished is not run again. Its failure is recorded and
    /// triggers nothing further, so a failing errback cannot loop.
    async fn callback(
        &self,
        id: String,
        parent: &str,
        callback: &Signature,
        argument: &Value,
    ) -> Result<(), StoreError> {
        let previous = self.take_stored(&id)?;
        if let Some(done) = &previous
            && matches!(done.status, StepStatus::Succeeded | StepStatus::Failed)
        {
            self.observer.step_finished(done);
            return Ok(());
        }
        let _working = self.begin_step().await;
        let mut args = callback.args.clone();
        if !callback.immutable {
            args.insert(0, argument.clone());
        }
        let mut record = self.new_record(
            &id,
            Some(parent.to_string()),
            &callback.task,
            args,
            callback.kwargs.clone(),
            previous.as_ref(),
        );
        let event = match self
            .run_step(callback, &mut record, previous.as_ref())
            .await?
        {
            StepEnd::Value(value) => {
                record.status = StepStatus::Succeeded;
                record.result = Some(value);
                "callback_succeeded"
            }
            StepEnd::Replace(_) => {
                record.status = StepStatus::Failed;
                record.error = Some(Failure::new(
                    FailureKind::InvalidOutput,
                    "a callback cannot replace itself",
                ));
                "callback_failed"
            }
            StepEnd::Failed(failure) => {
                record.status = StepStatus::Failed;
                record.error = Some(failure);
                "callback_failed"
            }
        };
        self.commit(&[&record], event, None).await?;
        self.observer.step_finished(&record);
        Ok(())
    }

    /// Runs one step, with retries, and fills in its record. `previous` is
    /// the step's record from an earlier run that stopped while the step
    /// waited for its countdown or a retry, or that failed and is re-driven.
    async fn run_step(
        &self,
        signature: &Signature,
        record: &mut StepRecord,
        previous: Option<&StepRecord>,
    ) -> Result<StepEnd, StoreError> {
        let started = Instant::now();
        let end = self.attempt_until_done(signature, record, previous).await;
        record.duration_ms += started.elapsed().as_secs_f64() * 1000.0;
        record.due_at_ms = None;
        end
    }

    /// One attempt, within the run's concurrency and, with fair shares, at
    /// its tenant's turn. Both are waited for here, where the workflow runs,
    /// so that an attempt reaches the attempt pool holding its turn: spawned
    /// first and waiting there, behind a flood of another tenant's attempts,
    /// it would not even be in the scheduler's queue until a pool thread busy
    /// with guest code got round to polling it. The attempt then runs on the
    /// attempt pool when the run has one; else, inside a group, on a task of
    /// its own, so members spread over the worker threads; else, a step of a
    /// plain chain runs where the chain runs, which spares two thread
    /// hand-overs per step.
    async fn attempt(
        &self,
        plugin: &Arc<Plugin>,
        invocation: Invocation,
        limits: Limits,
    ) -> Attempt {
        // The semaphore is never closed, so acquiring cannot fail.
        let slot = Arc::clone(&self.slots).acquire_owned().await.ok();
        let turn = match &self.fair_share {
            Some(scheduler) => Some(scheduler.acquire(&invocation.tenant).await),
            None => None,
        };
        let runtime = self.runtime.clone();
        let plugin = Arc::clone(plugin);
        let cancel = self.cancel.clone();
        let attempt = async move {
            // Given back when the attempt ends, wherever it ran.
            let _held = (slot, turn);
            if cancel.is_cancelled() {
                return Attempt::failed(cancelled("cancelled before it started"));
            }
            runtime
                .run_cancellable(&plugin, &invocation, &limits, cancel)
                .await
        };
        let ended = if let Some(pool) = &self.attempt_pool {
            pool.spawn(attempt).await.map_err(|err| err.to_string())
        } else if IN_GROUP.try_with(|_| ()).is_ok() {
            tokio::spawn(attempt).await.map_err(|err| err.to_string())
        } else {
            AssertUnwindSafe(attempt)
                .catch_unwind()
                .await
                .map_err(|_| "panicked".to_string())
        };
        ended.unwrap_or_else(|err| {
            Attempt::failed(Failure::new(
                FailureKind::Trap,
                format!("the host task running the attempt ended abnormally: {err}"),
            ))
        })
    }

    /// Counts a step as under way for a graceful stop; never returns once
    /// the host is stopping.
    async fn begin_step(&self) -> Option<Working> {
        match &self.drain {
            Some(drain) => Some(drain.begin().await),
            None => None,
        }
    }

    /// The limits of the next attempt under the workflow's fuel budget, and
    /// what is left of the budget when that, not the step's own limit, is
    /// the attempt's fuel; or the failure of a spent budget.
    fn budgeted(&self, limits: &Limits) -> Result<(Limits, Option<u64>), Failure> {
        let Some(budget) = self.fuel_budget else {
            return Ok((limits.clone(), None));
        };
        let left = budget.saturating_sub(self.fuel_spent.load(Ordering::Relaxed));
        if left == 0 {
            return Err(Failure::new(
                FailureKind::FuelExhausted,
                format!("the workflow has used all of its fuel budget of {budget}"),
            ));
        }
        let mut budgeted = limits.clone();
        let capped = limits.fuel.is_none_or(|fuel| fuel > left);
        if capped {
            budgeted.fuel = Some(left);
        }
        Ok((budgeted, capped.then_some(left)))
    }

    /// Sleeps until `due_ms` (milliseconds since the Unix epoch), if it is
    /// still ahead: a wait that survives restarts is a deadline, not a
    /// duration. Returns `false` if the run is cancelled first.
    async fn wait_until(&self, due_ms: Option<u64>) -> bool {
        if let Some(due) = due_ms {
            let now = now_ms();
            if due > now {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(due - now)) => {}
                    () = self.cancel.cancelled() => {}
                }
            }
        }
        !self.cancel.is_cancelled()
    }

    async fn attempt_until_done(
        &self,
        signature: &Signature,
        record: &mut StepRecord,
        previous: Option<&StepRecord>,
    ) -> Result<StepEnd, StoreError> {
        let plugin = match self.workflow.plugins.resolve(signature) {
            Ok((plugin, _)) => plugin,
            Err(message) => {
                return Ok(StepEnd::Failed(Failure::new(
                    FailureKind::PluginError,
                    message,
                )));
            }
        };
        let options = signature.options.or(&self.workflow.spec.defaults);
        let policy = RetryPolicy::from_options(&options);
        let limits = attempt_limits(&options, &self.runtime.ceilings().default_limits());
        let mut attempt = 1;
        // Attempts before this run: a re-driven step gets a fresh retry
        // budget, but its attempt numbers go on.
        let mut earlier_attempts = 0;
        match previous {
            Some(waiting) if waiting.status == StepStatus::Retrying => {
                attempt = waiting.attempts + 1;
                record.attempts = waiting.attempts;
                record.fuel_used = waiting.fuel_used;
                record.duration_ms = waiting.duration_ms;
                if !self.wait_until(waiting.due_at_ms).await {
                    return Ok(StepEnd::Failed(cancelled(WHILE_WAITING)));
                }
            }
            Some(failed) if failed.status == StepStatus::Failed => {
                attempt = failed.attempts + 1;
                earlier_attempts = failed.attempts;
                record.fuel_used = failed.fuel_used;
            }
            Some(waiting) if waiting.status == StepStatus::Scheduled => {
                if !self.wait_until(waiting.due_at_ms).await {
                    return Ok(StepEnd::Failed(cancelled(WHILE_WAITING)));
                }
            }
            _ => {
                if let Some(countdown) = options.countdown.filter(|c| *c > 0.0) {
                    let due =
                        now_ms().saturating_add(seconds_to_duration(countdown).as_millis() as u64);
                    record.status = StepStatus::Scheduled;
                    record.due_at_ms = Some(due);
                    self.commit(&[record], "step_scheduled", None).await?;
                    if !self.wait_until(Some(due)).await {
                        return Ok(StepEnd::Failed(cancelled(WHILE_WAITING)));
                    }
                }
            }
        }
        let args = Value::Array(record.args.clone()).to_string();
        let kwargs = Value::Object(record.kwargs.clone()).to_string();
        loop {
            let invocation = Invocation {
                workflow_id: self.identity.id.clone(),
                step_id: record.id.clone(),
                attempt,
                tenant: self.identity.tenant.clone(),
                plugin: plugin.name().to_string(),
                task: signature.task_name().to_string(),
                args: args.clone(),
                kwargs: kwargs.clone(),
            };
            let (attempt_limits, budget_left) = match self.budgeted(&limits) {
                Ok(budgeted) => budgeted,
                Err(failure) => return Ok(StepEnd::Failed(failure)),
            };
            let mut outcome = self.attempt(plugin, invocation, attempt_limits).await;
            self.fuel_spent
                .fetch_add(outcome.fuel_used, Ordering::Relaxed);
            if let (Some(left), AttemptResult::Failed(failure)) = (budget_left, &mut outcome.result)
                && failure.kind == FailureKind::FuelExhausted
            {
                failure.message = format!(
                    "used the last {left} units of the workflow's fuel budget of {}",
                    self.fuel_budget.unwrap_or_default()
                );
            }
            record.attempts = attempt;
            record.fuel_used = record.fuel_used.saturating_add(outcome.fuel_used);
            record.stdout = outcome.stdout;
            record.stderr = outcome.stderr;
            record.logs.extend(outcome.logs);
            let (reason, countdown) = match outcome.result {
                AttemptResult::Value(value) => return Ok(StepEnd::Value(value)),
                AttemptResult::Replace(json) => {
                    let end = replacement(&json, &record.id);
                    record.result = Some(json);
                    return Ok(end);
                }
                AttemptResult::Retry { message, countdown } => {
                    if !policy.allows_another(attempt - earlier_attempts) {
                        return Ok(StepEnd::Failed(Failure::new(
                            FailureKind::RetriesExhausted,
                            format!(
                                "gave up after {} attempts: {message}",
                                attempt - earlier_attempts
                            ),
                        )));
                    }
                    (message, countdown)
                }
                AttemptResult::Failed(failure) => {
                    let retry = failure.kind.is_resource_limit()
                        && policy.retry_on_limit
                        && policy.allows_another(attempt - earlier_attempts);
                    if !retry {
                        return Ok(StepEnd::Failed(failure));
                    }
                    (failure.to_string(), None)
                }
            };
            let delay = policy.delay(attempt - earlier_attempts - 1, countdown);
            record.status = StepStatus::Retrying;
            record.due_at_ms = Some(now_ms().saturating_add(delay.as_millis() as u64));
            self.commit(&[record], "step_retrying", Some(reason.clone()))
                .await?;
            self.observer.retrying(record, &reason, delay);
            if !self.wait_until(record.due_at_ms).await {
                return Ok(StepEnd::Failed(cancelled(WHILE_WAITING)));
            }
            attempt += 1;
        }
    }
}

/// How a step ended, as the chain around it sees it.
enum StepOutcome {
    Value(Value),
    Replace(Vec<Node>),
    Failed(WorkflowError),
}

/// What a step waiting for its countdown or retry says when cancelled.
const WHILE_WAITING: &str = "cancelled while it waited to run";

/// A `cancelled` failure.
fn cancelled(message: &str) -> Failure {
    Failure::new(FailureKind::Cancelled, message)
}

/// Parses and plans a replacement canvas under the replaced step's id.
fn replacement(json: &Value, step_id: &str) -> StepEnd {
    let canvas: Canvas = match spec::parse_canvas(json) {
        Ok(canvas) => canvas,
        Err(issue) => {
            return StepEnd::Failed(Failure::new(
                FailureKind::InvalidOutput,
                format!("the replacement is not a valid canvas: {issue}"),
            ));
        }
    };
    StepEnd::Replace(plan::plan(&canvas, Some(step_id)))
}

/// The steps whose limits exceed the host's ceilings.
fn ceiling_problems<'a>(
    runtime: &Runtime,
    defaults: &StepOptions,
    steps: impl IntoIterator<Item = &'a PlannedStep>,
) -> Vec<StepProblem> {
    let ceilings = runtime.ceilings();
    let host_defaults = ceilings.default_limits();
    steps
        .into_iter()
        .filter_map(|step| {
            let options = step.signature.options.or(defaults);
            ceilings
                .admit(&attempt_limits(&options, &host_defaults))
                .err()
                .map(|message| StepProblem::new(step, message))
        })
        .collect()
}

/// What is wrong with `nodes` (a plan's steps and their callbacks):
/// unknown tasks, arguments that do not bind, limits over the ceilings.
fn node_problems(
    runtime: &Runtime,
    plugins: &PluginSet,
    defaults: &StepOptions,
    nodes: &[Node],
    first_has_input: bool,
) -> Vec<StepProblem> {
    let steps = plan::steps(nodes);
    let callbacks = step_callbacks(&steps);
    let mut problems = plugins.problems(plan::steps_with_input(nodes, first_has_input));
    // Every callback receives one argument: a result or an error record.
    problems.extend(plugins.problems(callbacks.iter().map(|callback| (callback, true))));
    problems.extend(ceiling_problems(
        runtime,
        defaults,
        steps.into_iter().chain(&callbacks),
    ));
    problems
}

/// The `link` and `link_error` callbacks of `steps`, for checking before
/// they run.
fn step_callbacks(steps: &[&PlannedStep]) -> Vec<PlannedStep> {
    steps
        .iter()
        .flat_map(|step| {
            let options = &step.signature.options;
            let links = options
                .link
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("{}.link.{i}", step.id), s));
            let errbacks = options
                .link_error
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("{}.link_error.{i}", step.id), s));
            links.chain(errbacks).map(|(id, signature)| PlannedStep {
                id,
                signature: signature.clone(),
            })
        })
        .collect()
}

/// The limits of one attempt: the step's options over the host's defaults.
pub fn attempt_limits(options: &StepOptions, defaults: &Limits) -> Limits {
    fn pick<T, U>(
        option: Option<Limit<T>>,
        default: Option<U>,
        convert: impl Fn(T) -> U,
    ) -> Option<U> {
        match option {
            None => default,
            Some(Limit::Unlimited) => None,
            Some(Limit::Value(value)) => Some(convert(value)),
        }
    }
    Limits {
        fuel: pick(options.fuel, defaults.fuel, |fuel| fuel),
        memory_bytes: pick(options.memory_mb, defaults.memory_bytes, |mb| {
            mb.saturating_mul(1 << 20)
        }),
        time_limit: pick(options.time_limit, defaults.time_limit, |seconds| {
            Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
        }),
        ..defaults.clone()
    }
}
