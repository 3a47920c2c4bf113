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

mod journal;
mod records;
mod repair;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase};
use serde::Serialize;

use super::create::{checking_prefix, folder_of, remove_abandoned};
use super::error::{Fault, catching, panic_text};
use super::leases::Leases;
use super::tables::SCHEMA_VERSION;
use super::{Store, StoreError};
use crate::records::WorkflowStatus;
use records::Records;
use repair::write_repaired;

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
    /// `MAX_FINDINGS`.
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
        let runs = leases
            .is_held(&tenant, &id)
            .map_err(|source| StoreError::Lease {
                path: path.to_path_buf(),
                source,
            })?;
        // `running` holds no parked workflow.
        if WorkflowStatus::Running.now(runs, false) == WorkflowStatus::CutOff {
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
