//! `wfhost resume [ID | --all]` and `wfhost retry ID`.

use anyhow::bail;
use clap::Args;
use wfhost::executor::{RunIdentity, RunMode, stored_spec};
use wfhost::report::WorkflowStatus;
use wfhost::runtime::Runtime;
use wfhost::store::{Store, WorkflowRow};

use super::execute::{self, HostArgs, StartingRuntime};
use super::{Finished, TenantArg};

#[derive(Args)]
pub struct ResumeArgs {
    /// The workflow to continue.
    #[arg(required_unless_present = "all")]
    id: Option<String>,
    /// Continue every workflow that was cut off, of every tenant.
    #[arg(long, conflicts_with = "id")]
    all: bool,
    #[command(flatten)]
    tenant: TenantArg,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Args)]
pub struct RetryArgs {
    /// The failed workflow to re-drive from its failed step.
    id: String,
    #[command(flatten)]
    tenant: TenantArg,
    #[command(flatten)]
    host: HostArgs,
}

fn stored(store: &Store, tenant: &str, id: &str) -> anyhow::Result<WorkflowRow> {
    match store.workflow(tenant, id)? {
        Some(row) => Ok(row),
        None => bail!(
            "no workflow `{id}` of tenant `{tenant}` in {}",
            store.path().display()
        ),
    }
}

/// Runs a stored workflow again in `mode`.
async fn rerun(
    (runtime, store): (&Runtime, &Store),
    host: &HostArgs,
    row: &WorkflowRow,
    mode: RunMode,
) -> anyhow::Result<Finished> {
    let spec = stored_spec(store, row)?;
    let identity = RunIdentity {
        id: row.id.clone(),
        tenant: row.tenant.clone(),
    };
    execute::execute(host, runtime, store, spec, &identity, mode).await
}

pub async fn resume(args: ResumeArgs, runtime: StartingRuntime) -> anyhow::Result<Finished> {
    let (runtime, store) = args.host.open(runtime)?;
    let rows = match &args.id {
        Some(id) => {
            let row = stored(&store, &args.tenant.tenant, id)?;
            if row.status != WorkflowStatus::Running {
                eprintln!("workflow {id} is not cut off: it {}", row.status.as_str());
                return execute::report(&store, &row, args.host.json);
            }
            vec![row]
        }
        None => store.workflows(None, Some(WorkflowStatus::Running))?,
    };
    if rows.is_empty() {
        eprintln!("no workflow was cut off");
    }
    let mut finished = Finished::Succeeded;
    for row in &rows {
        eprintln!("resuming workflow {} (tenant {})", row.id, row.tenant);
        if let Finished::WorkflowFailed =
            rerun((&runtime, &store), &args.host, row, RunMode::Normal).await?
        {
            finished = Finished::WorkflowFailed;
        }
    }
    store.exit();
    Ok(finished)
}

pub async fn retry(args: RetryArgs, runtime: StartingRuntime) -> anyhow::Result<Finished> {
    let (runtime, store) = args.host.open(runtime)?;
    let row = stored(&store, &args.tenant.tenant, &args.id)?;
    if row.status != WorkflowStatus::Failed {
        bail!(
            "workflow {} {}; only a failed workflow can be retried",
            row.id,
            match row.status {
                WorkflowStatus::Running => "is still running (use `wfhost resume`)",
                WorkflowStatus::Cancelled => "was cancelled",
                _ => "succeeded",
            }
        );
    }
    let finished = rerun((&runtime, &store), &args.host, &row, RunMode::RetryFailed).await;
    store.exit();
    finished
}

#[derive(Args)]
pub struct CancelArgs {
    /// The workflow's id.
    id: String,
    #[command(flatten)]
    tenant: TenantArg,
    #[command(flatten)]
    db: super::DbArgs,
}

/// Marks a cut-off workflow cancelled, so that `resume` leaves it. While
/// this process holds the database no other runs it, so a workflow on
/// record as running is one a crash or a stop cut off.
pub async fn cancel(args: CancelArgs) -> anyhow::Result<Finished> {
    let store = args.db.open()?;
    let row = stored(&store, &args.tenant.tenant, &args.id)?;
    if row.status != WorkflowStatus::Running {
        eprintln!("workflow {} already {}", row.id, row.status.as_str());
        return Ok(Finished::Succeeded);
    }
    let row = wfhost::executor::cancel_stored(&store, row).await?;
    eprintln!("workflow {} {}", row.id, row.status.as_str());
    Ok(Finished::Succeeded)
}
