//! The plugins of one workflow, loaded up front, and the check that every
//! step names a task that exists.

use std::collections::BTreeMap;
use std::sync::Arc;

use thiserror::Error;
use wfhost_canvas::Signature;

use crate::plan::PlannedStep;
use crate::runtime::{Plugin, PluginError, Runtime, TaskInfo};
use crate::spec::PluginRef;

/// Why a workflow cannot start. Nothing has run when this is returned.
#[derive(Debug, Error)]
pub enum ValidationError {
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
    pub step: String,
    pub task: String,
    pub message: String,
}

impl StepProblem {
    pub fn new(step: &PlannedStep, message: String) -> Self {
        StepProblem {
            step: step.id.clone(),
            task: step.signature.task.clone(),
            message,
        }
    }
}

fn display_lines(problems: &[StepProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
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
    for name in signature.kwargs.keys() {
        match params.iter().position(|p| &p.name == name) {
            None => problems.push(format!("{}() has no parameter '{name}'", task.name)),
            Some(index) if index < positional => problems.push(format!(
                "{}() would get multiple values for argument '{name}'{counting}",
                task.name
            )),
            Some(_) => {}
        }
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

/// Loaded plugins by name, shared with the tasks that run their attempts.
pub struct PluginSet {
    plugins: BTreeMap<String, Arc<Plugin>>,
}

impl PluginSet {
    /// Loads every plugin the workflow names, side by side: the first in
    /// name order on this task, the others on tasks of their own (waking a
    /// worker thread costs about 0.1 ms on a small VM, a tenth of a cached
    /// load). When several fail, the error is the first plugin's in name
    /// order, as when loading one after another.
    pub async fn load(
        runtime: &Runtime,
        refs: &BTreeMap<String, PluginRef>,
    ) -> Result<Self, PluginError> {
        let load = |runtime: Runtime, name: String, plugin_ref: PluginRef| async move {
            let sha256 = plugin_ref.sha256.as_deref();
            let plugin = runtime.load_plugin(&name, &plugin_ref.path, sha256).await;
            (name, plugin)
        };
        let mut refs = refs
            .iter()
            .map(|(name, plugin_ref)| (runtime.clone(), name.clone(), plugin_ref.clone()));
        let first = refs.next();
        let others: Vec<_> = refs
            .map(|(runtime, name, plugin_ref)| tokio::spawn(load(runtime, name, plugin_ref)))
            .collect();
        let mut loaded = Vec::with_capacity(others.len() + 1);
        if let Some((runtime, name, plugin_ref)) = first {
            loaded.push(Ok(load(runtime, name, plugin_ref).await));
        }
        for other in futures::future::join_all(others).await {
            loaded.push(other.map_err(|err| {
                PluginError::Engine(format!("loading a plugin ended abnormally: {err}"))
            }));
        }
        let mut plugins = BTreeMap::new();
        for entry in loaded {
            let (name, plugin) = entry?;
            plugins.insert(name, Arc::new(plugin?));
        }
        Ok(PluginSet { plugins })
    }

    /// The plugin the workflow calls `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.get(name)
    }

    /// The plugin and task a signature names, or why there is none.
    pub fn resolve(&self, signature: &Signature) -> Result<(&Arc<Plugin>, &TaskInfo), String> {
        let plugin_name = signature.plugin_name().unwrap_or_default();
        let plugin = self.plugins.get(plugin_name).ok_or_else(|| {
            let known: Vec<&str> = self.plugins.keys().map(String::as_str).collect();
            format!(
                "no plugin named `{plugin_name}` (the workflow's plugins: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })?;
        let task = plugin.task(signature.task_name()).ok_or_else(|| {
            let known: Vec<&str> = plugin.tasks().iter().map(|t| t.name.as_str()).collect();
            format!(
                "plugin `{plugin_name}` has no task `{}` (it has: {})",
                signature.task_name(),
                known.join(", ")
            )
        })?;
        Ok((plugin, task))
    }

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
