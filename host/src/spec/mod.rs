//! `chain.json`: the file an operator hands to `wfhost run`.
//!
//! Parsing is strict: every unknown key is an error naming its JSON path,
//! and malformed JSON is reported with its line and column.

mod canvas;
mod celery;
mod deferred;
mod document;
mod elements;

mod options;

mod submitted;

pub use crate::json::{JsonPath, SpecIssue};
pub(crate) use elements::{Elements, JsonReader, decode_element};
pub use submitted::{Submitter, parse_submitted};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use thiserror::Error;
use wfhost_canvas::{Canvas, Signature, StepOptions};

use crate::grants::Grants;
use crate::json::fields;
use options::Callbacks;

const TOP_LEVEL_KEYS: &[&str] = &[
    "id", "tenant", "plugins", "defaults", "workflow", "on_error",
];

/// A workflow as its file describes it.
#[derive(Debug)]
pub struct WorkflowSpec {
    /// The workflow's id, if the file fixes one.
    pub id: Option<String>,
    /// The tenant, if the file names one.
    pub tenant: Option<String>,
    /// The plugins by the name tasks use for them.
    pub plugins: BTreeMap<String, PluginRef>,
    /// Options every step inherits unless it sets its own.
    pub defaults: StepOptions,
    /// What to run: the elements of the top-level chain.
    pub(crate) workflow: Elements,
    /// Runs once for the step that fails, with its error record.
    pub on_error: Option<Signature>,
}

/// Where a plugin's component is, and optionally the hash it must have.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRef {
    /// The component file, resolved against the chain file's directory.
    pub path: PathBuf,
    /// The lowercase hex sha256 the file must have.
    pub sha256: Option<String>,
    /// What the plugin may reach beyond its sandbox.
    pub grants: Grants,
}

/// Reads a chain file's document already parsed as JSON; plugin paths are
/// resolved against `base_dir`.
pub(crate) fn from_document(value: &Value, base_dir: &Path) -> Result<WorkflowSpec, SpecIssue> {
    deferred::collecting(|| {
        let root = JsonPath::root();
        let map = fields::object(value, &root, "a workflow object", TOP_LEVEL_KEYS)?;
        let workflow = map
            .get("workflow")
            .ok_or_else(|| SpecIssue::new(&root, MISSING_WORKFLOW))?;
        let elements = inline_elements(workflow)?;
        from_parts(map, elements, base_dir)
    })
}

const MISSING_WORKFLOW: &str = "missing key `workflow` (the canvas to run)";

/// The elements of a canvas given whole.
pub(crate) fn inline_elements(workflow: &Value) -> Result<Elements, SpecIssue> {
    let canvas = match canvas::canvas(workflow, &JsonPath::root().key("workflow"))? {
        // A workflow that is a one-member group alone gives Celery's list
        // of one. Its element is a step of the workflow's chain, where a
        // one-member group would be unrolled; a group in it is not (see
        // `plan`).
        Canvas::Group(members) if members.len() == 1 => Canvas::Group(vec![Canvas::Group(members)]),
        canvas => canvas,
    };
    Elements::of(&canvas).map_err(|err| spool_issue(&err))
}

fn spool_issue(err: &std::io::Error) -> SpecIssue {
    SpecIssue::new(
        &JsonPath::root().key("workflow"),
        format!("cannot spool the workflow to a temporary file: {err}"),
    )
}

/// Why a chain file cannot be used.
///
/// Each message already includes its cause, which is therefore not also
/// exposed as `source()`: printing the chain would say it twice.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The file cannot be read.
    #[error("cannot read {}: {cause}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// What the system said.
        cause: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{}:{line}:{column}: malformed JSON: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The column, from 1.
        column: usize,
        /// What is wrong, in words.
        message: String,
    },
    /// A TOML file (a plugins file) is not TOML.
    #[error("{}: malformed TOML: {message}", file.display())]
    Toml {
        /// The file.
        file: PathBuf,
        /// What is wrong and where, in the parser's words.
        message: String,
    },
    /// The JSON is not a chain file.
    #[error("{}: {issue}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// What is wrong, and where.
        issue: SpecIssue,
    },
}

/// Reads and parses the chain file at `file`, element by element: a long
/// workflow is never in memory whole.
pub fn load(file: &Path) -> Result<WorkflowSpec, SpecError> {
    let reader = std::fs::File::open(file).map_err(|cause| SpecError::Read {
        file: file.to_path_buf(),
        cause,
    })?;
    read_from(reader, file, file.parent().unwrap_or(Path::new("")))
}

/// Reads a plugins file (`plugins.toml`): the same entries as a chain
/// file's `plugins`, in TOML (`math = "math.wasm"`, or a table with `path`,
/// `sha256` and `grants`); paths are resolved against the file's directory.
pub fn load_plugins(file: &Path) -> Result<BTreeMap<String, PluginRef>, SpecError> {
    let text = std::fs::read_to_string(file).map_err(|cause| SpecError::Read {
        file: file.to_path_buf(),
        cause,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|err| SpecError::Toml {
        file: file.to_path_buf(),
        message: err.to_string().trim_end().to_string(),
    })?;
    let value = serde_json::to_value(table).map_err(|err| SpecError::Toml {
        file: file.to_path_buf(),
        message: err.to_string(),
    })?;
    let base_dir = file.parent().unwrap_or(Path::new(""));
    plugins(&value, &JsonPath::root(), base_dir).map_err(|issue| SpecError::Invalid {
        file: file.to_path_buf(),
        issue,
    })
}

/// Reads a chain file from standard input (named `<stdin>` in errors);
/// plugin paths are resolved against the working directory.
pub fn load_stdin() -> Result<WorkflowSpec, SpecError> {
    read_from(std::io::stdin().lock(), Path::new("<stdin>"), Path::new(""))
}

/// Reads the chain file `file` from `reader`.
fn read_from(
    reader: impl std::io::Read,
    file: &Path,
    base_dir: &Path,
) -> Result<WorkflowSpec, SpecError> {
    let reader = std::io::BufReader::with_capacity(64 << 10, reader);
    document::read(serde_json::Deserializer::from_reader(reader), base_dir).map_err(|err| match err
    {
        ParseError::Syntax(err) if err.is_io() => SpecError::Read {
            file: file.to_path_buf(),
            cause: err.into(),
        },
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
#[non_exhaustive]
pub enum ParseError {
    /// Not JSON; serde's message gives the line and column.
    #[error("malformed JSON: {0}")]
    Syntax(serde_json::Error),
    /// JSON, but not a chain file.
    #[error("{0}")]
    Invalid(SpecIssue),
}

/// Parses chain-file text; plugin paths are resolved against `base_dir`.
pub fn parse(text: &str, base_dir: &Path) -> Result<WorkflowSpec, ParseError> {
    document::read(serde_json::Deserializer::from_str(text), base_dir)
}

/// Parses a canvas in native JSON form, as a task's replacement returns it.
pub(crate) fn parse_canvas(value: &Value) -> Result<Canvas, SpecIssue> {
    deferred::collecting(|| canvas::canvas(value, &JsonPath::root()))
}

/// The workflow of a top-level object whose keys `map` holds (all but
/// `workflow`'s value are read here), with its elements read already.
fn from_parts(
    map: &Map<String, Value>,
    workflow: Elements,
    base_dir: &Path,
) -> Result<WorkflowSpec, SpecIssue> {
    let root = JsonPath::root();
    let optional_string = |key: &str| -> Result<Option<String>, SpecIssue> {
        map.get(key)
            .map(|v| fields::string(v, &root.key(key)).map(str::to_string))
            .transpose()
    };
    let named = |key: &str| -> Result<Option<String>, SpecIssue> {
        let name = optional_string(key)?;
        if let Some(name) = &name {
            crate::names::check(name)
                .map_err(|err| SpecIssue::new(&root.key(key), format!("the {key} {err}")))?;
        }
        Ok(name)
    };
    let id = named("id")?;
    let tenant = named("tenant")?;

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
        crate::names::check(name)
            .map_err(|err| SpecIssue::new(&at, format!("a plugin name {err}")))?;
        if name == wfhost_canvas::pause::BUILTIN_PLUGIN {
            return Err(SpecIssue::new(
                &at,
                format!(
                    "the plugin name `{name}` is wfhost's own (its built-in `sleep` and `wait` steps): choose another"
                ),
            ));
        }
        let (path, sha256, grants) = match entry {
            Value::String(path) => (path.as_str(), None, Grants::default()),
            Value::Object(fields_map) => {
                fields::object(entry, &at, "a plugin", &["path", "sha256", "grants"])?;
                let path = fields_map
                    .get("path")
                    .ok_or_else(|| SpecIssue::new(&at, "a plugin needs a `path`"))
                    .and_then(|p| fields::string(p, &at.key("path")))?;
                let sha256 = fields_map
                    .get("sha256")
                    .map(|s| sha256_field(s, &at.key("sha256")))
                    .transpose()?;
                let grants = fields_map
                    .get("grants")
                    .map(|g| Grants::read(g, &at.key("grants"), base_dir))
                    .transpose()?
                    .unwrap_or_default()
                    .with_real_dirs();
                (path, sha256, grants)
            }
            other => {
                return Err(SpecIssue::new(
                    &at,
                    format!(
                        "expected a path or {{\"path\", \"sha256\", \"grants\"}}, found {}",
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
                grants,
            },
        );
    }
    Ok(plugins)
}

/// A `sha256` field: 64 hex digits, kept in lowercase.
fn sha256_field(value: &Value, at: &JsonPath) -> Result<String, SpecIssue> {
    let text = fields::string(value, at)?;
    if crate::sha256::is_hex(text) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(SpecIssue::new(at, "expected 64 hexadecimal digits"))
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
