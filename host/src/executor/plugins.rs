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
    #[error("step {step} (`{task}`): {message}")]
    Step {
        step: String,
        task: String,
        message: String,
    },
}

impl ValidationError {
    /// A problem with one step.
    pub fn at(step: &PlannedStep, message: String) -> Self {
        ValidationError::Step {
            step: step.id.clone(),
            task: step.signature.task.clone(),
            message,
        }
    }
}

/// Loaded plugins by name, shared with the tasks that run their attempts.
pub struct PluginSet {
    plugins: BTreeMap<String, Arc<Plugin>>,
}

impl PluginSet {
    /// Loads every plugin the workflow names.
    pub async fn load(
        runtime: &Runtime,
        refs: &BTreeMap<String, PluginRef>,
    ) -> Result<Self, PluginError> {
        let mut plugins = BTreeMap::new();
        for (name, plugin_ref) in refs {
            let plugin = runtime
                .load_plugin(name, &plugin_ref.path, plugin_ref.sha256.as_deref())
                .await?;
            plugins.insert(name.clone(), Arc::new(plugin));
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

    /// Checks that every step's task exists.
    pub fn check<'a>(
        &self,
        steps: impl IntoIterator<Item = &'a PlannedStep>,
    ) -> Result<(), ValidationError> {
        for step in steps {
            self.resolve(&step.signature)
                .map_err(|message| ValidationError::at(step, message))?;
        }
        Ok(())
    }
}
