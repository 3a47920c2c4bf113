//! `wfhost inspect PLUGIN.wasm`.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::Finished;
use wfhost::grants::grant_for_import;
use wfhost::typing;

pub async fn inspect(path: &Path, as_json: bool) -> anyhow::Result<Finished> {
    let name = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".to_string());
    let runtime = super::execute::cached_runtime()?;
    let plugin = runtime.load_plugin(&name, path, None).await?;

    let mut out = std::io::stdout().lock();
    if as_json {
        let imports: Vec<_> = plugin
            .imports()
            .iter()
            .map(|interface| json!({"interface": interface, "grant": grant_for_import(interface)}))
            .collect();
        let tasks: Vec<_> = plugin
            .tasks()
            .iter()
            .map(|task| {
                json!({
                    "name": task.name,
                    "doc": task.doc,
                    "params": task.params,
                    "returns": task.returns,
                    "input_schema": typing::input_document(task),
                    "output_schema": typing::output_document(task),
                })
            })
            .collect();
        let listing = json!({
            "name": plugin.name(),
            "path": plugin.path(),
            "sha256": plugin.sha256(),
            "tasks": tasks,
            "imports": imports,
        });
        serde_json::to_writer_pretty(&mut out, &listing)?;
        writeln!(out)?;
        return Ok(Finished::Succeeded);
    }
    writeln!(out, "{} ({})", plugin.name(), plugin.path().display())?;
    writeln!(out, "sha256 {}", plugin.sha256())?;
    for task in plugin.tasks() {
        let schemas = task.schema.as_ref().map(|schema| &schema.params);
        let params: Vec<String> = task
            .params
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let default = schemas
                    .and_then(|schemas| schemas.get(index))
                    .and_then(|schema| schema.get("default"));
                match (p.type_name.as_str(), default) {
                    // Python's `/` and `*` markers.
                    ("", _) => p.name.clone(),
                    (ty, Some(default)) => format!("{}: {ty} = {default}", p.name),
                    (ty, None)
                        if p.optional && !ty.starts_with("Option<") && !p.name.starts_with('*') =>
                    {
                        format!("{}: {ty} = …", p.name)
                    }
                    (ty, None) => format!("{}: {ty}", p.name),
                }
            })
            .collect();
        let returns = match task.returns.as_str() {
            "" => String::new(),
            returns => format!(" -> {returns}"),
        };
        writeln!(out)?;
        writeln!(
            out,
            "  {}.{}({}){returns}",
            plugin.name(),
            task.name,
            params.join(", ")
        )?;
        if !task.doc.is_empty() {
            writeln!(out, "      {}", task.doc)?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "imports (what it could ask for; grants decide what it gets):"
    )?;
    for interface in plugin.imports() {
        match grant_for_import(interface) {
            Some(grant) => writeln!(out, "  {interface}  [grants: {grant}]")?,
            None => writeln!(out, "  {interface}")?,
        }
    }
    Ok(Finished::Succeeded)
}
