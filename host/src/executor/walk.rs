//! The walk: a chain's nodes one after another, a group's members side by
//! side, a chord's body after its header, replacements in place. A step is
//! replayed from the record an earlier run left, or run and committed before
//! the walk moves on, then followed by its callbacks (`callbacks.rs`); a
//! failure leaves the rest recorded as skipped (`record.rs`).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use wfhost_canvas::{Canvas, Signature, accumulated};

use super::attempt::IN_GROUP;
use super::error::ExecutorError;
use super::nodes::Nodes;
use super::{Continuation, Drain, FairScheduler, Observer, PreparedWorkflow, RunIdentity};
use crate::plan::{self, Node, PlannedStep, StepId};
use crate::records::{Failure, FailureKind, StepStatus, WorkflowError, now_ms};
use crate::runtime::{CancelToken, Runtime};
use crate::spec;
use crate::store::Store;

/// How a step ended: its result, the canvas that replaces it, or its
/// failure, which is `F`.
pub(super) enum StepEnd<F> {
    Value(Value),
    Replace(Vec<Node>),
    Failed(F),
}

/// How a step's attempts ended (or its record from an earlier run says
/// they did), before the walk records it: its own failure.
pub(super) type AttemptsEnd = StepEnd<Failure>;

/// How a step ended as the chain around it sees it, once recorded: the
/// workflow's error, which names the step.
type StepOutcome = StepEnd<WorkflowError>;

/// The outcome of a chain or group: its result, or the error of the step
/// that stopped it. The outer `Result` is the store's: a failed commit ends
/// the run, since nothing after it would be durable.
pub(super) type Outcome = Result<Result<Value, WorkflowError>, ExecutorError>;
type BoxedOutcome<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

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
    /// Held while a wait finds and takes its signal.
    pub(super) signals_taken: tokio::sync::Mutex<()>,
    /// Whether, and how, a pause may park the run.
    pub(super) parking: Option<super::pause::Parking>,
}

impl Run<'_> {
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
                let last = ends_workflow && replacements.is_empty() && rest.at_end()?;
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
                                self.header_failed(id, header, body, &error).await?;
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
        record.started_at_ms = Some(now_ms());
        let runs = members.iter().map(|member| {
            let member = Nodes::planned(member);
            let member = self.chain(member, input.clone(), Some(id.to_string()), false);
            IN_GROUP.scope((), member)
        });
        let outcomes = futures::future::join_all(runs).await;
        record.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        record.ended_at_ms = Some(now_ms());
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
    ) -> Result<StepOutcome, ExecutorError> {
        let previous = self.earlier_record(&step.id)?;
        // The last attempt's place among the steps under way, held until
        // the step's outcome is committed, so a graceful stop lets it finish.
        let mut working = None;
        let (mut record, end, replayed) = match previous {
            Some(done) if done.status == StepStatus::Succeeded => {
                let value = done.result.clone().unwrap_or_default();
                (done, AttemptsEnd::Value(value), true)
            }
            Some(done) if done.status == StepStatus::Replaced => {
                let json = done.result.as_ref().unwrap_or(&Value::Null);
                let end = replacement(json, &done.id, &step.signature);
                (done, end, true)
            }
            previous => {
                let signature = &step.signature;
                let mut record =
                    self.call_record(&step.id, parent, signature, input, previous.as_ref());
                let (end, held) = self
                    .run_step(signature, &mut record, previous.as_ref())
                    .await?;
                working = held;
                (record, end, false)
            }
        };
        let end = match end {
            AttemptsEnd::Replace(children) => self.workflow.check_replacement(&step.id, children),
            other => other,
        };
        match end {
            AttemptsEnd::Value(value) => {
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
            AttemptsEnd::Replace(children) => {
                if !replayed {
                    record.status = StepStatus::Replaced;
                    self.commit(&[&record], "step_replaced", None).await?;
                }
                self.observer.step_finished(&record);
                drop(working);
                Ok(StepOutcome::Replace(children))
            }
            AttemptsEnd::Failed(failure) => {
                let error_record = record.error_record(&self.identity.id, &failure);
                let error = WorkflowError::of(&record, &failure);
                record.status = StepStatus::Failed;
                record.error = Some(failure.clone());
                self.commit(&[&record], "step_failed", Some(failure.to_string()))
                    .await?;
                self.observer.step_finished(&record);
                // Callbacks count as steps of their own.
                drop(working);
                // A cancelled or expired step did not fail: as with
                // Celery's revoke, no error callback runs for it.
                if !failure.kind.is_revoked() {
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
}

/// Parses and plans a replacement canvas under the replaced step's id.
/// As Celery's `Task.replace` does, a group becomes a chord whose body is
/// `celery.accumulate`, and the replaced step's callbacks go to the
/// replacement as to any canvas (`Canvas::link`, `Canvas::link_error`).
pub(super) fn replacement(json: &Value, step_id: &str, replaced: &Signature) -> AttemptsEnd {
    let step_id = StepId::from_stored(step_id);
    let mut canvas: Canvas = match spec::parse_canvas(json) {
        Ok(canvas) => canvas,
        Err(issue) => {
            return AttemptsEnd::Failed(Failure::new(
                FailureKind::InvalidOutput,
                format!("the replacement is not a valid canvas: {issue}"),
            ));
        }
    };
    if matches!(&canvas, Canvas::Chain(items) if items.is_empty()) {
        // As Celery's `Task.replace` refuses it.
        return AttemptsEnd::Failed(Failure::new(
            FailureKind::Fail,
            "cannot replace with an empty chain",
        ));
    }
    let callbacks = &replaced.options;
    if let Canvas::Group(members) = &mut canvas {
        // As Celery's does, the group becomes a chord whose body,
        // `celery.accumulate`, holds the group's list for the callbacks
        // (and is the one step whose errbacks run when a member fails).
        canvas = accumulated(std::mem::take(members));
    }
    for callback in &callbacks.link {
        canvas.link(callback.clone());
    }
    for errback in &callbacks.link_error {
        canvas.link_error(errback.clone());
    }
    AttemptsEnd::Replace(plan::plan(&canvas, Some(&step_id)))
}
