//! The executor: runs a prepared workflow's plan, feeding each result into
//! the next step, running group members in parallel, retrying under each
//! step's policy, expanding replacements in place, and stopping at a
//! failure. Every state change is committed to the store before the run
//! moves on.
//!
//! - `options` is how a run is set up (identity, machine use, observer);
//! - `validate` is what is checked before anything runs;
//! - `walk` goes through chains, groups, chords and callbacks;
//! - `attempt` runs a step's attempts under its retry policy;
//! - `record` is what a run writes, and `callbacks` run after a step;
//! - `nodes` feeds the walk a workflow's elements as it reaches them;
//! - `plugins`, `retry`, `fair` and `drain` each hold one idea.
//!
//! Whether a workflow starts, continues or is only reported is decided by
//! [`crate::Host`]; this module runs what it was handed.

mod attempt;
mod binding;
mod callbacks;
mod drain;
mod error;
mod fair;
mod flow;
mod nodes;
mod options;
mod pause;
mod plugins;
mod record;
mod validate;
mod walk;

pub use drain::Drain;
use drain::Working;
pub use error::ExecutorError;
pub use fair::FairScheduler;
pub use options::{
    Concurrency, MAX_CONCURRENCY, Observer, PARK_AFTER, RunIdentity, RunOptions, Silent, cores,
};
pub use pause::Parked;
pub use plugins::PluginSet;
pub use validate::{StepProblem, ValidationError};

use std::sync::atomic::AtomicU64;

use serde_json::Value;

use crate::plan::{self, PlannedStep, StepId};
use crate::records::WorkflowError;
use crate::runtime::{CancelToken, Ceilings, Runtime};
use crate::spec::WorkflowSpec;
use crate::store::{StepTotals, Store};
use nodes::Nodes;
use validate::{Findings, node_findings};
use walk::Run;

/// A workflow whose plugins are loaded and whose steps all name existing
/// tasks within its ceilings: ready to run.
pub struct PreparedWorkflow {
    spec: WorkflowSpec,
    plugins: PluginSet,
    /// What any attempt may be given; also what a replacement is checked
    /// against when it appears.
    ceilings: Ceilings,
    /// Steps before any replacement expands.
    steps: usize,
    /// What would not stop it from running, but may fail a step if it
    /// runs: failure-only callbacks whose arguments would not bind.
    warnings: Vec<StepProblem>,
}

/// Whether a run starts a workflow or continues an earlier run of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Continuation {
    /// Nothing of it is on record: it starts.
    Fresh,
    /// A crash or a stop cut it off: it continues where it stopped,
    /// reusing every step that succeeded.
    Resume,
    /// It failed: it runs again from its failed step (`retry`).
    Redrive {
        /// The step that failed, whose error callbacks run again if it
        /// fails again.
        failed_step: Option<String>,
    },
}

impl PreparedWorkflow {
    /// Loads the workflow's plugins and checks, before anything runs,
    /// that every task exists, every step's arguments bind to its
    /// parameters, and every step's limits fit under `ceilings`. All
    /// problems are reported, each with its step. The workflow is planned
    /// one element at a time, so a long one is never planned whole.
    pub async fn prepare(
        runtime: &Runtime,
        spec: WorkflowSpec,
        ceilings: Ceilings,
    ) -> Result<Self, ValidationError> {
        let plugins = PluginSet::load(runtime, &spec.plugins).await?;
        let mut findings = Findings::default();
        let mut steps = 0;
        // What each element's result is, for the types of the next.
        let mut flowing = None;
        let mut flow = flow::FlowCheck::new(&plugins);
        for (index, canvas) in spec.workflow.canvases().enumerate() {
            let nodes = plan::plan_element(&canvas?, index);
            steps += plan::steps(&nodes).len();
            flowing = flow.element(&nodes, flowing);
            // Only the workflow's first step starts without an input.
            let first_has_input = index > 0;
            findings.extend(node_findings(
                &ceilings,
                &plugins,
                &spec.defaults,
                &nodes,
                first_has_input,
            ));
        }
        if let Some(on_error) = &spec.on_error {
            let on_error = PlannedStep {
                id: StepId::on_error(),
                signature: on_error.clone(),
            };
            findings.extend(plugins.failure_callback_findings([&on_error]));
            findings.problems.extend(validate::ceiling_problems(
                &ceilings,
                &spec.defaults,
                [&on_error],
            ));
        }
        // Then results that can never fit where they flow.
        findings.problems.append(&mut flow.problems);
        drop(flow);
        if !findings.problems.is_empty() {
            return Err(ValidationError::Steps(findings.problems));
        }
        Ok(PreparedWorkflow {
            spec,
            plugins,
            ceilings,
            steps,
            warnings: findings.warnings,
        })
    }

    /// What would not stop the workflow from running, but fails a step if
    /// it runs: a callback that runs only on failure whose arguments would
    /// not bind to its task.
    pub fn warnings(&self) -> &[StepProblem] {
        &self.warnings
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

    /// Runs the workflow as `identity`, from where `continuation` says,
    /// until it ends or `cancel` stops it. Returns its result, or the error
    /// of the step that stopped it; the outer error is the store's, since
    /// nothing after a failed commit would be durable. The workflow's row
    /// is not touched: that is [`crate::Host`]'s.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run(
        &self,
        runtime: &Runtime,
        store: &Store,
        identity: &RunIdentity,
        continuation: &Continuation,
        options: &RunOptions,
        cancel: CancelToken,
        observer: &dyn Observer,
        park: Option<tokio::sync::oneshot::Sender<Parked>>,
    ) -> Result<Result<Value, WorkflowError>, ExecutorError> {
        let totals = match continuation {
            Continuation::Fresh => StepTotals::default(),
            _ => store.step_totals(&identity.tenant, &identity.id)?,
        };
        let run = Run {
            workflow: self,
            runtime,
            store,
            identity,
            observer,
            continuation,
            next_seq: AtomicU64::new(totals.next_seq),
            slots: options.slots(),
            fair_share: options.fair_share.clone(),
            attempt_pool: options.attempt_pool.clone(),
            cancel,
            fuel_budget: options.fuel_budget,
            fuel_spent: AtomicU64::new(totals.fuel_used),
            drain: options.drain.clone(),
            signals_taken: tokio::sync::Mutex::new(()),
            parking: options
                .park_after
                .zip(park)
                .map(|(after, tell)| pause::Parking {
                    after,
                    tell: std::sync::Mutex::new(Some(tell)),
                }),
        };
        let elements = Nodes::elements(&self.spec.workflow);
        run.chain(elements, None, None, true).await
    }
}
