//! A workflow's content: what one id must always name. Its digest is
//! stored with the workflow when it starts; asked to start an id on record
//! with other content, the host refuses, naming the first difference, as
//! Temporal refuses to reuse a running workflow's id for another.
//!
//! The content is what the workflow does: its plugins (by name and
//! resolved path), its defaults, its error handler and every element, in
//! order. The id and tenant name it, and a plugin's sha256 pins a build of
//! it, so neither is content: the same chain file run again is the same
//! workflow, even after its plugin was rebuilt.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::spec::{JsonPath, WorkflowSpec};

/// The characters of a value a difference shows; a longer one is cut.
const SHOWN_CHARS: usize = 80;

/// Where two workflows first differ, and what each has there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The place, as a path into the chain file's native form.
    pub at: String,
    /// What the stored workflow has there (`nothing` if it has none).
    pub stored: String,
    /// What the given workflow has there.
    pub given: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at {} the stored workflow has {} where this one has {}",
            self.at, self.stored, self.given
        )
    }
}

/// A plugin's path resolved by itself, whatever the plugin's name (see
/// [`head_of`]).
fn resolved_alone(_: &str, path: &Path) -> PathBuf {
    crate::grants::real_or_given(path)
}

/// All of `spec` but its elements, as its content counts it, each plugin's
/// path as `resolve` gives it for the plugin's name and path.
fn head_of(spec: &WorkflowSpec, resolve: &dyn Fn(&str, &Path) -> PathBuf) -> Value {
    let plugins: serde_json::Map<String, Value> = spec
        .plugins
        .iter()
        .map(|(name, plugin)| {
            let path = resolve(name, &plugin.path).display().to_string();
            // Without grants, a plugin counts as its path alone, as it did
            // before grants existed, so stored digests still match.
            let entry = if plugin.grants.is_empty() {
                json!(path)
            } else {
                json!({"path": path, "grants": plugin.grants})
            };
            (name.clone(), entry)
        })
        .collect();
    json!({"plugins": plugins, "defaults": spec.defaults, "on_error": spec.on_error})
}

/// The lowercase hex sha256 of `spec`'s content.
pub(crate) fn digest(spec: &WorkflowSpec) -> std::io::Result<String> {
    digest_resolving(spec, &resolved_alone)
}

/// [`digest`], with each plugin's path resolved by `resolve` (given the
/// plugin's name and path): a workflow whose plugins are loaded knows what
/// their paths resolve to.
pub(crate) fn digest_resolving(
    spec: &WorkflowSpec,
    resolve: &dyn Fn(&str, &Path) -> PathBuf,
) -> std::io::Result<String> {
    let mut hash = Sha256::new();
    let head = serde_json::to_vec(&head_of(spec, resolve)).unwrap_or_default();
    hash.update((head.len() as u64).to_le_bytes());
    hash.update(&head);
    for element in spec.workflow.json() {
        let element = element?;
        hash.update((element.len() as u64).to_le_bytes());
        hash.update(&element);
    }
    Ok(format!("{:x}", hash.finalize()))
}

/// Where `given` first differs from `stored`, if anywhere.
pub(crate) fn first_difference(
    stored: &WorkflowSpec,
    given: &WorkflowSpec,
) -> std::io::Result<Option<Difference>> {
    let root = JsonPath::root();
    let (stored_head, given_head) = (
        head_of(stored, &resolved_alone),
        head_of(given, &resolved_alone),
    );
    if let Some(difference) = differ(&stored_head, &given_head, &root) {
        return Ok(Some(difference));
    }
    let workflow = root.key("workflow");
    let (mut stored_elements, mut given_elements) = (stored.workflow.json(), given.workflow.json());
    for index in 0.. {
        let at = workflow.index(index);
        let element = |next: Option<std::io::Result<Vec<u8>>>| -> std::io::Result<Option<Value>> {
            next.transpose()?
                .map(|json| serde_json::from_slice(&json))
                .transpose()
                .map_err(std::io::Error::from)
        };
        match (
            element(stored_elements.next())?,
            element(given_elements.next())?,
        ) {
            (None, None) => return Ok(None),
            (Some(stored), Some(given)) => {
                if let Some(difference) = differ(&stored, &given, &at) {
                    return Ok(Some(difference));
                }
            }
            (stored, given) => {
                return Ok(Some(difference_at(&at, stored.as_ref(), given.as_ref())));
            }
        }
    }
    Ok(None)
}

/// Where `given` first differs from `stored`, both found at `at`.
fn differ(stored: &Value, given: &Value, at: &JsonPath) -> Option<Difference> {
    match (stored, given) {
        (Value::Object(stored_map), Value::Object(given_map)) => {
            let mut keys: Vec<&String> = stored_map.keys().chain(given_map.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| {
                let at = at.key(key);
                match (stored_map.get(key), given_map.get(key)) {
                    (Some(stored), Some(given)) => differ(stored, given, &at),
                    (stored, given) => Some(difference_at(&at, stored, given)),
                }
            })
        }
        (Value::Array(stored_items), Value::Array(given_items)) => {
            let longest = stored_items.len().max(given_items.len());
            (0..longest).find_map(|index| {
                let at = at.index(index);
                match (stored_items.get(index), given_items.get(index)) {
                    (Some(stored), Some(given)) => differ(stored, given, &at),
                    (stored, given) => Some(difference_at(&at, stored, given)),
                }
            })
        }
        _ if stored == given => None,
        _ => Some(difference_at(at, Some(stored), Some(given))),
    }
}

fn difference_at(at: &JsonPath, stored: Option<&Value>, given: Option<&Value>) -> Difference {
    let shown = |value: Option<&Value>| match value {
        Some(value) => crate::text::clipped(&value.to_string(), SHOWN_CHARS).into_owned(),
        None => "nothing".to_string(),
    };
    Difference {
        at: at.to_string(),
        stored: shown(stored),
        given: shown(given),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(document: Value) -> WorkflowSpec {
        crate::spec::parse(&document.to_string(), Path::new("/")).unwrap()
    }

    fn chain(second: Value) -> WorkflowSpec {
        parse(json!({
            "id": "order-7",
            "plugins": {"math": "/m.wasm"},
            "workflow": [{"task": "math.add", "args": [1, 2]}, second],
        }))
    }

    #[test]
    fn the_same_content_has_one_digest_whatever_names_it() {
        let first = chain(json!({"task": "math.mul", "args": [3]}));
        let mut renamed = chain(json!({"task": "math.mul", "args": [3]}));
        renamed.id = Some("another".into());
        renamed.tenant = Some("acme".into());
        assert_eq!(digest(&first).unwrap(), digest(&renamed).unwrap());
        assert_eq!(first_difference(&first, &renamed).unwrap(), None);
    }

    #[test]
    fn the_first_difference_is_named_where_it_is() {
        let stored = chain(json!({"task": "math.mul", "args": [3]}));
        let given = chain(json!({"task": "math.mul", "args": [4]}));
        assert_ne!(digest(&stored).unwrap(), digest(&given).unwrap());
        let difference = first_difference(&stored, &given).unwrap().unwrap();
        assert_eq!(difference.at, "$.workflow[1].args[0]");
        assert_eq!(
            (difference.stored.as_str(), difference.given.as_str()),
            ("3", "4")
        );

        let longer = parse(json!({
            "plugins": {"math": "/m.wasm"},
            "workflow": [{"task": "math.add", "args": [1, 2]}, {"task": "math.mul", "args": [3]},
                         {"task": "math.add", "args": [1]}],
        }));
        let difference = first_difference(&stored, &longer).unwrap().unwrap();
        assert_eq!(
            (difference.at.as_str(), difference.stored.as_str()),
            ("$.workflow[2]", "nothing")
        );

        let other_plugin = parse(json!({
            "plugins": {"math": "/other.wasm"},
            "workflow": [{"task": "math.add", "args": [1, 2]}, {"task": "math.mul", "args": [3]}],
        }));
        let difference = first_difference(&stored, &other_plugin).unwrap().unwrap();
        assert_eq!(difference.at, "$.plugins.math");
        assert!(
            difference.to_string().contains("\"/other.wasm\""),
            "{difference}"
        );
    }
}
