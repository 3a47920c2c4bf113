//! A signal sent to a workflow: a name and a JSON payload, kept in the
//! workflow's journal from when it is acknowledged until a wait of its name
//! takes it (DESIGN §15).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One signal, as its workflow's journal keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Its position among the workflow's signals, from 0: each wait takes
    /// the oldest of its name.
    #[serde(default)]
    pub seq: u64,
    /// The name a wait waits for.
    pub name: String,
    /// What the wait's step returns.
    pub payload: Value,
    /// When it was acknowledged, in milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
    /// The step of the wait that took it, once one has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_by: Option<String>,
    /// When it was taken, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at_ms: Option<u64>,
}
