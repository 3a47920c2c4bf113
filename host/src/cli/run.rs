//! `wfhost run CHAIN.json`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use wfhost::executor::{Observer, RunIdentity, Workflow};
use wfhost::report::{StepRecord, WorkflowStatus};
use wfhost::runtime::{Ceilings, Invocation, LogRecord, Runtime};
use wfhost::spec;

use super::Finished;

#[derive(Args)]
pub struct RunArgs {
    /// The chain file describing the workflow.
    chain: PathBuf,
    /// The workflow's id (overrides the file's `id`).
    #[arg(long)]
    id: Option<String>,
    /// The tenant the workflow runs for (overrides the file's `tenant`).
    #[arg(long)]
    tenant: Option<String>,
    /// Print a report of the workflow and every step instead of the result.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    ceilings: CeilingArgs,
}

/// Host-wide caps on what any step may be given.
#[derive(Args)]
pub struct CeilingArgs {
    /// The most fuel any attempt may have.
    #[arg(long, value_name = "UNITS")]
    max_fuel: Option<u64>,
    /// The most memory any attempt may have, in MiB.
    #[arg(long, value_name = "MIB")]
    max_memory_mb: Option<u64>,
    /// The longest wall-clock limit any attempt may have, in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    max_time_limit: Option<Duration>,
}

impl CeilingArgs {
    pub fn ceilings(&self) -> Ceilings {
        Ceilings {
            fuel: self.max_fuel,
            memory_bytes: self.max_memory_mb.map(|mb| mb.saturating_mul(1 << 20)),
            time_limit: self.max_time_limit,
        }
    }
}

fn positive_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|err| format!("{err}"))?;
    if seconds > 0.0 {
        Duration::try_from_secs_f64(seconds).map_err(|err| err.to_string())
    } else {
        Err("must be above 0".to_string())
    }
}

/// Reports retries on stderr; results go to stdout.
struct StderrObserver;

impl Observer for StderrObserver {
    fn retrying(&self, record: &StepRecord, reason: &str, delay: Duration) {
        eprintln!(
            "step {} ({}): attempt {} asked for a retry ({reason}); next attempt in {:.3} s",
            record.id,
            record.task,
            record.attempts,
            delay.as_secs_f64()
        );
    }
}

fn print_log(invocation: &Invocation, record: &LogRecord) {
    eprintln!(
        "step {} ({}.{}) {}: {}",
        invocation.step_id,
        invocation.plugin,
        invocation.task,
        record.level.as_str(),
        record.message
    );
}

/// A fresh id: milliseconds since the epoch and randomness, in hex.
fn new_workflow_id() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("wf-{millis:x}-{:08x}", fastrand::u32(..))
}

pub async fn run(args: RunArgs) -> anyhow::Result<Finished> {
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
    let runtime = Runtime::new()?
        .with_log_sink(Arc::new(print_log))
        .with_ceilings(args.ceilings.ceilings());
    let workflow = Workflow::prepare(&runtime, spec)
        .await
        .with_context(|| format!("{} cannot run", args.chain.display()))?;
    let report = workflow.run(&runtime, &identity, &StderrObserver).await;

    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else if let Some(result) = &report.result {
        serde_json::to_writer(&mut stdout, result)?;
        writeln!(stdout)?;
    }
    stdout.flush()?;

    match (&report.status, &report.error) {
        (WorkflowStatus::Failed, Some(error)) => {
            eprintln!(
                "error: workflow {} failed at step {} ({}) after {} attempt{}: {}: {}",
                report.id,
                error.step,
                error.task,
                error.attempts,
                if error.attempts == 1 { "" } else { "s" },
                error.kind,
                error.message
            );
            Ok(Finished::WorkflowFailed)
        }
        (WorkflowStatus::Failed, None) => Ok(Finished::WorkflowFailed),
        (WorkflowStatus::Succeeded, _) => Ok(Finished::Succeeded),
    }
}
