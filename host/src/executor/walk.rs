//! The walk: a chain's nodes one after another, a group's members side by
//! side, a chord's body after its header, each step's callbacks after it,
//! replacements in place, and what a failure leaves skipped. Each step's
//! record is committed before the walk moves on, and a continuing run
//! replays the records an earlier run left instead of running them again.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use wfhost_canvas::{Canvas, Signature};

use super::attempt::IN_GROUP;
use super::nodes::Nodes;
use super::{Continuation, Drain, FairScheduler, Observer, PreparedWorkflow, RunIdentity};
use crate::plan::{self, Node, PlannedStep, StepId};
use crate::records::{Failure, FailureKind, StepRecord, StepStatus, WorkflowError};
use crate::runtime::{CancelToken, Runtime};
use crate::spec;
use crate::store::{Flush, Store, StoreError};

/// Nodes recorded as skipped per commit.
const SKIP_BATCH: usize = 1024;

/// How one step ended.
pub(super) enum StepEnd {
    Value(Value),
    Replace(Vec<Node>),
    Failed(Failure),
}

/// The outcome of a chain or group: its result, or the error of the step
/// that stopped it. The outer `Result` is the store's: a failed commit ends
/// the run, since nothing after it would be durable.
pub(super) type Outcome = Result<Result<Value, WorkflowError>, StoreError>;
type BoxedOutcome<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// How a step ended, as the chain around it sees it.
enum StepOutcome {
    Value(Value),
    Replace(Vec<Node>),
    Failed(WorkflowError),
}

/// Which stored steps a re-driven workflow keeps: all but the errbacks of
/// the failure, which run again if the step fails again. The failed step's
/// record stays, so its attempts continue where they stopped.
fn redrive_keeps(step: &StepRecord, failed_step: Option<&str>) -> bool {
    !StepId::from_stored(step.id.as_str()).is_errback_of(failed_step)
}

/// One run of a workflow: what every step needs, and whether an earlier run
/// of the same workflow recorded steps it must reuse.
pub(super) struct Run<'a> {
    pub(super) workflow: &'a PreparedWorkflow,
    pub(super) runtime: &'a Runtime,
    pub(super) store: &'a Store,
    pub(super) identity: &'a RunIdentity,
    pub(super) observer: &'a dyn Observer,
    /// Whether this run continues an earlier one, whose records it reuses;
    /// they are read from the store step by step, so that a long
    /// workflow's records are never all in memory.
    pub(super) continuation: &'a Continuation,
    pub(super) next_seq: AtomicU64,
    /// Attempts running at once are bounded by the run's concurrency.
    pub(super) slots: Arc<Semaphore>,
    /// Slots shared with other tenants' runs, if any.
    pub(super) fair_share: Option<Arc<FairScheduler>>,
    /// Where attempts run, if not beside the run.
    pub(super) attempt_pool: Option<tokio::runtime::Handle>,
    pub(super) cancel: CancelToken,
    pub(super) fuel_budget: Option<u64>,
    /// Fuel the workflow's attempts have used, this run and earlier ones.
    pub(super) fuel_spent: AtomicU64,
    pub(super) drain: Option<Arc<Drain>>,
}

impl Run<'_> {
    fn take_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The record an earlier run left for `id` that this run reuses. Each
    /// step id is visited once in a run, so each record is reused once.
    fn earlier_record(&self, id: &str) -> Result<Option<StepRecord>, StoreError> {
        let failed_step = match self.continuation {
            Continuation::Fresh => return Ok(None),
            Continuation::Resume => None,
            Continuation::Redrive { failed_step } => failed_step.as_deref(),
        };
        let record = self
            .store
            .step(&self.identity.tenant, &self.identity.id, id)?;
        Ok(record.filter(|step| redrive_keeps(step, failed_step)))
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
    pub(super) async fn commit(
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
    pub(super) fn chain<'n>(
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
                                parent = Some(step.id.to_string());
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
                                self.chain(body, Some(results), Some(id.to_string()), last)
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
        let previous = self.earlier_record(id)?;
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
        let previous = self.earlier_record(&step.id)?;
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
            StepEnd::Replace(children) => self.workflow.check_replacement(&step.id, children),
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
                self.callbacks(&step.id, StepId::link, &step.signature.options.link, &value)
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
                    self.callbacks(&step.id, StepId::link_error, errbacks, &error_record)
                        .await?;
                    if let Some(on_error) = &self.workflow.spec.on_error {
                        self.callback(StepId::on_error(), &step.id, on_error, &error_record)
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
                let previous = self.earlier_record(&step.id)?;
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
        step_id: &StepId,
        kind: fn(&StepId, usize) -> StepId,
        callbacks: &[Signature],
        argument: &Value,
    ) -> Result<(), StoreError> {
        for (index, callback) in callbacks.iter().enumerate() {
            let id = kind(step_id, index);
            self.callback(id, step_id, callback, argument).await?;
        }
        Ok(())
    }

    /// Runs one callback as a durable step of its own, once: a callback an
    /// earlier run finished is not run again. Its failure is recorded and
    /// triggers nothing further, so a failing errback cannot loop.
    async fn callback(
        &self,
        id: StepId,
        parent: &str,
        callback: &Signature,
        argument: &Value,
    ) -> Result<(), StoreError> {
        let previous = self.earlier_record(&id)?;
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
}

/// Parses and plans a replacement canvas under the replaced step's id.
pub(super) fn replacement(json: &Value, step_id: &str) -> StepEnd {
    let step_id = StepId::from_stored(step_id);
    let canvas: Canvas = match spec::parse_canvas(json) {
        Ok(canvas) => canvas,
        Err(issue) => {
            return StepEnd::Failed(Failure::new(
                FailureKind::InvalidOutput,
                format!("the replacement is not a valid canvas: {issue}"),
            ));
        }
    };
    StepEnd::Replace(plan::plan(&canvas, Some(&step_id)))
}
