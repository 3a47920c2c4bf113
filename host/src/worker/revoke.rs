//! `celery control revoke`: a revoked task never runs, on any worker of
//! the fleet, and `terminate` ends an attempt of it that runs. The ids are
//! kept in this worker's memory (as Celery's `worker_state.revoked`) and
//! in Redis ([`REVOKED`]) for `result_expires`, which a worker started
//! later reads.

use serde_json::{Map, Value, json};

use super::WorkerError;
use super::broker::redis_error;
use super::commands::ids;
use super::meta::{Exception, Meta, State, task_key};
use super::task::Shared;
use crate::records::now_ms;

/// The Redis key of the fleet's revoked ids (a sorted set: id → when the
/// revoke ends, in ms).
pub const REVOKED: &str = "wfhost.revoked";

/// `celery control revoke`: the ids are revoked on every worker (now, and
/// on one started within `result_expires`), stored REVOKED unless they
/// have a state; with `terminate`, attempts of them running here end.
pub(super) async fn revoke(shared: &Shared, arguments: &Map<String, Value>) -> Value {
    let task_ids = ids(arguments.get("task_id"));
    for id in &task_ids {
        shared.control.revoke(id);
    }
    if let Err(err) = store_revoked(shared, &task_ids).await {
        tracing::warn!(error = %err, "cannot store the revoke");
    }
    let terminate = arguments
        .get("terminate")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if terminate {
        let terminated: Vec<&str> = task_ids
            .iter()
            .filter(|id| shared.control.terminate(id))
            .map(String::as_str)
            .collect();
        if terminated.is_empty() {
            return json!({"ok": "terminate: tasks unknown"});
        }
        return json!({"ok": format!("terminate: {}", terminated.join(", "))});
    }
    let set: Vec<String> = task_ids.iter().map(|id| format!("'{id}'")).collect();
    json!({"ok": format!("tasks {{{}}} flagged as revoked", set.join(", "))})
}

/// Keeps the revoke in Redis for `result_expires` (a day when results
/// are kept), and stores REVOKED for each id that has no state yet, as
/// Celery's `mark_as_revoked` does.
async fn store_revoked(shared: &Shared, task_ids: &[String]) -> Result<(), WorkerError> {
    let keep_ms = match shared.config.result_expires.as_millis() {
        0 => 86_400_000,
        ms => u64::try_from(ms).unwrap_or(u64::MAX),
    };
    let until = now_ms().saturating_add(keep_ms);
    let mut conn = shared.broker.conn.clone();
    for id in task_ids.iter().take(10_000) {
        redis::cmd("ZADD")
            .arg(REVOKED)
            .arg(until)
            .arg(id)
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_error("store a revoke"))?;
        let exception = Exception::new("celery.exceptions", "TaskRevokedError", "revoked");
        let meta = Meta {
            state: State::Revoked,
            result: exception.to_json(),
            traceback: Some("celery.exceptions.TaskRevokedError: revoked".into()),
            children: &[],
            task_id: id,
            group_id: None,
            parent_id: None,
            done_ms: Some(now_ms()),
            wfhost: None,
        }
        .to_text();
        let key = task_key(id);
        let stored: bool = redis::cmd("SET")
            .arg(&key)
            .arg(&meta)
            .arg("NX")
            .query_async::<Option<String>>(&mut conn)
            .await
            .map_err(redis_error("store a revoked result"))?
            .is_some();
        if stored {
            redis::cmd("PUBLISH")
                .arg(&key)
                .arg(&meta)
                .query_async::<()>(&mut conn)
                .await
                .map_err(redis_error("publish a revoked result"))?;
        }
    }
    Ok(())
}
