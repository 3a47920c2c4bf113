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
    #[command(flatten)]
    ceilings: CeilingArgs,
}

pub async fn validate(args: ValidateArgs) -> anyhow::Result<Finished> {
    let spec = spec::load(&args.chain)?;
    let runtime = super::execute::cached_runtime()?;
    let workflow = PreparedWorkflow::prepare(&runtime, spec, args.ceilings.ceilings())
        .await
        .map_err(|err| anyhow::anyhow!("{} is not valid:\n{err}", args.chain.display()))?;
    let plugins: Vec<String> = workflow
        .spec()
        .plugins
        .keys()
        .filter_map(|name| workflow.plugins().get(name))
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
