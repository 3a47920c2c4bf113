//! `wfhost call PLUGIN.wasm TASK [ARGS…]`: one task, run ad hoc as a
//! one-step workflow, recorded like any other (Celery's `celery call`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde_json::{Map, Value, json};

use super::Finished;
use super::execute::{HostArgs, StartingRuntime};
use super::run::Naming;

#[derive(Args)]
pub struct CallArgs {
    /// The plugin component (.wasm).
    plugin: PathBuf,
    /// The task to run.
    task: String,
    /// Its arguments: each positional one as JSON (`2`, `'"text"'`,
    /// `'[1,2]'`), each keyword one as `NAME=JSON`.
    #[arg(value_name = "ARGS", allow_negative_numbers = true)]
    args: Vec<String>,
    #[command(flatten)]
    names: Naming,
    #[command(flatten)]
    host: HostArgs,
}

/// The name a plugin is given in the workflow: its file's stem, with
/// anything but letters, digits and `_` made `_`.
fn plugin_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "plugin".into()
    } else {
        name
    }
}

/// Positional and keyword arguments, from the command line's words.
fn arguments(words: &[String]) -> anyhow::Result<(Vec<Value>, Map<String, Value>)> {
    let (mut args, mut kwargs) = (Vec::new(), Map::new());
    for (index, word) in words.iter().enumerate() {
        let keyword = word.split_once('=').filter(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')
        });
        let (text, name) = match keyword {
            Some((name, value)) => (value, Some(name)),
            None => (word.as_str(), None),
        };
        let value: Value = serde_json::from_str(text).with_context(|| {
            format!(
                "argument {}: `{text}` is not JSON (a string is quoted: '\"{text}\"')",
                index + 1
            )
        })?;
        match name {
            Some(name) => {
                if kwargs.insert(name.to_string(), value).is_some() {
                    anyhow::bail!("argument {}: `{name}` is given twice", index + 1);
                }
            }
            None if !kwargs.is_empty() => {
                anyhow::bail!(
                    "argument {}: a positional argument after keyword arguments",
                    index + 1
                )
            }
            None => args.push(value),
        }
    }
    Ok((args, kwargs))
}

pub async fn call(args: CallArgs, runtime: StartingRuntime) -> anyhow::Result<Finished> {
    let name = plugin_name(&args.plugin);
    let path = std::path::absolute(&args.plugin).unwrap_or_else(|_| args.plugin.clone());
    let (positional, keyword) = arguments(&args.args)?;
    let document = json!({
        "plugins": {&name: path},
        "workflow": [{"task": format!("{name}.{}", args.task), "args": positional, "kwargs": keyword}],
    });
    let spec = wfhost::spec::parse(&document.to_string(), Path::new(""))
        .with_context(|| format!("cannot call {}.{}", name, args.task))?;
    super::run::start(&args.host, runtime, spec, args.names).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| word.to_string()).collect()
    }

    #[test]
    fn words_become_json_arguments() {
        let (args, kwargs) =
            arguments(&words(&["2", "[1,2]", "\"a=b\"", "x=3", "y={\"k\":1}"])).unwrap();
        assert_eq!(args, [json!(2), json!([1, 2]), json!("a=b")]);
        assert_eq!(Value::Object(kwargs), json!({"x": 3, "y": {"k": 1}}));
        let err = arguments(&words(&["hello"])).unwrap_err().to_string();
        assert!(err.contains("argument 1: `hello` is not JSON"), "{err}");
        assert!(arguments(&words(&["x=1", "2"])).is_err());
        assert!(arguments(&words(&["x=1", "x=2"])).is_err());
        assert_eq!(plugin_name(Path::new("dir/my-plugin.wasm")), "my_plugin");
    }
}
