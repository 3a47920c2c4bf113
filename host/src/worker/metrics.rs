//! A worker's `/metrics` (Prometheus' text format) and `/health`, served
//! on `--metrics ADDR`: the tasks it ran by name and state and how long
//! they took, its commits, lost claims and dead letters, the tasks running
//! and the ids revoked, and — read from Redis when scraped — the depths of
//! its queues, the claims under way and the delayed messages.
//!
//! Names are prefixed `wfhost_worker_`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::task::Shared;
use crate::histogram::Histogram;
use crate::lock::lock;
use crate::prometheus::{header as metric, histogram, sample};

/// What a worker counts as its tasks end.
#[derive(Default)]
pub(super) struct Metrics {
    /// Tasks ended, by name and state (`SUCCESS`, `FAILURE`, `RETRY`,
    /// `REVOKED`, `IGNORED` for a result not stored).
    tasks: Mutex<BTreeMap<String, BTreeMap<&'static str, u64>>>,
    duration: Mutex<Histogram>,
}

impl Metrics {
    /// Counts a task of `name` that ended in `state` after `took`.
    pub(super) fn finished(&self, name: &str, state: &'static str, took: Duration) {
        let mut tasks = lock(&self.tasks);
        // The name is copied only the first time a task of it ends.
        let states = match tasks.get_mut(name) {
            Some(states) => states,
            None => tasks.entry(name.to_string()).or_default(),
        };
        *states.entry(state).or_default() += 1;
        drop(tasks);
        lock(&self.duration).observe(took.as_secs_f64());
    }

    /// Tasks ended so far, by name (Celery's `stats` `total`).
    pub(super) fn totals(&self) -> BTreeMap<String, u64> {
        lock(&self.tasks)
            .iter()
            .map(|(name, states)| (name.clone(), states.values().sum()))
            .collect()
    }
}

/// Serves `/metrics` and `/health` on `listener` until the worker stops.
pub(super) async fn serve(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(shared);
    let served = crate::service::http::serve_router(
        router,
        listener,
        Duration::from_secs(10),
        std::future::pending(),
    )
    .await;
    if let Err(err) = served {
        tracing::warn!(error = %err, "/metrics stopped");
    }
}

/// `/health`: 200 while the broker answers, 503 when it does not.
async fn health(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match shared.broker.meta("wfhost.health").await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker does not answer\n",
        ),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut out = String::new();
    metric(
        &mut out,
        "wfhost_worker_tasks_total",
        "counter",
        "Tasks this worker ran to an end, by task and state.",
    );
    for (task, states) in lock(&shared.metrics.tasks).iter() {
        for (state, count) in states {
            let labels = [("task", task.as_str()), ("state", *state)];
            sample(
                &mut out,
                "wfhost_worker_tasks_total",
                &labels,
                *count as f64,
            );
        }
    }
    metric(
        &mut out,
        "wfhost_worker_task_duration_seconds",
        "histogram",
        "Wall-clock time of a task, from its claim to its end.",
    );
    let durations = lock(&shared.metrics.duration).clone();
    histogram(
        &mut out,
        "wfhost_worker_task_duration_seconds",
        &[],
        &durations,
    );
    let counters = &shared.counters;
    for (name, help, value) in [
        (
            "wfhost_worker_commits_total",
            "Messages committed (run, delayed or refused the Celery way).",
            counters.committed.load(Ordering::Relaxed),
        ),
        (
            "wfhost_worker_lost_claims_total",
            "Claims whose lease was lost before the commit.",
            counters.lost.load(Ordering::Relaxed),
        ),
        (
            "wfhost_worker_dead_lettered_total",
            "Messages this worker moved to the dead-letter list.",
            counters.dead_lettered.load(Ordering::Relaxed),
        ),
    ] {
        metric(&mut out, name, "counter", help);
        sample(&mut out, name, &[], value as f64);
    }
    for (name, help, value) in [
        (
            "wfhost_worker_active",
            "Tasks running on this worker now.",
            shared.control.active(),
        ),
        (
            "wfhost_worker_revoked",
            "Task ids this worker holds as revoked.",
            shared.control.revoked_count(),
        ),
    ] {
        metric(&mut out, name, "gauge", help);
        sample(&mut out, name, &[], value as f64);
    }
    // Read from Redis now: what the whole fleet sees of these queues.
    if let Ok(status) = shared.broker.backlog(&shared.consumers.now().queues).await {
        metric(
            &mut out,
            "wfhost_worker_queue_depth",
            "gauge",
            "Messages waiting in each of this worker's queues (all priorities).",
        );
        for (queue, depth) in &status.queues {
            sample(
                &mut out,
                "wfhost_worker_queue_depth",
                &[("queue", queue)],
                *depth as f64,
            );
        }
        for (name, help, value) in [
            (
                "wfhost_worker_unacked",
                "Messages claimed and not yet acknowledged, by any consumer.",
                status.unacked,
            ),
            (
                "wfhost_worker_delayed",
                "Messages waiting for their due time.",
                status.delayed,
            ),
        ] {
            metric(&mut out, name, "gauge", help);
            sample(&mut out, name, &[], value as f64);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
