//! What is checked before anything runs, and again when a task replaces
//! itself: every task exists, every call binds to its task's parameters,
//! every limit fits under the workflow's ceilings.

use thiserror::Error;
use wfhost_canvas::{ACCUMULATE, Pause, StepOptions, accumulate_index};

use super::binding::check_call;
use super::flow::FlowCheck;
use super::walk::AttemptsEnd;
use super::{PluginSet, PreparedWorkflow};
use crate::plan::{self, Node, PlannedStep};
use crate::records::{Failure, FailureKind};
use crate::runtime::{Ceilings, PluginError};

/// Replacements may nest this deep; a task that keeps replacing itself
/// fails instead of running forever.
const MAX_REPLACE_DEPTH: usize = 64;

/// Why a workflow cannot start. Nothing has run when this is returned.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A plugin does not load.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Every problem found in the workflow's steps, one per line.
    #[error("{}", display_lines(.0))]
    Steps(Vec<StepProblem>),
    /// The workflow's elements could not be read back from their spool.
    #[error("cannot read the workflow back from its spool: {0}")]
    Spool(#[from] std::io::Error),
}

/// One problem with one step.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("step {step} (`{task}`): {message}")]
pub struct StepProblem {
    /// The step's id.
    pub step: String,
    /// Its task.
    pub task: String,
    /// What is wrong, in words.
    pub message: String,
}

impl StepProblem {
    /// A problem of `step`.
    pub(crate) fn new(step: &PlannedStep, message: String) -> Self {
        StepProblem {
            step: step.id.to_string(),
            task: step.signature.task.clone(),
            message,
        }
    }
}

/// Problems shown at most; the rest are counted.
const MOST_PROBLEMS_SHOWN: usize = 20;

fn display_lines(problems: &[StepProblem]) -> String {
    crate::text::first_lines(
        problems.iter().map(ToString::to_string),
        MOST_PROBLEMS_SHOWN,
    )
}

impl PreparedWorkflow {
    /// Checks a replacement's tasks and limits; a bad one fails the step.
    pub(super) fn check_replacement(&self, step_id: &str, children: Vec<Node>) -> AttemptsEnd {
        if plan::depth(step_id) >= MAX_REPLACE_DEPTH {
            return AttemptsEnd::Failed(Failure::new(
                FailureKind::InvalidOutput,
                format!("replacements nested more than {MAX_REPLACE_DEPTH} deep"),
            ));
        }
        // A replacement starts afresh: its first step gets no input.
        let defaults = &self.spec.defaults;
        let findings = node_findings(&self.ceilings, &self.plugins, defaults, &children, false);
        let mut problems = findings.problems;
        let mut flow = FlowCheck::new(&self.plugins);
        flow.element(&children, None);
        problems.append(&mut flow.problems);
        if problems.is_empty() {
            return AttemptsEnd::Replace(children);
        }
        AttemptsEnd::Failed(Failure::new(
            FailureKind::InvalidOutput,
            format!(
                "the replacement cannot run: {}",
                ValidationError::Steps(problems)
            ),
        ))
    }
}

impl PluginSet {
    /// The problems of steps (each with whether it receives the previous
    /// result): a task that does not exist, or arguments that do not bind
    /// to its parameters.
    pub fn problems<'a>(
        &self,
        steps: impl IntoIterator<Item = (&'a PlannedStep, bool)>,
    ) -> Vec<StepProblem> {
        let (mut problems, unbound) = self.problems_apart(steps);
        problems.extend(unbound);
        problems
    }

    /// The problems of steps as [`PluginSet::problems`] finds them, apart:
    /// tasks that do not exist, then arguments that do not bind.
    fn problems_apart<'a>(
        &self,
        steps: impl IntoIterator<Item = (&'a PlannedStep, bool)>,
    ) -> (Vec<StepProblem>, Vec<StepProblem>) {
        let (mut missing, mut unbound) = (Vec::new(), Vec::new());
        for (step, receives_input) in steps {
            if let Some(pause) = Pause::of(&step.signature) {
                if let Err(message) = pause {
                    unbound.push(StepProblem::new(step, message));
                }
                continue;
            }
            if step.signature.task == ACCUMULATE {
                // Celery's built-in takes any arguments.
                if let Err(message) = accumulate_index(&step.signature.kwargs) {
                    unbound.push(StepProblem::new(step, message));
                }
                continue;
            }
            match self.resolve(&step.signature) {
                Err(message) => missing.push(StepProblem::new(step, message)),
                Ok((_, task)) => unbound.extend(
                    check_call(task, &step.signature, receives_input)
                        .into_iter()
                        .map(|message| StepProblem::new(step, message)),
                ),
            }
        }
        (missing, unbound)
    }

    /// The problems of callbacks that run only on failure (`link_error`,
    /// `on_error`), apart: a task that does not exist is a problem; an
    /// argument that would not bind is only a warning, as Celery runs such
    /// a workflow (if the callback runs, its step fails on the binding).
    pub(super) fn failure_callback_findings<'a>(
        &self,
        callbacks: impl IntoIterator<Item = &'a PlannedStep>,
    ) -> Findings {
        // Every callback receives one argument: the error record.
        let (problems, warnings) = self.problems_apart(callbacks.into_iter().map(|c| (c, true)));
        Findings { problems, warnings }
    }
}

/// What checking finds: problems, which refuse a workflow, and warnings,
/// which do not.
#[derive(Debug, Default)]
pub(super) struct Findings {
    pub problems: Vec<StepProblem>,
    pub warnings: Vec<StepProblem>,
}

impl Findings {
    pub(super) fn extend(&mut self, other: Findings) {
        self.problems.extend(other.problems);
        self.warnings.extend(other.warnings);
    }
}

/// The steps whose limits exceed `ceilings`.
pub(super) fn ceiling_problems<'a>(
    ceilings: &Ceilings,
    defaults: &StepOptions,
    steps: impl IntoIterator<Item = &'a PlannedStep>,
) -> Vec<StepProblem> {
    let host_defaults = ceilings.default_limits();
    steps
        .into_iter()
        .filter_map(|step| {
            let options = step.signature.options.or(defaults);
            ceilings
                .admit(&host_defaults.with_options(&options))
                .err()
                .map(|message| StepProblem::new(step, message))
        })
        .collect()
}

/// What is wrong with `nodes` (a plan's steps and their callbacks):
/// unknown tasks, arguments that do not bind, limits over the ceilings;
/// arguments of failure-only callbacks that would not bind are warnings.
pub(super) fn node_findings(
    ceilings: &Ceilings,
    plugins: &PluginSet,
    defaults: &StepOptions,
    nodes: &[Node],
    first_has_input: bool,
) -> Findings {
    let steps = plan::steps(nodes);
    let (links, errbacks) = step_callbacks(&steps);
    let mut findings = Findings {
        problems: plugins.problems(plan::steps_with_input(nodes, first_has_input)),
        warnings: Vec::new(),
    };
    // Every callback receives one argument: a result or an error record.
    findings
        .problems
        .extend(plugins.problems(links.iter().map(|callback| (callback, true))));
    findings.extend(plugins.failure_callback_findings(&errbacks));
    findings.problems.extend(ceiling_problems(
        ceilings,
        defaults,
        steps.into_iter().chain(&links).chain(&errbacks),
    ));
    findings
}

/// The `link` callbacks of `steps`, then their `link_error` callbacks, for
/// checking before they run.
fn step_callbacks(steps: &[&PlannedStep]) -> (Vec<PlannedStep>, Vec<PlannedStep>) {
    let (mut links, mut errbacks) = (Vec::new(), Vec::new());
    for step in steps {
        let options = &step.signature.options;
        links.extend(
            options
                .link
                .iter()
                .enumerate()
                .map(|(i, signature)| PlannedStep {
                    id: step.id.link(i),
                    signature: signature.clone(),
                }),
        );
        errbacks.extend(
            options
                .link_error
                .iter()
                .enumerate()
                .map(|(i, signature)| PlannedStep {
                    id: step.id.link_error(i),
                    signature: signature.clone(),
                }),
        );
    }
    (links, errbacks)
}
