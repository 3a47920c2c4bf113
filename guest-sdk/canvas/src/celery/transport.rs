//! Celery's options of a signature, typed: what `apply_async` takes and
//! what a canvas sets on its parts, read leniently.

use serde::Serialize;
use serde_json::{Map, Value};

use super::CelerySignature;
use super::json::{seconds, signature_list, string};
use crate::Expires;

/// Celery's options of a signature (`apply_async`'s keywords, and what a
/// canvas sets on its parts). Every field is optional; [`Transport::other`]
/// holds the rest, wfhost's limits included.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Transport {
    /// The frozen task id (a group's or chord header's: the group id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The group it is a member of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Its place there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_index: Option<u64>,
    /// The body of the chord whose header it is a member of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chord: Option<Box<CelerySignature>>,
    /// What runs after it (stored order: last first), for a whole sent on
    /// its own (a chord's body).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<CelerySignature>,
    /// Callbacks (`link`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<CelerySignature>,
    /// Errbacks (`link_error`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub link_error: Vec<CelerySignature>,
    /// Seconds before it may run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub countdown: Option<f64>,
    /// The instant it may run, ISO 8601.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta: Option<String>,
    /// When it expires unrun.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<Expires>,
    /// The queue it goes to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Its priority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// The hard time limit, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<f64>,
    /// The soft time limit, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soft_time_limit: Option<f64>,
    /// Whether no result is stored.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_result: bool,
    /// How often it was replaced on its way.
    #[serde(skip_serializing_if = "is_zero")]
    pub replaced_task_nesting: u64,
    /// Every other option, unread.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Transport {
    pub(super) fn read(options: Map<String, Value>, depth: usize) -> Self {
        let mut out = Transport::default();
        for (key, value) in options {
            match key.as_str() {
                "task_id" => out.task_id = string(value),
                "group_id" => out.group_id = string(value),
                "group_index" => out.group_index = value.as_u64(),
                "chord" => {
                    out.chord = CelerySignature::read(value, depth + 1).map(Box::new);
                }
                "chain" => out.chain = signature_list(value, depth),
                "link" => out.link = signature_list(value, depth),
                "link_error" => out.link_error = signature_list(value, depth),
                "countdown" => out.countdown = seconds(&value),
                "eta" => out.eta = string(value),
                "expires" => {
                    out.expires = match value {
                        Value::String(at) => Some(Expires::At(at)),
                        other => seconds(&other).map(Expires::After),
                    }
                }
                "queue" => out.queue = string(value),
                "priority" => {
                    out.priority = value.as_u64().map(|p| u8::try_from(p).unwrap_or(u8::MAX));
                }
                "time_limit" => out.time_limit = seconds(&value).filter(|s| *s > 0.0),
                "soft_time_limit" => out.soft_time_limit = seconds(&value).filter(|s| *s > 0.0),
                "ignore_result" => out.ignore_result = value.as_bool().unwrap_or(false),
                "replaced_task_nesting" => {
                    out.replaced_task_nesting = value.as_u64().unwrap_or(0);
                }
                _ => {
                    out.other.insert(key, value);
                }
            }
        }
        out
    }
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}
