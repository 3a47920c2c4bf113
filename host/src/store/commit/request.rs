//! What a writer hands the committer: one workflow's rows, serialized, and
//! the event that says why.

use super::Flush;
use crate::records::{Signal, now_ms};
use crate::store::tally::Counted;

/// What one write changes: rows of one workflow, already serialized, and
/// the event that says why.
pub(in crate::store) struct Write {
    pub tenant: String,
    pub workflow: String,
    pub rows: Rows,
    /// Why, for the workflow's event log; a write of elements before the
    /// workflow starts has none.
    pub event: Option<String>,
    pub step: Option<String>,
    pub detail: Option<String>,
    pub flush: Flush,
    /// When the write was made: its event's time, even when its commit
    /// comes later.
    pub at_ms: u64,
    /// Whether no other write can be on its way to join this one's
    /// commit: a workflow's last write (its steps are done) while this
    /// process runs no other workflow. Its writer commits at once rather
    /// than first letting other tasks run (and waking an idle thread to
    /// run them).
    pub alone: bool,
}

impl Write {
    /// A write of `rows` of workflow `workflow` of `tenant`, made now,
    /// with no event, committed before its writer goes on.
    pub fn new(tenant: &str, workflow: &str, rows: Rows) -> Self {
        Write {
            tenant: tenant.to_string(),
            workflow: workflow.to_string(),
            rows,
            event: None,
            step: None,
            detail: None,
            flush: Flush::BeforeReturning,
            at_ms: now_ms(),
            alone: false,
        }
    }

    /// The write with an event of `kind` (about `step`, if any) that says
    /// `detail`.
    pub fn with_event(mut self, kind: &str, step: Option<String>, detail: Option<String>) -> Self {
        self.event = Some(kind.to_string());
        self.step = step;
        self.detail = detail;
        self
    }
}

/// The rows a write puts.
pub(in crate::store) enum Rows {
    /// The workflow's own row, and its head (and elements) when it starts
    /// or its head changes.
    Workflow {
        row: Vec<u8>,
        started: Option<Started>,
        /// Whether the row is the workflow's last: a request to cancel it
        /// is then answered, and removed.
        ends: bool,
    },
    /// Elements of a workflow about to start, from index `first` on.
    Elements { first: u64, elements: Vec<Vec<u8>> },
    /// Step records by step id, each with what it tells the tally.
    Steps(Vec<(String, Vec<u8>, Counted)>),
    /// A request that the workflow, running in another process, be
    /// cancelled.
    CancelRequest,
    /// A signal: a new one, numbered after the workflow's last, when `seq`
    /// is none; else signal `seq` rewritten (taken by a wait).
    Signal { seq: Option<u64>, signal: Signal },
    /// The workflow parked until `due` (milliseconds since the epoch,
    /// `u64::MAX` until a signal), or, with none, no longer parked.
    Park { due: Option<u64> },
    /// The workflow's removal: its row, head, elements, steps, events and
    /// any request to cancel it.
    Removal,
    /// A setting of the file (the write's workflow is none).
    Meta { key: &'static str, value: u64 },
}

/// What a starting workflow stores besides its row: its head, and its
/// elements from `first_element` on (none, when only its head changes).
pub(in crate::store) struct Started {
    pub head: Vec<u8>,
    pub first_element: u64,
    pub elements: Vec<Vec<u8>>,
}
