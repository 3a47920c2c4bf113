//! What a request got wrong, or what went wrong serving it: one error
//! whose kind decides the HTTP status, and whose message is the CLI's.

use thiserror::Error;

use super::not_found;
use crate::lifecycle::HostError;
use crate::store::StoreError;

/// What a request got wrong, or what went wrong serving it. The kind
/// decides the HTTP status; the message is the same the CLI would give.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct ServiceError {
    /// What kind of error it is.
    pub kind: ErrorKind,
    /// What went wrong, in words.
    pub message: String,
}

/// The kinds of [`ServiceError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No API key, or one no tenant has.
    Unauthorized,
    /// A tenant's key asked for what only the operator's may do.
    Forbidden,
    /// No such workflow for this tenant (whether or not another has one).
    NotFound,
    /// The workflow or request is wrong: it would exit 2 on the CLI.
    InvalidInput,
    /// The tenant already has as many workflows in flight as it may.
    TooManyWorkflows,
    /// The tenant already has as many schedules as it may.
    TooManySchedules,
    /// Another request is starting a workflow under the same id.
    Conflict,
    /// The request's body is larger than the service takes.
    TooLarge,
    /// No such route, or not with this method.
    NoRoute,
    /// The route takes another method.
    MethodNotAllowed,
    /// The state database failed.
    Store,
    /// The service is stopping.
    Unavailable,
    /// The tenant's records take all the room its policy gives them.
    StorageFull,
}

impl ErrorKind {
    /// The kind's name in error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::TooManyWorkflows => "too_many_workflows",
            ErrorKind::TooManySchedules => "too_many_schedules",
            ErrorKind::Conflict => "conflict",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Store => "store",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::StorageFull => "storage_full",
        }
    }
}

impl ServiceError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        Self::new(store_error_kind(&err), with_causes(&err))
    }
}

/// A lock on the file that is no lease blocks every start until it goes:
/// the service is unavailable, not broken, and the client may try again.
pub(super) fn store_error_kind(err: &StoreError) -> ErrorKind {
    match err {
        StoreError::Lease { .. } => ErrorKind::Unavailable,
        _ => ErrorKind::Store,
    }
}

impl From<HostError> for ServiceError {
    fn from(err: HostError) -> Self {
        let kind = match &err {
            // The database's path is the operator's business, not the tenant's.
            HostError::NotFound { id, .. } => return not_found(id),
            HostError::AlreadyStarting { .. }
            | HostError::OtherContent { .. }
            | HostError::Ended { .. } => ErrorKind::Conflict,
            HostError::Store(err) | HostError::Stored(crate::StoredWorkflowError::Store(err)) => {
                store_error_kind(err)
            }
            // The service's own temporary file failed it, not the input.
            HostError::Spool(_) => ErrorKind::Store,
            _ => ErrorKind::InvalidInput,
        };
        Self::new(kind, with_causes(&err))
    }
}

/// An error's message followed by its causes', as the CLI prints them.
pub(super) fn with_causes(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        message.push_str(": ");
        message.push_str(&next.to_string());
        cause = next.source();
    }
    message
}
