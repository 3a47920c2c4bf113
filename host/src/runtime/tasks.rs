//! What a plugin says of its tasks: their names, parameters and types,
//! asked of it once when it loads, and kept beside its compiled form in
//! the component cache.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::Runtime;
use super::bindings::PluginPre;
use super::bindings::described::exports::wfhost::task::schemas::GuestIndices as SchemasIndices;
use super::bindings::types;
use super::cancel::CancelToken;
use super::limits::Limits;
use super::sandbox::Sandbox;
use super::state::StepState;
use crate::grants::Access;

/// One parameter of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamInfo {
    /// The name a keyword argument uses.
    pub name: String,
    /// The Rust type as the plugin declares it.
    pub type_name: String,
    /// Whether the argument may be left out.
    pub optional: bool,
}

/// A task a plugin exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskInfo {
    /// The task's name inside the plugin.
    pub name: String,
    /// Its parameters in positional order.
    pub params: Vec<ParamInfo>,
    /// The first paragraph of its doc comment.
    pub doc: String,
    /// Its return type as the plugin writes it; empty where it says none.
    pub returns: String,
    /// What its parameters take and it returns, where the plugin says
    /// (it exports `wfhost:task/schemas`).
    #[serde(skip)]
    pub schema: Option<TaskSchema>,
}

/// The types of one task, as JSON Schema (2020-12); `{}` where a type is
/// not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSchema {
    /// One schema per parameter, in positional order.
    pub params: Vec<Value>,
    /// What the task returns when it succeeds (shared: every step of the
    /// task hands it on to the next when types are checked).
    pub returns: Arc<Value>,
}

impl TaskSchema {
    /// Reads what `describe` said of a task of `params` parameters: `None`
    /// where it is not JSON of that shape (then no type is known).
    fn read(text: &str, params: usize) -> Option<TaskSchema> {
        let mut schema: Value = serde_json::from_str(text).ok()?;
        let Value::Array(params_found) = schema.get_mut("params")?.take() else {
            return None;
        };
        let returns = schema.get_mut("returns")?.take();
        let is_schema = |value: &Value| value.is_object() || value.is_boolean();
        (params_found.len() == params && params_found.iter().all(is_schema) && is_schema(&returns))
            .then(|| TaskSchema {
                params: params_found,
                returns: Arc::new(returns),
            })
    }
}

/// Instantiates the plugin and asks it for its tasks, and their types
/// where it describes them. An error says whether a rebuild may mend it.
pub(super) async fn ask_tasks(
    runtime: &Runtime,
    pre: &PluginPre<StepState>,
) -> Result<Vec<TaskInfo>, (String, bool)> {
    let _slot = runtime.instance_slot().await;
    let mut sandbox = Sandbox::new(
        &runtime.engine,
        &Limits::default(),
        (&Access::none(), false),
        None,
        CancelToken::new(),
        None,
    )
    .map_err(|failure| (failure.to_string(), false))?;
    let described = SchemasIndices::new(pre.instance_pre()).ok();
    let (tasks, schemas) = sandbox
        .list_tasks(pre, described.as_ref())
        .await
        .map_err(|failure| (failure.to_string(), true))?;
    let mut tasks: Vec<TaskInfo> = tasks.into_iter().map(TaskInfo::from).collect();
    for described in schemas.into_iter().flatten() {
        if let Some(task) = tasks.iter_mut().find(|task| task.name == described.name) {
            task.returns = described.returns;
            task.schema = TaskSchema::read(&described.schema, task.params.len());
        }
    }
    Ok(tasks)
}

/// What a component says of itself, as the component cache keeps it.
#[derive(Serialize, serde::Deserialize)]
pub(super) struct Listing {
    format: u32,
    tasks: Vec<ListedTask>,
}

#[derive(Serialize, serde::Deserialize)]
struct ListedTask {
    name: String,
    doc: String,
    /// Each parameter's name, type name and whether it may be left out.
    params: Vec<(String, String, bool)>,
    returns: String,
    /// Each parameter's schema and the result's.
    schema: Option<(Vec<Value>, Value)>,
}

impl Listing {
    /// Bumped when what is kept, or how the host reads it, changes.
    const FORMAT: u32 = 1;

    pub(super) fn write(tasks: &[TaskInfo]) -> Vec<u8> {
        let tasks = tasks
            .iter()
            .map(|task| ListedTask {
                name: task.name.clone(),
                doc: task.doc.clone(),
                params: task
                    .params
                    .iter()
                    .map(|p| (p.name.clone(), p.type_name.clone(), p.optional))
                    .collect(),
                returns: task.returns.clone(),
                schema: task
                    .schema
                    .as_ref()
                    .map(|schema| (schema.params.clone(), schema.returns.as_ref().clone())),
            })
            .collect();
        let listing = Listing {
            format: Self::FORMAT,
            tasks,
        };
        serde_json::to_vec(&listing).unwrap_or_default()
    }

    pub(super) fn read(bytes: &[u8]) -> Option<Vec<TaskInfo>> {
        let listing: Listing = serde_json::from_slice(bytes).ok()?;
        (listing.format == Self::FORMAT).then(|| {
            listing
                .tasks
                .into_iter()
                .map(|task| TaskInfo {
                    name: task.name,
                    doc: task.doc,
                    params: task
                        .params
                        .into_iter()
                        .map(|(name, type_name, optional)| ParamInfo {
                            name,
                            type_name,
                            optional,
                        })
                        .collect(),
                    returns: task.returns,
                    schema: task.schema.map(|(params, returns)| TaskSchema {
                        params,
                        returns: Arc::new(returns),
                    }),
                })
                .collect()
        })
    }
}

/// A listing that failed on the types of the interface: a component
/// built against another version of `wit/task.wit` (one whose records
/// have other fields) is told to be rebuilt.
pub(super) fn with_rebuild_hint(reason: String) -> String {
    if reason.contains("type mismatch") {
        format!(
            "{reason} (it was built against another version of wfhost's task interface, \
             wit/task.wit: rebuild it with this wfhost's guest SDK)"
        )
    } else {
        reason
    }
}

impl From<types::TaskInfo> for TaskInfo {
    fn from(info: types::TaskInfo) -> Self {
        TaskInfo {
            name: info.name,
            doc: info.doc,
            returns: String::new(),
            schema: None,
            params: info
                .params
                .into_iter()
                .map(|p| ParamInfo {
                    name: p.name,
                    type_name: p.type_name,
                    optional: p.optional,
                })
                .collect(),
        }
    }
}
