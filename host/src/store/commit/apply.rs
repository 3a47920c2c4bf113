//! How a batch of writes becomes one transaction: each write applied to the
//! tables it changes, each table opened once per batch.

use std::collections::HashMap;

use redb::{ReadableTable, Table, WriteTransaction};

use super::Request;
use super::request::{Rows, Write};
use crate::records::{Event, Signal};
use crate::store::handle::Opened;
use crate::store::tables::{
    CANCELS, ELEMENTS, EVENTS, HEADS, JOURNAL, JournalKey, META, PARKED, PARKED_BY_DUE, SIGNALS,
    STEPS, WORKFLOWS, whole_journal,
};

/// Applies every write of `batch` in one transaction and commits it,
/// durably.
pub(super) fn commit(db: &Opened, batch: &[Request]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut tables = BatchTables::new(&txn);
        for request in batch {
            apply(&mut tables, &request.write)?;
        }
    }
    txn.commit()?;
    Ok(())
}

type WorkflowsTable<'txn> = Table<'txn, (&'static str, &'static str), &'static [u8]>;
type JournalTable<'txn> = Table<'txn, JournalKey, &'static [u8]>;

/// The tables most writes of a batch touch, each opened once for the
/// whole batch, and each workflow's next event number once it is known:
/// opening a table, and finding a workflow's last event, cost more than
/// the insert of a step's record itself.
struct BatchTables<'txn> {
    txn: &'txn WriteTransaction,
    workflows: Option<WorkflowsTable<'txn>>,
    journal: Option<JournalTable<'txn>>,
    next_event: HashMap<(&'txn str, &'txn str), u64>,
}

impl<'txn> BatchTables<'txn> {
    fn new(txn: &'txn WriteTransaction) -> Self {
        BatchTables {
            txn,
            workflows: None,
            journal: None,
            next_event: HashMap::new(),
        }
    }

    fn workflows(&mut self) -> Result<&mut WorkflowsTable<'txn>, redb::Error> {
        if self.workflows.is_none() {
            self.workflows = Some(self.txn.open_table(WORKFLOWS.table)?);
        }
        Ok(self.workflows.as_mut().expect("opened above"))
    }

    fn journal(&mut self) -> Result<&mut JournalTable<'txn>, redb::Error> {
        if self.journal.is_none() {
            self.journal = Some(self.txn.open_table(JOURNAL)?);
        }
        Ok(self.journal.as_mut().expect("opened above"))
    }

    /// Appends `event` to the log of workflow `workflow` of `tenant`,
    /// numbered after its last event.
    fn append_event(
        &mut self,
        tenant: &'txn str,
        workflow: &'txn str,
        mut event: Event,
    ) -> Result<(), redb::Error> {
        let known = self.next_event.get(&(tenant, workflow)).copied();
        let journal = self.journal()?;
        let seq = match known {
            Some(seq) => seq,
            None => journal
                .range(EVENTS.from(tenant, workflow, 0))?
                .next_back()
                .transpose()?
                .map_or(0, |(key, _)| key.value().3 + 1),
        };
        event.seq = seq;
        let key = EVENTS.key(tenant, workflow, seq, "");
        journal.insert(key, EVENTS.encode(&key, &event).as_slice())?;
        self.next_event.insert((tenant, workflow), seq + 1);
        Ok(())
    }

    /// Stores `elements` of workflow `workflow` of `tenant`, sealed, from
    /// index `first` on.
    fn put_elements(
        &mut self,
        tenant: &str,
        workflow: &str,
        first: u64,
        elements: &[Vec<u8>],
    ) -> Result<(), redb::Error> {
        let journal = self.journal()?;
        if first == 0 {
            // A start of the same id, killed after it stored some of its
            // elements, left them: none may pass for this start's.
            journal.retain_in(ELEMENTS.from(tenant, workflow, 0), |_, _| false)?;
        }
        for (index, json) in (first..).zip(elements) {
            journal.insert(ELEMENTS.key(tenant, workflow, index, ""), json.as_slice())?;
        }
        Ok(())
    }
}

fn apply<'a>(tables: &mut BatchTables<'a>, write: &'a Write) -> Result<(), redb::Error> {
    let txn = tables.txn;
    let (tenant, workflow) = (write.tenant.as_str(), write.workflow.as_str());
    match &write.rows {
        Rows::Workflow { row, started, ends } => {
            tables
                .workflows()?
                .insert((tenant, workflow), row.as_slice())?;
            if let Some(started) = started {
                let head = HEADS.key(tenant, workflow, 0, "");
                tables.journal()?.insert(head, started.head.as_slice())?;
                tables.put_elements(tenant, workflow, started.first_element, &started.elements)?;
            }
            if *ends {
                txn.open_table(CANCELS)?.remove((tenant, workflow))?;
            }
        }
        Rows::Elements { first, elements } => {
            tables.put_elements(tenant, workflow, *first, elements)?;
        }
        Rows::Steps(records) => {
            let journal = tables.journal()?;
            for (step, bytes) in records {
                journal.insert(STEPS.key(tenant, workflow, 0, step), bytes.as_slice())?;
            }
        }
        Rows::CancelRequest => {
            txn.open_table(CANCELS)?
                .insert((tenant, workflow), write.at_ms)?;
        }
        Rows::Signal { seq, signal } => {
            let journal = tables.journal()?;
            let seq = match seq {
                Some(seq) => *seq,
                None => journal
                    .range(SIGNALS.from(tenant, workflow, 0))?
                    .next_back()
                    .transpose()?
                    .map_or(0, |(key, _)| key.value().3 + 1),
            };
            let signal = Signal {
                seq,
                ..signal.clone()
            };
            let key = SIGNALS.key(tenant, workflow, seq, &signal.name);
            journal.insert(key, SIGNALS.encode(&key, &signal).as_slice())?;
        }
        Rows::Park { due } => park(txn, tenant, workflow, *due)?,
        Rows::Removal => {
            tables.workflows()?.remove((tenant, workflow))?;
            txn.open_table(CANCELS)?.remove((tenant, workflow))?;
            park(txn, tenant, workflow, None)?;
            tables
                .journal()?
                .retain_in(whole_journal(tenant, workflow), |_, _| false)?;
            tables.next_event.remove(&(tenant, workflow));
        }
        Rows::Meta { key, value } => {
            txn.open_table(META)?.insert(*key, *value)?;
        }
    }
    let Some(kind) = &write.event else {
        return Ok(());
    };
    let event = Event {
        seq: 0,
        at_ms: write.at_ms,
        kind: kind.clone(),
        step: write.step.clone(),
        detail: write.detail.clone(),
    };
    tables.append_event(tenant, workflow, event)
}

/// Parks workflow `workflow` of `tenant` until `due`, or unparks it: both
/// of its entries, by workflow and by due, change together.
fn park(
    txn: &WriteTransaction,
    tenant: &str,
    workflow: &str,
    due: Option<u64>,
) -> Result<(), redb::Error> {
    let mut parked = txn.open_table(PARKED)?;
    let mut by_due = txn.open_table(PARKED_BY_DUE)?;
    let before = parked.remove((tenant, workflow))?.map(|due| due.value());
    if let Some(before) = before {
        by_due.remove((before, tenant, workflow))?;
    }
    if let Some(due) = due {
        parked.insert((tenant, workflow), due)?;
        by_due.insert((due, tenant, workflow), ())?;
    }
    Ok(())
}
