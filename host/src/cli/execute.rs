//! What `run`, `resume` and `retry` share: building the host, running a
//! workflow durably, and printing its outcome.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use wfhost::executor::MAX_CONCURRENCY;
use wfhost::records::{LogRecord, WorkflowRow, WorkflowStatus};
use wfhost::runtime::{Ceilings, ComponentCache, Invocation, Runtime};
use wfhost::{Begun, Host, RunOptions};

use super::progress::Progress;
use super::{Finished, RunDbArgs};

/// What every command that runs workflows takes.
#[derive(Args)]
pub struct HostArgs {
    /// Print a report of the workflow and every step instead of its result.
    #[arg(long)]
    pub json: bool,
    /// How many attempts may run at once (group members run in parallel),
    /// at most 65536 [default: the number of cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_CONCURRENCY as u64))]
    pub concurrency: Option<u64>,
    #[command(flatten)]
    pub ceilings: CeilingArgs,
    #[command(flatten)]
    pub db: RunDbArgs,
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
    /// The ceilings these arguments set.
    pub fn ceilings(&self) -> Ceilings {
        Ceilings::at_most(self.max_fuel, self.max_memory_mb, self.max_time_limit)
    }
}

/// The user's component cache (see [`super::paths::component_cache`]),
/// with its cap, if there is a place for one.
pub fn component_cache() -> anyhow::Result<Option<ComponentCache>> {
    let Some(dir) = super::paths::component_cache() else {
        return Ok(None);
    };
    let cache = ComponentCache::new(dir);
    Ok(Some(match super::paths::component_cache_max()? {
        Some(max) => cache.with_max_bytes(max),
        None => cache,
    }))
}

/// A runtime that keeps compiled plugins in the user's component cache, so
/// each is compiled once.
pub fn cached_runtime() -> anyhow::Result<Runtime> {
    let runtime =
        Runtime::new()?.with_compile_notice(std::sync::Arc::new(super::progress::compiling));
    Ok(match component_cache()? {
        Some(cache) => runtime.with_component_cache(cache),
        None => runtime,
    })
}

/// A [`cached_runtime`] being started on a thread of its own. Starting one
/// (the engine, its instance pool, the linker) takes longer than anything
/// else a command does before its first plugin load, so the commands that
/// run workflows start it as soon as the command line is parsed, and open
/// the store and read the chain file meanwhile.
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
            Some(n) => RunOptions::new().concurrency(usize::try_from(n).unwrap_or(usize::MAX)),
            None => RunOptions::new(),
        }
    }

    /// The host: opens the store while `runtime` starts (each takes about
    /// as long, much of the store's spent waiting for redb's header to
    /// reach the disk), with these ceilings and guest logs on stderr. The
    /// host is one the process leaves with [`Host::exit`].
    pub fn open(&self, runtime: StartingRuntime) -> anyhow::Result<Host> {
        let store = self.db.open();
        let runtime = runtime.join()?.with_log_sink(Arc::new(print_log));
        Ok(Host::new(runtime, store?).with_ceilings(self.ceilings.ceilings()))
    }
}

/// Runs what `begun` made ready, durably, with a progress bar, and prints
/// its outcome. A workflow with nothing to run gets `nothing_to_run`'s
/// note on stderr and its stored outcome.
pub async fn execute(
    args: &HostArgs,
    host: &Host,
    begun: Begun,
    nothing_to_run: impl Fn(&WorkflowRow) -> String,
) -> anyhow::Result<Finished> {
    let ready = match begun {
        Begun::Ready(ready) => ready,
        Begun::Finished(row) => {
            eprintln!("{}", nothing_to_run(&row));
            return report(host, &row, args.json);
        }
        Begun::Running(row) => {
            eprintln!(
                "workflow {} is running in another process; waiting for its outcome",
                row.id
            );
            let row = wait_for_end(host, &wfhost::RunIdentity::of(&row), None).await?;
            return report(host, &row, args.json);
        }
        _ => anyhow::bail!("this wfhost cannot run what the host began"),
    };
    for warning in ready.warnings() {
        eprintln!("warning: {warning}");
    }
    let progress = Progress::new(ready.planned_steps() as u64);
    let identity = ready.identity().clone();
    let options = args.run_options();
    let run = host.execute(*ready, &options, &progress);
    let row = tokio::select! {
        row = run => row,
        _ = tokio::signal::ctrl_c() => {
            progress.finish();
            interrupted(&identity)
        }
    };
    progress.finish();
    report(host, &row?, args.json)
}

/// Ends the process on Ctrl-C, as a crash would end it (everything
/// recorded stays), saying how to go on.
fn interrupted(identity: &wfhost::RunIdentity) -> ! {
    let tenant = match identity.tenant.as_str() {
        "default" => String::new(),
        tenant => format!(" --tenant {tenant}"),
    };
    eprintln!(
        "interrupted: workflow {} is cut off; `wfhost resume {}{tenant}` continues it",
        identity.id, identity.id
    );
    // 128 + SIGINT, as a shell reports a command that Ctrl-C ended.
    std::process::exit(130)
}

/// How often a command that waits for a workflow another process runs
/// reads its row.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// Waits until workflow `identity` no longer runs (it ended, or its process
/// did, leaving it cut off), for at most `limit`, and returns its row.
pub async fn wait_for_end(
    host: &Host,
    identity: &wfhost::RunIdentity,
    limit: Option<Duration>,
) -> anyhow::Result<WorkflowRow> {
    let started = std::time::Instant::now();
    loop {
        let row = host.workflow(identity)?;
        let waited_enough = limit.is_some_and(|limit| started.elapsed() >= limit);
        if row.status != WorkflowStatus::Running || waited_enough {
            return Ok(row);
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// Prints a workflow's outcome: its result (or, with `json`, the whole
/// report) on stdout, its error on stderr.
pub fn report(host: &Host, row: &WorkflowRow, json: bool) -> anyhow::Result<Finished> {
    let mut stdout = std::io::stdout().lock();
    if json {
        let report = host.report(&wfhost::RunIdentity::of(row))?;
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else if let Some(result) = &row.result {
        serde_json::to_writer(&mut stdout, result)?;
        writeln!(stdout)?;
    }
    stdout.flush()?;
    match row.status {
        WorkflowStatus::Succeeded => Ok(Finished::Succeeded),
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
        WorkflowStatus::Cancelled => {
            eprintln!("error: workflow {} was cancelled", row.id);
            Ok(Finished::WorkflowFailed)
        }
        WorkflowStatus::CutOff => {
            eprintln!(
                "error: workflow {} was cut off; `wfhost resume {}` continues it",
                row.id, row.id
            );
            Ok(Finished::WorkflowFailed)
        }
        _ => {
            eprintln!("error: workflow {} did not finish", row.id);
            Ok(Finished::WorkflowFailed)
        }
    }
}
