//! What an attempt is asked (`Invocation`) and what it gives back
//! (`Attempt`, `AttemptResult`).

use std::time::Duration;

use serde_json::Value;

use super::bindings::host;
use crate::records::{Captured, Failure, LogLevel, LogRecord};

/// Which invocation of which task an attempt is.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The workflow's id.
    pub workflow_id: String,
    /// The step's id.
    pub step_id: String,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// The workflow's tenant.
    pub tenant: String,
    /// The plugin's name in the workflow.
    pub plugin: String,
    /// The task's name inside its plugin.
    pub task: String,
    /// Positional arguments: a JSON array.
    pub args: String,
    /// Keyword arguments: a JSON object.
    pub kwargs: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AttemptResult {
    /// The task returned this value.
    Value(Value),
    /// The task asked to be replaced by this canvas (native JSON form).
    Replace(Value),
    /// The task asked to be retried.
    Retry {
        /// Why.
        message: String,
        /// The delay it asked for, in seconds.
        countdown: Option<f64>,
        /// The task's own limit of retries, where it names one.
        max_retries: Option<u32>,
    },
    /// The attempt failed.
    Failed(Failure),
}

impl AttemptResult {
    /// What kind of end it is, in a word: `value`, `replace`, `retry`, or
    /// the failure's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            AttemptResult::Value(_) => "value",
            AttemptResult::Replace(_) => "replace",
            AttemptResult::Retry { .. } => "retry",
            AttemptResult::Failed(failure) => failure.kind.as_str(),
        }
    }
}

impl From<host::Level> for LogLevel {
    fn from(level: host::Level) -> Self {
        match level {
            host::Level::Trace => LogLevel::Trace,
            host::Level::Debug => LogLevel::Debug,
            host::Level::Info => LogLevel::Info,
            host::Level::Warn => LogLevel::Warn,
            host::Level::Error => LogLevel::Error,
        }
    }
}

/// Everything one attempt produced.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// How the attempt ended.
    pub result: AttemptResult,
    /// Fuel consumed (instantiation included); on a trap, as far as known.
    pub fuel_used: u64,
    /// How long it took.
    pub duration: Duration,
    /// What it wrote to stdout.
    pub stdout: Captured,
    /// What it wrote to stderr.
    pub stderr: Captured,
    /// The log lines it sent.
    pub logs: Vec<LogRecord>,
    /// Log records past the cap, dropped.
    pub dropped_logs: u64,
}

impl Attempt {
    /// An attempt that failed before the guest ran.
    pub fn failed(failure: Failure) -> Self {
        Attempt {
            result: AttemptResult::Failed(failure),
            fuel_used: 0,
            duration: Duration::ZERO,
            stdout: Captured::default(),
            stderr: Captured::default(),
            logs: Vec::new(),
            dropped_logs: 0,
        }
    }
}
