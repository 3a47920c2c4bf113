//! The executor: runs a workflow's steps in order, feeding each result into
//! the next step, retrying under each step's policy, expanding replacements
//! in place, and stopping at the first failure.

mod plugins;
mod retry;

pub use plugins::{PluginSet, ValidationError};
pub use retry::RetryPolicy;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::Value;
use wfhost_canvas::{Canvas, Limit, Signature, StepOptions};

use crate::failure::{Failure, FailureKind};
use crate::plan::{self, PlannedStep};
use crate::report::{StepRecord, StepStatus, WorkflowError, WorkflowStatus};
use crate::runtime::{AttemptResult, Invocation, Limits, Runtime};
use crate::spec::{self, WorkflowSpec};
use crate::store::{Store, StoreError, WorkflowRow, now_ms};
use retry::seconds_to_duration;

/// Replacements may nest this deep; a task that keeps replacing itself
/// fails instead of running forever.
const MAX_REPLACE_DEPTH: usize = 64;

/// Hears about a run as it goes, e.g. to show progress.
pub trait Observer: Send + Sync {
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

/// A workflow whose plugins are loaded and whose steps all name existing
/// tasks: ready to run.
pub struct Workflow {
    spec: WorkflowSpec,
    plugins: PluginSet,
    steps: Vec<PlannedStep>,
}

/// What to do with a workflow that has already failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Report its stored outcome.
    Normal,
    /// Run it again from its failed step (`wfhost retry`).
    RetryFailed,
}

/// Which stored steps a re-driven workflow keeps: all but the errbacks of
/// the failure, which run again if the step fails again. The failed step's
/// record stays, so its attempts continue where they stopped.
fn redrive_keeps(step: &StepRecord, failed_step: Option<&str>) -> bool {
    let errback_of_failure = step.id == "on_error"
        || failed_step.is_some_and(|failed| step.id.starts_with(&format!("{failed}.link_error.")));
    !errback_of_failure
}

/// How one step ended.
enum StepEnd {
    Value(Value),
    Replace(Vec<PlannedStep>),
    Failed(Failure),
}

impl Workflow {
    /// Plans the workflow, loads its plugins and checks every task exists.
    pub async fn prepare(runtime: &Runtime, spec: WorkflowSpec) -> Result<Self, ValidationError> {
        let steps = plan::flatten(&spec.workflow, None)?;
        let plugins = PluginSet::load(runtime, &spec.plugins).await?;
        plugins.check(&steps)?;
        let callbacks: Vec<PlannedStep> = callback_steps(&spec, &steps);
        plugins.check(&callbacks)?;
        check_ceilings(runtime, &spec.defaults, steps.iter().chain(&callbacks))?;
        Ok(Workflow {
            spec,
            plugins,
            steps,
        })
    }

    /// How many steps the workflow has before any replacement expands.
    pub fn planned_steps(&self) -> usize {
        self.steps.len()
    }

    /// The loaded plugins.
    pub fn plugins(&self) -> &PluginSet {
        &self.plugins
    }

    /// The workflow as its file describes it.
    pub fn spec(&self) -> &WorkflowSpec {
        &self.spec
    }

    /// The workflow with every plugin pinned to its absolute path and the
    /// sha256 of the component that was loaded, so that `resume` runs the
    /// same code or refuses to.
    pub fn pinned_spec(&self) -> WorkflowSpec {
        let mut spec = self.spec.clone();
        for (name, plugin_ref) in spec.plugins.iter_mut() {
            if let Some(plugin) = self.plugins.get(name) {
                plugin_ref.path = std::fs::canonicalize(plugin.path())
                    .unwrap_or_else(|_| plugin.path().to_path_buf());
                plugin_ref.sha256 = Some(plugin.sha256().to_string());
            }
        }
        spec
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
        observer: &dyn Observer,
    ) -> Result<WorkflowRow, StoreError> {
        let existing = store.workflow(&identity.tenant, &identity.id)?;
        let (mut row, stored) = match existing {
            None => {
                let now = now_ms();
                let row = WorkflowRow {
                    id: identity.id.clone(),
                    tenant: identity.tenant.clone(),
                    status: WorkflowStatus::Running,
                    spec: self.pinned_spec().to_json(),
                    created_at_ms: now,
                    updated_at_ms: now,
                    result: None,
                    error: None,
                };
                store.put_workflow(&row, "workflow_started", None)?;
                (row, Vec::new())
            }
            Some(row) => match (row.status, mode) {
                (WorkflowStatus::Running, _) => {
                    store.put_workflow(&row, "workflow_resumed", None)?;
                    let steps = store.steps(&identity.tenant, &identity.id)?;
                    (row, steps)
                }
                (WorkflowStatus::Failed, RunMode::RetryFailed) => {
                    let mut row = row;
                    let failed_step = row.error.take().map(|error| error.step);
                    row.status = WorkflowStatus::Running;
                    row.updated_at_ms = now_ms();
                    store.put_workflow(&row, "workflow_retried", failed_step.clone())?;
                    let steps = store.steps(&identity.tenant, &identity.id)?;
                    let keep = |step: &StepRecord| redrive_keeps(step, failed_step.as_deref());
                    (row, steps.into_iter().filter(keep).collect())
                }
                _ => return Ok(row),
            },
        };
        let next_seq = stored.iter().map(|step| step.seq + 1).max().unwrap_or(0);
        let mut run = Run {
            workflow: self,
            runtime,
            store,
            identity,
            observer,
            stored: stored
                .into_iter()
                .map(|step| (step.id.clone(), step))
                .collect(),
            next_seq,
        };
        let outcome = run.chain(self.steps.iter().cloned().collect()).await?;
        let event = match outcome {
            Ok(result) => {
                row.status = WorkflowStatus::Succeeded;
                row.result = Some(result);
                "workflow_succeeded"
            }
            Err(error) => {
                row.status = WorkflowStatus::Failed;
                row.error = Some(error);
                "workflow_failed"
            }
        };
        row.updated_at_ms = now_ms();
        store.put_workflow(&row, event, None)?;
        Ok(row)
    }

    /// Plans a replacement and checks its tasks; a bad one fails the step.
    fn check_replacement(
        &self,
        runtime: &Runtime,
        step_id: &str,
        children: Vec<PlannedStep>,
    ) -> StepEnd {
        if step_id.split('.').count() > MAX_REPLACE_DEPTH {
            return StepEnd::Failed(Failure::new(
                FailureKind::InvalidOutput,
                format!("replacements nested more than {MAX_REPLACE_DEPTH} deep"),
            ));
        }
        let checked = self
            .plugins
            .check(&children)
            .and_then(|()| check_ceilings(runtime, &self.spec.defaults, &children));
        match checked {
            Ok(()) => StepEnd::Replace(children),
            Err(err) => StepEnd::Failed(Failure::new(
                FailureKind::InvalidOutput,
                format!("the replacement cannot run: {err}"),
            )),
        }
    }
}

/// One run of a workflow: what every step needs, and the steps a previous
/// run of the same workflow already recorded.
struct Run<'a> {
    workflow: &'a Workflow,
    runtime: &'a Runtime,
    store: &'a Store,
    identity: &'a RunIdentity,
    observer: &'a dyn Observer,
    /// Steps recorded by an earlier run, by id, not yet replayed.
    stored: HashMap<String, StepRecord>,
    next_seq: u64,
}

impl Run<'_> {
    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Commits a step's record with an event; the executor moves on only
    /// once this returns.
    fn commit(
        &self,
        record: &StepRecord,
        event: &str,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        self.store.put_steps(
            &self.identity.tenant,
            &self.identity.id,
            &[record],
            event,
            detail,
        )
    }

    /// Runs `queue` in order, each result feeding the next step. Returns the
    /// last result, or the error of the step that stopped the chain. Steps
    /// an earlier run finished are replayed from their records, not run.
    async fn chain(
        &mut self,
        mut queue: VecDeque<PlannedStep>,
    ) -> Result<Result<Value, WorkflowError>, StoreError> {
        let mut input: Option<Value> = None;
        let mut parent: Option<String> = None;
        let mut last = Value::Null;
        while let Some(step) = queue.pop_front() {
            let mut args = step.signature.args.clone();
            // Every step consumes the previous result; only mutable ones use it.
            if let Some(previous) = input.take()
                && !step.signature.immutable
            {
                args.insert(0, previous);
            }
            let parent_id = parent.replace(step.id.clone());
            let previous = self.stored.remove(&step.id);
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
                    let mut record = StepRecord::new(
                        &step.id,
                        parent_id,
                        &step.signature.task,
                        args,
                        step.signature.kwargs.clone(),
                    );
                    record.seq = match &previous {
                        Some(previous) => previous.seq,
                        None => self.take_seq(),
                    };
                    let end = self
                        .run_step(&step.signature, &mut record, previous.as_ref())
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
                        self.commit(&record, "step_succeeded", None)?;
                    }
                    self.observer.step_finished(&record);
                    let links = &step.signature.options.link;
                    self.callbacks(&step.id, "link", links, &value).await?;
                    input = Some(value.clone());
                    last = value;
                }
                StepEnd::Replace(children) => {
                    if !replayed {
                        record.status = StepStatus::Replaced;
                        self.commit(&record, "step_replaced", None)?;
                    }
                    self.observer.step_finished(&record);
                    for child in children.into_iter().rev() {
                        queue.push_front(child);
                    }
                }
                StepEnd::Failed(failure) => {
                    let error_record = record.error_record(&self.identity.id, &failure);
                    let error = WorkflowError::of(&record, &failure);
                    record.status = StepStatus::Failed;
                    record.error = Some(failure.clone());
                    self.commit(&record, "step_failed", Some(failure.to_string()))?;
                    self.observer.step_finished(&record);
                    let errbacks = &step.signature.options.link_error;
                    self.callbacks(&step.id, "link_error", errbacks, &error_record)
                        .await?;
                    if let Some(on_error) = &self.workflow.spec.on_error {
                        self.callback("on_error".to_string(), &step.id, on_error, &error_record)
                            .await?;
                    }
                    self.skip(queue)?;
                    return Ok(Err(error));
                }
            }
        }
        Ok(Ok(last))
    }

    /// Records the steps a failure stopped from running, in one commit.
    fn skip(&mut self, queue: VecDeque<PlannedStep>) -> Result<(), StoreError> {
        let skipped: Vec<StepRecord> = queue
            .into_iter()
            .map(|step| {
                let mut record = StepRecord::new(
                    &step.id,
                    None,
                    &step.signature.task,
                    step.signature.args.clone(),
                    step.signature.kwargs.clone(),
                );
                record.seq = match self.stored.remove(&step.id) {
                    Some(stored) => stored.seq,
                    None => self.take_seq(),
                };
                record
            })
            .collect();
        if skipped.is_empty() {
            return Ok(());
        }
        let refs: Vec<&StepRecord> = skipped.iter().collect();
        let detail = Some(format!("{} steps", skipped.len()));
        self.store.put_steps(
            &self.identity.tenant,
            &self.identity.id,
            &refs,
            "steps_skipped",
            detail,
        )
    }

    /// Runs a step's `link` or `link_error` callbacks with one argument.
    async fn callbacks(
        &mut self,
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
        &mut self,
        id: String,
        parent: &str,
        callback: &Signature,
        argument: &Value,
    ) -> Result<(), StoreError> {
        let previous = self.stored.remove(&id);
        if let Some(done) = &previous
            && matches!(done.status, StepStatus::Succeeded | StepStatus::Failed)
        {
            self.observer.step_finished(done);
            return Ok(());
        }
        let mut args = callback.args.clone();
        if !callback.immutable {
            args.insert(0, argument.clone());
        }
        let mut record = StepRecord::new(
            &id,
            Some(parent.to_string()),
            &callback.task,
            args,
            callback.kwargs.clone(),
        );
        record.seq = match &previous {
            Some(previous) => previous.seq,
            None => self.take_seq(),
        };
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
        self.commit(&record, event, None)?;
        self.observer.step_finished(&record);
        Ok(())
    }

    /// Runs one step, with retries, and fills in its record. `previous` is
    /// the step's record from an earlier run that stopped while the step
    /// waited for its countdown or a retry: the wait resumes where it was.
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
                wait_until(waiting.due_at_ms).await;
            }
            Some(failed) if failed.status == StepStatus::Failed => {
                attempt = failed.attempts + 1;
                earlier_attempts = failed.attempts;
                record.fuel_used = failed.fuel_used;
            }
            Some(waiting) if waiting.status == StepStatus::Scheduled => {
                wait_until(waiting.due_at_ms).await;
            }
            _ => {
                if let Some(countdown) = options.countdown.filter(|c| *c > 0.0) {
                    let due =
                        now_ms().saturating_add(seconds_to_duration(countdown).as_millis() as u64);
                    record.status = StepStatus::Scheduled;
                    record.due_at_ms = Some(due);
                    self.commit(record, "step_scheduled", None)?;
                    wait_until(Some(due)).await;
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
            let outcome = self.runtime.run(plugin, &invocation, &limits).await;
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
            self.commit(record, "step_retrying", Some(reason.clone()))?;
            self.observer.retrying(record, &reason, delay);
            wait_until(record.due_at_ms).await;
            attempt += 1;
        }
    }
}

/// Sleeps until `due_ms` (milliseconds since the Unix epoch), if it is
/// still ahead: a wait that survives restarts is a deadline, not a duration.
async fn wait_until(due_ms: Option<u64>) {
    if let Some(due) = due_ms {
        let now = now_ms();
        if due > now {
            tokio::time::sleep(Duration::from_millis(due - now)).await;
        }
    }
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
    match plan::flatten(&canvas, Some(step_id)) {
        Ok(children) => StepEnd::Replace(children),
        Err(err) => StepEnd::Failed(Failure::new(
            FailureKind::InvalidOutput,
            format!("the replacement cannot run: {err}"),
        )),
    }
}

/// Refuses steps whose limits exceed the host's ceilings.
fn check_ceilings<'a>(
    runtime: &Runtime,
    defaults: &StepOptions,
    steps: impl IntoIterator<Item = &'a PlannedStep>,
) -> Result<(), ValidationError> {
    let ceilings = runtime.ceilings();
    let host_defaults = ceilings.default_limits();
    for step in steps {
        let options = step.signature.options.or(defaults);
        ceilings
            .admit(&attempt_limits(&options, &host_defaults))
            .map_err(|message| ValidationError::at(step, message))?;
    }
    Ok(())
}

/// Every callback signature of the workflow, for checking before it runs.
fn callback_steps(spec: &WorkflowSpec, steps: &[PlannedStep]) -> Vec<PlannedStep> {
    let mut callbacks: Vec<PlannedStep> = steps
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
        .collect();
    if let Some(on_error) = &spec.on_error {
        callbacks.push(PlannedStep {
            id: "on_error".into(),
            signature: on_error.clone(),
        });
    }
    callbacks
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
