//! The store's reads: a workflow's row, head and elements, its steps one by
//! one or all, its event log, lists of rows, and usage sums.

use std::collections::{BTreeMap, HashSet};

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable};

use super::error::Fault;
use super::tables::{
    CANCELS, ELEMENTS, EVENTS, HEADS, JOURNAL, JournalKey, META, STEPS, TALLIES, WORKFLOWS,
};
use super::tally::LATEST;
use super::{Store, StoreError};
use crate::records::{
    Event, Progress, StepRecord, StoredHead, Usage, WorkflowReport, WorkflowRow, WorkflowStatus,
};

/// Where a workflow's step records stand (see [`Store::step_totals`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StepTotals {
    /// The position after the last record's.
    pub next_seq: u64,
    /// Fuel their attempts used.
    pub fuel_used: u64,
}

/// What `status` shows of a workflow (see [`Store::overview`]).
#[derive(Debug, Clone)]
pub struct Overview {
    /// The workflow's row, with the status it has now.
    pub row: WorkflowRow,
    /// What its steps add up to.
    pub progress: Progress,
    /// How many step records it has.
    pub records: u64,
    /// Its latest step records (the last first made), in order.
    pub latest: Vec<StepRecord>,
    /// Its step records that have not ended (running, waiting), in order.
    pub unfinished: Vec<StepRecord>,
    /// The record of the step its error names, if it failed.
    pub failed: Option<StepRecord>,
}

/// What [`Store::overview`] reads of a workflow that keeps a tally.
struct Tallied {
    tally: super::tally::Tally,
    planned: u64,
    latest: Vec<StepRecord>,
    unfinished: Vec<StepRecord>,
    failed: Option<StepRecord>,
}

impl Overview {
    /// The overview of a whole `report`, with its last `latest` steps.
    pub fn of(report: WorkflowReport, latest: usize) -> Self {
        let steps = report.steps;
        let failed = report
            .row
            .error
            .as_ref()
            .and_then(|error| steps.iter().find(|step| step.id == error.step).cloned());
        let unfinished = steps
            .iter()
            .filter(|step| !step.status.is_final())
            .cloned()
            .collect();
        Overview {
            records: steps.len() as u64,
            latest: steps[steps.len().saturating_sub(latest)..].to_vec(),
            unfinished,
            failed,
            progress: report.progress,
            row: report.row,
        }
    }
}

impl Store {
    /// The workflow `id` of `tenant`, if stored, with the status it has
    /// now: one on record as running that no process runs is cut off.
    pub fn workflow(&self, tenant: &str, id: &str) -> Result<Option<WorkflowRow>, StoreError> {
        let read = self.read_observed(tenant, id, |txn| {
            Ok(row(txn, tenant, id)?.map(|row| (row, ())))
        })?;
        Ok(read.map(|(row, ())| row))
    }

    /// What `read` reads of workflow `id` of `tenant` (none if it has no
    /// row), its row with the status it has now: whether the workflow runs
    /// is asked before the read as well as after, so that a run that ends,
    /// or starts, while its records are read is not taken for one cut off.
    fn read_observed<T>(
        &self,
        tenant: &str,
        id: &str,
        read: impl Fn(&ReadTransaction) -> Result<Option<(WorkflowRow, T)>, Fault>,
    ) -> Result<Option<(WorkflowRow, T)>, StoreError> {
        let ran_before = self.is_running(tenant, id)?;
        let Some((row, rest)) = self.read(read)? else {
            return Ok(None);
        };
        let row = if ran_before { row } else { self.observed(row)? };
        Ok(Some((row, rest)))
    }

    /// `row` with the status it has now (see [`WorkflowStatus::CutOff`]).
    fn observed(&self, mut row: WorkflowRow) -> Result<WorkflowRow, StoreError> {
        // Only a row on record as running may be cut off: the others are
        // not asked after their lease.
        if row.status == WorkflowStatus::Running {
            let runs = self.is_running(&row.tenant, &row.id)?;
            let parked = !runs && self.parked_until(&row.tenant, &row.id)?.is_some();
            row.status = row.status.now(runs, parked);
        }
        Ok(row)
    }

    /// A setting of the file, if set.
    pub(crate) fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.read(|txn| Ok(txn.open_table(META)?.get(key)?.map(|value| value.value())))
    }

    /// The workflows, by tenant and id, that a request to cancel waits
    /// for: few, since each is answered within moments by the process that
    /// runs it.
    pub(crate) fn cancel_requests(&self) -> Result<HashSet<(String, String)>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(CANCELS)?;
            let mut requested = HashSet::new();
            for entry in table.iter()? {
                let (key, _) = entry?;
                let (tenant, id) = key.value();
                requested.insert((tenant.to_string(), id.to_string()));
            }
            Ok(requested)
        })
    }

    /// The head of workflow `id` of `tenant`, as it was recorded when it
    /// started (see [`Store::start_workflow`]); its elements are read with
    /// [`Store::elements`].
    pub(crate) fn head(&self, tenant: &str, id: &str) -> Result<Option<StoredHead>, StoreError> {
        self.read(|txn| head(txn, tenant, id))
    }

    /// Up to `max` elements of a workflow's top-level chain from index
    /// `first` on, each as native JSON.
    pub(crate) fn elements(
        &self,
        tenant: &str,
        id: &str,
        first: u64,
        max: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read(|txn| {
            let journal = txn.open_table(JOURNAL)?;
            let range = journal.range(ELEMENTS.from(tenant, id, first))?;
            range
                .take(max)
                .map(|entry| {
                    let (key, stored) = entry?;
                    Ok(ELEMENTS.unseal(&key.value(), stored.value())?.to_vec())
                })
                .collect()
        })
    }

    /// Workflows, optionally of one tenant and one status (as it is now:
    /// see [`Store::workflow`]), oldest first.
    pub fn workflows(
        &self,
        tenant: Option<&str>,
        status: Option<WorkflowStatus>,
    ) -> Result<Vec<WorkflowRow>, StoreError> {
        let rows = self.read(|txn| {
            let table = txn.open_table(WORKFLOWS.table)?;
            let mut rows = Vec::new();
            // Keys start with the tenant: one tenant's rows are one range.
            for entry in table.range((tenant.unwrap_or(""), "")..)? {
                let (key, value) = entry?;
                if tenant.is_some_and(|t| t != key.value().0) {
                    break;
                }
                rows.push(WORKFLOWS.decode(&key.value(), value.value())?);
            }
            Ok(rows)
        })?;
        let mut observed = Vec::with_capacity(rows.len());
        for row in rows {
            let row = self.observed(row)?;
            if status.is_none_or(|s| s == row.status) {
                observed.push(row);
            }
        }
        let mut rows = observed;
        rows.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(rows)
    }

    /// Every stored step of a workflow, in the order they were first recorded.
    pub fn steps(&self, tenant: &str, id: &str) -> Result<Vec<StepRecord>, StoreError> {
        self.read(|txn| steps(txn, tenant, id))
    }

    /// Where a workflow's step records stand, read one record at a time:
    /// what a continuing run carries on from, without holding the records.
    pub(crate) fn step_totals(&self, tenant: &str, id: &str) -> Result<StepTotals, StoreError> {
        self.read(|txn| {
            let mut totals = StepTotals::default();
            each_step(txn, tenant, id, |step| {
                totals.next_seq = totals.next_seq.max(step.seq + 1);
                totals.fuel_used += step.fuel_used;
            })?;
            Ok(totals)
        })
    }

    /// A workflow's record of the step `step`, if it has one.
    pub fn step(
        &self,
        tenant: &str,
        id: &str,
        step: &str,
    ) -> Result<Option<StepRecord>, StoreError> {
        self.read(|txn| self::step(&txn.open_table(JOURNAL)?, tenant, id, step))
    }

    /// What each tenant (or only `tenant`) has used, by tenant name: its
    /// workflows on record and their steps.
    pub fn usage(&self, tenant: Option<&str>) -> Result<Vec<Usage>, StoreError> {
        fn sums_of<'u>(usage: &'u mut BTreeMap<String, Usage>, owner: &str) -> &'u mut Usage {
            usage
                .entry(owner.to_string())
                .or_insert_with(|| Usage::none(owner))
        }
        self.read(|txn| {
            let mut usage = BTreeMap::new();
            // Keys start with the tenant: one tenant's records are one range.
            let first = tenant.unwrap_or("");
            let workflows = txn.open_table(WORKFLOWS.table)?;
            let journal = txn.open_table(JOURNAL)?;
            for entry in workflows.range((first, "")..)? {
                let (key, _) = entry?;
                let (owner, id) = key.value();
                if tenant.is_some_and(|t| t != owner) {
                    break;
                }
                let sums = sums_of(&mut usage, owner);
                sums.workflows += 1;
                // Each workflow's step records are one range of the
                // journal: its elements and events are not read.
                for entry in journal.range(STEPS.from(owner, id, 0))? {
                    let (key, value) = entry?;
                    let record = STEPS.decode(&key.value(), value.value())?;
                    if record.attempts == 0 {
                        continue;
                    }
                    sums.steps += 1;
                    sums.attempts += u64::from(record.attempts);
                    sums.fuel = sums.fuel.saturating_add(record.fuel_used);
                    sums.duration_ms += record.duration_ms;
                }
            }
            Ok(usage.into_values().collect())
        })
    }

    /// The bytes `tenant`'s records take: every workflow's row and
    /// journal (head, elements, steps, events), values and keys. Reads
    /// them all: a caller that asks often keeps the answer a while.
    pub fn stored_bytes(&self, tenant: &str) -> Result<u64, StoreError> {
        self.read(|txn| {
            let mut bytes = 0u64;
            let mut add = |key: u64, value: usize| {
                bytes = bytes.saturating_add(key).saturating_add(value as u64);
            };
            let workflows = txn.open_table(WORKFLOWS.table)?;
            for entry in workflows.range((tenant, "")..)? {
                let (key, value) = entry?;
                let (owner, id) = key.value();
                if owner != tenant {
                    break;
                }
                add((owner.len() + id.len()) as u64, value.value().len());
            }
            // Keys start with the tenant: its journal is one range.
            let journal = txn.open_table(JOURNAL)?;
            for entry in journal.range((tenant, "", 0, 0, "")..)? {
                let (key, value) = entry?;
                let (owner, id, _, _, name) = key.value();
                if owner != tenant {
                    break;
                }
                // Part and index: nine bytes.
                add(
                    (owner.len() + id.len() + name.len() + 9) as u64,
                    value.value().len(),
                );
            }
            Ok(bytes)
        })
    }

    /// A workflow's event log.
    pub fn events(&self, tenant: &str, id: &str) -> Result<Vec<Event>, StoreError> {
        self.events_from(tenant, id, 0)
    }

    /// A workflow's events from position `first` on.
    pub fn events_from(
        &self,
        tenant: &str,
        id: &str,
        first: u64,
    ) -> Result<Vec<Event>, StoreError> {
        self.read(|txn| {
            let journal = txn.open_table(JOURNAL)?;
            let range = journal.range(EVENTS.from(tenant, id, first))?;
            range
                .map(|entry| {
                    let (key, stored) = entry?;
                    EVENTS.decode(&key.value(), stored.value())
                })
                .collect()
        })
    }

    /// The tenants that have a workflow `id`: what to suggest when another
    /// tenant's is asked for. Reads every workflow's key.
    pub fn tenants_of(&self, id: &str) -> Result<Vec<String>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(WORKFLOWS.table)?;
            let mut tenants = Vec::new();
            for entry in table.iter()? {
                let (key, _) = entry?;
                let (tenant, workflow) = key.value();
                if workflow == id {
                    tenants.push(tenant.to_string());
                }
            }
            Ok(tenants)
        })
    }

    /// What `status` shows of workflow `id` of `tenant`: its row and
    /// progress, and of its step records only the last `latest` first made,
    /// those not ended, and the failed one. Read from the workflow's tally
    /// where it has one, so that a long workflow is not read whole (only
    /// its unfinished records are looked for among all, when the tally
    /// counts some); else from every record.
    pub fn overview(
        &self,
        tenant: &str,
        id: &str,
        latest: usize,
    ) -> Result<Option<Overview>, StoreError> {
        let read = self.read_observed(tenant, id, |txn| {
            let Some(row) = row(txn, tenant, id)? else {
                return Ok(None);
            };
            let journal = txn.open_table(JOURNAL)?;
            let key = TALLIES.key(tenant, id, 0, "");
            let tally = match journal.get(key)? {
                Some(stored) if latest <= LATEST => TALLIES.decode(&key, stored.value())?,
                _ => return Ok(Some((row, None))),
            };
            let first = tally.latest.len().saturating_sub(latest);
            let shown = tally.latest[first..]
                .iter()
                .map(|(_, name)| step(&journal, tenant, id, name))
                .filter_map(Result::transpose)
                .collect::<Result<Vec<_>, _>>()?;
            let mut unfinished = Vec::new();
            if tally
                .statuses()
                .iter()
                .any(|(status, _)| !status.is_final())
            {
                each_step(txn, tenant, id, |record| {
                    if !record.status.is_final() {
                        unfinished.push(record);
                    }
                })?;
                unfinished.sort_by_key(|record| record.seq);
            }
            let failed = match row.error.as_ref() {
                Some(error) => step(&journal, tenant, id, &error.step)?,
                None => None,
            };
            let planned = head(txn, tenant, id)?.and_then(|head| head.planned_steps);
            let tallied = Tallied {
                tally,
                planned: planned.unwrap_or_default(),
                latest: shown,
                unfinished,
                failed,
            };
            Ok(Some((row, Some(tallied))))
        })?;
        match read {
            None => Ok(None),
            // The row as observed after the read (a workflow no process
            // runs is cut off): the account is made of it.
            Some((row, Some(tallied))) => Ok(Some(Overview {
                progress: Progress::of_counts(
                    tallied.tally.statuses(),
                    tallied.tally.last_moment_ms,
                    tallied.planned,
                    &row,
                ),
                records: tallied.tally.records(),
                latest: tallied.latest,
                unfinished: tallied.unfinished,
                failed: tallied.failed,
                row,
            })),
            // No tally (a workflow older than tallies): every record.
            Some((_, None)) => Ok(self
                .report(tenant, id)?
                .map(|report| Overview::of(report, latest))),
        }
    }

    /// The stored report of a workflow: its row and every step.
    /// Read in one transaction, so that the row and the steps agree.
    pub fn report(&self, tenant: &str, id: &str) -> Result<Option<WorkflowReport>, StoreError> {
        let stored = self.read_observed(tenant, id, |txn| {
            let Some(row) = row(txn, tenant, id)? else {
                return Ok(None);
            };
            let planned = head(txn, tenant, id)?.and_then(|head| head.planned_steps);
            Ok(Some((row, (steps(txn, tenant, id)?, planned))))
        })?;
        let Some((row, (steps, planned))) = stored else {
            return Ok(None);
        };
        Ok(Some(WorkflowReport {
            progress: Progress::of(&steps, planned.unwrap_or_default(), &row),
            steps,
            row,
        }))
    }
}

/// The row of workflow `id` of `tenant`, if stored.
fn row(txn: &ReadTransaction, tenant: &str, id: &str) -> Result<Option<WorkflowRow>, Fault> {
    let table = txn.open_table(WORKFLOWS.table)?;
    let row = table.get((tenant, id))?;
    row.map(|bytes| WORKFLOWS.decode(&(tenant, id), bytes.value()))
        .transpose()
}

/// The head of workflow `id` of `tenant`, if stored.
fn head(txn: &ReadTransaction, tenant: &str, id: &str) -> Result<Option<StoredHead>, Fault> {
    let key = HEADS.key(tenant, id, 0, "");
    let head = txn.open_table(JOURNAL)?.get(key)?;
    head.map(|bytes| HEADS.decode(&key, bytes.value()))
        .transpose()
}

/// The record of step `name` of workflow `id` of `tenant`, if it has one.
fn step(
    journal: &ReadOnlyTable<JournalKey, &'static [u8]>,
    tenant: &str,
    id: &str,
    name: &str,
) -> Result<Option<StepRecord>, Fault> {
    let key = STEPS.key(tenant, id, 0, name);
    journal
        .get(key)?
        .map(|stored| STEPS.decode(&key, stored.value()))
        .transpose()
}

/// Every step record of a workflow, in the order they were first recorded.
fn steps(txn: &ReadTransaction, tenant: &str, id: &str) -> Result<Vec<StepRecord>, Fault> {
    let mut steps = Vec::new();
    each_step(txn, tenant, id, |step| steps.push(step))?;
    steps.sort_by_key(|step| step.seq);
    Ok(steps)
}

/// Calls `visit` with each of a workflow's step records, in id order.
fn each_step(
    txn: &ReadTransaction,
    tenant: &str,
    id: &str,
    mut visit: impl FnMut(StepRecord),
) -> Result<(), Fault> {
    let journal = txn.open_table(JOURNAL)?;
    for entry in journal.range(STEPS.from(tenant, id, 0))? {
        let (key, value) = entry?;
        visit(STEPS.decode(&key.value(), value.value())?);
    }
    Ok(())
}
