//! `wfhost resume [ID | --all]`, `wfhost retry ID` and `wfhost cancel ID`.

use std::collections::BTreeMap;
use std::path::PathBuf;

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
    /// Load plugin NAME from PATH (a build with the fix) instead of the
    /// build the workflow was pinned to; may be given for several plugins.
    #[arg(long = "plugin", value_name = "NAME=PATH", value_parser = plugin_file)]
    plugins: Vec<(String, PathBuf)>,
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
        let what = match row.status {
            WorkflowStatus::Cancelled => "it was cancelled",
            WorkflowStatus::Succeeded => "it succeeded",
            WorkflowStatus::Failed => {
                "it failed (`wfhost retry` runs it again from its failed step)"
            }
            _ => "it runs",
        };
        format!("workflow {} is not cut off: {what}", row.id)
    })
    .await
}

pub async fn resume(args: ResumeArgs, runtime: StartingRuntime) -> anyhow::Result<Finished> {
    let host = args.host.open(runtime)?;
    let identities = match &args.id {
        Some(id) => vec![RunIdentity::new(&args.tenant.tenant, id)],
        None => host
            .list(None, Some(WorkflowStatus::CutOff))?
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
    args.host.db.expire(&host).await;
    host.exit();
    Ok(finished)
}

pub async fn retry(args: RetryArgs, runtime: StartingRuntime) -> anyhow::Result<Finished> {
    let host = args.host.open(runtime)?;
    let identity = RunIdentity::new(&args.tenant.tenant, &args.id);
    let mut plugins = BTreeMap::new();
    for (name, path) in args.plugins.iter().cloned() {
        if plugins.insert(name.clone(), path).is_some() {
            anyhow::bail!("--plugin {name}=… is given twice");
        }
    }
    let begun = host.begin(identity, Intent::Retry { plugins }).await?;
    let finished = execute::execute(&args.host, &host, begun, |row| {
        format!("workflow {} {}", row.id, row.status.as_str())
    })
    .await;
    args.host.db.expire(&host).await;
    host.exit();
    finished
}

/// `NAME=PATH`, as `--plugin` takes it.
fn plugin_file(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("expected NAME=PATH, found `{text}`")),
    }
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

/// The longest `cancel` waits for a workflow another process runs to end.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Cancels a workflow: one that runs, here or in another process, stops
/// (this waits until it has); one that a crash or a stop cut off is
/// recorded as cancelled, so that `resume` leaves it.
pub async fn cancel(args: CancelArgs) -> anyhow::Result<Finished> {
    let host = args.db.host_of_existing()?;
    let identity = RunIdentity::new(&args.tenant.tenant, &args.id);
    let row = match host.cancel(&identity).await? {
        Cancellation::AlreadyEnded(row) if row.status == WorkflowStatus::Cancelled => {
            eprintln!("workflow {} already cancelled", row.id);
            return Ok(Finished::Succeeded);
        }
        Cancellation::AlreadyEnded(row) => anyhow::bail!(
            "workflow {} already {}: there is nothing to cancel",
            row.id,
            row.status.as_str()
        ),
        Cancellation::Cancelled(row) => row,
        Cancellation::Requested(_) => {
            let row = execute::wait_for_end(&host, &identity, Some(CANCEL_WAIT)).await?;
            if row.status == WorkflowStatus::CutOff {
                // Its process ended before it answered: cancel it here.
                return Box::pin(cancel(args)).await;
            }
            row
        }
        _ => anyhow::bail!("this wfhost cannot tell what the cancel did"),
    };
    match row.status {
        WorkflowStatus::Cancelled => {
            eprintln!("workflow {} cancelled", row.id);
            Ok(Finished::Succeeded)
        }
        WorkflowStatus::Running => anyhow::bail!(
            "workflow {}: cancel requested; it is still running after {} s",
            row.id,
            CANCEL_WAIT.as_secs()
        ),
        // It ended otherwise before the request reached it.
        status => anyhow::bail!(
            "workflow {} {} before it could be cancelled",
            row.id,
            status.as_str()
        ),
    }
}
