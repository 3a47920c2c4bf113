//! Celery's remote control (kombu's pidbox), so that `celery inspect`,
//! `celery control` and `app.control` reach wfhost workers as they reach
//! Celery's: a command is published on the `celery.pidbox` fanout (the
//! Redis channel `/DB.celery.pidbox`), each worker it names answers with
//! `{its name: reply}` on the caller's reply queue (the lists bound to
//! `reply.celery.pidbox` under the caller's routing key), as Celery's
//! `worker/control.py` answers.
//!
//! Served: `ping`, `registered`, `active`, `reserved`, `scheduled`,
//! `revoked`, `query_task`, `stats`, `active_queues`, `hello`,
//! `time_limit`, `rate_limit`, `add_consumer`, `cancel_consumer`,
//! `shutdown`, `pool_grow`, `pool_shrink`, and `revoke` (with
//! `terminate`). The answers are `commands.rs`'s (and `revoke.rs`'s):
//! commands of Celery's that wfhost does not do get an error reply saying
//! so; any other, kombu's error reply.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use base64_simd::STANDARD as BASE64;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use super::WorkerError;
use super::broker::{Broker, redis_error};
use super::message::TaskMessage;
use super::outgoing::new_uuid;
use super::revoke::REVOKED;
use super::task::Shared;
use crate::lock::lock;
use crate::records::now_ms;
use crate::runtime::CancelToken;

/// The ids a worker remembers as revoked at most (Celery's
/// `REVOKES_MAX`); the oldest go first.
const REVOKES_MAX: usize = 50_000;

/// The reply exchange of Celery's mailbox.
const REPLY_EXCHANGE: &str = "reply.celery.pidbox";

/// What remote control sees and steers of one worker: the tasks it runs,
/// the ids revoked, and what it has done.
pub(super) struct Control {
    running: Mutex<HashMap<String, Running>>,
    /// Tasks claimed ahead, waiting for a slot.
    reserved: Mutex<HashMap<String, Value>>,
    /// Hard time limits set by `time_limit`, by task name.
    time_limits: Mutex<HashMap<String, f64>>,
    shutdown: tokio::sync::Notify,
    revoked: Mutex<Revoked>,
    clock: AtomicU64,
    started: Instant,
}

/// A task under way, as `inspect active` shows it, and how to stop it.
struct Running {
    info: Value,
    cancel: CancelToken,
}

/// Revoked ids, the oldest first out.
#[derive(Default)]
struct Revoked {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Revoked {
    fn insert(&mut self, id: String) {
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
            while self.order.len() > REVOKES_MAX {
                if let Some(oldest) = self.order.pop_front() {
                    self.ids.remove(&oldest);
                }
            }
        }
    }
}

/// Removes its task from the waiting ones when it starts (or is dropped).
pub(super) struct ReservedGuard<'c> {
    control: &'c Control,
    id: String,
}

impl Drop for ReservedGuard<'_> {
    fn drop(&mut self) {
        lock(&self.control.reserved).remove(&self.id);
    }
}

/// How Celery's `inspect active` and `reserved` show a task: started at
/// `started_ms`, or not yet.
fn task_info(message: &TaskMessage, hostname: &str, started_ms: Option<u64>) -> Value {
    json!({
        "id": message.id,
        "name": message.task,
        "args": message.args,
        "kwargs": message.kwargs,
        "type": message.task,
        "hostname": hostname,
        "time_start": started_ms.map(|ms| ms as f64 / 1000.0),
        "acknowledged": false,
        "delivery_info": {
            "exchange": "",
            "routing_key": message.routing_key,
            "priority": message.priority,
            "redelivered": message.redelivered,
        },
        "worker_pid": started_ms.map(|_| std::process::id()),
    })
}

/// Removes its task from the running ones when the attempt ends.
pub(super) struct RunningGuard<'c> {
    control: &'c Control,
    id: String,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        lock(&self.control.running).remove(&self.id);
    }
}

impl Control {
    pub(super) fn new() -> Control {
        Control {
            running: Mutex::default(),
            reserved: Mutex::default(),
            time_limits: Mutex::default(),
            shutdown: tokio::sync::Notify::new(),
            revoked: Mutex::default(),
            clock: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Notes that `message` runs on this worker (named `hostname`) until
    /// the guard is dropped; `cancel` stops it.
    pub(super) fn running(
        &self,
        message: &TaskMessage,
        hostname: &str,
        cancel: CancelToken,
    ) -> RunningGuard<'_> {
        let info = task_info(message, hostname, Some(now_ms()));
        lock(&self.running).insert(message.id.clone(), Running { info, cancel });
        RunningGuard {
            control: self,
            id: message.id.clone(),
        }
    }

    /// Notes that `message` waits here for a slot (claimed ahead, Celery's
    /// reserved) until the guard is dropped.
    pub(super) fn reserved(&self, message: &TaskMessage, hostname: &str) -> ReservedGuard<'_> {
        let info = task_info(message, hostname, None);
        lock(&self.reserved).insert(message.id.clone(), info);
        ReservedGuard {
            control: self,
            id: message.id.clone(),
        }
    }

    /// What `inspect reserved` shows of each task waiting here.
    pub(super) fn reserved_infos(&self) -> Vec<Value> {
        lock(&self.reserved).values().cloned().collect()
    }

    /// What `inspect query_task` shows of task `id`, if it waits here.
    pub(super) fn reserved_info(&self, id: &str) -> Option<Value> {
        lock(&self.reserved).get(id).cloned()
    }

    /// What `inspect active` shows of each task running here.
    pub(super) fn running_infos(&self) -> Vec<Value> {
        lock(&self.running)
            .values()
            .map(|running| running.info.clone())
            .collect()
    }

    /// What `inspect query_task` shows of task `id`, if it runs here.
    pub(super) fn running_info(&self, id: &str) -> Option<Value> {
        lock(&self.running)
            .get(id)
            .map(|running| running.info.clone())
    }

    /// The ids revoked here, the oldest first.
    pub(super) fn revoked_ids(&self) -> Vec<String> {
        lock(&self.revoked).order.iter().cloned().collect()
    }

    /// Sets (or, with none, removes) the hard time limit of task `name`.
    pub(super) fn set_time_limit(&self, name: &str, seconds: Option<f64>) {
        let mut limits = lock(&self.time_limits);
        match seconds {
            Some(seconds) => limits.insert(name.to_string(), seconds),
            None => limits.remove(name),
        };
    }

    /// Asks the worker to stop, as SIGTERM does.
    pub(super) fn request_shutdown(&self) {
        self.shutdown.notify_one();
    }

    /// How long the worker has run.
    pub(super) fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Completes once Celery's `shutdown` reached this worker.
    pub(super) async fn shutdown_requested(&self) {
        self.shutdown.notified().await;
    }

    /// The hard time limit `time_limit` set for task `name`, in seconds.
    pub(super) fn time_limit(&self, name: &str) -> Option<f64> {
        lock(&self.time_limits).get(name).copied()
    }

    /// The tasks running here (at most `limit`), as `wfhost worker status`
    /// lists them: id, name and when each started.
    pub(super) fn active_tasks(&self, limit: usize) -> Vec<Value> {
        lock(&self.running)
            .values()
            .take(limit)
            .map(|running| {
                json!({"id": running.info["id"], "name": running.info["name"],
                       "time_start": running.info["time_start"]})
            })
            .collect()
    }

    /// How many tasks run here now.
    pub(super) fn active(&self) -> usize {
        lock(&self.running).len()
    }

    /// Revokes `id` here.
    pub(super) fn revoke(&self, id: &str) {
        lock(&self.revoked).insert(id.to_string());
    }

    /// Cancels the attempt of `id` running here; whether there was one.
    pub(super) fn terminate(&self, id: &str) -> bool {
        match lock(&self.running).get(id) {
            Some(running) => {
                running.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// How many ids are held as revoked here.
    pub(super) fn revoked_count(&self) -> usize {
        lock(&self.revoked).ids.len()
    }

    /// Whether `id` is revoked.
    pub(super) fn is_revoked(&self, id: &str) -> bool {
        lock(&self.revoked).ids.contains(id)
    }

    /// Takes the fleet's revokes that still hold from Redis, and drops
    /// those that ended.
    pub(super) async fn load_revoked(&self, broker: &Broker) -> Result<(), WorkerError> {
        let mut conn = broker.conn.clone();
        let now = now_ms();
        redis::cmd("ZREMRANGEBYSCORE")
            .arg(REVOKED)
            .arg("-inf")
            .arg(now)
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_error("drop ended revokes"))?;
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(REVOKED)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(redis_error("read the revokes"))?;
        for id in ids {
            self.revoke(&id);
        }
        Ok(())
    }

    /// The next value of this worker's logical clock.
    pub(super) fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Listens on the pidbox until the worker stops, answering each command
/// meant for this worker.
pub(super) async fn listen(shared: std::sync::Arc<Shared>) {
    let channel = format!("/{}.celery.pidbox", shared.broker.db());
    loop {
        match shared.broker.subscribe(&channel).await {
            Ok(mut pubsub) => {
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let Ok(text) = message.get_payload::<String>() else {
                        continue;
                    };
                    if let Err(err) = handle(&shared, &text).await {
                        tracing::warn!(error = %err, "a remote control command failed");
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot listen for remote control"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// One pidbox message: answered when it is meant for this worker and has
/// not expired.
async fn handle(shared: &Shared, text: &str) -> Result<(), WorkerError> {
    let Some((headers, body)) = envelope(text) else {
        return Ok(());
    };
    let expired = headers
        .get("expires")
        .and_then(Value::as_f64)
        .is_some_and(|expires| expires * 1000.0 < now_ms() as f64);
    if expired || !meant_for(&body, &shared.config.name) {
        return Ok(());
    }
    let method = body.get("method").and_then(Value::as_str).unwrap_or("");
    let arguments = body
        .get("arguments")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let reply = super::commands::answer(shared, method, &arguments).await;
    let Some(reply_to) = body.get("reply_to").and_then(Value::as_object) else {
        return Ok(());
    };
    let routing_key = reply_to
        .get("routing_key")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ticket = body.get("ticket").cloned().unwrap_or(Value::Null);
    send_reply(shared, routing_key, &ticket, reply).await
}

/// The headers and the decoded body of a kombu envelope.
fn envelope(text: &str) -> Option<(Map<String, Value>, Map<String, Value>)> {
    let envelope: Value = serde_json::from_str(text).ok()?;
    let headers = envelope
        .get("headers")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let body = envelope.get("body")?.as_str()?;
    let base64 = envelope
        .pointer("/properties/body_encoding")
        .and_then(Value::as_str)
        == Some("base64");
    let bytes = if base64 {
        BASE64.decode_to_vec(body).ok()?
    } else {
        body.as_bytes().to_vec()
    };
    let body: Value = serde_json::from_slice(&bytes).ok()?;
    Some((headers, body.as_object()?.clone()))
}

/// Whether a command is for the worker named `hostname`: its
/// `destination` names it, or its glob `pattern` matches, or it names no
/// one.
fn meant_for(body: &Map<String, Value>, hostname: &str) -> bool {
    if let Some(destination) = body
        .get("destination")
        .and_then(Value::as_array)
        .filter(|names| !names.is_empty())
    {
        return destination.iter().any(|name| name == hostname);
    }
    match (
        body.get("pattern").and_then(Value::as_str),
        body.get("matcher").and_then(Value::as_str),
    ) {
        (Some(pattern), Some("glob") | None) => glob_match(pattern, hostname),
        // A regular expression is not matched here: not this worker.
        (Some(_), Some(_)) => false,
        (None, _) => true,
    }
}

/// `*` and `?` of a shell glob.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn matches(pattern: &[char], text: &[char]) -> bool {
        match (pattern.first(), text.first()) {
            (None, None) => true,
            (Some('*'), _) => {
                matches(&pattern[1..], text) || (!text.is_empty() && matches(pattern, &text[1..]))
            }
            (Some('?'), Some(_)) => matches(&pattern[1..], &text[1..]),
            (Some(p), Some(t)) if p == t => matches(&pattern[1..], &text[1..]),
            _ => false,
        }
    }
    let pattern: Vec<char> = pattern.chars().take(256).collect();
    let text: Vec<char> = text.chars().take(256).collect();
    matches(&pattern, &text)
}

/// Sends `reply` to the reply queues bound under `routing_key`, as
/// kombu's `Mailbox._publish_reply` over Redis does (an LPUSH to each
/// list bound to `reply.celery.pidbox` with that key).
async fn send_reply(
    shared: &Shared,
    routing_key: &str,
    ticket: &Value,
    reply: Value,
) -> Result<(), WorkerError> {
    let mut conn = shared.broker.conn.clone();
    let bindings: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("_kombu.binding.{REPLY_EXCHANGE}"))
        .query_async(&mut conn)
        .await
        .map_err(redis_error("read the reply bindings"))?;
    let body = json!({shared.config.name.clone(): reply}).to_string();
    let message = json!({
        "body": BASE64.encode_to_string(body),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"ticket": ticket, "clock": shared.control.tick()},
        "properties": {
            "delivery_mode": 1,
            "delivery_info": {"exchange": REPLY_EXCHANGE, "routing_key": routing_key},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": new_uuid(),
        },
    })
    .to_string();
    for binding in bindings {
        let mut parts = binding.split("\x06\x16");
        let (Some(key), Some(_pattern), Some(queue)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if key == routing_key {
            redis::cmd("LPUSH")
                .arg(queue)
                .arg(&message)
                .query_async::<()>(&mut conn)
                .await
                .map_err(redis_error("send a remote control reply"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_for_the_workers_it_names() {
        let body = |value: Value| value.as_object().cloned().unwrap();
        let me = "wfhost@box:7";
        assert!(meant_for(&body(json!({"destination": null})), me));
        assert!(meant_for(&body(json!({"destination": [me]})), me));
        assert!(!meant_for(
            &body(json!({"destination": ["celery@box"]})),
            me
        ));
        assert!(meant_for(
            &body(json!({"pattern": "wfhost@*", "matcher": "glob"})),
            me
        ));
        assert!(!meant_for(
            &body(json!({"pattern": "celery@*", "matcher": "glob"})),
            me
        ));
        assert!(glob_match("w?host@b*:7", me) && !glob_match("*:8", me));
    }

    #[test]
    fn the_oldest_revokes_go_first() {
        let mut revoked = Revoked::default();
        for n in 0..REVOKES_MAX + 2 {
            revoked.insert(n.to_string());
        }
        assert!(!revoked.ids.contains("0") && !revoked.ids.contains("1"));
        assert!(revoked.ids.contains("2") && revoked.ids.len() == REVOKES_MAX);
    }
}
