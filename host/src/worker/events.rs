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
//! one message; the path of a task only serializes them (typed, straight
//! to JSON text) and queues them. When Redis falls behind by more than a
//! few thousand events, the newest are dropped (events are for watching,
//! never for the work).

use std::sync::atomic::{AtomicU64, Ordering};

use base64_simd::STANDARD as BASE64;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::broker::Broker;
use super::message::TaskMessage;
use super::meta::{python_map_repr, python_value_repr};
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

/// What the publisher is given: a task event or a worker event (the JSON
/// text of one event), or a request to say when all before it are
/// published.
enum Item {
    Task(String),
    Worker(&'static str, String),
    Flush(oneshot::Sender<()>),
}

/// One worker's events.
pub(super) struct Events {
    hostname: String,
    task_events: bool,
    clock: AtomicU64,
    sender: mpsc::Sender<Item>,
}

/// An event: the fields every event has, and its own.
#[derive(Serialize)]
struct Event<'a, F: Serialize> {
    hostname: &'a str,
    utcoffset: f64,
    pid: u32,
    clock: u64,
    timestamp: f64,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    fields: F,
}

#[derive(Serialize)]
struct WorkerFields<'a> {
    freq: f64,
    active: usize,
    processed: u64,
    loadavg: Vec<f64>,
    sw_ident: &'a str,
    sw_ver: &'a str,
    sw_sys: &'a str,
}

#[derive(Serialize)]
struct Received<'a> {
    uuid: &'a str,
    name: &'a str,
    args: String,
    kwargs: String,
    root_id: Option<&'a str>,
    parent_id: Option<&'a str>,
    retries: u32,
    eta: Option<String>,
    expires: Option<String>,
}

#[derive(Serialize)]
struct Started<'a> {
    uuid: &'a str,
}

#[derive(Serialize)]
struct Succeeded<'a> {
    uuid: &'a str,
    result: String,
    runtime: f64,
}

#[derive(Serialize)]
struct Failed<'a> {
    uuid: &'a str,
    exception: String,
    traceback: Option<&'a str>,
}

#[derive(Serialize)]
struct Revoked<'a> {
    uuid: &'a str,
    terminated: bool,
    signum: Option<u8>,
    expired: bool,
}

impl Events {
    /// Events of the worker `hostname`, published on `broker`'s Redis by a
    /// task of their own; task events only when `task_events`.
    pub(super) fn start(broker: &Broker, hostname: &str, task_events: bool) -> Events {
        let (sender, receiver) = mpsc::channel(QUEUED_MAX);
        tokio::spawn(publish(broker.clone(), hostname.to_string(), receiver));
        Events {
            hostname: hostname.to_string(),
            task_events,
            clock: AtomicU64::new(0),
            sender,
        }
    }

    /// The JSON text of event `kind` with `fields`.
    fn event(&self, kind: &str, fields: impl Serialize) -> String {
        let event = Event {
            hostname: &self.hostname,
            utcoffset: 0.0,
            pid: std::process::id(),
            clock: self.clock.fetch_add(1, Ordering::Relaxed) + 1,
            timestamp: now_ms() as f64 / 1000.0,
            kind,
            fields,
        };
        // Plain fields of strings and numbers always serialize.
        serde_json::to_string(&event).unwrap_or_default()
    }

    fn send(&self, item: Item) {
        // Full (Redis far behind) or closed (stopping): the event is dropped.
        let _ = self.sender.try_send(item);
    }

    /// Waits until every event made so far is published, at most `limit`
    /// in all (a full queue included).
    pub(super) async fn flush(&self, limit: std::time::Duration) {
        let (done, published) = oneshot::channel();
        let flushed = async {
            if self.sender.send(Item::Flush(done)).await.is_ok() {
                let _ = published.await;
            }
        };
        let _ = tokio::time::timeout(limit, flushed).await;
    }

    /// `worker-online`, `worker-heartbeat` or `worker-offline` (`kind`),
    /// with the tasks running now and those done so far.
    pub(super) fn worker(&self, kind: &'static str, active: usize, processed: u64) {
        let event = self.event(
            &format!("worker-{kind}"),
            WorkerFields {
                freq: HEARTBEAT_SECONDS,
                active,
                processed,
                loadavg: loadavg(),
                sw_ident: "wfhost",
                sw_ver: env!("CARGO_PKG_VERSION"),
                sw_sys: std::env::consts::OS,
            },
        );
        self.send(Item::Worker(kind, event));
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
            Received {
                uuid: &message.id,
                name: &message.task,
                args: truncated(args),
                kwargs: truncated(python_map_repr(&message.kwargs)),
                root_id: message.root_id.as_deref(),
                parent_id: message.parent_id.as_deref(),
                retries: message.retries,
                eta: message.eta_ms.map(super::outgoing::python_iso8601),
                expires: message.expires_ms.map(super::outgoing::python_iso8601),
            },
        );
        self.send(Item::Task(received));
        let started = self.event("task-started", Started { uuid: &message.id });
        self.send(Item::Task(started));
    }

    /// A task's end event (made by [`Events::task_end`]).
    pub(super) fn task_ended(&self, event: String) {
        self.send(Item::Task(event));
    }

    /// The end event of task `id`, when task events are sent:
    /// `task-succeeded` with the result's repr and the attempt's runtime,
    /// `task-failed` or `task-retried` with the exception's repr and the
    /// traceback, `task-revoked`.
    pub(super) fn task_end(
        &self,
        id: &str,
        state: super::meta::State,
        result: &Value,
        traceback: Option<&str>,
        runtime_seconds: Option<f64>,
    ) -> Option<String> {
        use super::meta::{Exception, State};
        if !self.task_events {
            return None;
        }
        let exception = || {
            Exception::from_json(result)
                .map(|exception| exception.python_repr())
                .unwrap_or_else(|| truncated(python_value_repr(result)))
        };
        Some(match state {
            State::Success => self.event(
                "task-succeeded",
                Succeeded {
                    uuid: id,
                    result: truncated(python_value_repr(result)),
                    runtime: runtime_seconds.unwrap_or(0.0),
                },
            ),
            State::Retry | State::Failure => self.event(
                if state == State::Retry {
                    "task-retried"
                } else {
                    "task-failed"
                },
                Failed {
                    uuid: id,
                    exception: exception(),
                    traceback,
                },
            ),
            State::Revoked => {
                let message = Exception::from_json(result)
                    .map(|e| e.message)
                    .unwrap_or_default();
                self.event(
                    "task-revoked",
                    Revoked {
                        uuid: id,
                        terminated: message == "terminated",
                        signum: None,
                        expired: message == "expired",
                    },
                )
            }
        })
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
/// channel `/DB.celeryev/ROUTING_KEY`, task events gathered into one
/// `task.multi`.
async fn publish(broker: Broker, hostname: String, mut receiver: mpsc::Receiver<Item>) {
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
        let (routing_key, body) = match item {
            Item::Worker(kind, event) => (format!("worker.{kind}"), event),
            Item::Flush(done) => {
                let _ = done.send(());
                continue;
            }
            Item::Task(first) => {
                // Task events made within the next few milliseconds go out
                // with this one, as one `task.multi` (Celery's worker
                // buffers its task events too). A sleep, then what came
                // meanwhile: waiting on the queue itself would wake this
                // task for every event.
                tokio::time::sleep(BATCH_WAIT).await;
                let mut body = String::with_capacity(first.len() * 8);
                body.push('[');
                body.push_str(&first);
                let mut count = 1;
                while count < MULTI_MAX {
                    match receiver.try_recv() {
                        Ok(Item::Task(event)) => {
                            body.push(',');
                            body.push_str(&event);
                            count += 1;
                        }
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                body.push(']');
                ("task.multi".to_string(), body)
            }
        };
        let message = serde_json::json!({
            "body": BASE64.encode_to_string(&body),
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
