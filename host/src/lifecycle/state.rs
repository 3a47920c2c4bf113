//! The workflow state machine: what a request may do with a workflow as it
//! stands on record, and the row each transition leaves.
//!
//! ```text
//!  (none) ──start──▶ running ──▶ succeeded | failed | cancelled
//!                      ▲  └─ a crash or a stop: cut_off ──resume─┐
//!                      └─────────────────────────────────────────┘
//!  failed ──retry──▶ running                 cut_off ──cancel──▶ cancelled
//! ```
//!
//! `cut_off` is never stored: a workflow on record as running is cut off
//! when no process holds its lease (see `store::leases`) and it is not
//! parked — the rule is [`WorkflowStatus::now`], which every reader of a
//! row applies.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::executor::{Continuation, RunIdentity};
use crate::records::{FailureKind, WorkflowError, WorkflowRow, WorkflowStatus, now_ms};
use crate::spec::WorkflowSpec;

/// What a caller asks of a workflow id.
// Made once per request and moved once: boxing the spec would buy nothing.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Intent {
    /// Run this workflow under the id: start it if the id is new, continue
    /// it if the id was cut off, report it if the id has finished.
    Start(WorkflowSpec),
    /// Continue the workflow a crash or a stop cut off; report it if it
    /// has finished.
    Resume,
    /// Run the failed workflow again from its failed step, with each plugin
    /// named in `plugins` loaded from the file given for it (a build with
    /// the fix) rather than the one the workflow was pinned to.
    Retry {
        /// New files of plugins, by the name the workflow gives them.
        plugins: BTreeMap<String, PathBuf>,
    },
}

impl Intent {
    /// Start `spec` under the id, or, with none, resume what is on record.
    pub fn start_or_resume(spec: Option<WorkflowSpec>) -> Self {
        match spec {
            Some(spec) => Intent::Start(spec),
            None => Intent::Resume,
        }
    }

    /// Run the failed workflow again from its failed step, with its own
    /// plugins.
    pub fn retry() -> Self {
        Intent::Retry {
            plugins: BTreeMap::new(),
        }
    }
}

/// What to do, given the intent and the record.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Decision {
    /// Nothing is on record: start the workflow from `spec`.
    Start(WorkflowSpec),
    /// Continue the stored workflow of `row`, with new files for the
    /// plugins in `plugins`.
    Continue {
        row: WorkflowRow,
        continuation: Continuation,
        plugins: BTreeMap<String, PathBuf>,
    },
    /// Nothing to run: the workflow's outcome is on record.
    Report(WorkflowRow),
}

/// Why a request cannot go on.
#[derive(Debug)]
pub(crate) enum Refusal {
    NotFound,
    NotRetryable(Box<WorkflowRow>),
}

/// Decides what `intent` does with the workflow on record as `stored`.
pub(crate) fn decide(intent: Intent, stored: Option<WorkflowRow>) -> Result<Decision, Refusal> {
    let row = match (intent, stored) {
        (Intent::Start(spec), None) => return Ok(Decision::Start(spec)),
        (_, None) => return Err(Refusal::NotFound),
        (Intent::Retry { plugins }, Some(row)) if row.status == WorkflowStatus::Failed => {
            let failed_step = row.error.as_ref().map(|error| error.step.clone());
            let continuation = Continuation::Redrive { failed_step };
            return Ok(Decision::Continue {
                row,
                continuation,
                plugins,
            });
        }
        (Intent::Retry { .. }, Some(row)) => return Err(Refusal::NotRetryable(Box::new(row))),
        (Intent::Start(_) | Intent::Resume, Some(row)) => row,
    };
    Ok(match row.status {
        WorkflowStatus::Running | WorkflowStatus::CutOff => Decision::Continue {
            row,
            continuation: Continuation::Resume,
            plugins: BTreeMap::new(),
        },
        _ => Decision::Report(row),
    })
}

/// The row of a workflow that starts now.
pub(crate) fn started(identity: &RunIdentity) -> WorkflowRow {
    let now = now_ms();
    WorkflowRow {
        id: identity.id.clone(),
        tenant: identity.tenant.clone(),
        status: WorkflowStatus::Running,
        created_at_ms: now,
        updated_at_ms: now,
        result: None,
        error: None,
    }
}

/// The row of a stored workflow that runs again as `continuation` says,
/// with the event that records it and the event's detail.
pub(crate) fn continued(
    mut row: WorkflowRow,
    continuation: &Continuation,
) -> (WorkflowRow, &'static str, Option<String>) {
    row.status = WorkflowStatus::Running;
    match continuation {
        Continuation::Redrive { failed_step } => {
            row.error = None;
            row.updated_at_ms = now_ms();
            (row, "workflow_retried", failed_step.clone())
        }
        _ => (row, "workflow_resumed", None),
    }
}

/// The row of a workflow whose run ended with `outcome`, with the event
/// that records it.
pub(crate) fn ended(
    mut row: WorkflowRow,
    outcome: Result<Value, WorkflowError>,
) -> (WorkflowRow, &'static str) {
    let event = match outcome {
        Ok(result) => {
            row.status = WorkflowStatus::Succeeded;
            row.result = Some(result);
            "workflow_succeeded"
        }
        Err(error) if error.kind == FailureKind::Cancelled => {
            row.status = WorkflowStatus::Cancelled;
            row.error = Some(error);
            "workflow_cancelled"
        }
        Err(error) => {
            row.status = WorkflowStatus::Failed;
            row.error = Some(error);
            "workflow_failed"
        }
    };
    row.updated_at_ms = now_ms();
    (row, event)
}

/// The row of a cut-off workflow that is cancelled, so that `resume`
/// leaves it.
pub(crate) fn cancelled(mut row: WorkflowRow) -> WorkflowRow {
    row.status = WorkflowStatus::Cancelled;
    row.updated_at_ms = now_ms();
    row
}

/// A fresh workflow id: milliseconds since the epoch and randomness, in hex.
pub fn new_workflow_id() -> String {
    format!("wf-{:x}-{:08x}", now_ms(), fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: WorkflowStatus) -> WorkflowRow {
        let mut row = started(&RunIdentity::new("t", "wf"));
        row.status = status;
        if status == WorkflowStatus::Failed {
            row.error = Some(WorkflowError {
                step: "2".into(),
                task: "m.t".into(),
                attempts: 1,
                kind: FailureKind::Fail,
                message: "no".into(),
            });
        }
        row
    }

    fn spec() -> WorkflowSpec {
        crate::spec::parse(
            r#"{"plugins": {}, "workflow": []}"#,
            std::path::Path::new("/"),
        )
        .unwrap()
    }

    /// Every intent against every state: the whole table in one place.
    #[test]
    fn each_intent_does_what_the_record_allows() {
        use WorkflowStatus::*;
        assert!(matches!(
            decide(Intent::Start(spec()), None),
            Ok(Decision::Start(_))
        ));
        for intent in [Intent::Resume, Intent::retry()] {
            assert!(matches!(decide(intent, None), Err(Refusal::NotFound)));
        }
        for status in WorkflowStatus::ALL {
            let start = decide(Intent::Start(spec()), Some(row(status)));
            let resume = decide(Intent::Resume, Some(row(status)));
            for decision in [start, resume] {
                match (status, decision) {
                    (
                        Running | CutOff,
                        Ok(Decision::Continue {
                            continuation: Continuation::Resume,
                            ..
                        }),
                    ) => {}
                    (Succeeded | Failed | Cancelled, Ok(Decision::Report(found))) => {
                        assert_eq!(found.status, status)
                    }
                    (status, _) => panic!("start or resume of a {status:?} workflow"),
                }
            }
            match (status, decide(Intent::retry(), Some(row(status)))) {
                (Failed, Ok(Decision::Continue { continuation, .. })) => assert_eq!(
                    continuation,
                    Continuation::Redrive {
                        failed_step: Some("2".into())
                    }
                ),
                (Running | CutOff | Succeeded | Cancelled, Err(Refusal::NotRetryable(found))) => {
                    assert_eq!(found.status, status)
                }
                (status, _) => panic!("retry of a {status:?} workflow"),
            }
        }
    }

    #[test]
    fn a_retried_row_runs_again_without_its_error() {
        let redrive = Continuation::Redrive {
            failed_step: Some("2".into()),
        };
        let (row, event, detail) = continued(row(WorkflowStatus::Failed), &redrive);
        assert_eq!((row.status, row.error), (WorkflowStatus::Running, None));
        assert_eq!((event, detail.as_deref()), ("workflow_retried", Some("2")));
    }

    /// A cut-off workflow runs again as running: `cut_off` is what a row
    /// is seen as, never what is written.
    #[test]
    fn a_resumed_row_is_running_again() {
        let (row, event, _) = continued(row(WorkflowStatus::CutOff), &Continuation::Resume);
        assert_eq!(
            (row.status, event),
            (WorkflowStatus::Running, "workflow_resumed")
        );
    }
}
