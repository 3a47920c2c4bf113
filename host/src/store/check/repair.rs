//! `wfhost check --repair-copy`: a new database of what reads back whole.

use std::collections::HashSet;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::RepairedCopy;
use crate::store::error::{Fault, catching, panicked};
use crate::store::tables::table_if_made;
use crate::store::tables::{CANCELS, JOURNAL, PARKED, PARKED_BY_DUE, SCHEDULES, WORKFLOWS};
use crate::store::{Durability, Store, StoreError};

/// Writes to `out` a new database of the workflows of `source` in `whole`
/// (as `tenant/id`), each entry copied as stored (its checksum covers the
/// table, the key and the JSON, which do not change), with the schedules
/// that read.
pub(super) fn write_repaired(
    source: &Database,
    out: &Path,
    whole: &HashSet<String>,
    left_out: Vec<String>,
) -> Result<RepairedCopy, StoreError> {
    let target = Store::open_with(out, Durability::Strict)?;
    let fault = |fault: Fault| fault.at(out);
    let copied = catching(|| copy_whole(source, &target, whole))
        .map_err(|panic| panicked(out, panic.as_ref()))?
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
    if let Some(rows) = table_if_made(&read, WORKFLOWS.table)? {
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
    if let Some(journal) = table_if_made(&read, JOURNAL)? {
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
    if let Some(stored) = table_if_made(&read, SCHEDULES.table)? {
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
    if let Some(parked) = table_if_made(&read, PARKED)? {
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
    if let Some(cancels) = table_if_made(&read, CANCELS)? {
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
