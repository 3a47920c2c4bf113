//! What a run produced: the workflow's outcome and every step's record.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::failure::Failure;
use crate::runtime::{Captured, LogRecord};

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// It returned a result.
    Succeeded,
    /// It failed; the workflow stopped here.
    Failed,
    /// It replaced itself with a canvas whose steps follow it.
    Replaced,
    /// It never ran because an earlier step failed.
    Skipped,
    /// It waits for its `countdown` (until `due_at_ms`).
    Scheduled,
    /// An attempt asked for a retry; the next is due at `due_at_ms`.
    Retrying,
}

impl StepStatus {
    /// The status's name as reports show it.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Replaced => "replaced",
            StepStatus::Skipped => "skipped",
            StepStatus::Scheduled => "scheduled",
            StepStatus::Retrying => "retrying",
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The stable id (`0`, `2.1`, `3.0`).
    pub id: String,
    /// Order in which the workflow first recorded the step.
    pub seq: u64,
    /// The step whose result this step received, or that it replaced.
    pub parent: Option<String>,
    /// `plugin.task`.
    pub task: String,
    /// The positional arguments it was called with, the previous result first.
    pub args: Vec<Value>,
    pub kwargs: Map<String, Value>,
    pub status: StepStatus,
    /// Attempts made (0 for a skipped step).
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// Fuel used by all attempts together.
    pub fuel_used: u64,
    /// Wall-clock time of all attempts and retry delays, in milliseconds.
    pub duration_ms: f64,
    /// The last attempt's stdout.
    #[serde(default, skip_serializing_if = "Captured::is_empty")]
    pub stdout: Captured,
    /// The last attempt's stderr.
    #[serde(default, skip_serializing_if = "Captured::is_empty")]
    pub stderr: Captured,
    /// Log records of every attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogRecord>,
    /// When a scheduled or retrying step's next attempt is due, in
    /// milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at_ms: Option<u64>,
}

impl StepRecord {
    /// A record for a step that has not run.
    pub fn new(
        id: &str,
        parent: Option<String>,
        task: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Self {
        StepRecord {
            id: id.to_string(),
            seq: 0,
            parent,
            task: task.to_string(),
            args,
            kwargs,
            status: StepStatus::Skipped,
            attempts: 0,
            result: None,
            error: None,
            fuel_used: 0,
            duration_ms: 0.0,
            stdout: Captured::default(),
            stderr: Captured::default(),
            logs: Vec::new(),
            due_at_ms: None,
        }
    }
}

impl StepRecord {
    /// The record an errback receives when this step failed with `failure`.
    pub fn error_record(&self, chain_id: &str, failure: &Failure) -> Value {
        json!({
            "chain_id": chain_id,
            "step": self.id,
            "task": self.task,
            "args": self.args,
            "kwargs": self.kwargs,
            "attempts": self.attempts,
            "error": {"kind": failure.kind, "message": failure.message},
        })
    }
}

/// How a workflow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    /// Started and not finished: running now, or cut off by a crash or a stop.
    Running,
    Succeeded,
    Failed,
    /// Stopped on request: steps not started never ran.
    Cancelled,
}

impl WorkflowStatus {
    /// The status's name as reports show it.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Running => "running",
            WorkflowStatus::Succeeded => "succeeded",
            WorkflowStatus::Failed => "failed",
            WorkflowStatus::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for WorkflowStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        [
            WorkflowStatus::Running,
            WorkflowStatus::Succeeded,
            WorkflowStatus::Failed,
            WorkflowStatus::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
        .ok_or_else(|| {
            format!("unknown status `{text}` (expected running, succeeded, failed or cancelled)")
        })
    }
}

/// The failed step behind a failed workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowError {
    /// The failed step's id.
    pub step: String,
    /// Its task.
    pub task: String,
    /// Attempts made.
    pub attempts: u32,
    pub kind: crate::failure::FailureKind,
    pub message: String,
}

impl WorkflowError {
    /// The workflow's error when the step of `record` failed with `failure`.
    pub fn of(record: &StepRecord, failure: &Failure) -> Self {
        WorkflowError {
            step: record.id.clone(),
            task: record.task.clone(),
            attempts: record.attempts,
            kind: failure.kind,
            message: failure.message.clone(),
        }
    }
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowReport {
    pub id: String,
    pub tenant: String,
    pub status: WorkflowStatus,
    /// The last step's result, when the workflow succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WorkflowError>,
    /// Every step in the order it ran, then the skipped ones.
    pub steps: Vec<StepRecord>,
}
