//! The executor: runs a workflow's steps in order, feeding each result into
//! the next step, retrying under each step's policy, expanding replacements
//! in place, and stopping at the first failure.

mod plugins;
mod retry;

pub use plugins::{PluginSet, ValidationError};
pub use retry::RetryPolicy;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;
use wfhost_canvas::{Canvas, Limit, Signature, StepOptions};

use crate::failure::{Failure, FailureKind};
use crate::plan::{self, PlannedStep};
use crate::report::{StepRecord, StepStatus, WorkflowError, WorkflowReport, WorkflowStatus};
use crate::runtime::{AttemptResult, Invocation, Limits, Runtime};
use crate::spec::{self, WorkflowSpec};
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

    /// The loaded plugins.
    pub fn plugins(&self) -> &PluginSet {
        &self.plugins
    }

    /// The workflow as its file describes it.
    pub fn spec(&self) -> &WorkflowSpec {
        &self.spec
    }

    /// Runs the workflow to its end.
    pub async fn run(
        &self,
        runtime: &Runtime,
        identity: &RunIdentity,
        observer: &dyn Observer,
    ) -> WorkflowReport {
        let mut run = Run {
            workflow: self,
            runtime,
            identity,
            observer,
            records: Vec::new(),
        };
        let outcome = run.chain(self.steps.iter().cloned().collect()).await;
        let (status, result, error) = match outcome {
            Ok(result) => (WorkflowStatus::Succeeded, Some(result), None),
            Err(error) => (WorkflowStatus::Failed, None, Some(error)),
        };
        WorkflowReport {
            id: identity.id.clone(),
            tenant: identity.tenant.clone(),
            status,
            result,
            error,
            steps: run.records,
        }
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

/// One run of a workflow: what every step needs, and the records so far.
struct Run<'a> {
    workflow: &'a Workflow,
    runtime: &'a Runtime,
    identity: &'a RunIdentity,
    observer: &'a dyn Observer,
    records: Vec<StepRecord>,
}

impl Run<'_> {
    /// Runs `queue` in order, each result feeding the next step. Returns the
    /// last result, or the error of the step that stopped the chain.
    async fn chain(&mut self, mut queue: VecDeque<PlannedStep>) -> Result<Value, WorkflowError> {
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
            let mut record = StepRecord::new(
                &step.id,
                parent.replace(step.id.clone()),
                &step.signature.task,
                args,
                step.signature.kwargs.clone(),
            );
            let end = match self.run_step(&step.signature, &mut record).await {
                StepEnd::Replace(children) => {
                    self.workflow
                        .check_replacement(self.runtime, &step.id, children)
                }
                other => other,
            };
            match end {
                StepEnd::Value(value) => {
                    record.status = StepStatus::Succeeded;
                    record.result = Some(value.clone());
                    self.finish(record);
                    let links = &step.signature.options.link;
                    self.callbacks(&step.id, "link", links, &value).await;
                    input = Some(value.clone());
                    last = value;
                }
                StepEnd::Replace(children) => {
                    record.status = StepStatus::Replaced;
                    self.finish(record);
                    for child in children.into_iter().rev() {
                        queue.push_front(child);
                    }
                }
                StepEnd::Failed(failure) => {
                    let error_record = record.error_record(&self.identity.id, &failure);
                    let error = WorkflowError::of(&record, &failure);
                    record.status = StepStatus::Failed;
                    record.error = Some(failure);
                    self.finish(record);
                    let errbacks = &step.signature.options.link_error;
                    self.callbacks(&step.id, "link_error", errbacks, &error_record)
                        .await;
                    if let Some(on_error) = &self.workflow.spec.on_error {
                        let id = "on_error".to_string();
                        self.callback(id, &step.id, on_error, &error_record).await;
                    }
                    for skipped in queue {
                        self.records.push(StepRecord::new(
                            &skipped.id,
                            None,
                            &skipped.signature.task,
                            skipped.signature.args.clone(),
                            skipped.signature.kwargs.clone(),
                        ));
                    }
                    return Err(error);
                }
            }
        }
        Ok(last)
    }

    fn finish(&mut self, record: StepRecord) {
        self.observer.step_finished(&record);
        self.records.push(record);
    }

    /// Runs a step's `link` or `link_error` callbacks with one argument.
    async fn callbacks(
        &mut self,
        step_id: &str,
        kind: &str,
        callbacks: &[Signature],
        argument: &Value,
    ) {
        for (index, callback) in callbacks.iter().enumerate() {
            let id = format!("{step_id}.{kind}.{index}");
            self.callback(id, step_id, callback, argument).await;
        }
    }

    /// Runs one callback as a step of its own. Its failure is recorded and
    /// triggers nothing further, so a failing errback cannot loop.
    async fn callback(&mut self, id: String, parent: &str, callback: &Signature, argument: &Value) {
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
        match self.run_step(callback, &mut record).await {
            StepEnd::Value(value) => {
                record.status = StepStatus::Succeeded;
                record.result = Some(value);
            }
            StepEnd::Replace(_) => {
                record.status = StepStatus::Failed;
                record.error = Some(Failure::new(
                    FailureKind::InvalidOutput,
                    "a callback cannot replace itself",
                ));
            }
            StepEnd::Failed(failure) => {
                record.status = StepStatus::Failed;
                record.error = Some(failure);
            }
        }
        self.finish(record);
    }

    /// Runs one step, with retries, and fills in its record.
    async fn run_step(&self, signature: &Signature, record: &mut StepRecord) -> StepEnd {
        let started = Instant::now();
        let end = self.attempt_until_done(signature, record).await;
        record.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        end
    }

    async fn attempt_until_done(&self, signature: &Signature, record: &mut StepRecord) -> StepEnd {
        let plugin = match self.workflow.plugins.resolve(signature) {
            Ok((plugin, _)) => plugin,
            Err(message) => {
                return StepEnd::Failed(Failure::new(FailureKind::PluginError, message));
            }
        };
        let options = signature.options.or(&self.workflow.spec.defaults);
        let policy = RetryPolicy::from_options(&options);
        let limits = attempt_limits(&options, &self.runtime.ceilings().default_limits());
        if let Some(countdown) = options.countdown {
            tokio::time::sleep(seconds_to_duration(countdown)).await;
        }
        let args = Value::Array(record.args.clone()).to_string();
        let kwargs = Value::Object(record.kwargs.clone()).to_string();
        let mut attempt = 1;
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
                AttemptResult::Value(value) => return StepEnd::Value(value),
                AttemptResult::Replace(json) => {
                    let end = replacement(&json, &record.id);
                    record.result = Some(json);
                    return end;
                }
                AttemptResult::Retry { message, countdown } => {
                    if !policy.allows_another(attempt) {
                        return StepEnd::Failed(Failure::new(
                            FailureKind::RetriesExhausted,
                            format!("gave up after {attempt} attempts: {message}"),
                        ));
                    }
                    (message, countdown)
                }
                AttemptResult::Failed(failure) => {
                    let retry = failure.kind.is_resource_limit()
                        && policy.retry_on_limit
                        && policy.allows_another(attempt);
                    if !retry {
                        return StepEnd::Failed(failure);
                    }
                    (failure.to_string(), None)
                }
            };
            let delay = policy.delay(attempt - 1, countdown);
            self.observer.retrying(record, &reason, delay);
            tokio::time::sleep(delay).await;
            attempt += 1;
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
