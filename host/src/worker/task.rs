//! One message, from its claim to its commit: read it, decide what it
//! asks (run, wait for its due time, refuse it the Celery way), run it in
//! the sandbox while renewing its lease, and commit its result, what it
//! sends on and its acknowledgement at once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tracing::Instrument;

use super::broker::Broker;
use super::canvas::{FollowUp, FollowUps, Op};
use super::claim::{Claimed, Taken};
use super::finish::commit;
use super::message::TaskMessage;
use super::meta::{Exception, State, task_key};
use super::outcome::{Own, ending_in_failure, ending_in_success, outcome};
use super::pool::Turn;
use super::{ACCUMULATE, Counters, Routing, WorkerConfig};
use crate::executor::PluginSet;
use crate::records::now_ms;
use crate::runtime::{Attempt, AttemptResult, CancelToken, Invocation, Limits, Runtime};
use wfhost_canvas::{CHUNKS, Limit, MAP, STARMAP};

/// What every task of a worker shares.
pub(super) struct Shared {
    pub runtime: Runtime,
    pub plugins: PluginSet,
    pub broker: Broker,
    pub routing: Routing,
    pub config: WorkerConfig,
    pub counters: Arc<Counters>,
    /// What remote control sees and steers.
    pub control: super::control::Control,
    /// Celery's events of this worker.
    pub events: super::events::Events,
    /// What `/metrics` tells.
    pub metrics: super::metrics::Metrics,
    /// The slots tasks run in.
    pub pool: super::pool::Pool,
    /// The rates set by remote control.
    pub rates: super::rate::RateLimits,
    /// The queues consumed now.
    pub consumers: super::consumers::Consumers,
    /// Cancelled when the worker stops claiming: a task's end then claims
    /// nothing, and messages claimed ahead are given back.
    pub stopping: CancelToken,
}

impl Shared {
    /// What builds this worker's follow-up messages.
    pub(super) fn follow_ups(&self) -> FollowUps<'_> {
        FollowUps {
            routing: &self.routing,
            origin: &self.config.name,
        }
    }

    pub(super) fn expires(&self) -> u64 {
        self.config.result_expires.as_secs()
    }
}

/// Handles one claimed message to its commit; what its commit claimed for
/// the slot next, if anything (see [`commit`]).
pub(super) async fn handle(shared: &Shared, mut claimed: Claimed, turn: Turn) -> Option<Taken> {
    let read = match claimed.read.take() {
        Some(read) => Ok(*read),
        None => TaskMessage::parse(&claimed.text),
    };
    let message = match read {
        Ok(message) => message,
        Err(err) => {
            // Celery rejects what it cannot read, storing nothing.
            tracing::warn!(list = %claimed.key.escape_debug(), error = %err, "refused a message");
            return commit(
                shared,
                &claimed.tag,
                ("", "refused"),
                FollowUp::default(),
                None,
            )
            .await;
        }
    };
    let span = tracing::info_span!("task", name = %message.task.escape_debug(), id = %message.id.escape_debug());
    decide(shared, &claimed, &message, turn)
        .instrument(span)
        .await
}

async fn decide(
    shared: &Shared,
    claimed: &Claimed,
    message: &TaskMessage,
    turn: Turn,
) -> Option<Taken> {
    let slot = slot(shared, claimed, message, turn).await?;
    let now = now_ms();
    let revoked = if message.expires_ms.is_some_and(|expires| expires <= now) {
        Some("expired")
    } else if shared.control.is_revoked(&message.id) {
        Some("revoked")
    } else {
        None
    };
    if let Some(reason) = revoked {
        tracing::info!(reason, "revoked before it ran");
        let exception = Exception::new("celery.exceptions", "TaskRevokedError", reason);
        let (follow, own) = ending_in_failure(
            shared,
            message,
            State::Revoked,
            &exception,
            format!("celery.exceptions.TaskRevokedError: {reason}"),
            None,
        );
        shared
            .metrics
            .finished(&message.task, "REVOKED", Duration::ZERO);
        return commit(shared, &claimed.tag, (&message.id, "revoked"), follow, own).await;
    }
    // Over its rate: back to the delayed messages until its turn.
    let due = message
        .eta_ms
        .filter(|due| *due > now)
        .or_else(|| shared.rates.take(&message.task).err());
    if let Some(due_ms) = due {
        // Held in Redis, not in this worker's memory: no redelivery while
        // it waits, however long.
        let follow = FollowUp {
            ops: vec![Op::Delay {
                due_ms,
                key: claimed.key.clone(),
                message: claimed.text.clone(),
            }],
            ..FollowUp::default()
        };
        return commit(shared, &claimed.tag, (&message.id, "delayed"), follow, None).await;
    }
    if message.redelivered && already_succeeded(&shared.broker, &message.id).await {
        tracing::info!("redelivered after its success was stored: acknowledged");
        return commit(
            shared,
            &claimed.tag,
            (&message.id, "duplicate"),
            FollowUp::default(),
            None,
        )
        .await;
    }
    shared.events.task_started(message);
    let started = std::time::Instant::now();
    let (follow, own) = run(shared, claimed, message).await;
    // The commit waits on Redis: another task runs meanwhile.
    drop(slot);
    let state = own.as_ref().map_or("IGNORED", |own| own.state.as_str());
    shared
        .metrics
        .finished(&message.task, state, started.elapsed());
    let own = own.filter(|_| !message.ignore_result);
    commit(shared, &claimed.tag, (&message.id, "ignored"), follow, own).await
}

/// Waits for a slot to run `message` in, as a message claimed ahead
/// (Celery's reserved: `inspect reserved` lists it) whose lease is renewed
/// meanwhile; none when the lease was lost while it waited (another
/// worker runs the message), or when the worker stops (the message is
/// given back to its queue, unrun).
async fn slot(
    shared: &Shared,
    claimed: &Claimed,
    message: &TaskMessage,
    turn: Turn,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    // A message that reached a stopping worker (claimed in the commit of
    // the step before, or by a wait the stop did not end in time) runs
    // nowhere here: like Celery's reserved messages at a warm shutdown, it
    // goes back to its queue, whatever slot is free.
    if shared.stopping.is_cancelled() {
        give_back_unrun(shared, claimed).await;
        return None;
    }
    let turn = match turn {
        Turn::Now(slot) => return Some(slot),
        waiting => waiting.taken(),
    };
    let _reserved = shared.control.reserved(message, &shared.config.name);
    let lost = CancelToken::new();
    let renewing = renew_lease(
        &shared.broker,
        &claimed.tag,
        shared.config.visibility_timeout,
        &lost,
    );
    tokio::select! {
        slot = turn => slot,
        () = renewing => {
            tracing::warn!(
                "the lease was lost while the message waited for a slot: another worker runs it"
            );
            None
        }
        () = shared.stopping.cancelled() => {
            give_back_unrun(shared, claimed).await;
            None
        }
    }
}

/// Puts a message this stopping worker holds back on its queue, unrun.
async fn give_back_unrun(shared: &Shared, claimed: &Claimed) {
    match shared
        .broker
        .give_back(&claimed.key, &claimed.tag, &claimed.text)
        .await
    {
        Ok(_) => tracing::info!("stopping: given back unrun"),
        Err(err) => {
            tracing::warn!(error = %err, "stopping: cannot give the message back; it comes back after the visibility timeout")
        }
    }
}

async fn already_succeeded(broker: &Broker, id: &str) -> bool {
    match broker.meta(&task_key(id)).await {
        Ok(Some(meta)) => meta.contains("\"status\": \"SUCCESS\""),
        _ => false,
    }
}

/// Runs the task and says what its end stores and sends.
async fn run(shared: &Shared, claimed: &Claimed, message: &TaskMessage) -> (FollowUp, Option<Own>) {
    if message.task == ACCUMULATE {
        return match wfhost_canvas::accumulate(&message.args, &message.kwargs) {
            Ok(value) => ending_in_success(shared, message, &value, None),
            Err(error) => builtin_error(shared, message, "IndexError", error),
        };
    }
    if let Some(spread) = mapping(&message.task) {
        return run_map(shared, claimed, message, spread).await;
    }
    if message.task == CHUNKS {
        return run_chunks(shared, message);
    }
    match attempt(
        shared,
        claimed,
        message,
        &message.task,
        &message.args,
        &message.kwargs,
    )
    .await
    {
        Some(attempt) => outcome(shared, claimed, message, &attempt),
        None => not_registered(shared, message, &message.task),
    }
}

/// Whether `task` is Celery's `celery.map` (false: each item is the one
/// argument) or `celery.starmap` (true: each item is spread as the
/// arguments), which every worker serves.
fn mapping(task: &str) -> Option<bool> {
    match task {
        MAP => Some(false),
        STARMAP => Some(true),
        _ => None,
    }
}

/// Celery's `celery.map` and `celery.starmap`: the task named by
/// `kwargs.task` called with each item of `kwargs.it`, one after the
/// other in this one task, as Celery's `xmap` and `xstarmap` call it; the
/// result is the list of results, and the first call that fails fails the
/// whole.
async fn run_map(
    shared: &Shared,
    claimed: &Claimed,
    message: &TaskMessage,
    spread: bool,
) -> (FollowUp, Option<Own>) {
    let type_error = |text: String| builtin_error(shared, message, "TypeError", text);
    let task = message.kwargs.get("task").and_then(|task| match task {
        Value::String(name) => Some(name.as_str()),
        signature => signature.get("task").and_then(Value::as_str),
    });
    let (Some(task), Some(items)) = (task, message.kwargs.get("it").and_then(Value::as_array))
    else {
        return type_error(format!("{} takes a task and a list `it`", message.task));
    };
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let args = match (spread, item) {
            (false, item) => vec![item.clone()],
            (true, Value::Array(args)) => args.clone(),
            (true, other) => {
                return type_error(format!(
                    "{task}() argument after * must be a list, not {other}"
                ));
            }
        };
        let Some(attempt) = attempt(shared, claimed, message, task, &args, &Map::new()).await
        else {
            return not_registered(shared, message, task);
        };
        match attempt.result {
            AttemptResult::Value(value) => results.push(value),
            AttemptResult::Failed(_) => return outcome(shared, claimed, message, &attempt),
            AttemptResult::Retry { .. } | AttemptResult::Replace(_) => {
                return type_error(format!(
                    "{task}, called by {}, asked to retry or replace itself, which a call \
                     inside a map cannot",
                    message.task
                ));
            }
        }
    }
    ending_in_success(shared, message, &Value::Array(results), None)
}

/// Celery's `celery.chunks` sent as a task of its own, as its worker runs
/// it: it sends a group of `celery.starmap` tasks over the chunks of `it`,
/// and its value is that group's result (its id and its members').
fn run_chunks(shared: &Shared, message: &TaskMessage) -> (FollowUp, Option<Own>) {
    let Some((sent, value)) = shared.follow_ups().chunks(message) else {
        let text = format!(
            "{} takes a task, a list `it` and a chunk size `n` of at least 1",
            message.task
        );
        return builtin_error(shared, message, "TypeError", text);
    };
    let (mut follow, own) = ending_in_success(shared, message, &value, None);
    follow.ops.splice(0..0, sent.ops);
    (follow, own)
}

/// The failure of a message with Python's built-in exception `kind`
/// saying `text`, as one of Celery's built-in tasks raises it.
fn builtin_error(
    shared: &Shared,
    message: &TaskMessage,
    kind: &str,
    text: String,
) -> (FollowUp, Option<Own>) {
    let traceback = format!("{kind}: {text}");
    let exception = Exception::new("builtins", kind, text);
    ending_in_failure(shared, message, State::Failure, &exception, traceback, None)
}

/// The failure of a message whose task no plugin here has.
fn not_registered(shared: &Shared, message: &TaskMessage, task: &str) -> (FollowUp, Option<Own>) {
    tracing::warn!(task, "no such task here: NotRegistered");
    let exception = Exception::not_registered(task);
    let traceback = format!("celery.exceptions.NotRegistered: '{task}'");
    ending_in_failure(shared, message, State::Failure, &exception, traceback, None)
}

/// The limits of an attempt of `message`: those its options and its time
/// limit ask for (and the time limit `set` by remote control for its
/// task), never above the worker's (which also stand where none is
/// asked for).
fn attempt_limits(message: &TaskMessage, worker: &Limits, set: Option<f64>) -> Limits {
    let mut asked = message.options.clone();
    asked.time_limit = match (message.time_limit, set) {
        (Some(own), Some(set)) => Some(Limit::Value(own.min(set))),
        (own, set) => own.or(set).map(Limit::Value),
    };
    worker.with_options(&asked).at_most(worker)
}

/// Runs `task` with `args` and `kwargs` once in the sandbox, as the
/// attempt of `message`, renewing its claim's lease meanwhile; none if no
/// plugin here has the task.
async fn attempt(
    shared: &Shared,
    claimed: &Claimed,
    message: &TaskMessage,
    task: &str,
    args: &[Value],
    kwargs: &Map<String, Value>,
) -> Option<Attempt> {
    let (plugin_name, task_name) = wfhost_canvas::name::split(task).unwrap_or(("", task));
    let plugin = shared
        .plugins
        .get(plugin_name)
        .filter(|p| p.task(task_name).is_some())?;
    let limits = attempt_limits(
        message,
        &shared.config.limits,
        shared.control.time_limit(&message.task),
    );
    let invocation = Invocation {
        workflow_id: message
            .root_id
            .clone()
            .unwrap_or_else(|| message.id.clone()),
        step_id: message.id.clone(),
        attempt: message.retries.saturating_add(1),
        tenant: "default".into(),
        plugin: plugin_name.to_string(),
        task: task_name.to_string(),
        args: Value::Array(args.to_vec()).to_string(),
        kwargs: Value::Object(kwargs.clone()).to_string(),
    };
    let cancel = CancelToken::new();
    let _running = shared
        .control
        .running(message, &shared.config.name, cancel.clone());
    let running = shared.runtime.run_with(
        plugin,
        &invocation,
        &limits,
        shared.plugins.access(plugin_name),
        cancel.clone(),
    );
    let renewing = renew_lease(
        &shared.broker,
        &claimed.tag,
        shared.config.visibility_timeout,
        &cancel,
    );
    tokio::pin!(running);
    Some(tokio::select! {
        attempt = &mut running => attempt,
        () = renewing => running.await,
    })
}

/// Renews the claim's lease every third of the visibility timeout; when
/// it is lost, cancels the attempt (another worker runs the message) and
/// returns.
async fn renew_lease(broker: &Broker, tag: &str, visibility: Duration, cancel: &CancelToken) {
    let every = (visibility / 3).max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        match broker.renew(tag).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("the lease was lost while the task ran: cancelling it");
                cancel.cancel();
                return;
            }
            Err(err) => tracing::warn!(error = %err, "renewing the lease failed"),
        }
    }
}
