//! `wfhost inspect PLUGIN.wasm`.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::Finished;
use wfhost::grants::grant_for_import;

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
        let listing = json!({
            "name": plugin.name(),
            "path": plugin.path(),
            "sha256": plugin.sha256(),
            "tasks": plugin.tasks(),
            "imports": imports,
        });
        serde_json::to_writer_pretty(&mut out, &listing)?;
        writeln!(out)?;
        return Ok(Finished::Succeeded);
    }
    writeln!(out, "{} ({})", plugin.name(), plugin.path().display())?;
    writeln!(out, "sha256 {}", plugin.sha256())?;
    for task in plugin.tasks() {
        let params: Vec<String> = task
            .params
            .iter()
            .map(|p| match p.type_name.as_str() {
                // Python's `/` and `*` markers.
                "" => p.name.clone(),
                ty if p.optional && !ty.starts_with("Option<") && !p.name.starts_with('*') => {
                    format!("{}: {ty} = …", p.name)
                }
                ty => format!("{}: {ty}", p.name),
            })
            .collect();
        writeln!(out)?;
        writeln!(
            out,
            "  {}.{}({})",
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
