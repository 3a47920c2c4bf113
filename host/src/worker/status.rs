//! What a fleet on one Redis is doing, as `wfhost worker status` shows it:
//! the queues' depths, the claims under way, the delayed messages and the
//! live workers.

use serde_json::Value;

use super::WorkerError;
use super::broker::{Broker, DELAYED, redis_error};
use super::routing::list_key;

/// What the fleet on the Redis at `url` is doing with `queues`.
pub async fn fleet_status(url: &str, queues: &[String]) -> Result<FleetStatus, WorkerError> {
    Broker::connect(url).await?.status(queues).await
}

/// What a fleet on one Redis is doing, as `wfhost worker status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FleetStatus {
    /// Messages waiting, per queue (all priorities).
    pub queues: Vec<(String, u64)>,
    /// Messages claimed and not yet acknowledged (by any consumer).
    pub unacked: u64,
    /// Messages waiting for their due time.
    pub delayed: u64,
    /// Live wfhost workers, each as it announced itself.
    pub workers: Vec<Value>,
}

/// What waits in a fleet's Redis: what `status` and a worker's `/metrics`
/// both tell.
pub(super) struct Backlog {
    /// Messages waiting, per queue (all priorities).
    pub queues: Vec<(String, u64)>,
    /// Messages claimed and not yet acknowledged (by any consumer).
    pub unacked: u64,
    /// Messages waiting for their due time.
    pub delayed: u64,
}

impl Broker {
    /// The depths of `queues`, the claims under way and the delayed
    /// messages.
    pub(super) async fn backlog(&self, queues: &[String]) -> Result<Backlog, WorkerError> {
        let mut conn = self.conn.clone();
        let mut depths = Vec::new();
        for queue in queues {
            let mut depth = 0u64;
            for priority in [0, 3, 6, 9] {
                let key = list_key(queue, priority);
                let length: u64 = redis::cmd("LLEN")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_error("read a queue's depth"))?;
                depth += length;
            }
            depths.push((queue.clone(), depth));
        }
        let unacked: u64 = redis::cmd("HLEN")
            .arg("unacked")
            .query_async(&mut conn)
            .await
            .map_err(redis_error("count the claims"))?;
        let delayed: u64 = redis::cmd("ZCARD")
            .arg(DELAYED)
            .query_async(&mut conn)
            .await
            .map_err(redis_error("count the delayed"))?;
        Ok(Backlog {
            queues: depths,
            unacked,
            delayed,
        })
    }

    /// The depths of `queues`, the claims under way and the live workers.
    pub async fn status(&self, queues: &[String]) -> Result<FleetStatus, WorkerError> {
        let backlog = self.backlog(queues).await?;
        let mut conn = self.conn.clone();
        let mut names: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("wfhost.worker.*")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(redis_error("list the workers"))?;
            names.extend(batch);
            if next == 0 || names.len() > 10_000 {
                break;
            }
            cursor = next;
        }
        names.sort();
        let mut workers = Vec::new();
        for name in names {
            let info: Option<String> = redis::cmd("GET")
                .arg(&name)
                .query_async(&mut conn)
                .await
                .map_err(redis_error("read a worker"))?;
            if let Some(info) = info {
                workers.push(serde_json::from_str(&info).unwrap_or(Value::String(info)));
            }
        }
        Ok(FleetStatus {
            queues: backlog.queues,
            unacked: backlog.unacked,
            delayed: backlog.delayed,
            workers,
        })
    }
}
