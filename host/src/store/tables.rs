//! The typed tables of the state database. Every key starts with the
//! tenant, so one tenant's records are never reached through another's.
//!
//! Each table of records names its record type: a record is stored as its
//! JSON followed by a checksum, and read back through the table that holds
//! it, so one table's rows cannot be decoded as another's records. The
//! checksum (a CRC-32: see [`Records::seal`]) covers the table's name, the
//! key and the JSON: a record damaged on the disk, or found under a damaged
//! key, is refused as damaged when it is read, never shown as it reads.

use std::marker::PhantomData;

use redb::{Key, TableDefinition, TableHandle};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wfhost_canvas::Canvas;

use super::error::Fault;
use crate::records::{Event, StepRecord, StoredHead, WorkflowRow};

/// Bumped whenever a table or a stored record changes shape; opening a
/// file of the version before migrates it (see `Store::check_schema`).
pub const SCHEMA_VERSION: u64 = 5;
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
    const fn named(name: &'static str) -> Self {
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

/// (tenant, workflow id) → workflow row: where the workflow stands.
pub const WORKFLOWS: Records<(&str, &str), WorkflowRow> = Records::named("workflows");

/// (tenant, workflow id) → the workflow's head (its plugins, defaults and
/// callbacks; its elements are in `elements`), written once when it starts:
/// a long workflow is not rewritten at every change of its row.
pub const SPECS: Records<(&str, &str), StoredHead> = Records::named("specs");

/// (tenant, workflow id, index) → element `index` of the workflow's
/// top-level chain, written once when it starts; the workflow's head says
/// how many there are. Kept one by one so that a long workflow is never
/// read or written whole; read back into a spool as they are.
pub const ELEMENTS: Records<(&str, &str, u64), Canvas> = Records::named("elements");

/// (tenant, workflow id, step id) → step record.
pub const STEPS: Records<(&str, &str, &str), StepRecord> = Records::named("steps");

/// (tenant, workflow id, sequence number) → event; append-only.
pub const EVENTS: Records<(&str, &str, u64), Event> = Records::named("events");

/// (tenant, workflow id) → when a request to cancel the workflow was made
/// (milliseconds since the epoch): a cancel asked of a workflow running in
/// another process, which that process answers; removed when the workflow
/// ends.
pub const CANCELS: TableDefinition<(&str, &str), u64> = TableDefinition::new("cancels");
