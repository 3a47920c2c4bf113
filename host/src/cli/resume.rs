//! `wfhost resume [ID | --all]`, `wfhost retry ID` and `wfhost cancel ID`.

use clap::Args;
use wfhost::records::WorkflowStatus;
use wfhost::{Cancellation, Host, Intent, RunIdentity};

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

/// Continues one cut-off workflow.
async fn resume_one(
    args: &HostArgs,
    host: &Host,
    identity: RunIdentity,
) -> anyhow::Result<Finished> {
    let begun = host.begin(identity, Intent::Resume).await?;
    if let wfhost::Begun::Ready(ready) = &begun {
        let identity = ready.identity();
        eprintln!(
            "resuming workflow {} (tenant {})",
            identity.id, identity.tenant
        );
    }
    execute::execute(args, host, begun, |row| {
        format!(
            "workflow {} is not cut off: it {}",
            row.id,
            row.status.as_str()
        )
    })
    .await
}

pub async fn resume(args: ResumeArgs, runtime: StartingRuntime) -> anyhow::Result<Finished> {
    let host = args.host.open(runtime)?;
    let identities = match &args.id {
        Some(id) => vec![RunIdentity::new(&args.tenant.tenant, id)],
        None => host
            .list(None, Some(WorkflowStatus::Running))?
            .iter()
            .map(RunIdentity::of)
            .collect(),
    };
    if identities.is_empty() {
        eprintln!("no workflow was cut off");
    }
    let mut finished = Finished::Succeeded;
    for identity in identities {
        if let Finished::WorkflowFailed = resume_one(&args.host, &host, identity).await? {
            finished = Finished::WorkflowFailed;
        }
    }
    host.exit();
    Ok(finished)
}

pub async fn retry(args: RetryArgs, runtime: StartingRuntime) -> anyhow::Result<Finished> {
    let host = args.host.open(runtime)?;
    let identity = RunIdentity::new(&args.tenant.tenant, &args.id);
    let begun = host.begin(identity, Intent::Retry).await?;
    let finished = execute::execute(&args.host, &host, begun, |row| {
        format!("workflow {} {}", row.id, row.status.as_str())
    })
    .await;
    host.exit();
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
    let host = args.db.host()?;
    let identity = RunIdentity::new(&args.tenant.tenant, &args.id);
    match host.cancel(&identity).await? {
        Cancellation::AlreadyEnded(row) => {
            eprintln!("workflow {} already {}", row.id, row.status.as_str());
        }
        Cancellation::Cancelled(row) | Cancellation::Requested(row) => {
            eprintln!("workflow {} {}", row.id, row.status.as_str());
        }
        _ => {}
    }
    Ok(Finished::Succeeded)
}
