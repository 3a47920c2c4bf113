//! `wfhost validate CHAIN.json`: every check `run` makes before anything
//! runs, without running anything.

use std::path::PathBuf;

use clap::Args;
use wfhost::executor::PreparedWorkflow;
use wfhost::spec;

use super::Finished;
use super::execute::CeilingArgs;

#[derive(Args)]
pub struct ValidateArgs {
    /// The chain file to check.
    chain: PathBuf,
    /// Print the findings as JSON: steps, plugins and warnings.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    ceilings: CeilingArgs,
}

pub async fn validate(args: ValidateArgs) -> anyhow::Result<Finished> {
    let spec = spec::load(&args.chain)?;
    let runtime = super::execute::cached_runtime()?;
    let workflow = PreparedWorkflow::prepare(&runtime, spec, args.ceilings.ceilings())
        .await
        .map_err(|err| anyhow::anyhow!("{} is not valid:\n{err}", args.chain.display()))?;
    for warning in workflow.warnings() {
        eprintln!("warning: {warning}");
    }
    let plugins = workflow
        .spec()
        .plugins
        .keys()
        .filter_map(|name| workflow.plugins().get(name));
    if args.json {
        let report = serde_json::json!({
            "valid": true,
            "steps": workflow.planned_steps(),
            "plugins": plugins
                .map(|plugin| serde_json::json!({"name": plugin.name(), "sha256": plugin.sha256()}))
                .collect::<Vec<_>>(),
            "warnings": workflow.warnings().iter().map(|warning| serde_json::json!({
                "step": warning.step, "task": warning.task, "message": warning.message,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(Finished::Succeeded);
    }
    let plugins: Vec<String> = plugins
        .map(|plugin| format!("{} (sha256 {})", plugin.name(), plugin.sha256()))
        .collect();
    println!(
        "{}: valid: {} steps; plugins: {}",
        args.chain.display(),
        workflow.planned_steps(),
        plugins.join(", ")
    );
    Ok(Finished::Succeeded)
}
