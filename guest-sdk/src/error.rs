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
        /// The task's own limit of retries; `None` leaves it to the step's
        /// policy (or to `#[task(max_retries = N)]`).
        max_retries: Option<u32>,
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
            max_retries: None,
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

    /// Sets the task's own limit of retries (Celery's
    /// `retry(max_retries=…)`): where the step's options set no
    /// `max_retries`, the step is retried at most `retries` times. No effect
    /// on a `fail`.
    pub fn max_retries(mut self, retries: u32) -> Self {
        if let TaskError::Retry { max_retries, .. } = &mut self {
            *max_retries = Some(retries);
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
