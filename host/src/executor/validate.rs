//! What is checked before anything runs, and again when a task replaces
//! itself: every task exists, every call binds to its task's parameters,
//! every limit fits under the workflow's ceilings.

use thiserror::Error;
use wfhost_canvas::{Signature, StepOptions};

use super::attempt::attempt_limits;
use super::walk::AttemptsEnd;
use super::{PluginSet, PreparedWorkflow};
use crate::plan::{self, Node, PlannedStep};
use crate::records::{Failure, FailureKind};
use crate::runtime::{Ceilings, PluginError, TaskInfo};

/// Replacements may nest this deep; a task that keeps replacing itself
/// fails instead of running forever.
const MAX_REPLACE_DEPTH: usize = 64;

/// Why a workflow cannot start. Nothing has run when this is returned.
#[derive(Debug, Error)]
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

/// Keyword arguments of one call reported one by one at most.
const MOST_KWARG_PROBLEMS: usize = 10;

fn display_lines(problems: &[StepProblem]) -> String {
    crate::text::first_lines(
        problems.iter().map(ToString::to_string),
        MOST_PROBLEMS_SHOWN,
    )
}

/// Checks how a call binds to a task's parameters, the way the guest SDK
/// binds it: positional arguments first (with the previous result in front
/// when `receives_input`), then keywords by name.
fn check_binding(task: &TaskInfo, signature: &Signature, receives_input: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let prepended = usize::from(receives_input && !signature.immutable);
    let positional = signature.args.len() + prepended;
    let params = &task.params;
    let counting = if prepended == 1 {
        " (counting the previous result)"
    } else {
        ""
    };
    if positional > params.len() {
        problems.push(format!(
            "{}() takes {} positional argument{} but {positional} would be given{counting}",
            task.name,
            params.len(),
            if params.len() == 1 { "" } else { "s" },
        ));
    }
    let mut kwarg_problems = 0;
    for name in signature.kwargs.keys() {
        let problem = match params.iter().position(|p| &p.name == name) {
            None => format!(
                "{}() has no parameter '{}'",
                task.name,
                crate::text::clipped(name, 64)
            ),
            Some(index) if index < positional => format!(
                "{}() would get multiple values for argument '{name}'{counting}",
                task.name
            ),
            Some(_) => continue,
        };
        kwarg_problems += 1;
        if kwarg_problems <= MOST_KWARG_PROBLEMS {
            problems.push(problem);
        }
    }
    if kwarg_problems > MOST_KWARG_PROBLEMS {
        problems.push(format!(
            "{}() … and {} more keyword arguments that do not bind",
            task.name,
            kwarg_problems - MOST_KWARG_PROBLEMS
        ));
    }
    for (index, param) in params.iter().enumerate() {
        let given = index < positional || signature.kwargs.contains_key(&param.name);
        if !given && !param.optional {
            problems.push(format!(
                "{}() would miss required argument '{}'{counting}",
                task.name, param.name
            ));
        }
    }
    problems
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
        let problems = node_problems(&self.ceilings, &self.plugins, defaults, &children, false);
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
        let mut problems = Vec::new();
        for (step, receives_input) in steps {
            match self.resolve(&step.signature) {
                Err(message) => problems.push(StepProblem::new(step, message)),
                Ok((_, task)) => problems.extend(
                    check_binding(task, &step.signature, receives_input)
                        .into_iter()
                        .map(|message| StepProblem::new(step, message)),
                ),
            }
        }
        problems
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
                .admit(&attempt_limits(&options, &host_defaults))
                .err()
                .map(|message| StepProblem::new(step, message))
        })
        .collect()
}

/// What is wrong with `nodes` (a plan's steps and their callbacks):
/// unknown tasks, arguments that do not bind, limits over the ceilings.
pub(super) fn node_problems(
    ceilings: &Ceilings,
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
        ceilings,
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
                .map(|(i, s)| (step.id.link(i), s));
            let errbacks = options
                .link_error
                .iter()
                .enumerate()
                .map(|(i, s)| (step.id.link_error(i), s));
            links.chain(errbacks).map(|(id, signature)| PlannedStep {
                id,
                signature: signature.clone(),
            })
        })
        .collect()
}
