//! A step's record: what it was called with, how it went, what it left.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Captured, Failure, LogRecord};

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// An attempt is under way (or was, when its process ended: `resume`
    /// runs the step again).
    Running,
    /// A durable sleep, due at `due_at_ms`.
    Sleeping,
    /// A wait for a signal, until `due_at_ms` when it has a timeout.
    Waiting,
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
            StepStatus::Running => "running",
            StepStatus::Sleeping => "sleeping",
            StepStatus::Waiting => "waiting",
        }
    }

    /// Whether the step has ended, one way or another.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::Replaced | StepStatus::Skipped
        )
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
    /// Where it stands. Stored before anything a task gives (arguments,
    /// result, error), so that the store finds a stored record's status
    /// without reading it whole (`store::tally`).
    pub status: StepStatus,
    /// The positional arguments it was called with, the previous result first.
    pub args: Vec<Value>,
    /// The keyword arguments it was called with.
    pub kwargs: Map<String, Value>,
    /// Attempts made (0 for a skipped step).
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// What it returned, or the canvas it was replaced with.
    pub result: Option<Value>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// Fuel used by all attempts together.
    pub fuel_used: u64,
    /// Wall-clock time of all attempts and retry delays, in milliseconds;
    /// waiting for a slot to run in is not in it (see `queued_ms`).
    pub duration_ms: f64,
    /// Wall-clock time its attempts waited for a slot to run in (the
    /// run's or tenant's concurrency, and in `serve` its tenant's turn), in
    /// milliseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub queued_ms: f64,
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
    /// When its first attempt started, in milliseconds since the Unix
    /// epoch; none for a step that never ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// When the step expires unless an attempt has started (its `expires`,
    /// fixed when it first became ready), in milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// When it ended, in milliseconds since the Unix epoch; none while it
    /// runs or waits, and for a step that never ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
}

impl StepRecord {
    /// The latest moment it names: its start or its end, whichever is
    /// later (0 when it names neither).
    pub fn last_moment_ms(&self) -> u64 {
        [self.started_at_ms, self.ended_at_ms]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0)
    }

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
            queued_ms: 0.0,
            stdout: Captured::default(),
            stderr: Captured::default(),
            logs: Vec::new(),
            due_at_ms: None,
            started_at_ms: None,
            expires_at_ms: None,
            ended_at_ms: None,
        }
    }
}

impl StepRecord {
    /// How deep the step is nested in the canvas: 0 for a top-level
    /// element, one more for each group, chord or replacement around it.
    pub fn depth(&self) -> usize {
        crate::plan::depth(&self.id)
    }

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

fn is_zero(ms: &f64) -> bool {
    *ms == 0.0
}
