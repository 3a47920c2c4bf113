//! A workflow's stored head: all of it but its elements, which are stored
//! one by one. Written once when the workflow starts, with every plugin
//! pinned to the file and the sha256 that was loaded; read back, by serde
//! alone, when it continues.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wfhost_canvas::{Signature, StepOptions};

use crate::grants::Grants;

/// A workflow's stored head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredHead {
    /// The id its chain file fixed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tenant its chain file named, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Its plugins by name.
    pub plugins: BTreeMap<String, StoredPlugin>,
    /// Options every step inherits.
    #[serde(default, skip_serializing_if = "StepOptions::is_empty")]
    pub defaults: StepOptions,
    /// Its error handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<Signature>,
    /// How many elements it has, stored apart.
    #[serde(default)]
    pub elements: u64,
    /// How many steps it was planned with (replacements may add more);
    /// none in heads written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_steps: Option<u64>,
    /// The sha256 of its content (see `content.rs`); none in heads written
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
    /// The whole workflow, in a head that schema 2 wrote, in the chain
    /// file's form; such a head has no elements apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Value>,
}

/// Where a stored workflow's plugin is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum StoredPlugin {
    /// An absolute path and the sha256 that was loaded from it.
    Pinned {
        /// The component file.
        path: String,
        /// Its sha256, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        /// What it was granted: secrets by source, never by value.
        #[serde(default, skip_serializing_if = "Grants::is_empty")]
        grants: Grants,
    },
    /// A path alone, as heads of schema 2 may have it.
    Path(String),
}

/// The fields of [`StoredPlugin::Pinned`], read on their own.
#[derive(Deserialize)]
struct PinnedFields {
    path: String,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    grants: Grants,
}

/// Read by shape: a string is a path alone. Serde's untagged enums would
/// buffer the grants, where a number read exactly (a decimal) no longer
/// reads as an `f64`; a `Value` reads every number as its own.
impl<'de> Deserialize<'de> for StoredPlugin {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(path) => Ok(StoredPlugin::Path(path)),
            pinned => {
                let PinnedFields {
                    path,
                    sha256,
                    grants,
                } = PinnedFields::deserialize(pinned).map_err(serde::de::Error::custom)?;
                Ok(StoredPlugin::Pinned {
                    path,
                    sha256,
                    grants,
                })
            }
        }
    }
}
