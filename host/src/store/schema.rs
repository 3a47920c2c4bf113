//! The schema: the tables made on first use, the version checked on every
//! open, and the migrations of older files.

use redb::{Key, ReadableTable, WriteTransaction};
use serde_json::Value;

use super::error::Fault;
use super::tables::{
    CANCELS, ELEMENTS, EVENTS, HEADS, JOURNAL, META, Part, Records, SCHEMA_VERSION,
    SCHEMA_VERSION_KEY, STEPS, WORKFLOWS, table_if_made,
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
            let Some(meta) = table_if_made(txn, META)? else {
                return Ok(None);
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

#[cfg(test)]
mod tests {
    use redb::Database;
    use serde_json::{Map, json};

    use super::legacy::{EVENTS, STEPS};
    use crate::records::{StepRecord, StoredHead, WorkflowStatus};
    use crate::store::Store;
    use crate::store::tables::{META, SCHEMA_VERSION_KEY, WORKFLOWS};

    /// Writes at `path` a file as a wfhost of schema `version` left it:
    /// the version, workflow `old` of tenant `t` stored as `row` (the bytes
    /// that schema kept), and what `more` puts in beside them.
    fn file_of_schema(
        path: &std::path::Path,
        version: u64,
        row: &[u8],
        more: impl FnOnce(&redb::WriteTransaction),
    ) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(SCHEMA_VERSION_KEY, version)
            .unwrap();
        txn.open_table(WORKFLOWS.table)
            .unwrap()
            .insert(("t", "old"), row)
            .unwrap();
        more(&txn);
        txn.commit().unwrap();
    }

    /// A schema-1 file, as wfhost wrote it before the stored form of a
    /// workflow moved out of its row, opens as schema 2 with nothing lost.
    #[test]
    fn a_schema_1_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let spec = json!({"plugins": {"math": {"path": "/m.wasm"}}, "workflow": []});
        let row = json!({
            "id": "old", "tenant": "t", "status": "succeeded", "spec": spec,
            "created_at_ms": 1, "updated_at_ms": 2, "result": 4,
        });
        file_of_schema(&path, 1, &serde_json::to_vec(&row).unwrap(), |_| {});
        let store = Store::open(&path).unwrap();
        let row = store.workflow("t", "old").unwrap().unwrap();
        assert_eq!(
            (row.status, row.result),
            (WorkflowStatus::Succeeded, Some(json!(4)))
        );
        let head = store.head("t", "old").unwrap().unwrap();
        assert_eq!(head.workflow, Some(spec["workflow"].clone()));
        assert_eq!(
            serde_json::to_value(&head.plugins).unwrap(),
            spec["plugins"]
        );
        drop(store);
        // And it stays migrated.
        assert!(Store::open(&path).is_ok());
    }

    /// A schema-4 file, whose records had no checksums, opens as schema 5
    /// with every record read as it was and sealed from then on; a record
    /// without its checksum is refused after that.
    #[test]
    fn a_schema_4_database_gets_its_checksums() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let row = json!({
            "id": "old", "tenant": "t", "status": "succeeded",
            "created_at_ms": 1, "updated_at_ms": 2, "result": 4,
        });
        let step = StepRecord::new("0", None, "m.add", vec![json!(2)], Map::new());
        let event = json!({"seq": 0, "at_ms": 1, "kind": "workflow_started"});
        let raw = |value: &serde_json::Value| serde_json::to_vec(value).unwrap();
        file_of_schema(&path, 4, &raw(&row), |txn| {
            txn.open_table(STEPS.table)
                .unwrap()
                .insert(("t", "old", "0"), raw(&json!(step)).as_slice())
                .unwrap();
            txn.open_table(EVENTS.table)
                .unwrap()
                .insert(("t", "old", 0), raw(&event).as_slice())
                .unwrap();
        });
        let store = Store::open(&path).unwrap();
        let read = store.workflow("t", "old").unwrap().unwrap();
        assert_eq!(read.result, Some(json!(4)));
        assert_eq!(store.steps("t", "old").unwrap(), vec![step.clone()]);
        assert_eq!(
            store.events("t", "old").unwrap()[0].kind,
            "workflow_started"
        );
        drop(store);
        // Opened again, nothing is sealed twice.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.steps("t", "old").unwrap(), vec![step]);
        drop(store);
        {
            let db = Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(WORKFLOWS.table)
                .unwrap()
                .insert(("t", "old"), raw(&row).as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let refused = store.workflow("t", "old").unwrap_err().to_string();
        assert!(refused.contains("fails its checksum"), "{refused}");
    }

    /// A schema-5 file, which kept heads, elements, steps and events in a
    /// table each, opens as schema 6 with every record in the journal,
    /// read as it was, and the old tables gone; a schema-5 record that
    /// fails its checksum stops the move, which leaves the file as it was.
    #[test]
    fn a_schema_5_database_moves_into_the_journal() {
        use super::legacy;
        use redb::{ReadableDatabase, TableHandle};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let row = json!({
            "id": "old", "tenant": "t", "status": "succeeded",
            "created_at_ms": 1, "updated_at_ms": 2, "result": 4,
        });
        let head = json!({"plugins": {"m": {"path": "/m.wasm"}}, "elements": 2});
        let head: StoredHead = serde_json::from_value(head).unwrap();
        let elements = [
            json!({"task": "m.add", "args": [1, 1]}),
            json!({"task": "m.add"}),
        ];
        let steps: Vec<StepRecord> = (0..3)
            .map(|i| StepRecord::new(&i.to_string(), None, "m.add", vec![json!(i)], Map::new()))
            .collect();
        let events: Vec<crate::records::Event> = (0..4)
            .map(|seq| crate::records::Event {
                seq,
                at_ms: 10 + seq,
                kind: "step_succeeded".into(),
                step: Some(seq.to_string()),
                detail: None,
            })
            .collect();
        let key = ("t", "old");
        let sealed_row = WORKFLOWS.encode(&key, &serde_json::from_value(row).unwrap());
        // The tables schema 5 kept beside the row.
        let legacy_tables = |txn: &redb::WriteTransaction, damaged_step: bool| {
            let stored = legacy::SPECS.encode(&key, &head);
            txn.open_table(legacy::SPECS.table)
                .unwrap()
                .insert(key, stored.as_slice())
                .unwrap();
            let mut table = txn.open_table(legacy::ELEMENTS.table).unwrap();
            for (i, element) in (0..).zip(&elements) {
                let mut json = serde_json::to_vec(element).unwrap();
                legacy::ELEMENTS.seal(&("t", "old", i), &mut json);
                table.insert(("t", "old", i), json.as_slice()).unwrap();
            }
            drop(table);
            let mut table = txn.open_table(legacy::STEPS.table).unwrap();
            for step in &steps {
                let key = ("t", "old", step.id.as_str());
                let mut stored = legacy::STEPS.encode(&key, step);
                if damaged_step {
                    stored[3] ^= 1;
                }
                table.insert(key, stored.as_slice()).unwrap();
            }
            drop(table);
            let mut table = txn.open_table(legacy::EVENTS.table).unwrap();
            for event in &events {
                let key = ("t", "old", event.seq);
                table
                    .insert(key, legacy::EVENTS.encode(&key, event).as_slice())
                    .unwrap();
            }
        };
        let write_schema_5 = |damaged_step: bool| {
            file_of_schema(&path, 5, &sealed_row, |txn| {
                legacy_tables(txn, damaged_step)
            });
        };
        let table_names = || -> Vec<String> {
            let db = Database::open(&path).unwrap();
            let txn = db.begin_read().unwrap();
            let tables = txn.list_tables().unwrap();
            tables.map(|table| table.name().to_string()).collect()
        };

        write_schema_5(true);
        let refused = Store::open(&path)
            .err()
            .expect("a damaged record")
            .to_string();
        assert!(refused.contains("fails its checksum"), "{refused}");
        assert!(table_names().contains(&"steps".to_string()));

        std::fs::remove_file(&path).unwrap();
        write_schema_5(false);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.head("t", "old").unwrap(), Some(head.clone()));
        let read: Vec<serde_json::Value> = store
            .elements("t", "old", 0, 10)
            .unwrap()
            .iter()
            .map(|json| serde_json::from_slice(json).unwrap())
            .collect();
        assert_eq!(read, elements);
        assert_eq!(store.steps("t", "old").unwrap(), steps);
        assert_eq!(store.events("t", "old").unwrap(), events);
        assert_eq!(store.usage(Some("t")).unwrap()[0].workflows, 1);
        drop(store);
        let mut names = table_names();
        names.sort();
        assert_eq!(names, ["cancels", "journal", "meta", "workflows"]);
        // Opened again, nothing moves twice.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.steps("t", "old").unwrap(), steps);
        assert_eq!(store.events("t", "old").unwrap().len(), 4);
    }
}
