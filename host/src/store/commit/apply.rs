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
    STEPS, TALLIES, WORKFLOWS, whole_journal,
};
use crate::store::tally::{Counted, Tally, status_in};

/// Applies every write of `batch` in one transaction and commits it,
/// durably.
pub(super) fn commit(db: &Opened, batch: &[Request]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut tables = BatchTables::new(&txn);
        for request in batch {
            apply(&mut tables, &request.write)?;
        }
        tables.store_tallies()?;
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
    /// Each workflow's tally once read (none: a workflow written before
    /// tallies were kept), stored when the batch is applied.
    tallies: HashMap<(&'txn str, &'txn str), Option<Tally>>,
}

impl<'txn> BatchTables<'txn> {
    fn new(txn: &'txn WriteTransaction) -> Self {
        BatchTables {
            txn,
            workflows: None,
            journal: None,
            next_event: HashMap::new(),
            tallies: HashMap::new(),
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

    /// Writes step records of workflow `workflow` of `tenant`, and counts
    /// each in its tally (one is begun for a workflow with no records yet).
    fn put_steps(
        &mut self,
        tenant: &'txn str,
        workflow: &'txn str,
        records: &[(String, Vec<u8>, Counted)],
    ) -> Result<(), redb::Error> {
        self.journal()?;
        let journal = self.journal.as_mut().expect("opened above");
        let tally = match self.tallies.entry((tenant, workflow)) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(unknown) => {
                let key = TALLIES.key(tenant, workflow, 0, "");
                let stored = journal
                    .get(key)?
                    .map(|stored| TALLIES.decode(&key, stored.value()));
                let tally = match stored {
                    Some(Ok(tally)) => Some(tally),
                    // Damage is told by `check`; the tally is left as it is.
                    Some(Err(_)) => None,
                    None => {
                        let mut steps = journal.range(STEPS.from(tenant, workflow, 0))?;
                        steps.next().is_none().then(Tally::default)
                    }
                };
                unknown.insert(tally)
            }
        };
        for (step, bytes, counted) in records {
            let key = STEPS.key(tenant, workflow, 0, step);
            let replaced = journal.insert(key, bytes.as_slice())?;
            if let Some(tally) = tally {
                let was = replaced.map(|old| status_in(old.value()));
                tally.count(step, counted, was.flatten());
            }
        }
        Ok(())
    }

    /// Stores every tally the batch counted in.
    fn store_tallies(&mut self) -> Result<(), redb::Error> {
        let tallies = std::mem::take(&mut self.tallies);
        for ((tenant, workflow), tally) in tallies {
            if let Some(tally) = tally {
                let key = TALLIES.key(tenant, workflow, 0, "");
                let stored = TALLIES.encode(&key, &tally);
                self.journal()?.insert(key, stored.as_slice())?;
            }
        }
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
            tables.put_steps(tenant, workflow, records)?;
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
            tables.tallies.remove(&(tenant, workflow));
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
