//! Command-line parsing and dispatch, and the mapping of outcomes to exit
//! statuses: 0 succeeded, 1 the workflow failed, 2 the input was wrong.

mod build_py;
mod cache;
mod call;
mod check;
mod execute;
mod inspect;
mod logging;
mod new;
mod paths;
mod progress;
mod purge;
mod resume;
mod run;
mod schedule;
mod serve;
mod signal;
mod status;
mod tenant;
mod ui;
mod validate;
mod watch;
mod worker;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wfhost::Host;
use wfhost::records::WorkflowStatus;
use wfhost::store::{Durability, Store};

/// Sandboxed workflows of WebAssembly tasks: Celery's chains, run as components.
#[derive(Parser)]
#[command(name = "wfhost", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log more of what the host does, on stderr (`-v`, `-vv`, `-vvv`);
    /// `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log less (`-q`: errors only; `-qq`: nothing).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    quiet: u8,
}

/// Where the state database is.
#[derive(Args)]
pub struct DbArgs {
    /// The state database [default: wfhost/state.redb in the user's data directory]
    #[arg(long, env = "WFHOST_DB", value_name = "PATH")]
    db: Option<PathBuf>,
}

impl DbArgs {
    fn path(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(paths::default_database)
    }

    /// Opens the state database, which must exist, for commands that only
    /// look at what is on record: a file that cannot be written (read-only
    /// media) is read all the same.
    pub fn open_to_read(&self) -> anyhow::Result<Store> {
        Ok(Store::open_to_read(&self.path())?)
    }

    /// A host over the state database, made if it is missing, for the
    /// commands that make schedules and fire them.
    pub fn host(&self) -> anyhow::Result<Host> {
        let store = Store::open_with(&self.path(), Durability::default())?;
        Ok(Host::new(execute::cached_runtime()?, store))
    }

    /// A host over the existing state database, for commands that change
    /// what is on record and run nothing.
    pub fn host_of_existing(&self) -> anyhow::Result<Host> {
        let store = Store::open_existing(&self.path(), Durability::Strict)?;
        Ok(Host::new(execute::cached_runtime()?, store))
    }
}

/// Where the state database of commands that run workflows is, and how
/// their steps' records reach the disk.
#[derive(Args)]
pub struct RunDbArgs {
    #[command(flatten)]
    db: DbArgs,
    /// `grouped` (the default): a pure step's record is flushed while the
    /// next step runs, many in one commit; effectful steps (holding a
    /// grant) and a workflow's end wait for everything before them to be
    /// on the disk. A crash loses only pure steps not yet flushed, which
    /// `resume` runs again. `strict`: every step's record is on the disk
    /// before the next starts (`immediate` is its old name).
    /// `batched[:MS]`: like `grouped`, committing pure steps at most every
    /// MS milliseconds (default 50), for disks whose flush is slow.
    #[arg(
        long,
        env = "WFHOST_DURABILITY",
        value_name = "MODE",
        default_value = "grouped",
        value_parser = parse_durability
    )]
    durability: Durability,
    /// Remove workflows that ended at least this long ago (`7d`, `12h`),
    /// as Celery's `result_expires` does; looked for at most once an hour,
    /// by whichever process comes first.
    #[arg(long, env = "WFHOST_RETENTION", value_name = "AGE", value_parser = purge::parse_age)]
    retention: Option<Duration>,
}

impl RunDbArgs {
    /// Opens the state database, making it if there is none.
    pub fn open(&self) -> anyhow::Result<Store> {
        Ok(Store::open_with(&self.db.path(), self.durability)?)
    }

    /// Removes what the retention says is due, if one is set. A failure
    /// is reported, not fatal: the workflows just ran.
    pub async fn expire(&self, host: &Host) {
        if let Some(retention) = self.retention
            && let Err(err) = host.expire(retention).await
        {
            eprintln!("warning: removing workflows past the retention failed: {err}");
        }
    }
}

/// The window of `--durability batched` without a number.
const DEFAULT_FLUSH_WINDOW: Duration = Duration::from_millis(50);

/// The longest window `--durability batched:MS` takes.
const MAX_FLUSH_WINDOW_MS: u64 = 600_000;

fn parse_durability(text: &str) -> Result<Durability, String> {
    let (mode, window) = match text.split_once(':') {
        Some((mode, window)) => (mode, Some(window)),
        None => (text, None),
    };
    match (mode, window) {
        ("grouped", None) => Ok(Durability::Grouped),
        ("strict" | "immediate", None) => Ok(Durability::Strict),
        ("batched", None) => Ok(Durability::Batched {
            window: DEFAULT_FLUSH_WINDOW,
        }),
        ("batched", Some(ms)) => match ms.parse::<u64>() {
            Ok(ms) if (1..=MAX_FLUSH_WINDOW_MS).contains(&ms) => Ok(Durability::Batched {
                window: Duration::from_millis(ms),
            }),
            _ => Err(format!(
                "`{ms}` is not a number of milliseconds from 1 to {MAX_FLUSH_WINDOW_MS}"
            )),
        },
        _ => Err("expected `grouped`, `strict`, `batched` or `batched:MS`".to_string()),
    }
}

/// What the commands that look over many workflows take.
#[derive(Args)]
pub struct Overview {
    /// Only this tenant's workflows.
    #[arg(long)]
    tenant: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

/// Which tenant's workflows a command addresses.
#[derive(Args)]
pub struct TenantArg {
    /// The tenant the workflow belongs to.
    #[arg(long, default_value = "default")]
    tenant: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the workflow of a chain file and print its result as one JSON line.
    Run(run::RunArgs),
    /// Run one task of a plugin, ad hoc, as a one-step workflow (Celery's
    /// `celery call`), and print its result.
    Call(call::CallArgs),
    /// Show a workflow: how far it has come, what runs, and its steps.
    Status {
        /// The workflow's id.
        id: String,
        #[command(flatten)]
        tenant: TenantArg,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Show every step, not only the latest.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print a workflow's event log.
    Events {
        /// The workflow's id.
        id: String,
        #[command(flatten)]
        tenant: TenantArg,
        /// Print each event as a JSON object on a line of its own.
        #[arg(long)]
        json: bool,
        /// Keep printing events as they are recorded, until the workflow
        /// no longer runs.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List workflows (`--status failed` is the dead-letter view).
    List {
        /// Only workflows with this status: running, cut_off, succeeded,
        /// failed or cancelled.
        #[arg(long)]
        status: Option<WorkflowStatus>,
        #[command(flatten)]
        over: Overview,
    },
    /// What each tenant's workflows have used: steps, attempts, fuel, time.
    Usage {
        #[command(flatten)]
        over: Overview,
    },
    /// Continue workflows that a crash or a stop cut off.
    Resume(resume::ResumeArgs),
    /// Cancel a workflow: one that runs (in any process) stops, one that a
    /// crash or a stop cut off is recorded as cancelled and `resume` leaves
    /// it.
    Cancel(resume::CancelArgs),
    /// Re-drive a failed workflow from its failed step.
    Retry(resume::RetryArgs),
    /// Send a workflow a signal: the payload its `wait` for NAME returns.
    Signal(signal::SignalArgs),
    /// Run a chain file at each tick of a cron expression or an interval.
    Schedule {
        #[command(subcommand)]
        command: schedule::ScheduleCommand,
    },
    /// Fire the due schedules of the database, until stopped (as `serve`
    /// and `ui` do besides their own work).
    Scheduler(schedule::SchedulerArgs),
    /// Check that the state file is whole: redb's check of its pages,
    /// every record's checksum, the journal's agreement with itself and
    /// the workflows' rows. The file is not changed. Exit 0 clean, 1
    /// damage found, 2 the file cannot be read.
    Check(check::CheckArgs),
    /// Remove a workflow and every record of it.
    Rm(purge::RmArgs),
    /// Remove workflows by age, status and tenant (by default, every one
    /// that ended).
    Purge(purge::PurgeArgs),
    /// Check a chain file: plugins load, tasks exist, arguments bind and
    /// fit their types, results can flow into the next steps, limits are
    /// within the ceilings. Nothing runs.
    Validate(validate::ValidateArgs),
    /// Serve many tenants' workflows over HTTP, each tenant with its own key,
    /// plugins and limits.
    Serve(serve::ServeArgs),
    /// Show the dashboard of a local database in the browser: every
    /// tenant's workflows, for whoever runs it (a key made for this run
    /// rides in the printed address).
    Ui(ui::UiArgs),
    /// Serve Celery's task messages from Redis: a worker of a fleet that
    /// runs an unmodified Celery client's chains, groups and chords on
    /// sandboxed plugins (`wfhost worker status` shows the fleet).
    Worker(worker::WorkerArgs),
    /// Print a shell's completion script for wfhost (to be sourced, or
    /// installed where the shell loads completions from).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Build a Python tasks module (written as for Celery, with the
    /// `wfhost_task` SDK) into a plugin component, with componentize-py.
    BuildPy(build_py::BuildPyArgs),
    /// Look after the cache of compiled components.
    Cache(cache::CacheArgs),
    /// Start a plugin: a Rust crate or a Python module with two tasks, and
    /// a chain file that runs them once it is built.
    New(new::NewArgs),
    /// Add, re-key, remove and list the tenants of `serve`'s policy file.
    Tenant {
        #[command(subcommand)]
        command: tenant::TenantCommand,
    },
    /// List the tasks a plugin component exports: parameters, defaults,
    /// return types and docs (`--json`: their types as JSON Schema).
    Inspect {
        /// The plugin component (.wasm).
        plugin: PathBuf,
        /// Print the listing as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The characters of an error message printed at most.
const MOST_ERROR_CHARS: usize = 64 << 10;

/// `wfhost completions SHELL`.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<Finished> {
    use clap::CommandFactory;
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut Cli::command(), "wfhost", &mut out);
    out.flush()?;
    Ok(Finished::Succeeded)
}

/// Whether `err` comes from writing to a pipe whose reader has closed it.
fn reader_is_gone(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let kind = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| cause.downcast_ref::<serde_json::Error>()?.io_error_kind());
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// How a command ended, when it did not fail on its input.
pub enum Finished {
    Succeeded,
    WorkflowFailed,
}

pub fn main() -> ExitCode {
    wfhost::store::hush_caught_redb_panics();
    let cli = Cli::parse();
    let default_level = match &cli.command {
        Command::Worker(args) => args
            .log_level()
            .unwrap_or(tracing::level_filters::LevelFilter::INFO),
        Command::Serve(_) => tracing::level_filters::LevelFilter::INFO,
        _ => tracing::level_filters::LevelFilter::WARN,
    };
    logging::start(default_level, cli.verbose, cli.quiet);
    // Started before tokio, so that the engine's setup overlaps tokio's
    // start as well as the store's open (see `StartingRuntime`).
    let starting = match cli.command {
        Command::Run(_) | Command::Call(_) | Command::Resume(_) | Command::Retry(_) => {
            Some(execute::StartingRuntime::spawn())
        }
        _ => None,
    };
    let starting = || starting.unwrap_or_else(execute::StartingRuntime::spawn);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(wfhost::executor::cores())
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args, starting()).await,
            Command::Call(args) => call::call(args, starting()).await,
            Command::Status {
                id,
                tenant,
                json,
                all,
                db,
            } => status::status(&db.open_to_read()?, &tenant.tenant, &id, json, all),
            Command::Events {
                id,
                tenant,
                json,
                follow,
                db,
            } => status::events(&db.open_to_read()?, &tenant.tenant, &id, json, follow).await,
            Command::List { status, over } => status::list(
                &over.db.open_to_read()?,
                over.tenant.as_deref(),
                status,
                over.json,
            ),
            Command::Usage { over } => {
                status::usage(&over.db.open_to_read()?, over.tenant.as_deref(), over.json)
            }
            Command::Resume(args) => resume::resume(args, starting()).await,
            Command::Retry(args) => resume::retry(args, starting()).await,
            Command::Cancel(args) => resume::cancel(args).await,
            Command::Signal(args) => signal::signal(args).await,
            Command::Schedule { command } => schedule::schedule(command).await,
            Command::Scheduler(args) => schedule::scheduler(args).await,
            Command::Check(args) => check::check(args),
            Command::Rm(args) => purge::rm(args).await,
            Command::Purge(args) => purge::purge(args).await,
            Command::Validate(args) => validate::validate(args).await,
            Command::Inspect { plugin, json } => inspect::inspect(&plugin, json).await,
            Command::Completions { shell } => completions(shell),
            Command::BuildPy(args) => build_py::build_py(args),
            Command::Cache(args) => cache::cache(args),
            Command::New(args) => new::new(args),
            Command::Tenant { command } => tenant::tenant(command),
            Command::Serve(args) => serve::serve(args).await,
            Command::Ui(args) => ui::ui(args).await,
            Command::Worker(args) => worker::worker(args).await,
        }
    });
    match outcome {
        Ok(Finished::Succeeded) => ExitCode::SUCCESS,
        Ok(Finished::WorkflowFailed) => ExitCode::from(1),
        // Whoever reads the output stopped reading (`wfhost status | head`):
        // what is left to print is not wanted, as for any Unix tool.
        Err(err) if reader_is_gone(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // An error names what was wrong in the input, which may be
            // huge; what is past this is counted, not printed.
            let message = format!("{err:#}");
            eprintln!(
                "error: {}",
                wfhost::text::clipped(&message, MOST_ERROR_CHARS)
            );
            ExitCode::from(2)
        }
    }
}
