//! The schema: the tables made on first use, the version checked on every
//! open, and the migrations of older files.

use redb::{Key, ReadableTable, WriteTransaction};
use serde_json::Value;

use super::error::Fault;
use super::tables::{
    CANCELS, ELEMENTS, EVENTS, HEADS, JOURNAL, META, Part, Records, SCHEMA_VERSION,
    SCHEMA_VERSION_KEY, STEPS, WORKFLOWS,
};
use super::{Store, StoreError};

impl Store {
    /// Creates the tables on first use and checks the schema version.
    pub(super) fn check_schema(&self) -> Result<(), StoreError> {
        // A database that is already set up costs a read, not a commit.
        if self.stored_schema_version()? == Some(SCHEMA_VERSION) {
            return Ok(());
        }
        if self.db.get().is_read_only() {
            return Err(StoreError::ReadOnlyUpgrade {
                path: self.path.clone(),
                found: self.stored_schema_version()?.unwrap_or_default(),
                expected: SCHEMA_VERSION,
            });
        }
        let txn = self.db.get().begin_write().map_err(|err| self.fault(err))?;
        let found = {
            let meta = txn.open_table(META).map_err(|err| self.fault(err))?;
            let found = meta
                .get(SCHEMA_VERSION_KEY)
                .map_err(|err| self.fault(err))?;
            found.map(|version| version.value())
        };
        match found {
            Some(found) if found > SCHEMA_VERSION || found == 0 => {
                return Err(StoreError::SchemaVersion {
                    path: self.path.clone(),
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
            _ => {}
        }
        set_up(&txn, found).map_err(|fault| fault.at(&self.path))?;
        txn.commit().map_err(|err| self.fault(err))
    }

    /// The schema version the file records, if it has one yet.
    fn stored_schema_version(&self) -> Result<Option<u64>, StoreError> {
        self.read(|txn| {
            let meta = match txn.open_table(META) {
                Ok(meta) => meta,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(err) => return Err(err.into()),
            };
            Ok(meta.get(SCHEMA_VERSION_KEY)?.map(|version| version.value()))
        })
    }
}

/// Brings a file of schema `found` (none: a new file) to this version.
/// Schema 5 kept a workflow's head, elements, steps and events in a table
/// each, where schema 6 keeps them in its journal; schema 4 stored records
/// without their checksums; schema 3 lacks only the table of cancel
/// requests; schema 2 differs from 3 only in keeping a workflow's elements
/// inside its head, which is still read as it is; schema 1 kept the head in
/// the row.
fn set_up(txn: &WriteTransaction, found: Option<u64>) -> Result<(), Fault> {
    if found == Some(1) {
        move_specs_out_of_rows(txn)?;
    }
    if found.is_some_and(|found| found < 5) {
        seal(txn, &WORKFLOWS)?;
    }
    if let Some(found) = found.filter(|found| *found < 6) {
        let sealed = found == 5;
        move_to_journal(txn, &legacy::SPECS, &HEADS, sealed, |&(t, id)| {
            Place::at(t, id, 0, "")
        })?;
        move_to_journal(txn, &legacy::ELEMENTS, &ELEMENTS, sealed, |&(t, id, i)| {
            Place::at(t, id, i, "")
        })?;
        move_to_journal(txn, &legacy::STEPS, &STEPS, sealed, |&(t, id, step)| {
            Place::at(t, id, 0, step)
        })?;
        move_to_journal(txn, &legacy::EVENTS, &EVENTS, sealed, |&(t, id, seq)| {
            Place::at(t, id, seq, "")
        })?;
    }
    txn.open_table(META)?
        .insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)?;
    txn.open_table(WORKFLOWS.table)?;
    txn.open_table(JOURNAL)?;
    txn.open_table(CANCELS)?;
    Ok(())
}

/// The tables of schema 5 and before that the journal replaced: read once,
/// to move their records into it, then deleted.
pub(super) mod legacy {
    use wfhost_canvas::Canvas;

    use super::Records;
    use crate::records::{Event, StepRecord, StoredHead};

    pub const SPECS: Records<(&str, &str), StoredHead> = Records::named("specs");
    pub const ELEMENTS: Records<(&str, &str, u64), Canvas> = Records::named("elements");
    pub const STEPS: Records<(&str, &str, &str), StepRecord> = Records::named("steps");
    pub const EVENTS: Records<(&str, &str, u64), Event> = Records::named("events");
}

/// Where a record of a legacy table goes in the journal: tenant, workflow
/// id, index and name (see [`Part::key`]).
struct Place(String, String, u64, String);

impl Place {
    fn at(tenant: &str, id: &str, index: u64, name: &str) -> Self {
        Place(tenant.to_string(), id.to_string(), index, name.to_string())
    }
}

/// Moves every record of the `legacy` table (with its checksum if
/// `sealed`, which must then hold) into `part` of the journal, under the
/// key `place` makes of its old one, one record at a time (the move holds
/// none beyond its own insert), and deletes the table.
fn move_to_journal<K: Key + 'static, T>(
    txn: &WriteTransaction,
    legacy: &Records<K, T>,
    part: &Part<T>,
    sealed: bool,
    place: impl Fn(&K::SelfType<'_>) -> Place,
) -> Result<(), Fault> {
    {
        let table = txn.open_table(legacy.table)?;
        let mut journal = txn.open_table(JOURNAL)?;
        for entry in table.iter()? {
            let (key, stored) = entry?;
            let key = key.value();
            let json = if sealed {
                legacy.unseal(&key, stored.value())?
            } else {
                stored.value()
            };
            let Place(tenant, id, index, name) = place(&key);
            let key = part.key(&tenant, &id, index, &name);
            let mut json = json.to_vec();
            part.seal(&key, &mut json);
            journal.insert(key, json.as_slice())?;
        }
    }
    txn.delete_table(legacy.table)?;
    Ok(())
}

/// Stores every record of `records`, written before records had
/// checksums, with its checksum.
fn seal<K: Key + 'static, T>(txn: &WriteTransaction, records: &Records<K, T>) -> Result<(), Fault> {
    let mut table = txn.open_table(records.table)?;
    let mut unsealed = Vec::new();
    for entry in table.iter()? {
        let (key, json) = entry?;
        let key = K::as_bytes(&key.value()).as_ref().to_vec();
        unsealed.push((key, json.value().to_vec()));
    }
    for (key, mut json) in unsealed {
        let key = K::from_bytes(&key);
        records.seal(&key, &mut json);
        table.insert(key, json.as_slice())?;
    }
    Ok(())
}

/// Migrates schema 1, which kept each workflow's stored form inside its
/// row, to schema 2, which keeps it in a table of its own.
fn move_specs_out_of_rows(txn: &WriteTransaction) -> Result<(), Fault> {
    let mut workflows = txn.open_table(WORKFLOWS.table)?;
    let mut specs = txn.open_table(legacy::SPECS.table)?;
    let mut moved = Vec::new();
    for entry in workflows.iter()? {
        let (key, value) = entry?;
        let (tenant, id) = key.value();
        let mut row: Value = serde_json::from_slice(value.value())?;
        if let Some(spec) = row.as_object_mut().and_then(|row| row.remove("spec")) {
            moved.push((
                tenant.to_string(),
                id.to_string(),
                serde_json::to_vec(&row)?,
                serde_json::to_vec(&spec)?,
            ));
        }
    }
    for (tenant, id, row, spec) in moved {
        let key = (tenant.as_str(), id.as_str());
        workflows.insert(key, row.as_slice())?;
        specs.insert(key, spec.as_slice())?;
    }
    Ok(())
}
