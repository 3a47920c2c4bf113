//! The answers of Celery's remote control commands, as Celery's
//! `worker/control.py` gives them; `control.rs` carries them over the
//! pidbox.

use serde_json::{Map, Value, json};

use super::task::Shared;

/// Built-in tasks every worker serves (listed by `registered` with
/// `builtins`).
const BUILTINS: [&str; 4] = [
    wfhost_canvas::ACCUMULATE,
    wfhost_canvas::CHUNKS,
    wfhost_canvas::MAP,
    wfhost_canvas::STARMAP,
];

/// What Celery's worker answers to `method`.
pub(super) async fn answer(shared: &Shared, method: &str, arguments: &Map<String, Value>) -> Value {
    let control = &shared.control;
    match method {
        "ping" => json!({"ok": "pong"}),
        "registered" => {
            let builtins = arguments
                .get("builtins")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let mut names = shared.plugins.task_names();
            if builtins {
                names.extend(BUILTINS.iter().map(|name| name.to_string()));
            }
            names.sort();
            json!(names)
        }
        "active" => Value::Array(control.running_infos()),
        "reserved" => Value::Array(control.reserved_infos()),
        // A countdown waits in Redis, not in a worker.
        "scheduled" => json!([]),
        "revoked" => json!(control.revoked_ids()),
        "query_task" => {
            let found: Map<String, Value> = ids(arguments.get("ids"))
                .into_iter()
                .filter_map(|id| {
                    let found = match control.running_info(&id) {
                        Some(info) => json!(["active", info]),
                        None => json!(["reserved", control.reserved_info(&id)?]),
                    };
                    Some((id, found))
                })
                .collect();
            Value::Object(found)
        }
        "stats" => stats(shared),
        "active_queues" => Value::Array(
            shared
                .consumers
                .now()
                .queues
                .iter()
                .map(|queue| {
                    json!({"name": queue, "exchange": {"name": queue, "type": "direct"},
                           "routing_key": queue, "durable": true, "exclusive": false,
                           "auto_delete": false, "no_ack": false})
                })
                .collect(),
        ),
        "hello" => json!({"revoked": control.revoked_ids(), "clock": control.tick()}),
        "revoke" => super::revoke::revoke(shared, arguments).await,
        "time_limit" => time_limit(shared, arguments),
        "shutdown" => {
            tracing::info!("shutdown asked by remote control");
            control.request_shutdown();
            json!({"ok": "shutting down"})
        }
        // Asked, and not done: said so, rather than a success that is not.
        "pool_grow" | "pool_shrink" => {
            let n = arguments
                .get("n")
                .and_then(Value::as_u64)
                .map_or(1, |n| usize::try_from(n).unwrap_or(usize::MAX));
            if method == "pool_grow" {
                shared.pool.grow(n);
                json!({"ok": "pool will grow"})
            } else {
                shared.pool.shrink(n);
                json!({"ok": "pool will shrink"})
            }
        }
        "rate_limit" => rate_limit(shared, arguments),
        "add_consumer" | "cancel_consumer" => consumer(shared, method, arguments).await,
        "autoscale" | "pool_restart" | "enable_events" | "disable_events" => {
            json!({"error": format!("`{}` is not supported by wfhost's worker", method.escape_debug())})
        }
        other => json!({"error": format!("KeyError('{}')", other.escape_debug())}),
    }
}

/// `add_consumer` and `cancel_consumer`: the worker starts or stops
/// consuming from `queue` (declared as Celery's worker declares it), and
/// says so in Celery's words whether or not it did already.
async fn consumer(shared: &Shared, method: &str, arguments: &Map<String, Value>) -> Value {
    let Some(queue) = arguments
        .get("queue")
        .and_then(Value::as_str)
        .filter(|queue| !queue.is_empty())
    else {
        return json!({"error": "`queue` must name a queue"});
    };
    if method == "cancel_consumer" {
        if shared.consumers.cancel(queue) {
            tracing::info!(queue = %queue.escape_debug(), "no longer consuming, asked by remote control");
            // A wait on the queue would claim what arrives there next.
            if let Err(err) = shared.broker.interrupt_wait().await {
                tracing::warn!(error = %err, "cannot end the wait on the cancelled queue");
            }
        }
        return json!({"ok": format!("no longer consuming from {queue}")});
    }
    if let Err(err) = shared.broker.declare(&[queue.to_string()]).await {
        return json!({"error": format!("cannot declare {queue}: {err}")});
    }
    if shared.consumers.add(queue) {
        tracing::info!(queue = %queue.escape_debug(), "consuming, asked by remote control");
    }
    json!({"ok": format!("add consumer {queue}")})
}

/// The `task_name` of a command, when this worker serves it; else
/// Celery's reply.
fn served_task<'a>(shared: &Shared, arguments: &'a Map<String, Value>) -> Result<&'a str, Value> {
    let name = arguments
        .get("task_name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if shared.plugins.task_names().iter().any(|task| task == name) {
        Ok(name)
    } else {
        Err(json!({"error": "unknown task"}))
    }
}

/// Celery's `time_limit`: the hard time limit of task `task_name` on this
/// worker (`hard`, seconds; none removes it; never above `--time-limit`).
fn time_limit(shared: &Shared, arguments: &Map<String, Value>) -> Value {
    let name = match served_task(shared, arguments) {
        Ok(name) => name,
        Err(reply) => return reply,
    };
    let hard = arguments
        .get("hard")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s > 0.0);
    shared
        .control
        .set_time_limit(name, hard.map(|seconds| seconds.min(1e9)));
    json!({"ok": "time limits set successfully"})
}

/// Celery's `rate_limit`: at most `rate_limit` tasks of `task_name` start
/// per second (minute, hour) on this worker; `0` lifts it.
fn rate_limit(shared: &Shared, arguments: &Map<String, Value>) -> Value {
    let name = match served_task(shared, arguments) {
        Ok(name) => name,
        Err(reply) => return reply,
    };
    let given = arguments.get("rate_limit");
    let rate = match given {
        Some(Value::String(rate)) => rate.clone(),
        Some(Value::Number(rate)) => rate.to_string(),
        _ => String::new(),
    };
    match super::rate::per_second(&rate) {
        Err(why) => return json!({"error": format!("Invalid rate limit string: {why}")}),
        Ok(per_second) => shared.rates.set(name, per_second),
    }
    // Celery's words: "disabled" only when the argument is falsy in Python
    // (`"0"` is not, though it lifts the limit too).
    let falsy = match given {
        None | Some(Value::Null) => true,
        Some(Value::String(rate)) => rate.is_empty(),
        Some(Value::Number(rate)) => rate.as_f64() == Some(0.0),
        Some(_) => false,
    };
    if falsy {
        json!({"ok": "rate limit disabled successfully"})
    } else {
        json!({"ok": "new rate limit set successfully"})
    }
}

/// The ids of a command's argument: one id or a list of them.
pub(super) fn ids(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(id)) => vec![id.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// `inspect stats`: what Flower and `celery inspect stats` read first.
fn stats(shared: &Shared) -> Value {
    let total: Map<String, Value> = shared
        .metrics
        .totals()
        .into_iter()
        .map(|(name, count)| (name, json!(count)))
        .collect();
    json!({
        "total": total,
        "pid": std::process::id(),
        "clock": shared.control.tick().to_string(),
        "uptime": shared.control.uptime().as_secs(),
        "pool": {
            "implementation": "wfhost",
            "max-concurrency": shared.pool.size(),
            "processes": [std::process::id()],
        },
        "prefetch_count": shared.pool.prefetch(),
        "broker": {"transport": "redis"},
        "rusage": {},
    })
}
