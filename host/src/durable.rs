//! The durable form of a workflow: what is recorded when it starts (its
//! head, with every plugin pinned to the component that was loaded, and its
//! elements a batch at a time) and how it is read back to continue.

use thiserror::Error;

use crate::executor::PreparedWorkflow;
use crate::records::WorkflowRow;
use crate::spec::{self, WorkflowSpec};
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
/// commit and a long one is never in one transaction whole.
pub(crate) async fn record_start(
    store: &Store,
    workflow: &PreparedWorkflow,
    row: &WorkflowRow,
) -> Result<(), StoreError> {
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
        batch.push(json.map_err(|source| StoreError::Spool { source })?);
    }
    store
        .start_workflow(row, pinned_head(workflow), first, batch)
        .await
}

/// The workflow's stored head (see [`WorkflowSpec::stored_head`]), with
/// every plugin pinned to its absolute path and the sha256 of the component
/// that was loaded, so that `resume` runs the same code or refuses to.
fn pinned_head(workflow: &PreparedWorkflow) -> Vec<u8> {
    let spec = workflow.spec();
    let mut plugins = spec.plugins.clone();
    for (name, plugin_ref) in plugins.iter_mut() {
        if let Some(plugin) = workflow.plugins().get(name) {
            plugin_ref.path = std::fs::canonicalize(plugin.path())
                .unwrap_or_else(|_| plugin.path().to_path_buf());
            plugin_ref.sha256 = Some(plugin.sha256().to_string());
        }
    }
    spec.stored_head(&plugins)
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
        .workflow_spec(&row.tenant, &row.id)?
        .ok_or_else(|| unreadable("it is missing".into()))?;
    let count = spec::stored_element_count(&head);
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
    spec::from_stored(&head, elements).map_err(|issue| unreadable(issue.to_string()))
}
