//! What `run`, `resume` and `retry` share: building the runtime, running a
//! workflow durably, and printing its outcome.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use wfhost::executor::{RunIdentity, RunMode, RunOptions, Workflow};
use wfhost::report::WorkflowStatus;
use wfhost::runtime::{Ceilings, ComponentCache, Invocation, LogRecord, Runtime};
use wfhost::spec::WorkflowSpec;
use wfhost::store::{Store, WorkflowRow};

use super::progress::Progress;
use super::{DbArgs, Finished};

/// What every command that runs workflows takes.
#[derive(Args)]
pub struct HostArgs {
    /// Print a report of the workflow and every step instead of its result.
    #[arg(long)]
    pub json: bool,
    /// How many attempts may run at once (group members run in parallel)
    /// [default: the number of cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: Option<u64>,
    #[command(flatten)]
    pub ceilings: CeilingArgs,
    #[command(flatten)]
    pub db: DbArgs,
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
    /// A runtime with these ceilings, showing guest logs on stderr.
    pub fn runtime(&self) -> anyhow::Result<Runtime> {
        Ok(self.apply(cached_runtime()?))
    }

    /// `runtime` with these ceilings, showing guest logs on stderr.
    fn apply(&self, runtime: Runtime) -> Runtime {
        runtime
            .with_log_sink(Arc::new(print_log))
            .with_ceilings(self.ceilings())
    }

    fn ceilings(&self) -> Ceilings {
        Ceilings {
            fuel: self.max_fuel,
            memory_bytes: self.max_memory_mb.map(|mb| mb.saturating_mul(1 << 20)),
            time_limit: self.max_time_limit,
        }
    }
}

/// A runtime that keeps compiled plugins in the user's cache directory (see
/// [`ComponentCache::default_location`]), so each is compiled once.
pub fn cached_runtime() -> anyhow::Result<Runtime> {
    let runtime = Runtime::new()?;
    Ok(match ComponentCache::default_location() {
        Some(cache) => runtime.with_component_cache(cache),
        None => runtime,
    })
}

/// A [`cached_runtime`] being started on a thread of its own. Starting one
/// (the engine, its instance pool, the linker) takes about a millisecond,
/// longer than anything else a command does before its first plugin load,
/// so the commands that run workflows start it as soon as the command line
/// is parsed, and open the store and read the chain file meanwhile.
pub struct StartingRuntime(std::io::Result<std::thread::JoinHandle<anyhow::Result<Runtime>>>);

impl StartingRuntime {
    /// Starts building the runtime.
    pub fn spawn() -> Self {
        StartingRuntime(
            std::thread::Builder::new()
                .name("wfhost-start".into())
                .spawn(cached_runtime),
        )
    }

    /// The runtime, once started.
    fn join(self) -> anyhow::Result<Runtime> {
        let thread = self
            .0
            .context("cannot start a thread to start the runtime")?;
        thread
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("starting the runtime failed")))
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

impl HostArgs {
    /// How the run may use the machine.
    pub fn run_options(&self) -> RunOptions {
        match self.concurrency {
            Some(n) => RunOptions::with_concurrency(usize::try_from(n).unwrap_or(usize::MAX)),
            None => RunOptions::default(),
        }
    }

    /// Opens the store while `runtime` starts, and gives the runtime these
    /// ceilings and guest logs on stderr. Each takes about a millisecond,
    /// much of the store's spent waiting for redb's header to reach the
    /// disk. The store is one the process leaves with [`Store::exit`].
    pub fn open(&self, runtime: StartingRuntime) -> anyhow::Result<(Runtime, Store)> {
        let store = self.db.open().map(Store::for_process_exit);
        let runtime = runtime.join();
        Ok((self.ceilings.apply(runtime?), store?))
    }
}

/// Loads the workflow's plugins, runs it durably and prints its outcome.
pub async fn execute(
    host: &HostArgs,
    runtime: &Runtime,
    store: &Store,
    spec: WorkflowSpec,
    identity: &RunIdentity,
    mode: RunMode,
) -> anyhow::Result<Finished> {
    let workflow = Workflow::prepare(runtime, spec)
        .await
        .map_err(|err| anyhow::anyhow!("workflow {} cannot run: {err}", identity.id))?;
    let progress = Progress::new(workflow.planned_steps() as u64);
    let row = workflow
        .run(
            runtime,
            store,
            identity,
            mode,
            &host.run_options(),
            &progress,
        )
        .await;
    progress.finish();
    report(store, &row?, host.json)
}

/// Prints a workflow's outcome: its result (or, with `json`, the whole
/// report) on stdout, its error on stderr.
pub fn report(store: &Store, row: &WorkflowRow, json: bool) -> anyhow::Result<Finished> {
    let mut stdout = std::io::stdout().lock();
    if json {
        if let Some(report) = store.report(&row.tenant, &row.id)? {
            serde_json::to_writer_pretty(&mut stdout, &report)?;
            writeln!(stdout)?;
        }
    } else if let Some(result) = &row.result {
        serde_json::to_writer(&mut stdout, result)?;
        writeln!(stdout)?;
    }
    stdout.flush()?;
    match row.status {
        WorkflowStatus::Succeeded => Ok(Finished::Succeeded),
        WorkflowStatus::Running => {
            eprintln!("error: workflow {} did not finish", row.id);
            Ok(Finished::WorkflowFailed)
        }
        WorkflowStatus::Cancelled => {
            eprintln!("error: workflow {} was cancelled", row.id);
            Ok(Finished::WorkflowFailed)
        }
        WorkflowStatus::Failed => {
            if let Some(error) = &row.error {
                eprintln!(
                    "error: workflow {} failed at step {} ({}) after {} attempt{}: {}: {}",
                    row.id,
                    error.step,
                    error.task,
                    error.attempts,
                    if error.attempts == 1 { "" } else { "s" },
                    error.kind,
                    error.message
                );
            }
            Ok(Finished::WorkflowFailed)
        }
    }
}
