//! `wfhost worker`: serve Celery's task messages from Redis, and
//! `wfhost worker status`: what a fleet is doing.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use tracing::level_filters::LevelFilter;
use wfhost::runtime::Limits;
use wfhost::worker::{Worker, WorkerConfig};

use super::Finished;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkerArgs {
    #[command(subcommand)]
    action: Option<WorkerAction>,
    #[command(flatten)]
    run: RunWorker,
}

#[derive(Subcommand)]
enum WorkerAction {
    /// Show queue depths, claims under way and the live workers.
    Status(StatusArgs),
}

#[derive(Args)]
struct Broker {
    /// The Redis of the fleet, Celery's broker (and result backend):
    /// `redis://HOST:PORT/DB`.
    #[arg(long, env = "WFHOST_BROKER", value_name = "URL")]
    broker: String,
    /// The queues, comma-separated (Celery's `-Q`).
    #[arg(short = 'Q', long, value_delimiter = ',', default_value = "wfhost")]
    queues: Vec<String>,
}

#[derive(Args)]
struct StatusArgs {
    #[command(flatten)]
    broker: Broker,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RunWorker {
    #[command(flatten)]
    broker: Option<Broker>,
    /// Celery's result backend; results are committed with the messages
    /// they send, so it must be the broker's Redis.
    #[arg(long, value_name = "URL")]
    backend: Option<String>,
    /// The plugins served, in TOML: `math = "math.wasm"` (or a table with
    /// `path`, `sha256`, `grants`); task `math.add` is `add` of `math`.
    #[arg(long, value_name = "FILE")]
    plugins: Option<PathBuf>,
    /// Messages held claimed per slot, the running one included (Celery's
    /// `--prefetch-multiplier`, with its default): claims and commits,
    /// which wait on Redis, overlap other tasks' runs; a message claimed
    /// ahead waits in this worker (`inspect reserved`), even past a
    /// message of higher priority sent later, and is given back when the
    /// worker stops. 1 is Celery's "fair" setting for long tasks.
    #[arg(long, value_name = "N", default_value = "4",
          value_parser = clap::value_parser!(u64).range(1..=wfhost::worker::MAX_PREFETCH_MULTIPLIER as u64))]
    prefetch_multiplier: u64,
    /// Tasks run at once [default: the number of cores] (Celery's `-c`).
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: Option<u64>,
    /// Seconds a claim may go unrenewed before it is put back to its queue
    /// (kombu's `visibility_timeout`); a running task's claim is renewed.
    #[arg(long, value_name = "SECONDS", default_value = "3600", value_parser = seconds)]
    visibility_timeout: Duration,
    /// How often to look for claims of dead consumers, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds)]
    restore_interval: Duration,
    /// How long results are kept, in seconds (Celery's `result_expires`;
    /// 0 keeps them).
    #[arg(long, value_name = "SECONDS", default_value = "86400", value_parser = clap::value_parser!(u64).range(0..=10 * 365 * 86400))]
    result_expires: u64,
    /// The queue of follow-ups of tasks this worker does not serve
    /// (Celery's `task_default_queue`).
    #[arg(long, value_name = "QUEUE", default_value = "celery")]
    default_queue: String,
    /// Retries a task may ask for when its message names no `max_retries`
    /// (Celery's default).
    #[arg(long, value_name = "N", default_value = "3")]
    max_retries: u32,
    /// Seconds before a retry that names no delay, when its message names
    /// no `default_retry_delay` (Celery's default).
    #[arg(long, value_name = "SECONDS", default_value = "180")]
    default_retry_delay: f64,
    /// Fuel of each attempt.
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Memory of each attempt, in MiB.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=65536))]
    memory_mb: Option<u64>,
    /// Wall-clock limit of each attempt, in seconds (a message's own
    /// `time_limit` may lower it).
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    time_limit: Option<Duration>,
    /// Serve `/metrics` (Prometheus) and `/health` on this address
    /// (`127.0.0.1:9808`).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Send Celery's task events (Celery's `-E`), for Flower and `celery
    /// events`; worker events (online, heartbeat, offline) are always sent.
    #[arg(short = 'E', long)]
    task_events: bool,
    /// This worker's name [default: wfhost@HOST:PID] (Celery's `-n` and
    /// `--hostname`: `%h` is the host's name, `%n` its part before the
    /// first dot, `%d` the rest, `%%` a `%`).
    #[arg(short = 'n', long, alias = "hostname")]
    name: Option<String>,
    /// Append one entry per commit to this Redis list, atomically with the
    /// commit: `{"id", "outcome", "worker"}` (an exact audit of what was
    /// committed; it grows without bound, so trim or remove it).
    #[arg(long, value_name = "KEY")]
    audit_list: Option<String>,
    /// Deliveries a message may have in all: one whose worker is lost
    /// (killed, stalled past the visibility timeout) this often goes to the
    /// dead-letter list `wfhost.dead` instead of back to its queue.
    #[arg(long, value_name = "N", default_value_t = wfhost::worker::DEFAULT_MAX_DELIVERIES,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_deliveries: u32,
    /// The largest message taken, in MiB; a larger one goes to the
    /// dead-letter list unread.
    #[arg(long, value_name = "MIB", default_value_t = wfhost::worker::DEFAULT_MAX_MESSAGE_BYTES >> 20,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_message_mb: u64,
    /// The log's level (Celery's `-l`): `debug`, `info` (the default),
    /// `warning`, `error`, `critical`; `RUST_LOG` overrides it.
    #[arg(short = 'l', long, value_name = "LEVEL", value_parser = log_level)]
    loglevel: Option<LevelFilter>,
}

impl WorkerArgs {
    /// The level the worker logs at, when its arguments name one.
    pub fn log_level(&self) -> Option<LevelFilter> {
        self.run.loglevel
    }
}

/// A level as Celery's `--loglevel` names them, in any case.
fn log_level(text: &str) -> Result<LevelFilter, String> {
    match text.to_ascii_lowercase().as_str() {
        "debug" => Ok(LevelFilter::DEBUG),
        "info" => Ok(LevelFilter::INFO),
        "warning" | "warn" => Ok(LevelFilter::WARN),
        "error" | "critical" | "fatal" => Ok(LevelFilter::ERROR),
        _ => Err("expected debug, info, warning, error or critical".into()),
    }
}

/// `wfhost run --broker`: the workflow runs on a fleet of workers.
#[derive(Args)]
pub struct FleetRun {
    /// Send the workflow to the `wfhost worker`s on this Redis
    /// (`redis://HOST:PORT/DB`) and wait for its result there, instead of
    /// running it here. The workers' plugins serve its tasks (the file's
    /// `plugins` are checked, not sent); its `defaults` and every step's
    /// options go with it.
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
    /// The queue the workflow is sent to.
    #[arg(
        long,
        value_name = "QUEUE",
        default_value = "wfhost",
        requires = "broker"
    )]
    queue: String,
    /// The longest wait for the result, in seconds [default: no limit].
    #[arg(long, value_name = "SECONDS", value_parser = seconds, requires = "broker")]
    wait: Option<Duration>,
}

/// Sends the chain file's workflow to a fleet and prints its result as
/// `run` does.
pub async fn run_on_fleet(chain: &std::path::Path, fleet: &FleetRun) -> anyhow::Result<Finished> {
    let Some(broker) = &fleet.broker else {
        anyhow::bail!("no --broker");
    };
    // The file is read as for any run, so a bad file is told the same
    // way; what the fleet is sent is the workflow it means.
    let spec = wfhost::spec::load(chain)?;
    let sending = || format!("cannot send {} to {broker}", chain.display());
    let client = wfhost::worker::FleetClient::connect(broker)
        .await
        .with_context(sending)?;
    let id = client
        .submit_spec(&spec, &fleet.queue)
        .await
        .with_context(sending)?;
    eprintln!("sent as task {id} to queue {} on {broker}", fleet.queue);
    match client.wait(&id, fleet.wait).await? {
        Some(wfhost::worker::FleetOutcome::Succeeded(value)) => {
            println!("{value}");
            Ok(Finished::Succeeded)
        }
        Some(wfhost::worker::FleetOutcome::Failed {
            state, exception, ..
        }) => {
            eprintln!(
                "workflow failed ({state}): {}.{}: {}",
                exception.module, exception.kind, exception.message
            );
            Ok(Finished::WorkflowFailed)
        }
        None => anyhow::bail!("no result for task {id} within the --wait"),
    }
}

fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text.parse().map_err(|err| format!("{err}"))?;
    if value > 0.0 && value <= 10.0 * 365.0 * 86400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err("expected a number of seconds above 0 and at most ten years".into())
    }
}

/// A worker name as Celery's `-n` expands it: `%h` the host's name, `%n`
/// its part before the first dot, `%d` the rest, `%%` a `%`.
fn node_name(pattern: &str, host: &str) -> String {
    let (short, domain) = host.split_once('.').unwrap_or((host, ""));
    let mut name = String::with_capacity(pattern.len() + host.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('%', Some(code @ ('h' | 'n' | 'd' | '%'))) => {
                chars.next();
                name.push_str(match code {
                    'h' => host,
                    'n' => short,
                    'd' => domain,
                    _ => "%",
                });
            }
            _ => name.push(c),
        }
    }
    name
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub async fn worker(args: WorkerArgs) -> anyhow::Result<Finished> {
    match args.action {
        Some(WorkerAction::Status(status)) => show_status(status).await,
        None => run(args.run).await,
    }
}

async fn run(args: RunWorker) -> anyhow::Result<Finished> {
    crate::purge_at_once();
    let broker = args
        .broker
        .context("`wfhost worker` needs --broker redis://HOST:PORT/DB")?;
    let plugins_file = args
        .plugins
        .context("`wfhost worker` needs --plugins FILE (plugins.toml)")?;
    if let Some(backend) = &args.backend
        && backend != &broker.broker
    {
        anyhow::bail!(
            "--backend {backend} is not the broker: a step's result is committed with the \
             messages it sends, in one Redis script, so results live on the broker's Redis"
        );
    }
    let plugins = wfhost::spec::load_plugins(&plugins_file)?;
    let mut limits = Limits::default();
    limits.fuel = args.fuel.or(limits.fuel);
    limits.memory_bytes = args
        .memory_mb
        .map(wfhost::runtime::mib)
        .or(limits.memory_bytes);
    limits.time_limit = args.time_limit.or(limits.time_limit);
    if !(args.default_retry_delay.is_finite() && args.default_retry_delay >= 0.0) {
        anyhow::bail!("--default-retry-delay must be a number of seconds, 0 or more");
    }
    let config = WorkerConfig {
        broker: broker.broker.clone(),
        plugins,
        queues: broker.queues.clone(),
        default_queue: args.default_queue,
        concurrency: args
            .concurrency
            .map_or_else(wfhost::executor::cores, |n| n as usize),
        prefetch_multiplier: args.prefetch_multiplier as usize,
        visibility_timeout: args.visibility_timeout,
        restore_interval: args.restore_interval,
        result_expires: Duration::from_secs(args.result_expires),
        limits,
        max_retries: args.max_retries,
        default_retry_delay: args.default_retry_delay,
        name: args.name.map_or_else(
            || format!("wfhost@{}:{}", hostname(), std::process::id()),
            |name| node_name(&name, &hostname()),
        ),
        audit_list: args.audit_list,
        max_deliveries: args.max_deliveries,
        max_message_bytes: args.max_message_mb << 20,
        task_events: args.task_events,
        metrics: args.metrics,
    };
    let runtime = super::execute::cached_runtime()?;
    let name = config.name.clone();
    let worker = Worker::start(runtime, config)
        .await
        .with_context(|| format!("cannot start the worker on {}", broker.broker))?;
    tracing::info!(name = %name.escape_debug(), queues = ?broker.queues, "worker ready");
    let summary = worker.run(super::serve::stop_requested()).await?;
    tracing::info!(
        committed = summary.committed,
        lost = summary.lost,
        dead_lettered = summary.dead_lettered,
        "worker stopped"
    );
    Ok(Finished::Succeeded)
}

async fn show_status(args: StatusArgs) -> anyhow::Result<Finished> {
    let status = wfhost::worker::fleet_status(&args.broker.broker, &args.broker.queues).await?;
    if args.json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(Finished::Succeeded);
    }
    for (queue, depth) in &status.queues {
        println!("queue {queue}: {depth} waiting");
    }
    println!("claimed, not yet acknowledged: {}", status.unacked);
    println!("delayed (retries, countdowns): {}", status.delayed);
    println!("live workers: {}", status.workers.len());
    for worker in &status.workers {
        let field = |key: &str| worker.get(key).map(|v| v.to_string()).unwrap_or_default();
        println!(
            "  {} queues {} concurrency {} committed {}",
            worker.get("name").and_then(|v| v.as_str()).unwrap_or("?"),
            field("queues"),
            field("concurrency"),
            field("committed")
        );
        let now = wfhost::records::now_ms() as f64 / 1000.0;
        for task in worker["active"].as_array().into_iter().flatten() {
            let since = task["time_start"].as_f64().map_or(0.0, |start| now - start);
            println!(
                "    running {} [{}] for {since:.1} s",
                task["name"].as_str().unwrap_or("?"),
                task["id"].as_str().unwrap_or("?"),
            );
        }
    }
    Ok(Finished::Succeeded)
}

#[cfg(test)]
mod tests {
    use super::node_name;

    #[test]
    fn names_expand_as_celerys_do() {
        assert_eq!(node_name("w1@%h", "box.example.org"), "w1@box.example.org");
        assert_eq!(node_name("%n-%d", "box.example.org"), "box-example.org");
        assert_eq!(node_name("a%%h%x", "box"), "a%h%x");
    }
}
