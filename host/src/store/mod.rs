//! Durable workflow state in a redb file: workflows, their steps, and an
//! append-only event log per workflow.
//!
//! Every state change is written in a transaction committed with redb's
//! default (immediate) durability before the executor moves on, so a process
//! killed at any instant leaves a consistent database that `resume` can
//! continue from. Changes that arrive together share a transaction
//! ([`commit`] explains how). A process that ends after its workflows
//! leaves the file as such a kill would, without redb's close, once its last
//! commit has recorded what the next open needs ([`Store::exit`]).

mod commit;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable};
use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;

use crate::records::{Event, StepRecord, Usage, WorkflowReport, WorkflowRow, WorkflowStatus};
use commit::{Committer, Rows, Started, Write};
use tables::{ELEMENTS, EVENTS, META, SCHEMA_VERSION, SCHEMA_VERSION_KEY, SPECS, STEPS, WORKFLOWS};

/// Why the state database cannot be used.
///
/// Each message already includes its cause, which is therefore not also
/// exposed as `source()`: printing the chain would say it twice.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process has the database open.
    #[error("the state database {} is in use by another wfhost process", path.display())]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// The file is damaged or is not a wfhost database.
    #[error("the state database {} is damaged or is not a wfhost database: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The database is of a schema this wfhost does not read.
    #[error("the state database {} has schema version {found}; this wfhost reads version {expected}", path.display())]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u64,
        /// What was expected.
        expected: u64,
    },
    /// The database (or its directory) cannot be created.
    #[error("cannot create the state database {}: {cause}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// What the system said.
        cause: std::io::Error,
    },
    /// Reading or writing the database failed.
    #[error("the state database {}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
}

/// Where a workflow's step records stand (see [`Store::step_totals`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepTotals {
    /// The position after the last record's.
    pub next_seq: u64,
    /// Fuel their attempts used.
    pub fuel_used: u64,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// How the commits of finished steps reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit is flushed before the step that made it moves on: a
    /// crash loses nothing that was committed. The default.
    #[default]
    Immediate,
    /// Step commits are flushed together, at least once per `window`; a
    /// crash may lose the steps finished in the last `window`, and
    /// `resume` runs them again. A workflow's start and end are always
    /// flushed. This is sound only for steps whose effects stay inside the
    /// sandbox, so that running one twice changes nothing outside it —
    /// which is every step while the host grants no capability.
    Batched {
        /// The longest a finished step waits for its flush.
        window: std::time::Duration,
    },
}

/// When a write of step records must reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flush {
    /// Before the writer goes on, as the store's [`Durability`] says.
    #[default]
    BeforeReturning,
    /// With the workflow's final write, which the writer makes next: the
    /// last step of a workflow needs no flush of its own, since nothing
    /// runs between its commit and the workflow's end. A crash in between
    /// loses the step, and `resume` runs it again, as if the crash had come
    /// before its commit.
    WithWorkflowEnd,
}

/// Memory redb may use to cache pages. Its default (1 GiB) would let the
/// cache of a long workflow's records grow with the workflow (16 MiB of it
/// was most of a 100,000-step run's memory); the executor reads stored steps
/// once, when it resumes, so a small cache costs nothing measurable.
const CACHE_BYTES: usize = 4 << 20;

/// The state database.
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    committer: Arc<Committer>,
    /// Whether a workflow's final commit records redb's allocator state
    /// (see [`Store::for_process_exit`]).
    record_state_at_workflow_end: bool,
}

/// The error of a failed database operation on the file at `path`.
fn io_error(path: &Path, err: &redb::Error) -> StoreError {
    match err {
        redb::Error::Corrupted(reason) => StoreError::Damaged {
            path: path.to_path_buf(),
            reason: reason.clone(),
        },
        other => StoreError::Io {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

impl Store {
    /// Opens the database at `path`, creating it (and its directory) if
    /// needed. A database open in another process, damaged, or of another
    /// schema version is refused with an error that says so.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::Immediate)
    }

    /// Opens the database at `path` like [`Store::open`], committing with
    /// `durability`.
    pub fn open_with(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|cause| StoreError::Create {
                path: path.to_path_buf(),
                cause,
            })?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|err| match err {
                DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                    path: path.to_path_buf(),
                },
                other => StoreError::Damaged {
                    path: path.to_path_buf(),
                    reason: other.to_string(),
                },
            })?;
        Self::start(db, path.to_path_buf(), durability)
    }

    /// Checks the schema of an open database and sets up its committer.
    fn start(db: Database, path: PathBuf, durability: Durability) -> Result<Self, StoreError> {
        let db = Arc::new(db);
        let committer = Committer::start(Arc::clone(&db), path.clone(), durability)?;
        let store = Store {
            db,
            path,
            committer,
            record_state_at_workflow_end: false,
        };
        store.check_schema()?;
        Ok(store)
    }

    /// A database that lives in memory only, for library users and benchmarks.
    pub fn in_memory() -> Result<Self, StoreError> {
        let path = PathBuf::from(":memory:");
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|err| StoreError::Io {
                path: path.clone(),
                reason: err.to_string(),
            })?;
        Self::start(db, path, Durability::Immediate)
    }

    /// Prepares the store for a process that ends once its workflows have:
    /// each workflow's final commit also records redb's allocator state, in
    /// a two-phase commit (one flush more), so that [`Store::exit`] can leave
    /// the file without redb's close (four flushes). A long-lived process
    /// gains nothing from it and would pay a flush per workflow.
    pub fn for_process_exit(mut self) -> Self {
        self.record_state_at_workflow_end = true;
        self
    }

    /// Ends this process's use of the store, which must not be opened again
    /// before the process exits. When the last commit recorded redb's
    /// allocator state, the file is left as a crash would leave it: all
    /// that is committed is on the disk, and the next open loads the state
    /// from that record, for one flush, where redb's close would have spent
    /// four. Otherwise the store closes as it does when dropped.
    pub fn exit(self) {
        if self.committer.last_commit_recorded_state() {
            // The database's file and lock go with the process.
            std::mem::forget(self);
        }
    }

    /// Where the database is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, err: impl Into<redb::Error>) -> StoreError {
        io_error(&self.path, &err.into())
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|err| StoreError::Damaged {
            path: self.path.clone(),
            reason: format!("a stored record does not decode: {err}"),
        })
    }

    /// Creates the tables on first use and checks the schema version.
    fn check_schema(&self) -> Result<(), StoreError> {
        // A database that is already set up costs a read, not a commit.
        if self.stored_schema_version()? == Some(SCHEMA_VERSION) {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.io(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.io(e))?;
            let found = meta
                .get(SCHEMA_VERSION_KEY)
                .map_err(|e| self.io(e))?
                .map(|v| v.value());
            match found {
                // Schema 2 differs only in keeping a workflow's elements
                // inside its head, which is still read as it is.
                Some(1) | Some(2) => {
                    if found == Some(1) {
                        self.move_specs_out_of_rows(&txn)?;
                    }
                    meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)
                        .map_err(|e| self.io(e))?;
                }
                Some(found) if found != SCHEMA_VERSION => {
                    return Err(StoreError::SchemaVersion {
                        path: self.path.clone(),
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
                Some(_) => {}
                None => {
                    meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)
                        .map_err(|e| self.io(e))?;
                }
            }
            txn.open_table(WORKFLOWS).map_err(|e| self.io(e))?;
            txn.open_table(SPECS).map_err(|e| self.io(e))?;
            txn.open_table(ELEMENTS).map_err(|e| self.io(e))?;
            txn.open_table(STEPS).map_err(|e| self.io(e))?;
            txn.open_table(EVENTS).map_err(|e| self.io(e))?;
        }
        txn.commit().map_err(|e| self.io(e))
    }

    /// Migrates schema 1, which kept each workflow's stored form inside its
    /// row, to schema 2, which keeps it in a table of its own.
    fn move_specs_out_of_rows(&self, txn: &redb::WriteTransaction) -> Result<(), StoreError> {
        let mut workflows = txn.open_table(WORKFLOWS).map_err(|e| self.io(e))?;
        let mut specs = txn.open_table(SPECS).map_err(|e| self.io(e))?;
        let mut moved = Vec::new();
        for entry in workflows.iter().map_err(|e| self.io(e))? {
            let (key, value) = entry.map_err(|e| self.io(e))?;
            let (tenant, id) = key.value();
            let mut row: Value = self.decode(value.value())?;
            if let Some(spec) = row.as_object_mut().and_then(|row| row.remove("spec")) {
                let bytes = |value: &Value| serde_json::to_vec(value).unwrap_or_default();
                moved.push((
                    tenant.to_string(),
                    id.to_string(),
                    bytes(&row),
                    bytes(&spec),
                ));
            }
        }
        for (tenant, id, row, spec) in moved {
            let key = (tenant.as_str(), id.as_str());
            workflows
                .insert(key, row.as_slice())
                .map_err(|e| self.io(e))?;
            specs.insert(key, spec.as_slice()).map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    /// The schema version the file records, if it has one yet.
    fn stored_schema_version(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(err) => return Err(self.io(err)),
        };
        let found = meta.get(SCHEMA_VERSION_KEY).map_err(|e| self.io(e))?;
        Ok(found.map(|version| version.value()))
    }

    /// The workflow `id` of `tenant`, if stored.
    pub fn workflow(&self, tenant: &str, id: &str) -> Result<Option<WorkflowRow>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let table = txn.open_table(WORKFLOWS).map_err(|e| self.io(e))?;
        let row = table.get((tenant, id)).map_err(|e| self.io(e))?;
        row.map(|bytes| self.decode(bytes.value())).transpose()
    }

    /// The head of workflow `id` of `tenant`, as it was recorded when it
    /// started (see [`Store::start_workflow`]); its elements are read with
    /// [`Store::elements`].
    pub fn workflow_spec(&self, tenant: &str, id: &str) -> Result<Option<Value>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let table = txn.open_table(SPECS).map_err(|e| self.io(e))?;
        let spec = table.get((tenant, id)).map_err(|e| self.io(e))?;
        spec.map(|bytes| self.decode(bytes.value())).transpose()
    }

    /// Workflows, optionally of one tenant and one status, oldest first.
    pub fn workflows(
        &self,
        tenant: Option<&str>,
        status: Option<WorkflowStatus>,
    ) -> Result<Vec<WorkflowRow>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let table = txn.open_table(WORKFLOWS).map_err(|e| self.io(e))?;
        let mut rows = Vec::new();
        // Keys start with the tenant: one tenant's rows are one range.
        let first = tenant.unwrap_or("");
        for entry in table.range((first, "")..).map_err(|e| self.io(e))? {
            let (key, value) = entry.map_err(|e| self.io(e))?;
            if tenant.is_some_and(|t| t != key.value().0) {
                break;
            }
            let row: WorkflowRow = self.decode(value.value())?;
            if status.is_none_or(|s| s == row.status) {
                rows.push(row);
            }
        }
        rows.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(rows)
    }

    /// Every stored step of a workflow, in the order they were first recorded.
    pub fn steps(&self, tenant: &str, id: &str) -> Result<Vec<StepRecord>, StoreError> {
        let mut steps = Vec::new();
        self.each_step(tenant, id, |step| steps.push(step))?;
        steps.sort_by_key(|step| step.seq);
        Ok(steps)
    }

    /// Where a workflow's step records stand, read one record at a time:
    /// what a continuing run carries on from, without holding the records.
    pub fn step_totals(&self, tenant: &str, id: &str) -> Result<StepTotals, StoreError> {
        let mut totals = StepTotals::default();
        self.each_step(tenant, id, |step| {
            totals.next_seq = totals.next_seq.max(step.seq + 1);
            totals.fuel_used += step.fuel_used;
        })?;
        Ok(totals)
    }

    /// A workflow's record of the step `step`, if it has one.
    pub fn step(
        &self,
        tenant: &str,
        id: &str,
        step: &str,
    ) -> Result<Option<StepRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let table = txn.open_table(STEPS).map_err(|e| self.io(e))?;
        match table.get((tenant, id, step)).map_err(|e| self.io(e))? {
            Some(value) => Ok(Some(self.decode(value.value())?)),
            None => Ok(None),
        }
    }

    /// Calls `visit` with each of a workflow's step records, in id order.
    fn each_step(
        &self,
        tenant: &str,
        id: &str,
        mut visit: impl FnMut(StepRecord),
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let table = txn.open_table(STEPS).map_err(|e| self.io(e))?;
        let range = table.range((tenant, id, "")..).map_err(|e| self.io(e))?;
        for entry in range {
            let (key, value) = entry.map_err(|e| self.io(e))?;
            let (t, w, _) = key.value();
            if t != tenant || w != id {
                break;
            }
            visit(self.decode(value.value())?);
        }
        Ok(())
    }

    /// What each tenant (or only `tenant`) has used, by tenant name.
    pub fn usage(&self, tenant: Option<&str>) -> Result<Vec<Usage>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let mut usage: std::collections::BTreeMap<String, Usage> = Default::default();
        fn sums_of<'u>(
            usage: &'u mut std::collections::BTreeMap<String, Usage>,
            owner: &str,
        ) -> &'u mut Usage {
            usage
                .entry(owner.to_string())
                .or_insert_with(|| Usage::none(owner))
        }
        // Keys start with the tenant: one tenant's records are one range.
        let first = tenant.unwrap_or("");
        let outside = |owner: &str| tenant.is_some_and(|t| t != owner);
        let workflows = txn.open_table(WORKFLOWS).map_err(|e| self.io(e))?;
        for entry in workflows.range((first, "")..).map_err(|e| self.io(e))? {
            let (key, _) = entry.map_err(|e| self.io(e))?;
            let owner = key.value().0;
            if outside(owner) {
                break;
            }
            sums_of(&mut usage, owner).workflows += 1;
        }
        let steps = txn.open_table(STEPS).map_err(|e| self.io(e))?;
        for entry in steps.range((first, "", "")..).map_err(|e| self.io(e))? {
            let (key, value) = entry.map_err(|e| self.io(e))?;
            let owner = key.value().0;
            if outside(owner) {
                break;
            }
            let record: StepRecord = self.decode(value.value())?;
            if record.attempts == 0 {
                continue;
            }
            let sums = sums_of(&mut usage, owner);
            sums.steps += 1;
            sums.attempts += u64::from(record.attempts);
            sums.fuel = sums.fuel.saturating_add(record.fuel_used);
            sums.duration_ms += record.duration_ms;
        }
        Ok(usage.into_values().collect())
    }

    /// A workflow's event log.
    pub fn events(&self, tenant: &str, id: &str) -> Result<Vec<Event>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let table = txn.open_table(EVENTS).map_err(|e| self.io(e))?;
        let range = table
            .range((tenant, id, 0u64)..=(tenant, id, u64::MAX))
            .map_err(|e| self.io(e))?;
        range
            .map(|entry| {
                let (_, value) = entry.map_err(|e| self.io(e))?;
                self.decode(value.value())
            })
            .collect()
    }

    /// The stored report of a workflow: its row and every step.
    pub fn report(&self, tenant: &str, id: &str) -> Result<Option<WorkflowReport>, StoreError> {
        let Some(row) = self.workflow(tenant, id)? else {
            return Ok(None);
        };
        Ok(Some(WorkflowReport {
            steps: self.steps(tenant, id)?,
            row,
        }))
    }

    /// Records a new workflow, durably, with a `workflow_started` event:
    /// its row, its head (native JSON, plugins pinned by absolute path and
    /// sha256: what `resume` runs) and its last elements, from index
    /// `first_element` on; [`Store::put_elements`] stored those before.
    pub async fn start_workflow(
        &self,
        row: &WorkflowRow,
        head: Vec<u8>,
        first_element: u64,
        elements: Vec<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let started = Started {
            head,
            first_element,
            elements,
        };
        self.write_workflow(row, Some(started), "workflow_started", None)
            .await
    }

    /// Stores elements of a workflow about to start, from index `first` on,
    /// durably and without an event: the workflow is not on record until
    /// [`Store::start_workflow`] has committed.
    pub async fn put_elements(
        &self,
        tenant: &str,
        id: &str,
        first: u64,
        elements: Vec<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let write = Write {
            tenant: tenant.to_string(),
            workflow: id.to_string(),
            rows: Rows::Elements { first, elements },
            event: None,
            step: None,
            detail: None,
            flush: Flush::BeforeReturning,
            record_allocator_state: false,
        };
        self.committer.write(write).await
    }

    /// Up to `max` elements of a workflow's top-level chain from index
    /// `first` on, each as native JSON.
    pub fn elements(
        &self,
        tenant: &str,
        id: &str,
        first: u64,
        max: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let table = txn.open_table(ELEMENTS).map_err(|e| self.io(e))?;
        let range = table
            .range((tenant, id, first)..=(tenant, id, u64::MAX))
            .map_err(|e| self.io(e))?;
        range
            .take(max)
            .map(|entry| {
                let (_, value) = entry.map_err(|e| self.io(e))?;
                Ok(value.value().to_vec())
            })
            .collect()
    }

    /// Writes a workflow's row and appends an event, durably.
    pub async fn put_workflow(
        &self,
        row: &WorkflowRow,
        event: &str,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        self.write_workflow(row, None, event, detail).await
    }

    async fn write_workflow(
        &self,
        row: &WorkflowRow,
        started: Option<Started>,
        event: &str,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        let write = Write {
            tenant: row.tenant.clone(),
            workflow: row.id.clone(),
            rows: Rows::Workflow {
                row: serde_json::to_vec(row).unwrap_or_default(),
                started,
            },
            event: Some(event.to_string()),
            step: None,
            detail,
            flush: Flush::BeforeReturning,
            record_allocator_state: self.record_state_at_workflow_end
                && row.status != WorkflowStatus::Running,
        };
        self.committer.write(write).await
    }

    /// Writes step records and appends one event, together, reaching the
    /// disk when `flush` says.
    pub async fn put_steps(
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
                let bytes = serde_json::to_vec(record).unwrap_or_default();
                (record.id.clone(), bytes)
            })
            .collect();
        let write = Write {
            tenant: tenant.to_string(),
            workflow: id.to_string(),
            rows: Rows::Steps(rows),
            event: Some(event.to_string()),
            step: records.first().map(|record| record.id.clone()),
            detail,
            flush,
            record_allocator_state: false,
        };
        self.committer.write(write).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    /// A continuing run reads one record by id, and the totals of all
    /// without holding them; other workflows' records stay out of both.
    #[tokio::test]
    async fn steps_are_read_one_by_one_and_totalled() {
        let store = Store::in_memory().unwrap();
        let record = |id: &str, seq: u64, fuel: u64| {
            let mut record = StepRecord::new(id, None, "m.add", vec![json!(seq)], Map::new());
            (record.seq, record.fuel_used) = (seq, fuel);
            record
        };
        let (a, b, other) = (record("0", 0, 10), record("1", 4, 32), record("0", 9, 1000));
        let put = |workflow: &'static str, records: Vec<StepRecord>| {
            let store = &store;
            async move {
                let refs: Vec<&StepRecord> = records.iter().collect();
                store
                    .put_steps(
                        "t",
                        workflow,
                        &refs,
                        "step_succeeded",
                        None,
                        Flush::BeforeReturning,
                    )
                    .await
                    .unwrap();
            }
        };
        put("wf", vec![a.clone(), b]).await;
        put("wf-2", vec![other]).await;
        assert_eq!(store.step("t", "wf", "0").unwrap(), Some(a));
        assert_eq!(store.step("t", "wf", "2").unwrap(), None);
        assert_eq!(store.step("u", "wf", "0").unwrap(), None);
        let totals = store.step_totals("t", "wf").unwrap();
        assert_eq!((totals.next_seq, totals.fuel_used), (5, 42));
        assert_eq!(
            store.step_totals("t", "none").unwrap(),
            StepTotals::default()
        );
    }

    /// A schema-1 file, as wfhost wrote it before the stored form of a
    /// workflow moved out of its row, opens as schema 2 with nothing lost.
    #[test]
    fn a_schema_1_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let spec = json!({"plugins": {"math": {"path": "/m.wasm"}}, "workflow": []});
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(SCHEMA_VERSION_KEY, 1)
                .unwrap();
            let row = json!({
                "id": "old", "tenant": "t", "status": "succeeded", "spec": spec,
                "created_at_ms": 1, "updated_at_ms": 2, "result": 4,
            });
            let bytes = serde_json::to_vec(&row).unwrap();
            txn.open_table(WORKFLOWS)
                .unwrap()
                .insert(("t", "old"), bytes.as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let row = store.workflow("t", "old").unwrap().unwrap();
        assert_eq!(
            (row.status, row.result),
            (WorkflowStatus::Succeeded, Some(json!(4)))
        );
        assert_eq!(store.workflow_spec("t", "old").unwrap(), Some(spec));
        drop(store);
        // And it stays migrated.
        assert!(Store::open(&path).is_ok());
    }
}
