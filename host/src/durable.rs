//! The durable form of a workflow: what is recorded when it starts (its
//! head, with every plugin pinned to the component that was loaded, and its
//! elements a batch at a time) and how it is read back to continue. The
//! store keeps the records; this module is the one that knows what they
//! make together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::executor::{ExecutorError, PreparedWorkflow};
use crate::grants::Grants;
use crate::records::{StoredHead, StoredPlugin, WorkflowRow};
use crate::spec::{self, PluginRef, SpecIssue, WorkflowSpec};
use crate::store::{Store, StoreError};

/// Elements stored per commit when a workflow starts, and read per read
/// when it is read back.
const ELEMENT_BATCH: usize = 1024;

/// Why a stored workflow cannot be read back.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoredWorkflowError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What is stored is not a workflow this host can read.
    #[error("workflow {id}: the stored workflow is unreadable: {reason}")]
    Unreadable {
        /// The workflow.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Records `workflow` as started under `row`: its elements in batches, the
/// last batch with its row and head, so a short workflow starts in one
/// commit and a long one is never in one transaction whole. With
/// `announced` false, nobody hears of the start before the workflow's end,
/// and its last commit need not be on the disk before the first step.
pub(crate) async fn record_start(
    store: &Store,
    workflow: &PreparedWorkflow,
    row: &WorkflowRow,
    announced: bool,
) -> Result<(), ExecutorError> {
    let mut batch = Vec::new();
    let mut first = 0;
    for json in workflow.spec().workflow.json() {
        if batch.len() == ELEMENT_BATCH {
            let full = std::mem::take(&mut batch);
            store
                .put_elements(&row.tenant, &row.id, first, full)
                .await?;
            first += ELEMENT_BATCH as u64;
        }
        batch.push(json.map_err(ExecutorError::Spool)?);
    }
    let mut head = pinned_head(workflow);
    let resolve = |name: &str, path: &Path| match workflow.plugins().get(name) {
        Some(plugin) => plugin.resolved_path().to_path_buf(),
        None => crate::grants::real_or_given(path),
    };
    let digest = crate::content::digest_resolving(workflow.spec(), &resolve);
    head.content_sha256 = Some(digest.map_err(ExecutorError::Spool)?);
    store
        .start_workflow(row, &head, first, batch, announced)
        .await?;
    Ok(())
}

/// Records that the workflow of `row` continues with new files of the
/// plugins named in `replaced`: its row, with `event`, and its head, pinned
/// to what `workflow` loaded, so that a later resume runs the same. The
/// content it started with stays its content. The event's detail names
/// each plugin's new file and sha256, and the sha256 it replaces.
pub(crate) async fn record_new_plugins(
    store: &Store,
    workflow: &PreparedWorkflow,
    row: &WorkflowRow,
    event: &str,
    detail: Option<String>,
    replaced: &[String],
) -> Result<(), StoreError> {
    let old = store.head(&row.tenant, &row.id)?;
    let mut head = pinned_head(workflow);
    head.content_sha256 = old.as_ref().and_then(|old| old.content_sha256.clone());
    let sha256_of =
        |head: Option<&StoredHead>, name: &str| match head.and_then(|h| h.plugins.get(name)) {
            Some(StoredPlugin::Pinned {
                sha256: Some(sha256),
                ..
            }) => sha256.clone(),
            _ => "unknown".to_string(),
        };
    let mut notes: Vec<String> = detail.into_iter().collect();
    for name in replaced {
        let path = match head.plugins.get(name) {
            Some(StoredPlugin::Pinned { path, .. } | StoredPlugin::Path(path)) => path.clone(),
            None => continue,
        };
        notes.push(format!(
            "plugin {name} from {path}, sha256 {} (was {})",
            sha256_of(Some(&head), name),
            sha256_of(old.as_ref(), name)
        ));
    }
    store
        .put_workflow_and_head(row, &head, event, Some(notes.join("; ")))
        .await
}

/// The workflow's stored head, with every plugin pinned to its absolute
/// path and the sha256 of the component that was loaded, so that `resume`
/// runs the same code or refuses to, and the count of its steps.
fn pinned_head(workflow: &PreparedWorkflow) -> StoredHead {
    let spec = workflow.spec();
    let mut plugins = spec.plugins.clone();
    for (name, plugin_ref) in plugins.iter_mut() {
        if let Some(plugin) = workflow.plugins().get(name) {
            plugin_ref.path = plugin.resolved_path().to_path_buf();
            plugin_ref.sha256 = Some(plugin.sha256().to_string());
        }
    }
    StoredHead {
        planned_steps: Some(workflow.planned_steps() as u64),
        ..head(spec, &plugins)
    }
}

/// The head of `spec`, with `plugins` in place of its own.
fn head(spec: &WorkflowSpec, plugins: &BTreeMap<String, PluginRef>) -> StoredHead {
    StoredHead {
        id: spec.id.clone(),
        tenant: spec.tenant.clone(),
        plugins: plugins
            .iter()
            .map(|(name, plugin)| {
                let stored = StoredPlugin::Pinned {
                    path: plugin.path.display().to_string(),
                    sha256: plugin.sha256.clone(),
                    grants: plugin.grants.clone(),
                };
                (name.clone(), stored)
            })
            .collect(),
        defaults: spec.defaults.clone(),
        on_error: spec.on_error.clone(),
        elements: spec.workflow.len() as u64,
        planned_steps: None,
        content_sha256: None,
        workflow: None,
    }
}

/// The workflow a stored head and its elements make. A head of schema 2
/// has the whole workflow inside, in the chain file's form, and no elements
/// apart; it is read by the chain file's parser.
fn spec_of(head: StoredHead, elements: spec::Elements) -> Result<WorkflowSpec, SpecIssue> {
    let workflow = match &head.workflow {
        Some(inline) => spec::inline_elements(inline)?,
        None => elements,
    };
    let plugins = head
        .plugins
        .into_iter()
        .map(|(name, stored)| {
            let (path, sha256, grants) = match stored {
                StoredPlugin::Pinned {
                    path,
                    sha256,
                    grants,
                } => (path, sha256, grants),
                StoredPlugin::Path(path) => (path, None, Grants::default()),
            };
            let path = PathBuf::from(path);
            let plugin = PluginRef {
                path,
                sha256,
                grants,
            };
            (name, plugin)
        })
        .collect();
    Ok(WorkflowSpec {
        id: head.id,
        tenant: head.tenant,
        plugins,
        defaults: head.defaults,
        workflow,
        on_error: head.on_error,
    })
}

/// The workflow `row` names, as it was stored when it started: its head
/// and its elements, read back a batch at a time into a spool.
pub(crate) fn stored_spec(
    store: &Store,
    row: &WorkflowRow,
) -> Result<WorkflowSpec, StoredWorkflowError> {
    let unreadable = |reason: String| StoredWorkflowError::Unreadable {
        id: row.id.clone(),
        reason,
    };
    let head = store
        .head(&row.tenant, &row.id)?
        .ok_or_else(|| unreadable("it is missing".into()))?;
    let count = head.elements;
    let mut elements = spec::Elements::new();
    while (elements.len() as u64) < count {
        let next = elements.len() as u64;
        let batch = store.elements(&row.tenant, &row.id, next, ELEMENT_BATCH)?;
        if batch.is_empty() {
            return Err(unreadable(format!(
                "it has {count} elements, of which {next} are stored"
            )));
        }
        for json in batch.iter().take((count - next) as usize) {
            elements
                .push_json(json)
                .map_err(|err| unreadable(format!("element {}: {err}", elements.len())))?;
        }
    }
    spec_of(head, elements).map_err(|issue| unreadable(issue.to_string()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    fn parse(document: serde_json::Value) -> WorkflowSpec {
        spec::parse(&document.to_string(), Path::new("/")).unwrap()
    }

    /// Two specs say the same, element for element.
    fn assert_same(found: &WorkflowSpec, expected: &WorkflowSpec) {
        assert_eq!(found.id, expected.id);
        assert_eq!(found.tenant, expected.tenant);
        assert_eq!(found.plugins, expected.plugins);
        assert_eq!(found.defaults, expected.defaults);
        assert_eq!(found.on_error, expected.on_error);
        assert_eq!(
            found.workflow.to_canvas().unwrap(),
            expected.workflow.to_canvas().unwrap()
        );
    }

    #[test]
    fn a_stored_workflow_reads_back_as_the_same_workflow() {
        let spec = parse(json!({
            "id": "x",
            "tenant": "acme",
            "plugins": {"math": {"path": "math.wasm", "sha256": "ab".repeat(32)}},
            "defaults": {"fuel": null, "max_retries": 2, "retry_backoff": 0.5},
            "workflow": [{"task": "math.add", "args": [1, 2], "options": {"link": {"task": "math.mul", "args": [2]}}}],
            "on_error": {"task": "math.add", "immutable": true},
        }));
        let stored = serde_json::to_vec(&head(&spec, &spec.plugins)).unwrap();
        let read: StoredHead = serde_json::from_slice(&stored).unwrap();
        assert_eq!(read.elements, 1);
        let mut elements = spec::Elements::new();
        for json in spec.workflow.json() {
            elements.push_json(&json.unwrap()).unwrap();
        }
        assert_same(&spec_of(read, elements).unwrap(), &spec);
    }

    #[test]
    fn a_head_stored_by_schema_2_keeps_its_workflow_inside() {
        let document = json!({
            "plugins": {"math": "/p/math.wasm"},
            "workflow": [{"task": "math.add", "args": [1, 2]}, {"task": "math.add", "args": [3]}],
        });
        let read: StoredHead = serde_json::from_value(document.clone()).unwrap();
        let spec = spec_of(read, spec::Elements::new()).unwrap();
        assert_eq!(spec.workflow.len(), 2);
        assert_same(&spec, &parse(document));
    }
}
