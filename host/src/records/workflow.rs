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

    /// The status a workflow stored as `self` has now, where `runs` says
    /// whether a process holds its lease and `parked` whether it is
    /// parked (a parked workflow holds no lease, by design): one on record
    /// as running that runs nowhere and is not parked is cut off. The one
    /// rule of [`WorkflowStatus::CutOff`], which is never stored.
    pub fn now(self, runs: bool, parked: bool) -> Self {
        if self == WorkflowStatus::Running && !runs && !parked {
            WorkflowStatus::CutOff
        } else {
            self
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowReport {
    /// The workflow's row; its fields are the report's own in JSON.
    #[serde(flatten)]
    pub row: WorkflowRow,
    /// How far it has come, counted over its steps.
    pub progress: Progress,
    /// Every step in the order it ran, then the skipped ones.
    pub steps: Vec<StepRecord>,
}

/// The row's fields are the report's own: read them from what is left once
/// `progress` and `steps` are taken. (Serde's `flatten` would buffer the
/// steps, where a number read exactly, a step's duration, no longer reads
/// as an `f64`.)
impl<'de> Deserialize<'de> for WorkflowReport {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = serde_json::Map::deserialize(deserializer)?;
        let mut take = |name: &'static str| {
            fields
                .remove(name)
                .ok_or_else(|| D::Error::missing_field(name))
        };
        let progress = Progress::deserialize(take("progress")?).map_err(D::Error::custom)?;
        let steps = Vec::<StepRecord>::deserialize(take("steps")?).map_err(D::Error::custom)?;
        let row = WorkflowRow::deserialize(Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(WorkflowReport {
            row,
            progress,
            steps,
        })
    }
}

/// What a workflow's steps add up to: the one account of them that
/// `status`, the API and the dashboard give (see [`Progress::of`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The steps it has: as planned when it started, or as many as are on
    /// record once replacements have added more.
    pub total: u64,
    /// Steps that ran to an end: succeeded, replaced or failed.
    pub done: u64,
    /// Of those, the ones that failed.
    #[serde(default)]
    pub failed: u64,
    /// Steps recorded as never run: an earlier step failed, or the
    /// workflow was cancelled before them.
    #[serde(default)]
    pub skipped: u64,
    /// Steps with an attempt under way, while the workflow runs.
    pub running: u64,
    /// Steps waiting, while the workflow runs: for a countdown, a retry, a
    /// sleep or a signal.
    #[serde(default)]
    pub waiting: u64,
    /// Steps under way or waiting when the workflow was cut off (resume
    /// goes on with them) or ended (they never finished).
    #[serde(default)]
    pub interrupted: u64,
    /// Steps not reached: still to come while the workflow runs or is cut
    /// off, never run once it ended.
    pub pending: u64,
    /// When anything of it last changed: its row, or a step's start or
    /// end (milliseconds since the epoch).
    #[serde(default)]
    pub last_change_ms: u64,
    /// All of the above in words: `4 of 10 steps done, 6 skipped`.
    #[serde(default)]
    pub summary: String,
}

impl Progress {
    /// What `steps` add up to for the workflow of `row`, planned with
    /// `planned` steps.
    pub fn of(steps: &[StepRecord], planned: u64, row: &WorkflowRow) -> Self {
        let mut by_status: Vec<(super::StepStatus, u64)> = Vec::new();
        let mut last_moment_ms = 0;
        for step in steps {
            match by_status
                .iter_mut()
                .find(|(status, _)| *status == step.status)
            {
                Some((_, n)) => *n += 1,
                None => by_status.push((step.status, 1)),
            }
            last_moment_ms = last_moment_ms.max(step.last_moment_ms());
        }
        Self::of_counts(by_status, last_moment_ms, planned, row)
    }

    /// What step records add up to, given as how many have each status
    /// (`by_status`) and the latest moment one names, for the workflow of
    /// `row`, planned with `planned` steps: the one account [`Progress::of`]
    /// gives of the records themselves.
    pub fn of_counts(
        by_status: impl IntoIterator<Item = (super::StepStatus, u64)>,
        last_moment_ms: u64,
        planned: u64,
        row: &WorkflowRow,
    ) -> Self {
        use super::StepStatus::*;
        let mut progress = Progress {
            last_change_ms: row.updated_at_ms.max(last_moment_ms),
            ..Progress::default()
        };
        let goes_on = matches!(row.status, WorkflowStatus::Running);
        let mut records = 0u64;
        for (status, n) in by_status {
            records += n;
            match status {
                Succeeded | Replaced => progress.done += n,
                Failed => {
                    progress.done += n;
                    progress.failed += n;
                }
                Skipped => progress.skipped += n,
                Running if goes_on => progress.running += n,
                Scheduled | Retrying | Sleeping | Waiting if goes_on => progress.waiting += n,
                _ => progress.interrupted += n,
            }
        }
        progress.total = planned.max(records);
        progress.pending = progress.total - records;
        progress.summary = progress.words(row.status);
        progress
    }

    fn words(&self, status: WorkflowStatus) -> String {
        let steps = if self.total == 1 { "step" } else { "steps" };
        let count = crate::text::thousands;
        let mut words = vec![format!(
            "{} of {} {steps} done",
            count(self.done),
            count(self.total)
        )];
        let ended = !matches!(status, WorkflowStatus::Running | WorkflowStatus::CutOff);
        let interrupted = if status == WorkflowStatus::CutOff {
            "cut off"
        } else {
            "interrupted"
        };
        let pending = if ended { "not run" } else { "pending" };
        for (n, what) in [
            (self.failed, "failed"),
            (self.skipped, "skipped"),
            (self.running, "running"),
            (self.waiting, "waiting"),
            (self.interrupted, interrupted),
            (self.pending, pending),
        ] {
            if n > 0 {
                words.push(format!("{} {what}", count(n)));
            }
        }
        words.join(", ")
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

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::records::StepStatus;

    fn row(status: WorkflowStatus) -> WorkflowRow {
        WorkflowRow {
            id: "w".into(),
            tenant: "t".into(),
            status,
            created_at_ms: 1_000,
            updated_at_ms: 2_000,
            result: None,
            error: None,
        }
    }

    /// One step in each state a step can be in, and one not reached.
    fn one_of_each() -> Vec<StepRecord> {
        use StepStatus::*;
        [
            Succeeded, Replaced, Failed, Skipped, Running, Scheduled, Retrying, Sleeping, Waiting,
        ]
        .into_iter()
        .enumerate()
        .map(|(index, status)| {
            let mut step = StepRecord::new(&index.to_string(), None, "t.x", vec![], Map::new());
            step.status = status;
            step.started_at_ms = Some(3_000 + index as u64);
            step
        })
        .collect()
    }

    /// Only a workflow on record as running, that runs nowhere and is not
    /// parked, is cut off; every other status is what is stored.
    #[test]
    fn cut_off_is_running_with_no_lease_and_not_parked() {
        for status in WorkflowStatus::ALL {
            for runs in [false, true] {
                for parked in [false, true] {
                    let cut = status == WorkflowStatus::Running && !runs && !parked;
                    let now = if cut { WorkflowStatus::CutOff } else { status };
                    assert_eq!(status.now(runs, parked), now, "{status:?} {runs} {parked}");
                }
            }
        }
    }

    /// What steps in every state add up to, in every state of their
    /// workflow: one function, and one account of it in words.
    #[test]
    fn steps_add_up_to_one_story_in_every_state_of_their_workflow() {
        let steps = one_of_each();
        let table = [
            (
                WorkflowStatus::Running,
                (0, 5),
                "3 of 10 steps done, 1 failed, 1 skipped, 1 running, 4 waiting, 1 pending",
            ),
            (
                WorkflowStatus::CutOff,
                (5, 0),
                "3 of 10 steps done, 1 failed, 1 skipped, 5 cut off, 1 pending",
            ),
            (
                WorkflowStatus::Cancelled,
                (5, 0),
                "3 of 10 steps done, 1 failed, 1 skipped, 5 interrupted, 1 not run",
            ),
            (
                WorkflowStatus::Failed,
                (5, 0),
                "3 of 10 steps done, 1 failed, 1 skipped, 5 interrupted, 1 not run",
            ),
            (
                WorkflowStatus::Succeeded,
                (5, 0),
                "3 of 10 steps done, 1 failed, 1 skipped, 5 interrupted, 1 not run",
            ),
        ];
        for (status, (interrupted, under_way), words) in table {
            let progress = Progress::of(&steps, 10, &row(status));
            assert_eq!(progress.summary, words, "{status:?}");
            assert_eq!(progress.interrupted, interrupted, "{status:?}");
            assert_eq!(progress.running + progress.waiting, under_way, "{status:?}");
            assert_eq!(
                progress.done
                    + progress.skipped
                    + progress.running
                    + progress.waiting
                    + progress.interrupted
                    + progress.pending,
                progress.total,
                "{status:?}: every step counted once"
            );
            // The last change is the latest step's start, past the row's.
            assert_eq!(progress.last_change_ms, 3_008);
        }
        let one = Progress::of(&steps[..1], 1, &row(WorkflowStatus::Succeeded));
        assert_eq!(one.summary, "1 of 1 step done");
        let many = Progress::of(&[], 20_000, &row(WorkflowStatus::Running));
        assert_eq!(many.summary, "0 of 20,000 steps done, 20,000 pending");
    }
}
