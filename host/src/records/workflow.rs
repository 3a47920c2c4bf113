//! A workflow's records: its row (what it is and where it stands), its
//! report (the row and every step), its event log, and a tenant's usage.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FailureKind, StepRecord};

/// Where a workflow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WorkflowStatus {
    /// Started and not finished, and running now, in some process.
    Running,
    /// Started and not finished, and running nowhere: a crash or a stop
    /// cut it off, and `resume` continues it. Never stored: a workflow is
    /// on record as running, and seen as cut off once no process holds its
    /// lease.
    CutOff,
    /// Its last step returned a result.
    Succeeded,
    /// A step failed and stopped it.
    Failed,
    /// Stopped on request: steps not started never ran.
    Cancelled,
}

impl WorkflowStatus {
    /// Every status, in the order of a workflow's life.
    pub const ALL: [WorkflowStatus; 5] = [
        WorkflowStatus::Running,
        WorkflowStatus::CutOff,
        WorkflowStatus::Succeeded,
        WorkflowStatus::Failed,
        WorkflowStatus::Cancelled,
    ];

    /// The status's name as reports show it.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Running => "running",
            WorkflowStatus::CutOff => "cut_off",
            WorkflowStatus::Succeeded => "succeeded",
            WorkflowStatus::Failed => "failed",
            WorkflowStatus::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for WorkflowStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|status| status.as_str()).collect();
                format!("unknown status `{text}` (expected {})", names.join(", "))
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
    /// How it failed.
    pub kind: FailureKind,
    /// Why, in words.
    pub message: String,
}

impl WorkflowError {
    /// The workflow's error when the step of `record` failed with `failure`.
    pub fn of(record: &StepRecord, failure: &super::Failure) -> Self {
        WorkflowError {
            step: record.id.clone(),
            task: record.task.clone(),
            attempts: record.attempts,
            kind: failure.kind,
            message: failure.message.clone(),
        }
    }
}

/// A workflow as stored: what it is, and where it stands. This is its JSON
/// shape everywhere: `wfhost list --json`, the API's lists and answers, and
/// the head of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRow {
    /// Its id, unique within its tenant.
    pub id: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// Where it stands.
    pub status: WorkflowStatus,
    /// When it was first recorded, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When its row last changed, in milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
    /// The last step's result, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The step that stopped it, when it failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WorkflowError>,
}

/// Everything a run produced: the workflow's row and every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowReport {
    /// The workflow's row; its fields are the report's own in JSON.
    #[serde(flatten)]
    pub row: WorkflowRow,
    /// How far it has come, counted over its steps.
    pub progress: Progress,
    /// Every step in the order it ran, then the skipped ones.
    pub steps: Vec<StepRecord>,
}

/// How far a workflow has come: `done` of `total` steps have ended
/// (succeeded, failed, replaced or skipped), `running` are under way or
/// waiting for a retry or countdown, and `pending` have not started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The steps it has: as planned when it started, or as many as are on
    /// record once replacements have added more.
    pub total: u64,
    /// Steps that have ended.
    pub done: u64,
    /// Steps under way, or waiting to try again.
    pub running: u64,
    /// Steps not started yet.
    pub pending: u64,
}

impl Progress {
    /// The progress of `steps` of a workflow planned with `planned` steps.
    pub fn of(steps: &[StepRecord], planned: u64) -> Self {
        let done = steps.iter().filter(|step| step.status.is_final()).count() as u64;
        let running = steps.len() as u64 - done;
        let total = planned.max(steps.len() as u64);
        Progress {
            total,
            done,
            running,
            pending: total - done - running,
        }
    }
}

/// One entry of a workflow's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the workflow's log, from 0.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened: `workflow_started`, `step_succeeded`, `step_retrying` …
    pub kind: String,
    /// The step it happened to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// More about it: a retry's reason, a failure, a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What one tenant's workflows have used, summed from their step records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// The tenant.
    pub tenant: String,
    /// Workflows on record.
    pub workflows: u64,
    /// Steps that ran at least once (groups and skipped steps are not
    /// steps that ran).
    pub steps: u64,
    /// Attempts of those steps, retries included.
    pub attempts: u64,
    /// Fuel their attempts used.
    pub fuel: u64,
    /// Wall-clock time of their attempts (and retry waits), in ms.
    pub duration_ms: f64,
}

impl Usage {
    /// Nothing used yet by `tenant`.
    pub fn none(tenant: &str) -> Self {
        Usage {
            tenant: tenant.to_string(),
            ..Usage::default()
        }
    }
}
