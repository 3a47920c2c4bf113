//! The store's writes, each handed to the group committer: a workflow's
//! start (row, head, elements), its row's changes, and step records, each
//! with the event that says why.

use super::commit::{Flush, Rows, Started, Write};
use super::tables::{ELEMENTS, EXPIRED_AT_KEY, HEADS, STEPS, WORKFLOWS};
use super::tally::Counted;
use super::{Store, StoreError};
use crate::records::{StepRecord, StoredHead, WorkflowRow, WorkflowStatus};

impl Store {
    /// Records a new workflow, durably, with a `workflow_started` event:
    /// its row, its head (native JSON, plugins pinned by absolute path and
    /// sha256: what `resume` runs) and its last elements, from index
    /// `first_element` on; [`Store::put_elements`] stored those before.
    /// With `announced` false, nobody hears of the start before the
    /// workflow ends, and it waits for a later commit ([`Flush::Unannounced`]).
    pub(crate) async fn start_workflow(
        &self,
        row: &WorkflowRow,
        head: &StoredHead,
        first_element: u64,
        elements: Vec<Vec<u8>>,
        announced: bool,
    ) -> Result<(), StoreError> {
        let started = Started {
            head: HEADS.encode(&HEADS.key(&row.tenant, &row.id, 0, ""), head),
            first_element,
            elements: sealed_elements(&row.tenant, &row.id, first_element, elements),
        };
        let flush = if announced {
            Flush::BeforeReturning
        } else {
            Flush::Unannounced
        };
        self.write_workflow(row, Some(started), "workflow_started", None, flush)
            .await
    }

    /// Stores elements of a workflow about to start, from index `first` on,
    /// durably and without an event: the workflow is not on record until
    /// [`Store::start_workflow`] has committed.
    pub(crate) async fn put_elements(
        &self,
        tenant: &str,
        id: &str,
        first: u64,
        elements: Vec<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let elements = sealed_elements(tenant, id, first, elements);
        let write = Write::new(tenant, id, Rows::Elements { first, elements });
        self.committer.write(write).await
    }

    /// Writes a workflow's row and appends an event, durably.
    pub(crate) async fn put_workflow(
        &self,
        row: &WorkflowRow,
        event: &str,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        self.write_workflow(row, None, event, detail, Flush::BeforeReturning)
            .await
    }

    /// Writes a workflow's row and its new head, and appends an event,
    /// durably: a workflow that continues with other plugin files.
    pub(crate) async fn put_workflow_and_head(
        &self,
        row: &WorkflowRow,
        head: &StoredHead,
        event: &str,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        let head = Started {
            head: HEADS.encode(&HEADS.key(&row.tenant, &row.id, 0, ""), head),
            first_element: head.elements,
            elements: Vec::new(),
        };
        self.write_workflow(row, Some(head), event, detail, Flush::BeforeReturning)
            .await
    }

    async fn write_workflow(
        &self,
        row: &WorkflowRow,
        started: Option<Started>,
        event: &str,
        detail: Option<String>,
        flush: Flush,
    ) -> Result<(), StoreError> {
        let rows = Rows::Workflow {
            row: WORKFLOWS.encode(&(row.tenant.as_str(), row.id.as_str()), row),
            started,
            ends: row.status != WorkflowStatus::Running,
        };
        let mut write = Write::new(&row.tenant, &row.id, rows).with_event(event, None, detail);
        write.flush = flush;
        write.alone = row.status != WorkflowStatus::Running && self.leases.held() <= 1;
        self.committer.write(write).await
    }

    /// Writes step records and appends one event, together, reaching the
    /// disk when `flush` says.
    pub(crate) async fn put_steps(
        &self,
        tenant: &str,
        id: &str,
        records: &[&StepRecord],
        event: &str,
        detail: Option<String>,
        flush: Flush,
    ) -> Result<(), StoreError> {
        let rows = records
            .iter()
            .map(|record| {
                let bytes = STEPS.encode(&STEPS.key(tenant, id, 0, &record.id), record);
                (record.id.clone(), bytes, Counted::of(record))
            })
            .collect();
        let step = records.first().map(|record| record.id.clone());
        let mut write = Write::new(tenant, id, Rows::Steps(rows)).with_event(event, step, detail);
        write.flush = flush;
        self.committer.write(write).await
    }
}

/// `elements` of workflow `id` of `tenant`, from index `first` on, each
/// sealed with its checksum as the journal stores it.
fn sealed_elements(tenant: &str, id: &str, first: u64, mut elements: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    for (index, json) in (first..).zip(&mut elements) {
        ELEMENTS.seal(&ELEMENTS.key(tenant, id, index, ""), json);
    }
    elements
}

impl Store {
    /// Asks, durably, that workflow `id` of `tenant`, which another process
    /// runs, be cancelled: that process looks for requests while it runs
    /// ([`Store::cancel_requested`]), and the workflow's end removes the
    /// request.
    pub(crate) async fn request_cancel(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let by = format!("by process {}", std::process::id());
        let write = Write::new(tenant, id, Rows::CancelRequest).with_event(
            "cancel_requested",
            None,
            Some(by),
        );
        self.committer.write(write).await
    }
}

impl Store {
    /// Returns once every write made before the call is on the disk: one
    /// commit, of nothing, after them (commits keep their order), made by
    /// this task or by a leader already under way. Fails, as its own
    /// writes would, if writes of workflow `id` of `tenant` were lost.
    #[cfg(feature = "serve")]
    pub(crate) async fn sync(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let mut write = Write::new(tenant, id, Rows::Steps(Vec::new()));
        write.flush = Flush::Always;
        self.committer.write(write).await
    }

    /// Removes every record of workflow `id` of `tenant`, durably: its row,
    /// head, elements, steps and event log. The space they took is reused
    /// by later writes; the file does not shrink.
    pub(crate) async fn remove_workflow(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let write = Write::new(tenant, id, Rows::Removal);
        self.committer.write(write).await
    }

    /// When ended workflows were last expired (milliseconds since the
    /// epoch), if ever.
    pub(crate) fn expired_at(&self) -> Result<Option<u64>, StoreError> {
        self.meta(EXPIRED_AT_KEY)
    }

    /// Records that ended workflows were expired at `at_ms`.
    pub(crate) async fn set_expired_at(&self, at_ms: u64) -> Result<(), StoreError> {
        let rows = Rows::Meta {
            key: EXPIRED_AT_KEY,
            value: at_ms,
        };
        let write = Write::new("", "", rows);
        self.committer.write(write).await
    }
}
