//! `chain.json`: the file an operator hands to `wfhost run`.
//!
//! Parsing is strict: every unknown key is an error naming its JSON path,
//! and malformed JSON is reported with its line and column.

mod canvas;
mod celery;
mod fields;
mod options;
mod path;

pub use path::{JsonPath, SpecIssue};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;
use wfhost_canvas::{Canvas, Signature, StepOptions};

use options::Callbacks;

const TOP_LEVEL_KEYS: &[&str] = &[
    "id", "tenant", "plugins", "defaults", "workflow", "on_error",
];

/// A workflow as its file describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowSpec {
    /// The workflow's id, if the file fixes one.
    pub id: Option<String>,
    /// The tenant, if the file names one.
    pub tenant: Option<String>,
    /// The plugins by the name tasks use for them.
    pub plugins: BTreeMap<String, PluginRef>,
    /// Options every step inherits unless it sets its own.
    pub defaults: StepOptions,
    /// What to run.
    pub workflow: Canvas,
    /// Runs once for the step that fails, with its error record.
    pub on_error: Option<Signature>,
}

/// Where a plugin's component is, and optionally the hash it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    /// The component file, resolved against the chain file's directory.
    pub path: PathBuf,
    /// The lowercase hex sha256 the file must have.
    pub sha256: Option<String>,
}

impl WorkflowSpec {
    /// The workflow in native JSON form: what [`from_stored`] reads back.
    pub fn to_json(&self) -> Value {
        // Serializing plain JSON values and numbers cannot fail.
        serde_json::to_value(self.stored_form(&self.plugins)).unwrap_or_default()
    }

    /// The same JSON text as [`WorkflowSpec::to_json`] with `plugins` in
    /// place of the workflow's own, written straight from the workflow: a
    /// long one is not copied into a JSON tree first.
    pub fn to_json_bytes_with(&self, plugins: &BTreeMap<String, PluginRef>) -> Vec<u8> {
        serde_json::to_vec(&self.stored_form(plugins)).unwrap_or_default()
    }

    fn stored_form<'a>(&'a self, plugins: &'a BTreeMap<String, PluginRef>) -> StoredForm<'a> {
        StoredForm {
            id: self.id.as_deref(),
            tenant: self.tenant.as_deref(),
            plugins: plugins
                .iter()
                .map(|(name, plugin)| {
                    let stored = StoredPlugin {
                        path: plugin.path.display().to_string(),
                        sha256: plugin.sha256.as_deref(),
                    };
                    (name.as_str(), stored)
                })
                .collect(),
            defaults: (!self.defaults.is_empty()).then_some(&self.defaults),
            workflow: &self.workflow,
            on_error: self.on_error.as_ref(),
        }
    }
}

/// A workflow as it is stored: the native JSON form, borrowed.
#[derive(Serialize)]
struct StoredForm<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    plugins: BTreeMap<&'a str, StoredPlugin<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    defaults: Option<&'a StepOptions>,
    workflow: &'a Canvas,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_error: Option<&'a Signature>,
}

#[derive(Serialize)]
struct StoredPlugin<'a> {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a str>,
}

/// Reads a workflow stored by [`WorkflowSpec::to_json`]; its plugin paths
/// are absolute.
pub fn from_stored(value: &Value) -> Result<WorkflowSpec, SpecIssue> {
    from_document(value, Path::new("/"))
}

/// Reads a chain file's document already parsed as JSON; plugin paths are
/// resolved against `base_dir`.
pub fn from_document(value: &Value, base_dir: &Path) -> Result<WorkflowSpec, SpecIssue> {
    from_value(value, base_dir)
}

/// Why a chain file cannot be used.
///
/// Each message already includes its cause, which is therefore not also
/// exposed as `source()`: printing the chain would say it twice.
#[derive(Debug, Error)]
pub enum SpecError {
    #[error("cannot read {}: {cause}", file.display())]
    Read {
        file: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}:{line}:{column}: malformed JSON: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {issue}", file.display())]
    Invalid { file: PathBuf, issue: SpecIssue },
}

/// Reads and parses the chain file at `file`.
pub fn load(file: &Path) -> Result<WorkflowSpec, SpecError> {
    let text = std::fs::read_to_string(file).map_err(|cause| SpecError::Read {
        file: file.to_path_buf(),
        cause,
    })?;
    let base_dir = file.parent().unwrap_or(Path::new(""));
    parse(&text, base_dir).map_err(|err| match err {
        ParseError::Syntax(err) => SpecError::Syntax {
            file: file.to_path_buf(),
            line: err.line(),
            column: err.column(),
            message: syntax_message(&err),
        },
        ParseError::Invalid(issue) => SpecError::Invalid {
            file: file.to_path_buf(),
            issue,
        },
    })
}

/// serde_json's message ends with " at line L column C", which the error
/// already shows in front.
fn syntax_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// Why text is not a workflow.
#[derive(Debug, Error)]
pub enum ParseError {
    /// Not JSON; serde's message gives the line and column.
    #[error("malformed JSON: {0}")]
    Syntax(serde_json::Error),
    #[error("{0}")]
    Invalid(SpecIssue),
}

/// Parses chain-file text; plugin paths are resolved against `base_dir`.
pub fn parse(text: &str, base_dir: &Path) -> Result<WorkflowSpec, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(ParseError::Syntax)?;
    from_value(&value, base_dir).map_err(ParseError::Invalid)
}

/// Parses a canvas in native JSON form, as a task's replacement returns it.
pub fn parse_canvas(value: &Value) -> Result<Canvas, SpecIssue> {
    canvas::canvas(value, &JsonPath::root())
}

fn from_value(value: &Value, base_dir: &Path) -> Result<WorkflowSpec, SpecIssue> {
    let root = JsonPath::root();
    let map = fields::object(value, &root, "a workflow object", TOP_LEVEL_KEYS)?;
    let optional_string = |key: &str| -> Result<Option<String>, SpecIssue> {
        map.get(key)
            .map(|v| fields::string(v, &root.key(key)).map(str::to_string))
            .transpose()
    };
    let id = optional_string("id")?;
    if id.as_deref().is_some_and(str::is_empty) {
        return Err(SpecIssue::new(&root.key("id"), "the id must not be empty"));
    }
    let tenant = optional_string("tenant")?;

    let plugins_value = map.get("plugins").ok_or_else(|| {
        SpecIssue::new(
            &root,
            "missing key `plugins` (an object of plugin name to component path)",
        )
    })?;
    let plugins = plugins(plugins_value, &root.key("plugins"), base_dir)?;
    let defaults = match map.get("defaults") {
        Some(value) => options::options(value, &root.key("defaults"), Callbacks::Refused)?,
        None => StepOptions::default(),
    };
    let workflow_value = map
        .get("workflow")
        .ok_or_else(|| SpecIssue::new(&root, "missing key `workflow` (the canvas to run)"))?;
    let workflow = canvas::canvas(workflow_value, &root.key("workflow"))?;
    let on_error = map
        .get("on_error")
        .map(|value| canvas::any_signature(value, &root.key("on_error")))
        .transpose()?;
    Ok(WorkflowSpec {
        id,
        tenant,
        plugins,
        defaults,
        workflow,
        on_error,
    })
}

fn plugins(
    value: &Value,
    at: &JsonPath,
    base_dir: &Path,
) -> Result<BTreeMap<String, PluginRef>, SpecIssue> {
    let map = value
        .as_object()
        .ok_or_else(|| SpecIssue::new(at, "expected an object of plugin name to component path"))?;
    let mut plugins = BTreeMap::new();
    for (name, entry) in map {
        let at = at.key(name);
        if name.is_empty() {
            return Err(SpecIssue::new(&at, "a plugin name must not be empty"));
        }
        let (path, sha256) = match entry {
            Value::String(path) => (path.as_str(), None),
            Value::Object(fields_map) => {
                fields::object(entry, &at, "a plugin", &["path", "sha256"])?;
                let path = fields_map
                    .get("path")
                    .ok_or_else(|| SpecIssue::new(&at, "a plugin needs a `path`"))
                    .and_then(|p| fields::string(p, &at.key("path")))?;
                let sha256 = fields_map
                    .get("sha256")
                    .map(|s| sha256_hex(s, &at.key("sha256")))
                    .transpose()?;
                (path, sha256)
            }
            other => {
                return Err(SpecIssue::new(
                    &at,
                    format!(
                        "expected a path or {{\"path\", \"sha256\"}}, found {}",
                        fields::type_of(other)
                    ),
                ));
            }
        };
        plugins.insert(
            name.clone(),
            PluginRef {
                path: base_dir.join(path),
                sha256,
            },
        );
    }
    Ok(plugins)
}

fn sha256_hex(value: &Value, at: &JsonPath) -> Result<String, SpecIssue> {
    let text = fields::string(value, at)?;
    if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(SpecIssue::new(at, "expected 64 hexadecimal digits"))
    }
}

#[cfg(test)]
mod tests;
