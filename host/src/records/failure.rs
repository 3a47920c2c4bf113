//! How a step fails: one kind from a fixed list, and a message.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The classification of a failed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The task returned a permanent failure, or panicked.
    Fail,
    /// The task kept asking to be retried until `max_retries` was spent.
    RetriesExhausted,
    /// The attempt used all of its fuel.
    FuelExhausted,
    /// The attempt asked for more memory than its limit.
    MemoryLimit,
    /// The attempt ran past its wall-clock limit.
    TimeLimit,
    /// The guest trapped (stack overflow, unreachable, out-of-bounds access …).
    Trap,
    /// The result was too large, not JSON, or not a valid canvas.
    InvalidOutput,
    /// The plugin could not be loaded or is of another world.
    PluginError,
    /// The workflow was cancelled while the step waited or ran.
    Cancelled,
    /// The step had not started when its `expires` came.
    Expired,
    /// A wait for a signal reached its timeout with no signal.
    TimedOut,
}

impl FailureKind {
    /// Every kind.
    pub const ALL: [FailureKind; 11] = [
        FailureKind::Fail,
        FailureKind::RetriesExhausted,
        FailureKind::FuelExhausted,
        FailureKind::MemoryLimit,
        FailureKind::TimeLimit,
        FailureKind::Trap,
        FailureKind::InvalidOutput,
        FailureKind::PluginError,
        FailureKind::Cancelled,
        FailureKind::Expired,
        FailureKind::TimedOut,
    ];

    /// The kind's name as it appears in reports (`fuel_exhausted`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Fail => "fail",
            FailureKind::RetriesExhausted => "retries_exhausted",
            FailureKind::FuelExhausted => "fuel_exhausted",
            FailureKind::MemoryLimit => "memory_limit",
            FailureKind::TimeLimit => "time_limit",
            FailureKind::Trap => "trap",
            FailureKind::InvalidOutput => "invalid_output",
            FailureKind::PluginError => "plugin_error",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Expired => "expired",
            FailureKind::TimedOut => "timed_out",
        }
    }

    /// Whether the step was stopped rather than failed (cancelled, or
    /// expired before it started): as with Celery's revoked tasks, no error
    /// callback runs for it.
    pub fn is_revoked(self) -> bool {
        matches!(self, FailureKind::Cancelled | FailureKind::Expired)
    }

    /// Whether the failure is a resource limit, which is not retried unless
    /// the step asks for it.
    pub fn is_resource_limit(self) -> bool {
        matches!(
            self,
            FailureKind::FuelExhausted | FailureKind::MemoryLimit | FailureKind::TimeLimit
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Its kind.
    pub kind: FailureKind,
    /// Why, in words.
    pub message: String,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}
