//! Secrets: where a secret's value comes from at run time, and the mask
//! that keeps it out of everything the host records or shows.
//!
//! Only a secret's source is ever stored; its value lives in memory while
//! the workflow runs, is handed to the guest, and is replaced by
//! [`MASK`] wherever it shows up in what an attempt produced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::GrantError;
use super::capability::{AttemptSetup, Capability};
use super::config::{Config, check_env_name};
use super::real_path::against;
use crate::json::{JsonPath, SpecIssue, fields};

/// What a masked secret reads as.
pub const MASK: &str = "***";

/// A secret file larger than this is refused: a secret is a key, not data.
const MAX_SECRET_BYTES: u64 = 64 << 10;

/// Where a secret's value is read from when the workflow runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretSource {
    /// The host's environment variable of this name.
    Env(String),
    /// This file's content, without a trailing newline (absolute once read
    /// from a chain file).
    File(PathBuf),
}

impl SecretSource {
    /// Reads the value, or says why it cannot be read (never showing it).
    pub fn read(&self) -> Result<String, String> {
        match self {
            SecretSource::Env(name) => std::env::var(name).map_err(|err| match err {
                std::env::VarError::NotPresent => {
                    format!("the environment variable `{name}` is not set")
                }
                std::env::VarError::NotUnicode(_) => {
                    format!("the environment variable `{name}` is not UTF-8")
                }
            }),
            SecretSource::File(path) => {
                let shown = path.display();
                let size = std::fs::metadata(path)
                    .map_err(|err| format!("cannot read {shown}: {err}"))?
                    .len();
                if size > MAX_SECRET_BYTES {
                    return Err(format!(
                        "{shown} is {size} bytes; a secret file may have at most {MAX_SECRET_BYTES}"
                    ));
                }
                let text = std::fs::read_to_string(path)
                    .map_err(|err| format!("cannot read {shown}: {err}"))?;
                Ok(text
                    .strip_suffix('\n')
                    .unwrap_or(&text)
                    .trim_end_matches('\r')
                    .to_string())
            }
        }
    }
}

/// The `secrets` capability: `"secrets": {"NAME": {"env": VAR} | {"file":
/// PATH}}`, read into the plugin's environment when the workflow runs.
pub struct Secrets;

/// A plugin's secrets, read: its environment's share, and their mask.
#[derive(Debug, Default)]
pub struct ReadSecrets {
    env: Vec<(String, String)>,
    masker: Masker,
}

impl ReadSecrets {
    /// The mask of these secrets.
    pub fn masker(&self) -> &Masker {
        &self.masker
    }
}

impl Capability for Secrets {
    const NAME: &'static str = "secrets";
    const INTERFACES: &'static [&'static str] = &["wasi:cli/environment"];

    type Grant = BTreeMap<String, SecretSource>;
    type Ready = ReadSecrets;
    type Attempt = ();

    fn read(
        grants: &Map<String, Value>,
        at: &JsonPath,
        base_dir: &Path,
    ) -> Result<Self::Grant, SpecIssue> {
        let mut secrets = BTreeMap::new();
        let Some(value) = grants.get(Self::NAME) else {
            return Ok(secrets);
        };
        let config = grants.get(Config::NAME).and_then(Value::as_object);
        let at = at.key(Self::NAME);
        for (name, source) in fields::object_of_any(value, &at)? {
            let at = at.key(name);
            check_env_name(name, &at)?;
            if config.is_some_and(|config| config.contains_key(name)) {
                return Err(SpecIssue::new(
                    &at,
                    format!("`{name}` is both a config value and a secret"),
                ));
            }
            secrets.insert(name.clone(), secret_source(source, &at, base_dir)?);
        }
        Ok(secrets)
    }

    fn is_empty(grant: &Self::Grant) -> bool {
        grant.is_empty()
    }

    fn within(asked: &Self::Grant, policy: &Self::Grant) -> Result<Self::Grant, String> {
        for (name, source) in asked {
            if policy.get(name) != Some(source) {
                return Err(format!("secrets.{name} is not one of the tenant's secrets"));
            }
        }
        Ok(asked.clone())
    }

    fn ready(grant: &Self::Grant, plugin: &str) -> Result<ReadSecrets, GrantError> {
        let mut env = Vec::new();
        for (name, source) in grant {
            let value = source.read().map_err(|reason| GrantError {
                plugin: plugin.to_string(),
                grant: format!("secrets.{name}"),
                reason,
            })?;
            env.push((name.clone(), value));
        }
        let masker = Masker::new(env.iter().map(|(_, value)| value.clone()));
        Ok(ReadSecrets { env, masker })
    }

    fn attempt(ready: &ReadSecrets, setup: &mut AttemptSetup<'_>) -> Result<(), GrantError> {
        for (name, value) in &ready.env {
            setup.builder.env(name, value);
        }
        Ok(())
    }
}

fn secret_source(value: &Value, at: &JsonPath, base_dir: &Path) -> Result<SecretSource, SpecIssue> {
    let map = fields::object(
        value,
        at,
        "{\"env\": NAME} or {\"file\": PATH}",
        &["env", "file"],
    )?;
    match (map.get("env"), map.get("file")) {
        (Some(name), None) => Ok(SecretSource::Env(
            fields::string(name, &at.key("env"))?.to_string(),
        )),
        (None, Some(path)) => Ok(SecretSource::File(against(
            base_dir,
            fields::string(path, &at.key("file"))?,
        ))),
        _ => Err(SpecIssue::new(
            at,
            "a secret comes from exactly one of `env` or `file`",
        )),
    }
}

/// Replaces secret values in text with [`MASK`].
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so that a secret containing another is masked whole.
    values: Vec<String>,
}

impl Masker {
    /// A mask for `values` (empty ones are ignored: they hide nothing).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
        values.sort_by_key(|value| std::cmp::Reverse(value.len()));
        values.dedup();
        Masker { values }
    }

    /// Whether it masks nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret value masked.
    pub fn mask(&self, text: &str) -> String {
        let mut masked = text.to_string();
        for value in &self.values {
            if masked.contains(value.as_str()) {
                masked = masked.replace(value.as_str(), MASK);
            }
        }
        masked
    }

    /// Like [`Masker::mask`], for text that was cut short: a tail that is
    /// the beginning of a secret is masked too.
    pub fn mask_cut(&self, text: &str) -> String {
        let mut masked = self.mask(text);
        for value in &self.values {
            let longest_tail = (1..value.len())
                .rev()
                .filter(|n| value.is_char_boundary(*n))
                .find(|n| masked.ends_with(&value[..*n]));
            if let Some(n) = longest_tail {
                masked.truncate(masked.len() - n);
                masked.push_str(MASK);
                break;
            }
        }
        masked
    }

    /// `value` with every secret masked in its strings and keys.
    pub fn mask_json(&self, value: Value) -> Value {
        if self.is_empty() {
            return value;
        }
        match value {
            Value::String(text) => Value::String(self.mask(&text)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.mask_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(key, v)| (self.mask(&key), self.mask_json(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_wherever_they_appear() {
        let masker = Masker::new(["hunter2".to_string(), "hunter2-long".to_string()]);
        assert_eq!(masker.mask("a hunter2 b hunter2-long"), "a *** b ***");
        assert_eq!(masker.mask_cut("key=hunt"), "key=***");
        assert_eq!(masker.mask_cut("key=x"), "key=x");
        let json = serde_json::json!({"hunter2": ["x hunter2 y", 1]});
        assert_eq!(
            masker.mask_json(json),
            serde_json::json!({"***": ["x *** y", 1]})
        );
    }
}
