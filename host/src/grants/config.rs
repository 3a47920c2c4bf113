//! Configuration values: named strings a plugin reads from its environment
//! (`wasi:cli/environment`), given as the chain file or the policy says.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::GrantError;
use super::capability::{AttemptSetup, Capability};
use crate::json::{JsonPath, SpecIssue, fields};

/// The `config` capability: `"config": {"NAME": "value", …}`.
pub struct Config;

impl Capability for Config {
    const NAME: &'static str = "config";
    const INTERFACES: &'static [&'static str] = &["wasi:cli/environment"];

    type Grant = BTreeMap<String, String>;
    type Ready = Vec<(String, String)>;
    type Attempt = ();

    fn read(
        grants: &Map<String, Value>,
        at: &JsonPath,
        _base_dir: &Path,
    ) -> Result<Self::Grant, SpecIssue> {
        let mut config = BTreeMap::new();
        if let Some(value) = grants.get(Self::NAME) {
            let at = at.key(Self::NAME);
            for (name, value) in fields::object_of_any(value, &at)? {
                check_env_name(name, &at.key(name))?;
                let text = fields::string(value, &at.key(name))?;
                config.insert(name.clone(), text.to_string());
            }
        }
        Ok(config)
    }

    fn is_empty(grant: &Self::Grant) -> bool {
        grant.is_empty()
    }

    fn within(asked: &Self::Grant, policy: &Self::Grant) -> Result<Self::Grant, String> {
        for (name, value) in asked {
            if policy.get(name) != Some(value) {
                return Err(format!(
                    "config.{name} is not the tenant's (a submission may leave out config, \
                     not change it)"
                ));
            }
        }
        Ok(asked.clone())
    }

    fn ready(grant: &Self::Grant, _plugin: &str) -> Result<Self::Ready, GrantError> {
        Ok(grant
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect())
    }

    fn attempt(ready: &Self::Ready, setup: &mut AttemptSetup<'_>) -> Result<(), GrantError> {
        for (name, value) in ready {
            setup.builder.env(name, value);
        }
        Ok(())
    }
}

/// Config and secret names are environment variable names.
pub(super) fn check_env_name(name: &str, at: &JsonPath) -> Result<(), SpecIssue> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128;
    if valid {
        Ok(())
    } else {
        Err(SpecIssue::new(
            at,
            "a name is letters, digits and `_`, not starting with a digit",
        ))
    }
}
