//! The typed tables of the state database. Every key starts with the
//! tenant, so one tenant's records are never reached through another's.
//!
//! Each table of records (and each part of the journal) names its record
//! type: a record is stored as its JSON followed by a checksum, and read
//! back through the table, or part, that holds it, so one's rows cannot be
//! decoded as another's records. The checksum (a CRC-32: see
//! [`Records::seal`]) covers the table's name, the key (a journal entry's
//! part included) and the JSON: a record damaged on the disk, or found
//! under a damaged key, is refused as damaged when it is read, never shown
//! as it reads.

use std::marker::PhantomData;

use redb::{Key, TableDefinition, TableHandle};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wfhost_canvas::Canvas;

use super::error::Fault;
use crate::records::{Event, ScheduleRecord, Signal, StepRecord, StoredHead, WorkflowRow};

/// The table `definition` names, in a read of `txn`; none when the file
/// has no such table yet (tables are made as they are first written, and
/// a table not made reads as empty).
pub fn table_if_made<K: Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    definition: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, redb::TableError> {
    match txn.open_table(definition) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Bumped whenever a table or a stored record changes shape; opening a
/// file of the version before migrates it (see `Store::check_schema`).
pub const SCHEMA_VERSION: u64 = 7;
pub const SCHEMA_VERSION_KEY: &str = "schema_version";
/// When ended workflows were last expired under a retention
/// (milliseconds since the epoch).
pub const EXPIRED_AT_KEY: &str = "expired_at_ms";

/// Settings of the file itself.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// A table of records of type `T` under keys of type `K`.
pub struct Records<K: Key + 'static, T> {
    /// The table as redb knows it: the record's JSON by key.
    pub table: TableDefinition<'static, K, &'static [u8]>,
    record: PhantomData<fn() -> T>,
}

impl<K: Key + 'static, T> Records<K, T> {
    pub(super) const fn named(name: &'static str) -> Self {
        Records {
            table: TableDefinition::new(name),
            record: PhantomData,
        }
    }
}

/// How many bytes of checksum end a stored record.
const CHECKSUM_BYTES: usize = 4;

impl<K: Key + 'static, T> Records<K, T> {
    /// Appends to `json`, the record to be stored under `key`, its
    /// checksum.
    pub fn seal(&self, key: &K::SelfType<'_>, json: &mut Vec<u8>) {
        let checksum = self.checksum(key, json);
        json.extend_from_slice(&checksum.to_le_bytes());
    }

    /// The JSON of `stored`, the record found under `key`, once its
    /// checksum holds.
    pub fn unseal<'s>(&self, key: &K::SelfType<'_>, stored: &'s [u8]) -> Result<&'s [u8], Fault> {
        let damaged = || Fault::Checksum {
            table: self.table.name().to_string(),
            key: crate::text::clipped(&format!("{key:?}"), 200).into_owned(),
        };
        let Some(split) = stored.len().checked_sub(CHECKSUM_BYTES) else {
            return Err(damaged());
        };
        let (json, checksum) = stored.split_at(split);
        let mut expected = [0; CHECKSUM_BYTES];
        expected.copy_from_slice(checksum);
        if self.checksum(key, json) == u32::from_le_bytes(expected) {
            Ok(json)
        } else {
            Err(damaged())
        }
    }

    fn checksum(&self, key: &K::SelfType<'_>, json: &[u8]) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        let name = self.table.name().as_bytes();
        let key = K::as_bytes(key);
        // Lengths keep the three apart: no name, key and JSON can be cut
        // differently into the same bytes.
        for part in [name, key.as_ref()] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        hasher.update(json);
        hasher.finalize()
    }
}

impl<K: Key + 'static, T: Serialize> Records<K, T> {
    /// A record as this table stores it under `key`. Records are plain
    /// data, so serializing one cannot fail.
    pub fn encode(&self, key: &K::SelfType<'_>, record: &T) -> Vec<u8> {
        let mut stored = serde_json::to_vec(record).unwrap_or_default();
        self.seal(key, &mut stored);
        stored
    }
}

impl<K: Key + 'static, T: DeserializeOwned> Records<K, T> {
    /// The record this table stored under `key`.
    pub fn decode(&self, key: &K::SelfType<'_>, stored: &[u8]) -> Result<T, Fault> {
        Ok(serde_json::from_slice(self.unseal(key, stored)?)?)
    }
}

/// (tenant, schedule name) → schedule: its cadence, its chain, and what
/// its ticks came to.
pub const SCHEDULES: Records<(&str, &str), ScheduleRecord> = Records::named("schedules");

/// (tenant, workflow id) → when a parked workflow is due to go on
/// (milliseconds since the epoch; `u64::MAX` until a signal comes): a
/// workflow whose run reached a sleep or a wait and let go of everything
/// it held (DESIGN §15). [`PARKED_BY_DUE`] orders the same entries by due.
pub const PARKED: TableDefinition<(&str, &str), u64> = TableDefinition::new("parked");

/// (due, tenant, workflow id) → nothing: [`PARKED`] in the order a waker
/// takes them.
pub const PARKED_BY_DUE: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("parked_by_due");

/// (tenant, workflow id) → workflow row: where the workflow stands.
pub const WORKFLOWS: Records<(&str, &str), WorkflowRow> = Records::named("workflows");

/// The key of a workflow's journal entry: (tenant, workflow id, part,
/// index, name) — see [`Part::key`] for what index and name hold.
pub type EntryKey<'k> = (&'k str, &'k str, u8, u64, &'k str);

/// [`EntryKey`] as the journal's table definition names it.
pub type JournalKey = EntryKey<'static>;

/// What a workflow writes as it runs, other than its row: its head, its
/// elements, its step records and its event log, each a [`Part`] of one
/// table. Keys start with the workflow, so one workflow's entries are
/// neighbours, and a commit that starts or ends a small workflow rewrites
/// one leaf of one tree rather than one in each of four tables (every page
/// a commit writes is a page its flush waits for).
pub const JOURNAL: TableDefinition<JournalKey, &[u8]> = TableDefinition::new("journal");

/// One kind of a workflow's [`JOURNAL`] entries: the records of type `T`,
/// under keys whose part is `tag`.
pub struct Part<T> {
    tag: u8,
    records: Records<JournalKey, T>,
}

impl<T> Part<T> {
    const fn tagged(tag: u8) -> Self {
        Part {
            tag,
            records: Records {
                table: JOURNAL,
                record: PhantomData,
            },
        }
    }

    /// The key of workflow `id` of `tenant`'s entry at `index` (an
    /// element's position, an event's number) or named `name` (a step's
    /// id).
    pub fn key<'k>(&self, tenant: &'k str, id: &'k str, index: u64, name: &'k str) -> EntryKey<'k> {
        (tenant, id, self.tag, index, name)
    }

    /// The part's tag: the third field of its entries' keys.
    pub fn tag(&self) -> u8 {
        self.tag
    }

    /// The keys of this part of workflow `id` of `tenant`, from index
    /// `first` on.
    pub fn from<'k>(
        &self,
        tenant: &'k str,
        id: &'k str,
        first: u64,
    ) -> std::ops::Range<EntryKey<'k>> {
        (tenant, id, self.tag, first, "")..(tenant, id, self.tag + 1, 0, "")
    }

    /// Appends to `json`, the record to be stored under `key`, its
    /// checksum (see [`Records::seal`]).
    pub fn seal(&self, key: &EntryKey<'_>, json: &mut Vec<u8>) {
        self.records.seal(key, json);
    }

    /// The JSON of `stored`, the entry found under `key`, once its
    /// checksum holds.
    pub fn unseal<'s>(&self, key: &EntryKey<'_>, stored: &'s [u8]) -> Result<&'s [u8], Fault> {
        self.records.unseal(key, stored)
    }
}

impl<T: Serialize> Part<T> {
    /// A record as the journal stores it under `key`.
    pub fn encode(&self, key: &EntryKey<'_>, record: &T) -> Vec<u8> {
        self.records.encode(key, record)
    }
}

impl<T: DeserializeOwned> Part<T> {
    /// The record the journal stored under `key`.
    pub fn decode(&self, key: &EntryKey<'_>, stored: &[u8]) -> Result<T, Fault> {
        self.records.decode(key, stored)
    }
}

/// The keys of every journal entry of workflow `id` of `tenant`.
pub fn whole_journal<'k>(tenant: &'k str, id: &'k str) -> std::ops::Range<EntryKey<'k>> {
    (tenant, id, 0, 0, "")..(tenant, id, u8::MAX, 0, "")
}

/// The workflow's head (its plugins, defaults and callbacks; its elements
/// are entries of their own), written when it starts and when it goes on
/// with other plugin files: a long workflow is not rewritten at every
/// change of its row. Index 0, no name.
pub const HEADS: Part<StoredHead> = Part::tagged(0);

/// Element `index` of the workflow's top-level chain, written once when it
/// starts; the workflow's head says how many there are. Kept one by one so
/// that a long workflow is never read or written whole; read back into a
/// spool as they are.
pub const ELEMENTS: Part<Canvas> = Part::tagged(1);

/// A step's record, named by the step's id (index 0).
pub const STEPS: Part<StepRecord> = Part::tagged(2);

/// The event numbered `index`; append-only.
pub const EVENTS: Part<Event> = Part::tagged(3);

/// The signal numbered `index` (its position among the workflow's
/// signals), named by the signal's name; rewritten once, when a wait takes
/// it.
pub const SIGNALS: Part<Signal> = Part::tagged(4);

/// What the workflow's step records add up to ([`super::tally`]), kept
/// with each commit that writes them; index 0, no name. A workflow written
/// before schema 7 has none.
pub const TALLIES: Part<super::tally::Tally> = Part::tagged(5);

/// (tenant, workflow id) → when a request to cancel the workflow was made
/// (milliseconds since the epoch): a cancel asked of a workflow running in
/// another process, which that process answers; removed when the workflow
/// ends.
pub const CANCELS: TableDefinition<(&str, &str), u64> = TableDefinition::new("cancels");
