//! The walk over every table of a checked copy: each record read as its
//! type, each workflow's journal handed to [`Journal`], and the tables that
//! index others compared with them.

use std::collections::{BTreeSet, HashMap, HashSet};

use redb::{ReadTransaction, ReadableTable, TableHandle};

use super::journal::Journal;
use super::{CheckReport, Finding, unreadable};
use crate::records::WorkflowStatus;
use crate::store::error::Fault;
use crate::store::tables::table_if_made;
use crate::store::tables::{
    CANCELS, JOURNAL, META, PARKED, PARKED_BY_DUE, SCHEDULES, SCHEMA_VERSION, SCHEMA_VERSION_KEY,
    WORKFLOWS,
};

/// The walk over every table of one read transaction.
pub(super) struct Records<'r> {
    report: &'r mut CheckReport,
    /// Every workflow row's `tenant/id`, with whether its journal was seen.
    rows: HashMap<String, bool>,
    /// The workflows on record as running, not parked: each runs now, or
    /// was cut off.
    pub(super) running: Vec<(String, String)>,
    parked: BTreeSet<(String, String)>,
    /// The file's schema version, where it is not this wfhost's: its
    /// records are not checked.
    pub(super) other_schema: Option<u64>,
    /// Every workflow a finding names (past the findings listed too).
    pub(super) damaged: HashSet<String>,
    /// The workflows that read back whole: a row, a journal, no finding.
    pub(super) whole: HashSet<String>,
}

impl<'r> Records<'r> {
    pub(super) fn new(report: &'r mut CheckReport) -> Self {
        Records {
            report,
            rows: HashMap::new(),
            running: Vec::new(),
            parked: BTreeSet::new(),
            other_schema: None,
            damaged: HashSet::new(),
            whole: HashSet::new(),
        }
    }

    fn find(&mut self, table: &str, key: String, workflow: Option<String>, problem: String) {
        if let Some(workflow) = &workflow {
            self.damaged.insert(workflow.clone());
        }
        self.report.note(Finding {
            table: table.to_string(),
            key,
            workflow,
            problem,
        });
    }

    pub(super) fn walk(&mut self, txn: &ReadTransaction) -> Result<(), Fault> {
        self.meta(txn)?;
        if self.other_schema.is_some() {
            return Ok(());
        }
        self.workflows(txn)?;
        self.schedules(txn)?;
        self.journal(txn)?;
        self.parked(txn)?;
        self.cancels(txn)?;
        let parked = std::mem::take(&mut self.parked);
        self.running.retain(|workflow| !parked.contains(workflow));
        let rows = std::mem::take(&mut self.rows);
        for (workflow, seen) in rows {
            if !seen {
                self.find(
                    WORKFLOWS.table.name(),
                    format!("{workflow:?}"),
                    Some(workflow),
                    "the workflow's row has no journal (its head is missing)".into(),
                );
            } else if !self.damaged.contains(&workflow) {
                self.whole.insert(workflow);
            }
        }
        Ok(())
    }

    fn meta(&mut self, txn: &ReadTransaction) -> Result<(), Fault> {
        let Some(meta) = table_if_made(txn, META)? else {
            return Ok(());
        };
        let version = meta.get(SCHEMA_VERSION_KEY)?.map(|version| version.value());
        match version {
            // Schema 6 differs from 7 only in keeping no tallies, which
            // this check takes as a workflow written before them.
            Some(6..=SCHEMA_VERSION) => Ok(()),
            Some(found) => {
                self.other_schema = Some(found);
                Ok(())
            }
            None => {
                self.find(
                    META.name(),
                    format!("{SCHEMA_VERSION_KEY:?}"),
                    None,
                    "no schema version: the file was not made whole".into(),
                );
                Ok(())
            }
        }
    }

    fn workflows(&mut self, txn: &ReadTransaction) -> Result<(), Fault> {
        let Some(table) = table_if_made(txn, WORKFLOWS.table)? else {
            return Ok(());
        };
        for entry in table.iter()? {
            let (key, value) = entry?;
            let key = key.value();
            self.report.workflows += 1;
            let name = format!("{}/{}", key.0, key.1);
            match WORKFLOWS.decode(&key, value.value()) {
                Ok(row) if row.tenant == key.0 && row.id == key.1 => {
                    if row.status == WorkflowStatus::Running {
                        self.running.push((row.tenant, row.id));
                    }
                }
                Ok(row) => self.find(
                    WORKFLOWS.table.name(),
                    format!("{key:?}"),
                    Some(name.clone()),
                    format!("the row names workflow {}/{}", row.tenant, row.id),
                ),
                Err(fault) => self.find(
                    WORKFLOWS.table.name(),
                    format!("{key:?}"),
                    Some(name.clone()),
                    unreadable(fault),
                ),
            }
            self.rows.insert(name, false);
        }
        Ok(())
    }

    fn schedules(&mut self, txn: &ReadTransaction) -> Result<(), Fault> {
        let Some(table) = table_if_made(txn, SCHEDULES.table)? else {
            return Ok(());
        };
        for entry in table.iter()? {
            let (key, value) = entry?;
            let key = key.value();
            self.report.schedules += 1;
            if let Err(fault) = SCHEDULES.decode(&key, value.value()) {
                self.find(
                    SCHEDULES.table.name(),
                    format!("{key:?}"),
                    None,
                    unreadable(fault),
                );
            }
        }
        Ok(())
    }

    /// Each workflow's entries are one range of the journal, in order:
    /// they are checked one workflow at a time.
    fn journal(&mut self, txn: &ReadTransaction) -> Result<(), Fault> {
        let Some(table) = table_if_made(txn, JOURNAL)? else {
            return Ok(());
        };
        let mut current: Option<Journal> = None;
        for entry in table.iter()? {
            let (key, value) = entry?;
            let key = key.value();
            self.report.journal_entries += 1;
            let name = format!("{}/{}", key.0, key.1);
            if current
                .as_ref()
                .is_none_or(|journal| journal.workflow != name)
            {
                if let Some(done) = current.take() {
                    self.end_journal(done);
                }
                current = Some(Journal::new(name.clone()));
            }
            let journal = current.as_mut().expect("set above");
            let problem = journal.take(&key, value.value());
            if let Some(problem) = problem {
                self.find(JOURNAL.name(), format!("{key:?}"), Some(name), problem);
            }
        }
        if let Some(done) = current {
            self.end_journal(done);
        }
        Ok(())
    }

    fn end_journal(&mut self, journal: Journal) {
        let workflow = journal.workflow.clone();
        if journal.only_elements && !self.rows.contains_key(&workflow) {
            self.report.unfinished_starts.push(workflow);
            return;
        }
        match self.rows.get_mut(&workflow) {
            Some(seen) => *seen = true,
            None => self.find(
                JOURNAL.name(),
                format!("{workflow:?}"),
                Some(workflow.clone()),
                "a journal without a workflow row".into(),
            ),
        }
        for problem in journal.end() {
            self.find(
                JOURNAL.name(),
                format!("{workflow:?}"),
                Some(workflow.clone()),
                problem,
            );
        }
    }

    /// The parked workflows and their order by due agree, and each has a
    /// row.
    fn parked(&mut self, txn: &ReadTransaction) -> Result<(), Fault> {
        let mut by_workflow = BTreeSet::new();
        if let Some(parked) = table_if_made(txn, PARKED)? {
            for entry in parked.iter()? {
                let (key, due) = entry?;
                let (tenant, id) = key.value();
                by_workflow.insert((due.value(), tenant.to_string(), id.to_string()));
                self.parked.insert((tenant.to_string(), id.to_string()));
            }
        }
        let mut by_due = BTreeSet::new();
        if let Some(parked) = table_if_made(txn, PARKED_BY_DUE)? {
            for entry in parked.iter()? {
                let (key, _) = entry?;
                let (due, tenant, id) = key.value();
                by_due.insert((due, tenant.to_string(), id.to_string()));
            }
        }
        for (due, tenant, id) in by_workflow.symmetric_difference(&by_due) {
            let (table, other) = if by_workflow.contains(&(*due, tenant.clone(), id.clone())) {
                (PARKED.name(), PARKED_BY_DUE.name())
            } else {
                (PARKED_BY_DUE.name(), PARKED.name())
            };
            let workflow = format!("{tenant}/{id}");
            self.find(
                table,
                format!("{:?}", (due, tenant, id)),
                Some(workflow),
                format!("not in `{other}`, which orders the same entries"),
            );
        }
        for (due, tenant, id) in &by_workflow {
            let workflow = format!("{tenant}/{id}");
            if !self.rows.contains_key(&workflow) {
                self.find(
                    PARKED.name(),
                    format!("{:?}", (tenant, id)),
                    Some(workflow),
                    format!("parked until {due}, but there is no such workflow"),
                );
            }
        }
        Ok(())
    }

    /// Each request to cancel is of a workflow on record.
    fn cancels(&mut self, txn: &ReadTransaction) -> Result<(), Fault> {
        let mut orphans = Vec::new();
        let Some(cancels) = table_if_made(txn, CANCELS)? else {
            return Ok(());
        };
        for entry in cancels.iter()? {
            let (key, _) = entry?;
            let (tenant, id) = key.value();
            let workflow = format!("{tenant}/{id}");
            if !self.rows.contains_key(&workflow) {
                orphans.push((format!("{:?}", (tenant, id)), workflow));
            }
        }
        for (key, workflow) in orphans {
            self.find(
                CANCELS.name(),
                key,
                Some(workflow),
                "a request to cancel a workflow not on record".into(),
            );
        }
        Ok(())
    }
}
