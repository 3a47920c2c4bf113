//! Celery's events, so that Flower and `celery events` see wfhost workers
//! as they see Celery's: worker-online, -heartbeat (every 2 s) and
//! -offline always, and with `-E` (`--task-events`) task-received,
//! -started, -succeeded, -failed, -retried and -revoked, each in Celery's
//! event format, published on kombu's `celeryev` fanout (the Redis
//! channel `/DB.celeryev/ROUTING_KEY`) as Celery 5.7's worker publishes
//! them (its task events batched as `task.multi`).
//!
//! Events are sent by one publisher task in the order they are made, so a
//! task's end never overtakes its start, and those of the next 20 ms in
//! one message; the path of a task only queues them. When Redis falls behind by more than a few thousand events, the
//! newest are dropped (events are for watching, never for the work).

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use super::broker::Broker;
use super::message::TaskMessage;
use super::meta::python_value_repr;
use super::outgoing::new_uuid;
use crate::records::now_ms;

/// How often a worker says it is alive (Celery's `freq`).
pub const HEARTBEAT_SECONDS: f64 = 2.0;

/// Events queued for the publisher at most.
const QUEUED_MAX: usize = 4096;

/// Task events sent in one `task.multi` at most.
const MULTI_MAX: usize = 100;

/// How long task events wait for others to go out with.
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// The longest repr of a result or of arguments in an event (Celery's
/// `resultrepr_maxsize`).
const REPR_MAX: usize = 1024;

/// What the publisher is given: an event to publish (its routing key and
/// body), or a request to say when all before it are published.
enum Item {
    Event(String, Value),
    Flush(oneshot::Sender<()>),
}

/// One worker's events.
pub(super) struct Events {
    hostname: String,
    task_events: bool,
    clock: AtomicU64,
    sender: mpsc::Sender<Item>,
}

impl Events {
    /// Events of the worker `hostname`, published on `broker`'s Redis by a
    /// task of their own; task events only when `task_events`.
    pub(super) fn start(broker: &Broker, hostname: &str, task_events: bool) -> Events {
        let (sender, receiver) = mpsc::channel(QUEUED_MAX);
        tokio::spawn(publish(broker.clone(), receiver));
        Events {
            hostname: hostname.to_string(),
            task_events,
            clock: AtomicU64::new(0),
            sender,
        }
    }

    /// The fields every event has, and `fields`.
    fn event(&self, kind: &str, fields: Value) -> Value {
        let mut event = match fields {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        event.insert("hostname".into(), json!(self.hostname));
        event.insert("utcoffset".into(), json!(0.0));
        event.insert("pid".into(), json!(std::process::id()));
        event.insert(
            "clock".into(),
            json!(self.clock.fetch_add(1, Ordering::Relaxed) + 1),
        );
        event.insert("timestamp".into(), json!(now_ms() as f64 / 1000.0));
        event.insert("type".into(), json!(kind));
        Value::Object(event)
    }

    fn send(&self, routing_key: &str, body: Value) {
        // Full (Redis far behind) or closed (stopping): the event is dropped.
        let _ = self
            .sender
            .try_send(Item::Event(routing_key.to_string(), body));
    }

    /// Waits until every event made so far is published, at most `limit`.
    pub(super) async fn flush(&self, limit: std::time::Duration) {
        let (done, published) = oneshot::channel();
        if self.sender.send(Item::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(limit, published).await;
        }
    }

    /// `worker-online`, `worker-heartbeat` or `worker-offline` (`kind`),
    /// with the tasks running now and those done so far.
    pub(super) fn worker(&self, kind: &str, active: usize, processed: u64) {
        let event = self.event(
            &format!("worker-{kind}"),
            json!({
                "freq": HEARTBEAT_SECONDS,
                "active": active,
                "processed": processed,
                "loadavg": loadavg(),
                "sw_ident": "wfhost",
                "sw_ver": env!("CARGO_PKG_VERSION"),
                "sw_sys": std::env::consts::OS,
            }),
        );
        self.send(&format!("worker.{kind}"), event);
    }

    /// `task-received` and `task-started` of `message`, as it starts.
    pub(super) fn task_started(&self, message: &TaskMessage) {
        if !self.task_events {
            return;
        }
        let args = match message.args.as_slice() {
            [one] => format!("({},)", python_value_repr(one)),
            args => {
                let items: Vec<String> = args.iter().map(python_value_repr).collect();
                format!("({})", items.join(", "))
            }
        };
        let received = self.event(
            "task-received",
            json!({
                "uuid": message.id,
                "name": message.task,
                "args": truncated(args),
                "kwargs": truncated(python_value_repr(&Value::Object(message.kwargs.clone()))),
                "root_id": message.root_id,
                "parent_id": message.parent_id,
                "retries": message.retries,
                "eta": message.eta_ms.map(super::outgoing::python_iso8601),
                "expires": message.expires_ms.map(super::outgoing::python_iso8601),
            }),
        );
        let started = self.event("task-started", json!({"uuid": message.id}));
        self.send("task.multi", json!([received, started]));
    }

    /// The event of a task's end (`fields` as [`task_end`] makes them).
    pub(super) fn task_ended(&self, id: &str, fields: Value) {
        if !self.task_events {
            return;
        }
        let kind = fields
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("task-failed")
            .to_string();
        let mut fields = fields;
        if let Value::Object(map) = &mut fields {
            map.insert("uuid".into(), json!(id));
        }
        let event = self.event(&kind, fields);
        self.send("task.multi", json!([event]));
    }

    /// Whether task events are sent.
    pub(super) fn task_events(&self) -> bool {
        self.task_events
    }
}

/// The fields of a task's end event: `task-succeeded` with the result's
/// repr and the attempt's runtime, `task-failed` or `task-retried` with
/// the exception's repr and the traceback, `task-revoked`.
pub(super) fn task_end(
    state: super::meta::State,
    result: &Value,
    traceback: Option<&str>,
    runtime_seconds: Option<f64>,
) -> Value {
    use super::meta::{Exception, State};
    let exception = || {
        Exception::from_json(result)
            .map(|exception| exception.python_repr())
            .unwrap_or_else(|| truncated(python_value_repr(result)))
    };
    match state {
        State::Success => json!({"type": "task-succeeded",
            "result": truncated(python_value_repr(result)), "runtime": runtime_seconds.unwrap_or(0.0)}),
        State::Retry => json!({"type": "task-retried", "exception": exception(),
            "traceback": traceback}),
        State::Revoked => {
            let message = Exception::from_json(result)
                .map(|e| e.message)
                .unwrap_or_default();
            json!({"type": "task-revoked", "terminated": message == "terminated",
                   "signum": null, "expired": message == "expired"})
        }
        _ => json!({"type": "task-failed", "exception": exception(), "traceback": traceback}),
    }
}

fn truncated(text: String) -> String {
    crate::text::truncated(text, REPR_MAX, "...")
}

/// The load averages, as Celery reports them.
fn loadavg() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Publishes each event as kombu's Redis fanout does: the envelope on the
/// channel `/DB.celeryev/ROUTING_KEY`.
async fn publish(broker: Broker, mut receiver: mpsc::Receiver<Item>) {
    let prefix = format!("/{}.celeryev/", broker.db());
    // Its own connection: publishing never delays a claim or a commit.
    let mut conn = match broker.own_connection().await {
        Ok(conn) => conn,
        Err(err) => {
            tracing::warn!(error = %err, "no connection for events: none are sent");
            return;
        }
    };
    let mut pending: Option<Item> = None;
    loop {
        let item = match pending.take() {
            Some(item) => item,
            None => match receiver.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        let (routing_key, mut body) = match item {
            Item::Event(routing_key, body) => (routing_key, body),
            Item::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        // Task events made within the next few milliseconds go out with
        // these, as one `task.multi` (Celery's worker buffers its task
        // events too): under load, one PUBLISH carries many.
        // (A sleep, then what came meanwhile: waiting on the queue itself
        // would wake this task for every event.)
        if routing_key == "task.multi" {
            tokio::time::sleep(BATCH_WAIT).await;
            while let Value::Array(events) = &mut body {
                if events.len() >= MULTI_MAX {
                    break;
                }
                match receiver.try_recv() {
                    Ok(Item::Event(key, Value::Array(more))) if key == "task.multi" => {
                        events.extend(more);
                    }
                    Ok(other) => {
                        pending = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        let hostname = match &body {
            Value::Array(events) => events.first().and_then(|e| e.get("hostname")).cloned(),
            event => event.get("hostname").cloned(),
        };
        let message = json!({
            "body": BASE64.encode(body.to_string()),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"hostname": hostname},
            "properties": {
                "delivery_mode": 1,
                "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": new_uuid(),
            },
        });
        let sent = redis::cmd("PUBLISH")
            .arg(format!("{prefix}{routing_key}"))
            .arg(message.to_string())
            .query_async::<()>(&mut conn)
            .await;
        if let Err(err) = sent {
            tracing::debug!(error = %err, "an event was not published");
        }
    }
}
