//! The typed tables of the state database. Every key starts with the
//! tenant, so one tenant's records are never reached through another's.
//!
//! Each table of records names its record type: a record is stored as its
//! JSON (so files written before still read), and read back through the
//! table that holds it, so one table's rows cannot be decoded as another's
//! records.

use std::marker::PhantomData;

use redb::{Key, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wfhost_canvas::Canvas;

use super::error::Fault;
use crate::records::{Event, StepRecord, StoredHead, WorkflowRow};

/// Bumped whenever a table or a stored record changes shape; opening a
/// file of the version before migrates it (see `Store::check_schema`).
pub const SCHEMA_VERSION: u64 = 4;
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

impl<K: Key + 'static, T: Serialize> Records<K, T> {
    /// A record as this table stores it. Records are plain data, so
    /// serializing one cannot fail.
    pub fn encode(&self, record: &T) -> Vec<u8> {
        serde_json::to_vec(record).unwrap_or_default()
    }
}

impl<K: Key + 'static, T: DeserializeOwned> Records<K, T> {
    /// A record this table stored.
    pub fn decode(&self, bytes: &[u8]) -> Result<T, Fault> {
        Ok(serde_json::from_slice(bytes)?)
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
