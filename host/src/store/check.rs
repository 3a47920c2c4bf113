//! Whether a state file is whole (`wfhost check`), as PostgreSQL's
//! `amcheck` or SQLite's `PRAGMA integrity_check` say of theirs: redb's own
//! check of the file's pages and trees, then every record's checksum and
//! shape, then the journal's agreement with itself (heads, elements, step
//! records and events) and with the workflows' rows.
//!
//! The file is not written, nor opened by redb: redb's check repairs what
//! it checks, so it runs on a private copy. A copy taken while another
//! process commits may hold half of that commit, which redb sees as damage:
//! damage is believed only when fresh copies keep showing it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    TableHandle,
};
use serde::Serialize;

use super::create::{checking_prefix, folder_of, remove_abandoned};
use super::error::{Fault, catching, panic_text};
use super::leases::Leases;
use super::tables::{
    CANCELS, ELEMENTS, EVENTS, HEADS, JOURNAL, META, PARKED, PARKED_BY_DUE, SCHEDULES,
    SCHEMA_VERSION, SCHEMA_VERSION_KEY, SIGNALS, STEPS, WORKFLOWS,
};
use super::{Store, StoreError};
use crate::records::{StepStatus, WorkflowStatus};

/// Findings listed in full; past this many only their number is told.
const MAX_FINDINGS: usize = 1_000;

/// What a check of a state file found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The file checked.
    pub path: PathBuf,
    /// What redb's check of the file's pages and trees said.
    pub pages: PageCheck,
    /// Workflow rows read.
    pub workflows: u64,
    /// Journal entries read (heads, elements, steps, events, signals).
    pub journal_entries: u64,
    /// Schedules read.
    pub schedules: u64,
    /// What is wrong, by table, key and workflow: the first
    /// [`MAX_FINDINGS`].
    pub findings: Vec<Finding>,
    /// Findings past those listed.
    pub more_findings: u64,
    /// Workflows recorded as running that no process runs now: cut off,
    /// for `resume` to continue. Not damage.
    pub cut_off: Vec<String>,
    /// Workflows whose start never reached the record: the elements of a
    /// long chain are stored before its row and head, and the process was
    /// killed in between. Not damage: they take room until a workflow of
    /// the same id starts.
    pub unfinished_starts: Vec<String>,
    /// The copy written of what reads back whole, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired_copy: Option<RepairedCopy>,
}

/// A new database of the workflows of a checked file that read back whole
/// (`wfhost check --repair-copy`): each as it was stored, nothing mended
/// or made up; a workflow with any finding is left out whole.
#[derive(Debug, Clone, Serialize)]
pub struct RepairedCopy {
    /// The new file.
    pub path: PathBuf,
    /// Workflows copied.
    pub workflows: u64,
    /// Schedules copied.
    pub schedules: u64,
    /// Workflows left out, as `tenant/id`.
    pub left_out: Vec<String>,
}

impl CheckReport {
    /// Whether nothing is wrong with the file.
    pub fn is_clean(&self) -> bool {
        self.pages == PageCheck::Clean && self.findings.is_empty()
    }
}

/// What redb's check of the file's pages and trees said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum PageCheck {
    /// Every page and tree is sound.
    Clean,
    /// Something was wrong and redb could mend it (in the copy checked):
    /// what reads back is shown by the records' checks.
    Repairable,
    /// redb cannot mend the file; its records are read as far as they go.
    Unrepairable(String),
}

/// One thing wrong in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The table (`journal`, `workflows`, …).
    pub table: String,
    /// The key, as redb shows it.
    pub key: String,
    /// The workflow it belongs to, as `tenant/id`, where it belongs to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.table, self.key)?;
        if let Some(workflow) = &self.workflow {
            write!(f, " (workflow {workflow})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl Store {
    /// Checks this database's file (see [`check_file`]).
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        check_with(&self.path, &self.leases, None)
    }
}

/// Checks the database file at `path` (see the module's documentation),
/// and writes to `repair_copy`, which must not exist, a new database of
/// the workflows that read back whole. An error is a file that cannot be
/// checked at all (missing, unreadable, of another schema version) or a
/// copy that cannot be written.
pub fn check_file(path: &Path, repair_copy: Option<&Path>) -> Result<CheckReport, StoreError> {
    if let Some(out) = repair_copy
        && std::fs::symlink_metadata(out).is_ok()
    {
        return Err(StoreError::Create {
            path: out.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a repaired copy is written to a new file; this one exists",
            ),
        });
    }
    let leases = Leases::on_file(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => StoreError::Missing {
            path: path.to_path_buf(),
        },
        _ => StoreError::Open {
            path: path.to_path_buf(),
            source,
        },
    })?;
    check_with(path, &leases, repair_copy)
}

/// How many copies are taken before damage redb finds is believed: a
/// copy taken while another process commits may hold half of the commit,
/// which the next copy does not.
const COPIES: u32 = 3;

fn check_with(
    path: &Path,
    leases: &Leases,
    repair_copy: Option<&Path>,
) -> Result<CheckReport, StoreError> {
    remove_abandoned(path);
    let mut copies = 0;
    let (copy, db, pages) = loop {
        copies += 1;
        let copy = private_copy(path)?;
        let (db, pages) = pages_of(&copy);
        if pages == PageCheck::Clean || copies == COPIES {
            break (copy, db, pages);
        }
        drop((db, copy));
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut report = CheckReport {
        path: path.to_path_buf(),
        pages,
        workflows: 0,
        journal_entries: 0,
        schedules: 0,
        findings: Vec::new(),
        more_findings: 0,
        cut_off: Vec::new(),
        unfinished_starts: Vec::new(),
        repaired_copy: None,
    };
    let Some(db) = db else {
        return Ok(report);
    };
    let (mut running, mut other_schema, mut whole) = (Vec::new(), None, HashSet::new());
    let mut left_out = Vec::new();
    let walked = catching(|| {
        let txn = db.begin_read().map_err(Fault::from)?;
        let mut records = Records::new(&mut report);
        let walked = records.walk(&txn);
        (running, other_schema) = (records.running, records.other_schema);
        whole = records.whole;
        left_out = records.damaged.into_iter().collect();
        walked
    });
    if let Some(found) = other_schema {
        return Err(StoreError::SchemaVersion {
            path: path.to_path_buf(),
            found,
            expected: SCHEMA_VERSION,
        });
    }
    let stopped = match walked {
        Ok(Ok(())) => None,
        Ok(Err(fault)) => Some(unreadable(fault)),
        Err(panic) => Some(panic_text(panic.as_ref())),
    };
    if let Some(reason) = stopped {
        report.note(Finding {
            table: "-".into(),
            key: "-".into(),
            workflow: None,
            problem: format!("the records stop reading: {reason}"),
        });
    }
    for (tenant, id) in running {
        let held = leases
            .is_held(&tenant, &id)
            .map_err(|source| StoreError::Lease {
                path: path.to_path_buf(),
                source,
            })?;
        if !held {
            report.cut_off.push(format!("{tenant}/{id}"));
        }
    }
    if let Some(out) = repair_copy {
        left_out.sort();
        report.repaired_copy = Some(write_repaired(&db, out, &whole, left_out)?);
    }
    drop(db);
    drop(copy);
    Ok(report)
}

/// Writes to `out` a new database of the workflows of `source` in `whole`
/// (as `tenant/id`), each entry copied as stored (its checksum covers the
/// table, the key and the JSON, which do not change), with the schedules
/// that read.
fn write_repaired(
    source: &Database,
    out: &Path,
    whole: &HashSet<String>,
    left_out: Vec<String>,
) -> Result<RepairedCopy, StoreError> {
    let target = Store::open_with(out, super::Durability::Strict)?;
    let fault = |fault: Fault| fault.at(out);
    let copied = catching(|| copy_whole(source, &target, whole))
        .map_err(|panic| super::error::panicked(out, panic.as_ref()))?
        .map_err(fault)?;
    target.exit();
    Ok(RepairedCopy {
        path: out.to_path_buf(),
        workflows: copied.0,
        schedules: copied.1,
        left_out,
    })
}

/// Copies into `target` what [`write_repaired`] copies; how many
/// workflows and schedules.
fn copy_whole(
    source: &Database,
    target: &Store,
    whole: &HashSet<String>,
) -> Result<(u64, u64), Fault> {
    let read = source.begin_read()?;
    let write = target.db.get().begin_write()?;
    let keeps = |tenant: &str, id: &str| whole.contains(&format!("{tenant}/{id}"));
    let mut workflows = 0;
    if let Some(rows) = table(&read, WORKFLOWS.table)? {
        let mut into = write.open_table(WORKFLOWS.table)?;
        for entry in rows.iter()? {
            let (key, value) = entry?;
            let (tenant, id) = key.value();
            if keeps(tenant, id) {
                into.insert((tenant, id), value.value())?;
                workflows += 1;
            }
        }
    }
    if let Some(journal) = table(&read, JOURNAL)? {
        let mut into = write.open_table(JOURNAL)?;
        for entry in journal.iter()? {
            let (key, value) = entry?;
            let key = key.value();
            if keeps(key.0, key.1) {
                into.insert(key, value.value())?;
            }
        }
    }
    let mut schedules = 0;
    if let Some(stored) = table(&read, SCHEDULES.table)? {
        let mut into = write.open_table(SCHEDULES.table)?;
        for entry in stored.iter()? {
            let (key, value) = entry?;
            let key = key.value();
            if SCHEDULES.decode(&key, value.value()).is_ok() {
                into.insert(key, value.value())?;
                schedules += 1;
            }
        }
    }
    if let Some(parked) = table(&read, PARKED)? {
        let mut into = write.open_table(PARKED)?;
        let mut by_due = write.open_table(PARKED_BY_DUE)?;
        for entry in parked.iter()? {
            let (key, due) = entry?;
            let (tenant, id) = key.value();
            if keeps(tenant, id) {
                into.insert((tenant, id), due.value())?;
                by_due.insert((due.value(), tenant, id), ())?;
            }
        }
    }
    if let Some(cancels) = table(&read, CANCELS)? {
        let mut into = write.open_table(CANCELS)?;
        for entry in cancels.iter()? {
            let (key, at) = entry?;
            let (tenant, id) = key.value();
            if keeps(tenant, id) {
                into.insert((tenant, id), at.value())?;
            }
        }
    }
    write.commit()?;
    Ok((workflows, schedules))
}

/// A copy of the file at `path` that is this process's alone: beside it
/// where its folder may be written (the same file system; named so that
/// the next open removes it should this process be killed), else in the
/// temporary folder. Removed when dropped.
fn private_copy(path: &Path) -> Result<tempfile::NamedTempFile, StoreError> {
    let cannot = |source: std::io::Error| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let prefix = format!("{}{}-", checking_prefix(path), std::process::id());
    let mut copy = tempfile::Builder::new()
        .prefix(&prefix)
        .tempfile_in(folder_of(path))
        .or_else(|_| tempfile::NamedTempFile::new())
        .map_err(cannot)?;
    let mut original = std::fs::File::open(path).map_err(cannot)?;
    std::io::copy(&mut original, copy.as_file_mut()).map_err(cannot)?;
    Ok(copy)
}

/// redb's check of `copy`'s pages and trees (which mends the copy where it
/// can), and the copy opened, when it opens.
fn pages_of(copy: &tempfile::NamedTempFile) -> (Option<Database>, PageCheck) {
    let mut db = match catching(|| super::builder().open(copy.path())) {
        Ok(Ok(db)) => db,
        Ok(Err(err)) => return (None, PageCheck::Unrepairable(err.to_string())),
        Err(panic) => return (None, PageCheck::Unrepairable(panic_text(panic.as_ref()))),
    };
    let pages = match catching(|| db.check_integrity()) {
        Ok(Ok(true)) => PageCheck::Clean,
        Ok(Ok(false)) => PageCheck::Repairable,
        Ok(Err(err)) => PageCheck::Unrepairable(err.to_string()),
        Err(panic) => PageCheck::Unrepairable(panic_text(panic.as_ref())),
    };
    (Some(db), pages)
}

impl CheckReport {
    fn note(&mut self, finding: Finding) {
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(finding);
        } else {
            self.more_findings += 1;
        }
    }
}

/// The walk over every table of one read transaction.
struct Records<'r> {
    report: &'r mut CheckReport,
    /// Every workflow row's `tenant/id`, with whether its journal was seen.
    rows: HashMap<String, bool>,
    /// The workflows on record as running, not parked: each runs now, or
    /// was cut off.
    running: Vec<(String, String)>,
    parked: BTreeSet<(String, String)>,
    /// The file's schema version, where it is not this wfhost's: its
    /// records are not checked.
    other_schema: Option<u64>,
    /// Every workflow a finding names (past the findings listed too).
    damaged: HashSet<String>,
    /// The workflows that read back whole: a row, a journal, no finding.
    whole: HashSet<String>,
}

impl<'r> Records<'r> {
    fn new(report: &'r mut CheckReport) -> Self {
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

    fn walk(&mut self, txn: &ReadTransaction) -> Result<(), Fault> {
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
        let Some(meta) = table(txn, META)? else {
            return Ok(());
        };
        let version = meta.get(SCHEMA_VERSION_KEY)?.map(|version| version.value());
        match version {
            Some(SCHEMA_VERSION) => Ok(()),
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
        let Some(table) = table(txn, WORKFLOWS.table)? else {
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
        let Some(table) = table(txn, SCHEDULES.table)? else {
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
        let Some(table) = table(txn, JOURNAL)? else {
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
        if let Some(parked) = table(txn, PARKED)? {
            for entry in parked.iter()? {
                let (key, due) = entry?;
                let (tenant, id) = key.value();
                by_workflow.insert((due.value(), tenant.to_string(), id.to_string()));
                self.parked.insert((tenant.to_string(), id.to_string()));
            }
        }
        let mut by_due = BTreeSet::new();
        if let Some(parked) = table(txn, PARKED_BY_DUE)? {
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
        let Some(cancels) = table(txn, CANCELS)? else {
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

/// The table `definition` names, if the file has it: tables are made as
/// they are first written.
fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    definition: TableDefinition<K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, Fault> {
    match txn.open_table(definition) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Why a stored record does not read, in words.
fn unreadable(fault: Fault) -> String {
    match fault {
        Fault::Checksum { .. } => {
            "fails its checksum (the record or its key changed since wfhost wrote it)".into()
        }
        Fault::Decode(err) => format!("does not decode: {err}"),
        Fault::Redb(err) => format!("does not read: {err}"),
    }
}

/// What one workflow's journal has shown so far.
struct Journal {
    workflow: String,
    /// The head's count of elements, once the head is read.
    elements: Option<u64>,
    head_seen: bool,
    /// Whether every entry so far is an element.
    only_elements: bool,
    next_element: u64,
    next_event: u64,
    /// Each step's status, by id.
    steps: HashMap<String, StepStatus>,
    /// The last of each step's events that says how it ended.
    ended: HashMap<String, (u64, StepStatus)>,
    /// Steps named by events, with the first event naming each.
    named: HashMap<String, u64>,
}

impl Journal {
    fn new(workflow: String) -> Self {
        Journal {
            workflow,
            elements: None,
            head_seen: false,
            only_elements: true,
            next_element: 0,
            next_event: 0,
            steps: HashMap::new(),
            ended: HashMap::new(),
            named: HashMap::new(),
        }
    }

    /// Reads one entry; what is wrong with it, if anything.
    fn take(&mut self, key: &super::tables::EntryKey<'_>, stored: &[u8]) -> Option<String> {
        let (_, _, part, index, name) = *key;
        self.only_elements &= part == ELEMENTS.tag();
        match part {
            _ if part == HEADS.tag() => match HEADS.decode(key, stored) {
                Ok(head) => {
                    self.head_seen = true;
                    self.elements = Some(head.elements);
                    None
                }
                Err(fault) => {
                    self.head_seen = true;
                    Some(format!("the head {}", unreadable(fault)))
                }
            },
            _ if part == ELEMENTS.tag() => {
                let expected = self.next_element;
                self.next_element = index.saturating_add(1);
                if let Err(fault) = ELEMENTS.decode(key, stored) {
                    return Some(format!("element {index} {}", unreadable(fault)));
                }
                (index != expected).then(|| format!("element {index} follows element {expected}'s place: elements {expected}..{index} are missing"))
            }
            _ if part == STEPS.tag() => match STEPS.decode(key, stored) {
                Ok(record) if record.id == name => {
                    self.steps.insert(record.id, record.status);
                    None
                }
                Ok(record) => Some(format!(
                    "the step record under `{name}` is step `{}`",
                    record.id
                )),
                Err(fault) => Some(format!("step `{name}`'s record {}", unreadable(fault))),
            },
            _ if part == EVENTS.tag() => {
                let expected = self.next_event;
                self.next_event = index.saturating_add(1);
                let event = match EVENTS.decode(key, stored) {
                    Ok(event) => event,
                    Err(fault) => return Some(format!("event {index} {}", unreadable(fault))),
                };
                if let Some(step) = &event.step {
                    self.named.entry(step.clone()).or_insert(index);
                    if let Some(status) = ending(&event.kind) {
                        self.ended.insert(step.clone(), (index, status));
                    }
                }
                if event.seq != index {
                    Some(format!("event {index} says it is event {}", event.seq))
                } else if index != expected {
                    Some(format!("events {expected}..{index} are missing"))
                } else {
                    None
                }
            }
            _ if part == SIGNALS.tag() => SIGNALS
                .decode(key, stored)
                .err()
                .map(|fault| format!("signal {index} `{name}` {}", unreadable(fault))),
            _ => Some(format!("an entry of no known part ({part})")),
        }
    }

    /// What is wrong with the workflow's journal as a whole.
    fn end(self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.head_seen {
            problems.push("no head: the workflow's plugins and chain are gone".to_string());
        }
        if let Some(elements) = self.elements
            && self.next_element != elements
        {
            problems.push(format!(
                "the head counts {elements} elements; the journal holds {}",
                self.next_element
            ));
        }
        let mut named: Vec<(&String, &u64)> = self.named.iter().collect();
        named.sort_by_key(|(_, index)| **index);
        for (step, index) in named {
            if !self.steps.contains_key(step) {
                problems.push(format!(
                    "event {index} names step `{step}`, which has no record"
                ));
            }
        }
        let mut ended: Vec<(&String, &(u64, StepStatus))> = self.ended.iter().collect();
        ended.sort_by_key(|(_, (index, _))| *index);
        for (step, (index, said)) in ended {
            let Some(status) = self.steps.get(step) else {
                continue;
            };
            let contradicts = *status != *said && ending_status(*status);
            if contradicts {
                problems.push(format!(
                    "step `{step}`'s record says {}; its last ending, event {index}, says {}",
                    status.as_str(),
                    said.as_str()
                ));
            }
        }
        problems
    }
}

/// The ending an event says a step came to, where it says one.
fn ending(kind: &str) -> Option<StepStatus> {
    match kind {
        "step_succeeded" => Some(StepStatus::Succeeded),
        "step_failed" => Some(StepStatus::Failed),
        "step_replaced" => Some(StepStatus::Replaced),
        _ => None,
    }
}

/// Whether `status` is one an event of [`ending`] says.
fn ending_status(status: StepStatus) -> bool {
    matches!(
        status,
        StepStatus::Succeeded | StepStatus::Failed | StepStatus::Replaced
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::records::{StoredHead, WorkflowRow};

    /// A start killed after it stored a long chain's first elements leaves
    /// them, which a later start of the same id, with fewer elements, must
    /// not leave behind its own.
    #[tokio::test]
    async fn a_start_after_a_killed_one_of_the_same_id_leaves_no_stale_element() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        let element = |n: u64| serde_json::to_vec(&json!({"task": "m.add", "args": [n]})).unwrap();
        let killed = (0..10).map(element).collect();
        store.put_elements("t", "w", 0, killed).await.unwrap();
        let report = store.check().unwrap();
        assert_eq!(report.unfinished_starts, ["t/w"]);
        assert!(report.is_clean(), "{:?}", report.findings);

        let row: WorkflowRow = serde_json::from_value(json!({
            "id": "w", "tenant": "t", "status": "running",
            "created_at_ms": 1, "updated_at_ms": 1,
        }))
        .unwrap();
        let head: StoredHead =
            serde_json::from_value(json!({"plugins": {}, "elements": 2})).unwrap();
        let elements = (0..2).map(element).collect();
        store
            .start_workflow(&row, &head, 0, elements, true)
            .await
            .unwrap();
        let report = store.check().unwrap();
        assert!(report.is_clean(), "{:?}", report.findings);
        assert_eq!(report.journal_entries, 4, "head, two elements, an event");
        assert_eq!(report.cut_off, ["t/w"], "running, and no process runs it");
    }
}
