//! The errors a task returns.

use std::fmt;

/// Why a task did not produce a result.
///
/// `?` converts any `std::error::Error` into a permanent failure carrying its
/// message, so tasks can use it on I/O, parsing and the like.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskError {
    /// A transient failure: the host runs the step again under its retry policy.
    Retry {
        /// Why the attempt failed.
        message: String,
        /// Seconds to wait before the next attempt; `None` leaves it to the
        /// step's policy.
        countdown: Option<f64>,
    },
    /// A permanent failure.
    Fail {
        /// Why the step failed.
        message: String,
    },
}

impl TaskError {
    /// A transient failure; add `.countdown(seconds)` to choose the delay.
    pub fn retry(message: impl Into<String>) -> Self {
        TaskError::Retry {
            message: message.into(),
            countdown: None,
        }
    }

    /// A permanent failure.
    pub fn fail(message: impl Into<String>) -> Self {
        TaskError::Fail {
            message: message.into(),
        }
    }

    /// Sets the delay before the next attempt of a `retry`; no effect on a `fail`.
    pub fn countdown(mut self, seconds: f64) -> Self {
        if let TaskError::Retry { countdown, .. } = &mut self {
            *countdown = Some(seconds);
        }
        self
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        match self {
            TaskError::Retry { message, .. } | TaskError::Fail { message } => message,
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Retry { message, .. } => write!(f, "retry: {message}"),
            TaskError::Fail { message } => write!(f, "fail: {message}"),
        }
    }
}

impl<E: std::error::Error> From<E> for TaskError {
    fn from(err: E) -> Self {
        TaskError::fail(err.to_string())
    }
}
