//! The plugins of one workflow, loaded up front, and how a step's task is
//! found among them.

use std::collections::BTreeMap;
use std::sync::Arc;

use wfhost_canvas::Signature;

use crate::grants::Access;
use crate::runtime::{Plugin, PluginError, Runtime, TaskInfo};
use crate::spec::PluginRef;

/// Loaded plugins by name, shared with the tasks that run their attempts,
/// each with what the workflow grants it.
pub struct PluginSet {
    plugins: BTreeMap<String, Arc<Plugin>>,
    access: BTreeMap<String, Arc<Access>>,
}

impl PluginSet {
    /// Loads every plugin the workflow names, side by side: the first in
    /// name order on this task, the others on tasks of their own (waking a
    /// worker thread for the first would cost a sizeable part of a cached
    /// load; BENCHMARKS.md). When several fail, the error is the first
    /// plugin's in name order, as when loading one after another. Each
    /// plugin's grants are made ready first: a secret that cannot be read
    /// or a directory that is missing stops the workflow before it starts.
    pub async fn load(
        runtime: &Runtime,
        refs: &BTreeMap<String, PluginRef>,
    ) -> Result<Self, PluginError> {
        let mut access = BTreeMap::new();
        for (name, plugin_ref) in refs {
            access.insert(name.clone(), plugin_ref.grants.access(name)?);
        }
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
        Ok(PluginSet { plugins, access })
    }

    /// What the workflow grants the plugin it calls `name`.
    pub fn access(&self, name: &str) -> Arc<Access> {
        self.access.get(name).cloned().unwrap_or_else(Access::none)
    }

    /// Every task of every plugin, as `plugin.task`.
    pub fn task_names(&self) -> Vec<String> {
        self.plugins
            .iter()
            .flat_map(|(plugin, loaded)| {
                loaded
                    .tasks()
                    .iter()
                    .map(move |task| format!("{plugin}.{}", task.name))
            })
            .collect()
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
}
