//! `wfhost run CHAIN.json`.

use std::path::PathBuf;

use clap::Args;
use wfhost::executor::Continuation;
use wfhost::spec::{self, WorkflowSpec};
use wfhost::{Begun, Intent, RunIdentity, new_workflow_id};

use super::Finished;
use super::execute::{self, HostArgs, StartingRuntime};

#[derive(Args)]
pub struct RunArgs {
    /// The chain file describing the workflow (`-`: read it from stdin,
    /// with plugin paths relative to the working directory).
    chain: PathBuf,
    #[command(flatten)]
    names: Naming,
    #[command(flatten)]
    host: HostArgs,
    #[command(flatten)]
    fleet: super::worker::FleetRun,
}

/// What names a workflow that starts.
#[derive(Args)]
pub struct Naming {
    /// The workflow's id (overrides the file's `id`). An id that already
    /// ran is not run again: its stored outcome is reported, or, if it was
    /// cut off, it continues.
    #[arg(long, value_parser = wfhost::names::parse)]
    id: Option<String>,
    /// The tenant the workflow runs for (overrides the file's `tenant`).
    #[arg(long, value_parser = wfhost::names::parse)]
    tenant: Option<String>,
}

pub async fn run(args: RunArgs, runtime: StartingRuntime) -> anyhow::Result<Finished> {
    if args.fleet.broker.is_some() {
        return super::worker::run_on_fleet(&args.chain, &args.fleet).await;
    }
    let spec = if args.chain.as_os_str() == "-" {
        spec::load_stdin()?
    } else {
        spec::load(&args.chain)?
    };
    start(&args.host, runtime, spec, args.names).await
}

/// Runs `spec` as the workflow `names` give (else the spec's id and
/// tenant, else a new id of tenant `default`), to its end, and prints its
/// outcome: what `run` and `call` do once they have a workflow.
pub async fn start(
    args: &HostArgs,
    runtime: StartingRuntime,
    spec: WorkflowSpec,
    names: Naming,
) -> anyhow::Result<Finished> {
    let identity = RunIdentity {
        id: names
            .id
            .or_else(|| spec.id.clone())
            .unwrap_or_else(new_workflow_id),
        tenant: names
            .tenant
            .or_else(|| spec.tenant.clone())
            .unwrap_or_else(|| "default".to_string()),
    };
    let host = args.open(runtime)?;
    let begun = host.begin(identity, Intent::Start(spec)).await?;
    if let Begun::Ready(ready) = &begun
        && *ready.continuation() == Continuation::Resume
    {
        eprintln!(
            "workflow {} was cut off; continuing it",
            ready.identity().id
        );
    }
    let finished = execute::execute(args, &host, begun, |row| {
        format!(
            "workflow {} already {}; reporting its stored outcome",
            row.id,
            row.status.as_str()
        )
    })
    .await;
    args.db.expire(&host).await;
    host.exit();
    finished
}
