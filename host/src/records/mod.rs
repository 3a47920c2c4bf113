//! Every record the host keeps or shows, in one place and one JSON shape:
//! a step's record and how it failed, a workflow's row, report and events,
//! a tenant's usage, and what an attempt wrote. The store keeps them, the
//! CLI and the API print them, and nothing here depends on how they were
//! made.

mod failure;
mod head;
mod output;
mod schedule;
mod signal;
mod step;
mod time;
mod workflow;

pub use failure::{Failure, FailureKind};
pub(crate) use head::{StoredHead, StoredPlugin};
pub use output::{Captured, LogLevel, LogRecord};
pub use schedule::{Overlap, ScheduleRecord, ScheduleSpec, Tick, TickOutcome};
pub use signal::Signal;
pub use step::{StepRecord, StepStatus};
pub use time::{iso8601, now_ms, parse_iso8601};
pub use workflow::{
    Event, Progress, Usage, WorkflowError, WorkflowReport, WorkflowRow, WorkflowStatus,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Each enum's `as_str` is the name serde writes and reads.
    #[test]
    fn names_are_the_serialized_names() {
        fn check<T: serde::Serialize>(value: T, name: &str) {
            assert_eq!(serde_json::to_value(value).unwrap(), name);
        }
        for status in WorkflowStatus::ALL {
            check(status, status.as_str());
        }
        use StepStatus::*;
        for status in [
            Succeeded, Failed, Replaced, Skipped, Scheduled, Retrying, Running, Sleeping, Waiting,
        ] {
            check(status, status.as_str());
        }
        for kind in FailureKind::ALL {
            check(kind, kind.as_str());
        }
        use LogLevel::*;
        for level in [Trace, Debug, Info, Warn, Error] {
            check(level, level.as_str());
        }
    }
}
