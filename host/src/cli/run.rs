//! `wfhost run CHAIN.json`.

use std::path::PathBuf;

use clap::Args;
use wfhost::executor::Continuation;
use wfhost::{Begun, Intent, RunIdentity, new_workflow_id, spec};

use super::Finished;
use super::execute::{self, HostArgs, StartingRuntime};

#[derive(Args)]
pub struct RunArgs {
    /// The chain file describing the workflow.
    chain: PathBuf,
    /// The workflow's id (overrides the file's `id`). An id that already
    /// ran is not run again: its stored outcome is reported, or, if it was
    /// cut off, it continues.
    #[arg(long)]
    id: Option<String>,
    /// The tenant the workflow runs for (overrides the file's `tenant`).
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    host: HostArgs,
}

pub async fn run(args: RunArgs, runtime: StartingRuntime) -> anyhow::Result<Finished> {
    let spec = spec::load(&args.chain)?;
    let identity = RunIdentity {
        id: args
            .id
            .or_else(|| spec.id.clone())
            .unwrap_or_else(new_workflow_id),
        tenant: args
            .tenant
            .or_else(|| spec.tenant.clone())
            .unwrap_or_else(|| "default".to_string()),
    };
    let host = args.host.open(runtime)?;
    let begun = host.begin(identity, Intent::Start(spec)).await?;
    if let Begun::Ready(ready) = &begun
        && *ready.continuation() == Continuation::Resume
    {
        eprintln!(
            "workflow {} was cut off; continuing it",
            ready.identity().id
        );
    }
    let finished = execute::execute(&args.host, &host, begun, |row| {
        format!(
            "workflow {} already {}; reporting its stored outcome",
            row.id,
            row.status.as_str()
        )
    })
    .await;
    args.host.db.expire(&host).await;
    host.exit();
    finished
}
