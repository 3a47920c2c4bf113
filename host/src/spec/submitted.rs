//! A chain file submitted to `wfhost serve` under a tenant's policy: it may
//! name only the plugins the policy allows (all of them when it names none),
//! which run from the policy's files and hashes whatever the submission says
//! of them, with the policy's grants or narrower ones the submission asks
//! for, and it may not claim another tenant.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::{JsonPath, ParseError, PluginRef, SpecIssue, WorkflowSpec};
use crate::unique::Unique;

/// Who submits a chain file, and what they may use.
pub struct Submitter<'a> {
    /// The tenant the submission is for.
    pub tenant: &'a str,
    /// The plugins the tenant may use, by name, each with its policy's
    /// absolute path, sha256 and grants.
    pub plugins: &'a BTreeMap<String, PluginRef>,
    /// The directory the tenant's granted directories lie under.
    pub root: Option<&'a Path>,
}

/// Parses a chain file submitted by `submitter`.
pub fn parse_submitted(text: &str, submitter: &Submitter) -> Result<WorkflowSpec, ParseError> {
    let Unique(mut document) = serde_json::from_str(text).map_err(ParseError::Syntax)?;
    let root = JsonPath::root();
    let invalid = |at: &JsonPath, message: String| ParseError::Invalid(SpecIssue::new(at, message));
    let Some(fields) = document.as_object_mut() else {
        return Err(invalid(&root, "expected a chain file's object".into()));
    };
    if let Some(Value::String(named)) = fields.get("tenant")
        && named != submitter.tenant
    {
        return Err(invalid(
            &root.key("tenant"),
            format!(
                "the workflow names tenant `{named}`, but the key is tenant `{}`'s",
                submitter.tenant
            ),
        ));
    }
    let named: Vec<String> = match fields.get("plugins") {
        None => submitter.plugins.keys().cloned().collect(),
        Some(Value::Object(plugins)) => plugins.keys().cloned().collect(),
        Some(_) => {
            return Err(invalid(
                &root.key("plugins"),
                "expected an object of plugin names".into(),
            ));
        }
    };
    let mut plugins = Map::new();
    let mut grants = BTreeMap::new();
    for name in named {
        let Some(allowed) = submitter.plugins.get(&name) else {
            let allowed: Vec<&str> = submitter.plugins.keys().map(String::as_str).collect();
            return Err(invalid(
                &root.key("plugins").key(&name),
                format!(
                    "plugin `{name}` is not one tenant `{}` may use (it may use: {})",
                    submitter.tenant,
                    allowed.join(", ")
                ),
            ));
        };
        let at = root.key("plugins").key(&name).key("grants");
        let asked = fields
            .get("plugins")
            .and_then(|plugins| plugins.get(&name))
            .and_then(|entry| entry.get("grants"));
        let granted = match asked {
            None => allowed.grants.clone(),
            Some(asked) => {
                let base = submitter.root.unwrap_or(Path::new("/"));
                let asked =
                    crate::grants::Grants::read(asked, &at, base).map_err(ParseError::Invalid)?;
                asked.within(&allowed.grants).map_err(|reason| {
                    invalid(
                        &at,
                        format!(
                            "reaches past tenant `{}`'s policy: {reason}",
                            submitter.tenant
                        ),
                    )
                })?
            }
        };
        grants.insert(name.clone(), granted);
        plugins.insert(
            name,
            json!({"path": allowed.path.display().to_string(), "sha256": allowed.sha256}),
        );
    }
    fields.insert("plugins".into(), Value::Object(plugins));
    // The policy's plugin paths are absolute.
    let mut spec = super::from_document(&document, Path::new("/")).map_err(ParseError::Invalid)?;
    for (name, granted) in grants {
        if let Some(plugin) = spec.plugins.get_mut(&name) {
            plugin.grants = granted;
        }
    }
    Ok(spec)
}
