//! The typed tables of the state database. Every key starts with the
//! tenant, so one tenant's records are never reached through another's.

use redb::TableDefinition;

/// Bumped whenever a table or a stored record changes shape; opening a
/// file of the version before migrates it (see `Store::check_schema`).
pub const SCHEMA_VERSION: u64 = 3;
pub const SCHEMA_VERSION_KEY: &str = "schema_version";

/// Settings of the file itself.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// (tenant, workflow id) → workflow row (JSON): where the workflow stands.
pub const WORKFLOWS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("workflows");

/// (tenant, workflow id) → the workflow's head (native JSON form: its
/// plugins, defaults and callbacks; its elements are in `elements`),
/// written once when it starts: a long workflow is not rewritten at every
/// change of its row.
pub const SPECS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("specs");

/// (tenant, workflow id, index) → element `index` of the workflow's
/// top-level chain (native JSON), written once when it starts; the
/// workflow's own row in `specs` says how many there are. Kept one by one
/// so that a long workflow is never read or written whole.
pub const ELEMENTS: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("elements");

/// (tenant, workflow id, step id) → step record (JSON).
pub const STEPS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("steps");

/// (tenant, workflow id, sequence number) → event (JSON); append-only.
pub const EVENTS: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("events");
