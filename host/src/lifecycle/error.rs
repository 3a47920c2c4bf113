//! Why the host cannot do what it was asked, with the store's words where
//! the store refused.

use std::path::PathBuf;

use thiserror::Error;

use crate::durable::StoredWorkflowError;
use crate::executor::{ExecutorError, RunIdentity, ValidationError};
use crate::records::{WorkflowRow, WorkflowStatus};
use crate::store::{Store, StoreError};

/// Why the host cannot do what it was asked. Nothing has run when a
/// request is refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HostError {
    /// The store has no such workflow.
    #[error("no workflow `{id}` of tenant `{tenant}` in {}{}", database.display(), tenants_hint(.others))]
    NotFound {
        /// The tenant asked about.
        tenant: String,
        /// The id asked about.
        id: String,
        /// The state database looked in.
        database: PathBuf,
        /// The tenants that have a workflow of that id.
        others: Vec<String>,
    },
    /// Another request is starting a workflow under this id right now.
    #[error("workflow {id} is already being started")]
    AlreadyStarting {
        /// The workflow's id.
        id: String,
    },
    /// The id is on record for a workflow with other content: an id names
    /// one workflow.
    #[error(
        "workflow {id} is on record with other content ({difference}); an id names one \
         workflow: give this one another id"
    )]
    OtherContent {
        /// The workflow's id.
        id: String,
        /// Where the two first differ.
        difference: crate::Difference,
    },
    /// The workflow runs, so it cannot be removed.
    #[error("workflow {id} is running; cancel it first (`wfhost cancel {id}`)")]
    StillRunning {
        /// The workflow's id.
        id: String,
    },
    /// A plugin to replace is not one the workflow has.
    #[error("workflow {id} has no plugin `{name}` (it has: {})", .known.join(", "))]
    NoSuchPlugin {
        /// The workflow's id.
        id: String,
        /// The name asked for.
        name: String,
        /// The names it has.
        known: Vec<String>,
    },
    /// Only a failed workflow can be retried.
    #[error("workflow {} {}; only a failed workflow can be retried", .row.id, retry_refusal(.row.status))]
    NotRetryable {
        /// The workflow as it stands.
        row: Box<WorkflowRow>,
    },
    /// The workflow cannot run: a plugin does not load, a task does not
    /// exist, arguments do not bind, a limit is over a ceiling.
    #[error("workflow {id} cannot run")]
    Invalid {
        /// The workflow's id.
        id: String,
        /// Every problem found.
        #[source]
        source: ValidationError,
    },
    /// A signal cannot reach a workflow that has ended.
    #[error(
        "workflow {} {}: a signal reaches only a workflow that runs or was cut off",
        .row.id,
        .row.status.as_str()
    )]
    Ended {
        /// The workflow as it stands.
        row: Box<WorkflowRow>,
    },
    /// A signal's name or payload is not one a workflow can be sent.
    #[error("{0}")]
    BadSignal(String),
    /// The stored form of the workflow cannot be read back.
    #[error(transparent)]
    Stored(#[from] StoredWorkflowError),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The workflow's elements could not be read back from the temporary
    /// file they were spooled to.
    #[error("cannot read the workflow back from its spool")]
    Spool(#[source] std::io::Error),
}

impl From<ExecutorError> for HostError {
    fn from(err: ExecutorError) -> Self {
        match err {
            ExecutorError::Store(err) => HostError::Store(err),
            ExecutorError::Spool(err) => HostError::Spool(err),
        }
    }
}

/// What to say of the other tenants that have a workflow of an id not
/// found.
fn tenants_hint(others: &[String]) -> String {
    match others {
        [] => String::new(),
        [other] => format!("; tenant `{other}` has one (--tenant {other})"),
        _ => format!("; tenants {} have one (--tenant)", others.join(", ")),
    }
}

impl HostError {
    /// The error of workflow `identity` not being in `store`, naming the
    /// tenants that have a workflow of its id.
    pub fn not_found(store: &Store, identity: &RunIdentity) -> Self {
        let others = store
            .tenants_of(&identity.id)
            .unwrap_or_default()
            .into_iter()
            .filter(|other| *other != identity.tenant)
            .collect();
        HostError::NotFound {
            tenant: identity.tenant.clone(),
            id: identity.id.clone(),
            database: store.path().to_path_buf(),
            others,
        }
    }
}

pub(super) fn retry_refusal(status: WorkflowStatus) -> &'static str {
    match status {
        WorkflowStatus::Running => "is still running",
        WorkflowStatus::CutOff => "was cut off (use `wfhost resume`)",
        WorkflowStatus::Cancelled => "was cancelled",
        _ => "succeeded",
    }
}
