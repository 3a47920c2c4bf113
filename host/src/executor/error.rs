//! Why a run stopped before an end it could record.

use thiserror::Error;

use crate::store::StoreError;

/// Why the executor could not go on with a workflow: what it would record
/// could not be, or what it runs could not be read. The workflow is left
/// as the store last has it, to be resumed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ExecutorError {
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The workflow's own elements could not be read back from the
    /// temporary file they were spooled to when it was read.
    #[error("cannot read the workflow back from its spool")]
    Spool(#[source] std::io::Error),
}
