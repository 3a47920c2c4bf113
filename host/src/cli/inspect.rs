//! `wfhost inspect PLUGIN.wasm`.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::Finished;

pub async fn inspect(path: &Path, as_json: bool) -> anyhow::Result<Finished> {
    let name = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".to_string());
    let runtime = super::execute::cached_runtime()?;
    let plugin = runtime.load_plugin(&name, path, None).await?;

    let mut out = std::io::stdout().lock();
    if as_json {
        let listing = json!({
            "name": plugin.name(),
            "path": plugin.path(),
            "sha256": plugin.sha256(),
            "tasks": plugin.tasks(),
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
            .map(|p| format!("{}: {}", p.name, p.type_name))
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
    Ok(Finished::Succeeded)
}
