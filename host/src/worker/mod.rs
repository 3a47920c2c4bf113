//! `wfhost worker`: a worker of a Celery fleet on Redis. It takes Celery's
//! task messages (protocol 2, kombu's Redis layout) from its queues, runs
//! each named task in the sandbox under the same limits as `run`, and
//! stores results where Celery's `AsyncResult.get()` reads them — so an
//! unmodified Python client runs its chains, groups and chords on wasm
//! tasks, and workers on any number of machines share the work.
//!
//! Nothing is lost and nothing committed twice: a message is claimed and
//! recorded as unacknowledged in one step (`scripts::CLAIM`, or plain
//! commands for large messages and blocking waits: `claim`); its lease is
//! renewed while it runs; its result, the messages it sends on and its
//! acknowledgement are one atomic commit fenced by the claim
//! (`scripts::COMMIT`); a dead worker's claims go back to their queue
//! after the visibility timeout (`scripts::RESTORE`). Running a task is
//! therefore at least once, and committing its effects exactly once.
//!
//! The modules: `message` (Celery's message) and `chain` (the rest of a
//! chain it carries), `outgoing` (a message to send), `meta` (Celery's
//! results), `canvas` (what a task's end sends on), `routing` (kombu's
//! keys), `scripts` (the atomic moves), `broker` (the connections), `claim`
//! and `commit` (a message's claim, and its end on Redis), `task` (one
//! message, from claim to commit), `outcome` (what an attempt's end
//! commits), `finish` (its commit, and what its slot runs next), `pool` and
//! `consumers` (the slots and queues), `control`, `commands`, `revoke` and
//! `rate` (Celery's remote control), `events` (Celery's events), `metrics`
//! and `status` (what the fleet does), `submit` (wfhost as a producer).

mod broker;
mod canvas;
mod chain;
mod claim;
mod commands;
mod commit;
mod consumers;
mod control;
mod events;
mod finish;
mod message;
mod meta;
mod metrics;
mod outcome;
mod outgoing;
mod pool;
mod rate;
mod revoke;
mod routing;
mod scripts;
mod status;
mod submit;
mod task;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use thiserror::Error;

use crate::executor::PluginSet;
use crate::runtime::{CancelToken, Limits, PluginError, Runtime};
use crate::spec::PluginRef;
pub use broker::{DEAD_LETTER, DELAYED};
use claim::Taken;
pub use message::MessageError;
pub use meta::Exception;
pub use pool::MAX_PREFETCH_MULTIPLIER;
pub use routing::Routing;
pub use status::{FleetStatus, fleet_status};
pub use submit::{FleetClient, FleetOutcome};

pub use wfhost_canvas::ACCUMULATE;

/// What goes wrong in a worker.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The broker URL is not one the Redis client takes.
    #[error("the broker URL `{url}` is not a Redis URL: {source}")]
    Url {
        /// The URL.
        url: String,
        /// What the client said.
        source: redis::RedisError,
    },
    /// A Redis command failed.
    #[error("Redis refused to {what}: {source}")]
    Redis {
        /// What was asked.
        what: &'static str,
        /// What Redis (or the connection) said.
        source: redis::RedisError,
    },
    /// A plugin cannot be loaded.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The configuration is inconsistent.
    #[error("{0}")]
    Config(String),
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The broker's `redis://` URL (results are stored there too).
    pub broker: String,
    /// The plugins by name: task `A.B` is task `B` of plugin `A`.
    pub plugins: BTreeMap<String, PluginRef>,
    /// The queues consumed; the first also receives follow-ups of served
    /// tasks.
    pub queues: Vec<String>,
    /// The queue of follow-ups of tasks not served here.
    pub default_queue: String,
    /// Tasks run at once.
    pub concurrency: usize,
    /// Messages held claimed per slot, a task's own included (Celery's
    /// `worker_prefetch_multiplier`; the CLI's default is Celery's, 4).
    pub prefetch_multiplier: usize,
    /// How long a claim may go unrenewed before any consumer's sweep puts
    /// it back (kombu's `visibility_timeout`).
    pub visibility_timeout: Duration,
    /// How often this worker sweeps for lost claims.
    pub restore_interval: Duration,
    /// How long results are kept (Celery's `result_expires`); zero keeps
    /// them.
    pub result_expires: Duration,
    /// The limits of every attempt; a message's own time limit may only
    /// lower the time.
    pub limits: Limits,
    /// Retries a task may ask for (Celery's `max_retries`).
    pub max_retries: u32,
    /// The delay of a retry that names none (Celery's
    /// `default_retry_delay`), in seconds.
    pub default_retry_delay: f64,
    /// This worker's name: `wfhost@HOST:PID` unless set.
    pub name: String,
    /// A Redis list that gets one entry per commit, in the commit itself
    /// (`{"id", "outcome", "worker"}`): an exact account of what was
    /// committed, for audits and for tests of exactly-once commits.
    pub audit_list: Option<String>,
    /// Deliveries a message may have in all: one whose consumer is lost
    /// this often goes to the dead-letter list instead of back to its
    /// queue.
    pub max_deliveries: u32,
    /// The largest message taken, in bytes; a larger one goes to the
    /// dead-letter list unread.
    pub max_message_bytes: u64,
    /// Whether Celery's task events are sent (`-E`); worker events
    /// (online, heartbeat, offline) always are.
    pub task_events: bool,
    /// Where `/metrics` and `/health` are served, if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
}

/// [`WorkerConfig::max_deliveries`] unless told.
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;

/// [`WorkerConfig::max_message_bytes`] unless told.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 64 << 20;

impl WorkerConfig {
    /// Checks what cannot work before anything is claimed.
    fn check(&self) -> Result<(), WorkerError> {
        if self.queues.is_empty() || self.queues.iter().any(String::is_empty) {
            return Err(WorkerError::Config(
                "the worker needs at least one queue, each named".into(),
            ));
        }
        if self.concurrency == 0 || self.concurrency > pool::MAX_SLOTS {
            return Err(WorkerError::Config(
                "the concurrency must be from 1 to 1024".into(),
            ));
        }
        if self.prefetch_multiplier == 0 || self.prefetch_multiplier > pool::MAX_PREFETCH_MULTIPLIER
        {
            return Err(WorkerError::Config(format!(
                "the prefetch multiplier must be from 1 to {}",
                pool::MAX_PREFETCH_MULTIPLIER
            )));
        }
        if self.visibility_timeout < Duration::from_secs(1) {
            return Err(WorkerError::Config(
                "the visibility timeout must be at least 1 s".into(),
            ));
        }
        Ok(())
    }
}

/// What a worker did, when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WorkerSummary {
    /// Messages committed (run, delayed, or refused the Celery way).
    pub committed: u64,
    /// Claims whose lease was lost before the commit (another worker
    /// runs them).
    pub lost: u64,
    /// Messages moved to the dead-letter list by this worker.
    pub dead_lettered: u64,
}

/// Counters shared by the tasks of a worker.
#[derive(Default)]
struct Counters {
    committed: AtomicU64,
    lost: AtomicU64,
    dead_lettered: AtomicU64,
}

/// A worker ready to take messages.
pub struct Worker {
    shared: Arc<task::Shared>,
    metrics_listener: Option<tokio::net::TcpListener>,
    restore_interval: Duration,
    visibility_timeout: Duration,
    counters: Arc<Counters>,
}

/// How long a wait for a message blocks before the worker looks at its
/// other queues and priorities again.
const WAIT: Duration = Duration::from_secs(1);

/// The running tasks a worker's announcement lists at most.
const ACTIVE_LISTED: usize = 100;

/// How often due delayed messages are moved to their queues.
const PROMOTE_EVERY: Duration = Duration::from_millis(50);

impl Worker {
    /// Connects, loads every plugin and declares the queues.
    pub async fn start(runtime: Runtime, config: WorkerConfig) -> Result<Worker, WorkerError> {
        config.check()?;
        let broker = broker::Broker::connect(&config.broker).await?;
        let plugins = PluginSet::load(&runtime, &config.plugins).await?;
        broker.declare(&config.queues).await?;
        broker.load_scripts().await?;
        let routing = Routing {
            queues: config.queues.clone(),
            served: config.plugins.keys().cloned().collect(),
            default_queue: config.default_queue.clone(),
        };
        let counters = Arc::new(Counters::default());
        let consumers = consumers::Consumers::new(&config.queues);
        let control = control::Control::new();
        control.load_revoked(&broker).await?;
        let concurrency = config.concurrency;
        let prefetch_multiplier = config.prefetch_multiplier;
        let events = events::Events::start(&broker, &config.name, config.task_events);
        let metrics_listener = match config.metrics {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|err| {
                WorkerError::Config(format!("cannot serve /metrics on {addr}: {err}"))
            })?),
            None => None,
        };
        Ok(Worker {
            restore_interval: config.restore_interval,
            visibility_timeout: config.visibility_timeout,
            shared: Arc::new(task::Shared {
                runtime,
                plugins,
                broker,
                routing,
                config,
                counters: counters.clone(),
                control,
                events,
                metrics: metrics::Metrics::default(),
                pool: pool::Pool::new(concurrency, prefetch_multiplier),
                rates: rate::RateLimits::default(),
                consumers,
                stopping: CancelToken::new(),
            }),
            metrics_listener,
            counters,
        })
    }

    /// Takes and runs messages until `stop` completes; then claims
    /// nothing more, finishes what it holds, and returns.
    pub async fn run(self, stop: impl Future<Output = ()>) -> Result<WorkerSummary, WorkerError> {
        let shared = self.shared.clone();
        // Stopped by the caller, or by Celery's `shutdown` command.
        let shutdown = shared.clone();
        let stop = async move {
            tokio::select! {
                () = stop => {}
                () = shutdown.control.shutdown_requested() => {}
            }
            // From now on a task's end claims nothing it sends on.
            shutdown.stopping.cancel();
        };
        let slots = shared.pool.held();
        let housekeeping = tokio::spawn(housekeeping(
            shared.clone(),
            self.restore_interval,
            self.visibility_timeout,
        ));
        let control = tokio::spawn(control::listen(shared.clone()));
        let metrics = self
            .metrics_listener
            .map(|listener| tokio::spawn(metrics::serve(shared.clone(), listener)));
        tokio::pin!(stop);
        let result = 'taking: loop {
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break 'taking Ok(()),
                },
                _ = &mut stop => break 'taking Ok(()),
            };
            let mut permit = Some(permit);
            while let Some(held) = permit.take() {
                // Remote control may have changed the queues since.
                let consumed = shared.consumers.now();
                let Some((wake_key, wake_queue)) = consumed.keys.first() else {
                    permit = Some(held);
                    tokio::select! {
                        () = shared.consumers.changed() => {}
                        _ = tokio::time::sleep(WAIT) => {}
                        _ = &mut stop => break 'taking Ok(()),
                    }
                    continue;
                };
                let max_bytes = shared.config.max_message_bytes;
                let taken = match shared.broker.claim(&consumed.keys, max_bytes).await {
                    Ok(Some(taken)) => Ok(Some(taken)),
                    Ok(None) => {
                        // Nothing now: wait on the first list, claiming
                        // what arrives there. A stop ends the wait at once;
                        // what it claimed before goes back to its queue.
                        let waiting =
                            shared
                                .broker
                                .wait_and_claim((wake_key, wake_queue), WAIT, max_bytes);
                        tokio::pin!(waiting);
                        tokio::select! {
                            taken = &mut waiting => taken,
                            _ = &mut stop => {
                                if let Err(err) = shared.broker.interrupt_wait().await {
                                    tracing::warn!(error = %err, "cannot end the wait for a message; it ends by itself");
                                }
                                if let Ok(Some(taken)) = waiting.await {
                                    take(&shared, taken, held);
                                }
                                break 'taking Ok(());
                            }
                        }
                    }
                    Err(err) => Err(err),
                };
                match taken {
                    Ok(Some(taken)) => permit = take(&shared, taken, held),
                    Ok(None) => permit = Some(held),
                    Err(err) => {
                        permit = Some(held);
                        tracing::warn!(error = %err, "claiming failed; trying again");
                        tokio::select! {
                            _ = tokio::time::sleep(WAIT) => {}
                            _ = &mut stop => break 'taking Ok(()),
                        }
                    }
                }
            }
        };
        tracing::info!("stopping: claiming nothing more, finishing what runs");
        shared.stopping.cancel();
        // Every slot back means every task has committed.
        let _all = slots.acquire_many(shared.pool.prefetch() as u32).await;
        housekeeping.abort();
        control.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        shared.events.worker(
            "offline",
            0,
            shared.counters.committed.load(Ordering::Relaxed),
        );
        shared.events.flush(Duration::from_secs(1)).await;
        let _ = shared.broker.leave(&shared.config.name).await;
        result.map(|()| WorkerSummary {
            committed: self.counters.committed.load(Ordering::Relaxed),
            lost: self.counters.lost.load(Ordering::Relaxed),
            dead_lettered: self.counters.dead_lettered.load(Ordering::Relaxed),
        })
    }
}

/// Runs a claimed message in the slot `permit` holds, and what its commit
/// claims for the slot next; sets aside one that cannot be run, and gives
/// the slot back for the next claim.
fn take(
    shared: &Arc<task::Shared>,
    taken: Taken,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let Taken::Message(claimed) = taken else {
        set_aside(shared, taken);
        return Some(permit);
    };
    let shared = shared.clone();
    let turn = shared.pool.line_up();
    tokio::spawn(async move {
        let (mut claimed, mut turn) = (claimed, turn);
        loop {
            let large = claimed.text.len() >= crate::memory::LARGE_MESSAGE_BYTES;
            let next = task::handle(&shared, claimed, turn).await;
            if large {
                crate::memory::release();
            }
            match next {
                Some(Taken::Message(next)) => (claimed, turn) = (next, shared.pool.line_up()),
                Some(set) => {
                    set_aside(&shared, set);
                    break;
                }
                None => break,
            }
        }
        drop(permit);
    });
    None
}

/// Counts and logs a message that a claim moved to the dead-letter list.
fn set_aside(shared: &task::Shared, taken: Taken) {
    match taken {
        Taken::TooLarge { key, bytes } => {
            let cap = shared.config.max_message_bytes;
            dead_lettered(
                shared,
                &key,
                &format!("of {bytes} bytes, over the size cap of {cap},"),
            );
        }
        Taken::Unreadable { key } => dead_lettered(shared, &key, "that is not UTF-8"),
        Taken::Message(_) => {}
    }
}

/// Counts and logs a message from `list` that the claim moved to the
/// dead-letter list, `why` being what made it.
fn dead_lettered(shared: &task::Shared, list: &str, why: &str) {
    shared
        .counters
        .dead_lettered
        .fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        list = %list.escape_debug(),
        dead_letter = broker::DEAD_LETTER,
        "a message {why} was moved to the dead-letter list"
    );
}

/// Moves due delayed messages, sweeps for lost claims, and says the
/// worker is alive (its announcement, and Celery's worker events).
async fn housekeeping(shared: Arc<task::Shared>, restore_every: Duration, visibility: Duration) {
    let mut last_restore: Option<tokio::time::Instant> = None;
    let mut last_beat: Option<tokio::time::Instant> = None;
    loop {
        if let Err(err) = shared.broker.promote(1000).await {
            tracing::warn!(error = %err, "moving due messages failed");
        }
        let now = tokio::time::Instant::now();
        if last_restore.is_none_or(|at| now - at >= restore_every) {
            last_restore = Some(now);
            let most = shared.config.max_deliveries;
            match shared.broker.restore(visibility, 1000, most).await {
                Ok((0, 0)) => {}
                Ok((restored, dead)) => {
                    shared
                        .counters
                        .dead_lettered
                        .fetch_add(dead, Ordering::Relaxed);
                    if restored > 0 {
                        tracing::info!(restored, "put back messages of lost consumers");
                    }
                    if dead > 0 {
                        tracing::warn!(
                            dead,
                            max_deliveries = most,
                            dead_letter = broker::DEAD_LETTER,
                            "messages delivered as often as allowed were moved to the dead-letter list"
                        );
                    }
                }
                Err(err) => tracing::warn!(error = %err, "restoring lost messages failed"),
            }
        }
        if last_beat.is_none_or(|at| now - at >= Duration::from_secs_f64(events::HEARTBEAT_SECONDS))
        {
            // Celery's worker-online the first time, then its heartbeats.
            let kind = if last_beat.is_none() {
                "online"
            } else {
                "heartbeat"
            };
            shared.events.worker(
                kind,
                shared.control.active(),
                shared.counters.committed.load(Ordering::Relaxed),
            );
            last_beat = Some(now);
            let info = serde_json::json!({
                "name": shared.config.name,
                "queues": shared.consumers.now().queues,
                "concurrency": shared.pool.size(),
                "committed": shared.counters.committed.load(Ordering::Relaxed),
                "pid": std::process::id(),
                "active": shared.control.active_tasks(ACTIVE_LISTED),
            });
            let _ = shared
                .broker
                .beat(
                    &shared.config.name,
                    &info.to_string(),
                    Duration::from_secs(10),
                )
                .await;
        }
        tokio::time::sleep(PROMOTE_EVERY).await;
    }
}
