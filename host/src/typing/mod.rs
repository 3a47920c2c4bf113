//! Types end to end: what a task takes and returns, as its plugin
//! describes it in JSON Schema (`wfhost:task/schemas`), checked before a
//! workflow runs — the arguments it is written with, and the results that
//! flow from step to step — and shown by `wfhost inspect`. Only what a
//! schema states is checked: a task whose types are not known takes
//! anything.

mod describe;
mod fits;
mod flow;

use serde_json::{Map, Value, json};

pub use describe::{schema_text, value_text};
pub use fits::{Misfit, misfit};
pub use flow::never_fits;

use crate::runtime::TaskInfo;

/// The JSON Schema dialect the documents name.
const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// A task's parameters as one JSON Schema document: the object of its
/// keyword arguments (every parameter a keyword may name), with those it
/// needs required. `None` where the plugin does not describe the task.
pub fn input_document(task: &TaskInfo) -> Option<Value> {
    let schema = task.schema.as_ref()?;
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (param, param_schema) in task.params.iter().zip(&schema.params) {
        // Python's `/` and `*` markers, `*args` and `**kwargs` are no keyword.
        if param.name.starts_with('*') || param.name == "/" {
            continue;
        }
        properties.insert(param.name.clone(), param_schema.clone());
        if !param.optional {
            required.push(Value::String(param.name.clone()));
        }
    }
    Some(json!({
        "$schema": DIALECT,
        "title": format!("{}: arguments", task.name),
        "type": "object",
        "properties": properties,
        "required": required,
    }))
}

/// What a task returns, as one JSON Schema document; `None` where the
/// plugin does not describe the task.
pub fn output_document(task: &TaskInfo) -> Option<Value> {
    let schema = task.schema.as_ref()?;
    let mut document = match schema.returns.as_ref() {
        Value::Object(returns) => returns.clone(),
        Value::Bool(false) => Map::from_iter([("not".to_string(), json!({}))]),
        _ => Map::new(),
    };
    document.insert("$schema".into(), json!(DIALECT));
    document.insert("title".into(), json!(format!("{}: result", task.name)));
    Some(Value::Object(document))
}
