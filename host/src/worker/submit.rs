//! wfhost as a Celery producer: a workflow (native or Celery's JSON form)
//! sent to a fleet's queue as `chain.apply_async()` or `chord(...)()`
//! would send it, and its result waited for as `AsyncResult.get()` waits
//! (subscribed before it looks, so no result is missed).

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use wfhost_canvas::celery::CelerySignature;
use wfhost_canvas::{Canvas, Pause, Signature};

use super::broker::Broker;
use super::canvas::{FollowUps, celery_signature};
use super::commit::Commit;
use super::meta::{Exception, task_key};
use super::outgoing::new_uuid;
use super::{Routing, WorkerError};
use crate::spec::WorkflowSpec;

/// How a workflow sent to a fleet ended, as its result's meta says.
#[derive(Debug, Clone, PartialEq)]
pub enum FleetOutcome {
    /// Its final task returned this.
    Succeeded(Value),
    /// A task failed (or was revoked) with this exception.
    Failed {
        /// Celery's state: FAILURE or REVOKED.
        state: String,
        /// The exception as Python would raise it.
        exception: Exception,
        /// The readable account stored with it.
        traceback: Option<String>,
    },
}

/// A producer on a fleet's Redis: what `wfhost run --broker` uses.
pub struct FleetClient {
    broker: Broker,
}

impl FleetClient {
    /// Connects to the Redis at `url`.
    pub async fn connect(url: &str) -> Result<FleetClient, WorkerError> {
        Ok(FleetClient {
            broker: Broker::connect(url).await?,
        })
    }

    /// Sends a chain file's workflow to `queue` as [`FleetClient::submit`]
    /// does, as the file means it: its `defaults` on every step, its `id`
    /// the id of the result. What a fleet cannot honour is refused by
    /// name: `on_error` (give the steps `link_error`) and `tenant`.
    pub async fn submit_spec(
        &self,
        spec: &WorkflowSpec,
        queue: &str,
    ) -> Result<String, WorkerError> {
        if spec.on_error.is_some() {
            return Err(WorkerError::Config(
                "`on_error` is not sent to a fleet: give the steps `link_error` instead".into(),
            ));
        }
        if let Some(tenant) = &spec.tenant {
            return Err(WorkerError::Config(format!(
                "`tenant` ({tenant}): a fleet has no tenants; leave it out"
            )));
        }
        let mut canvas = spec
            .workflow
            .to_canvas()
            .map_err(|err| WorkerError::Config(format!("cannot read the workflow: {err}")))?;
        if let Some(pause) = first_pause(&canvas) {
            return Err(WorkerError::Config(format!(
                "a `{}` step is not sent to a fleet: Celery's protocol has no durable sleeps or \
                 signals; run the workflow with `wfhost run` (without --broker) or `wfhost serve`",
                pause.task
            )));
        }
        canvas.inherit(&spec.defaults);
        self.submit_as(CelerySignature::from(&canvas), queue, spec.id.clone())
            .await
    }

    /// Sends `workflow` to `queue`, all of its first messages in one
    /// atomic step, and returns the id whose result is the workflow's. A
    /// group is sent as a chord with `celery.accumulate`, so that one id
    /// holds the list of its results. The workflow is read as
    /// `celery_signature` reads it.
    pub async fn submit(&self, workflow: &Value, queue: &str) -> Result<String, WorkerError> {
        let sig = celery_signature(workflow).map_err(WorkerError::Config)?;
        self.submit_as(sig, queue, None).await
    }

    /// [`FleetClient::submit`] with the id of the result `id` when given.
    async fn submit_as(
        &self,
        sig: CelerySignature,
        queue: &str,
        id: Option<String>,
    ) -> Result<String, WorkerError> {
        let routing = Routing {
            queues: vec![queue.to_string()],
            served: Vec::new(),
            default_queue: queue.to_string(),
        };
        let origin = format!("wfhost-run@{}", std::process::id());
        let follow_ups = FollowUps {
            routing: &routing,
            origin: &origin,
        };
        let mut sig = follow_ups.one_result(sig);
        let last = sig
            .final_task_mut()
            .ok_or_else(|| WorkerError::Config("the workflow has no final task".into()))?;
        let id = id
            .or_else(|| last.options.task_id.clone())
            .unwrap_or_else(new_uuid);
        last.options.task_id = Some(id.clone());
        let follow = follow_ups
            .send(&sig)
            .ok_or_else(|| WorkerError::Config("the workflow names no task".into()))?;
        // Sending counts no chord member: nothing to go round for.
        let commit = Commit {
            tag: None,
            expires: 0,
            parts: &[],
            ops: &follow.ops,
            fetch: None,
        };
        self.broker.commit(&commit).await?;
        Ok(id)
    }

    /// Waits for the result of task `id`, at most `timeout`.
    pub async fn wait(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<FleetOutcome>, WorkerError> {
        let key = task_key(id);
        let mut pubsub = self.broker.subscribe(&key).await?;
        let deadline = timeout.map(|timeout| tokio::time::Instant::now() + timeout);
        let mut messages = pubsub.on_message();
        loop {
            if let Some(outcome) = self
                .broker
                .meta(&key)
                .await?
                .as_deref()
                .and_then(outcome_of)
            {
                return Ok(Some(outcome));
            }
            // A published meta wakes the wait at once; the look every
            // second is for a connection that dropped a message.
            let tick = tokio::time::sleep(Duration::from_secs(1));
            tokio::select! {
                message = messages.next() => {
                    let payload = message.and_then(|m| m.get_payload::<String>().ok());
                    if let Some(outcome) = payload.as_deref().and_then(outcome_of) {
                        return Ok(Some(outcome));
                    }
                }
                () = tick => {}
            }
            if deadline.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
                return Ok(None);
            }
        }
    }
}

/// A ready meta's outcome; none for a state that is not final.
fn outcome_of(meta: &str) -> Option<FleetOutcome> {
    let meta: Value = serde_json::from_str(meta).ok()?;
    let state = meta.get("status")?.as_str()?;
    match state {
        "SUCCESS" => Some(FleetOutcome::Succeeded(
            meta.get("result").cloned().unwrap_or(Value::Null),
        )),
        "FAILURE" | "REVOKED" => Some(FleetOutcome::Failed {
            state: state.to_string(),
            exception: meta
                .get("result")
                .and_then(Exception::from_json)
                .unwrap_or_else(|| Exception::new("builtins", "Exception", "no exception stored")),
            traceback: meta
                .get("traceback")
                .and_then(Value::as_str)
                .map(str::to_string),
        }),
        _ => None,
    }
}

/// The first sleep or wait of `canvas`, callbacks included: steps that the
/// host runs itself, and a fleet on Celery's protocol cannot.
fn first_pause(canvas: &Canvas) -> Option<&Signature> {
    fn in_signature(signature: &Signature) -> Option<&Signature> {
        if Pause::of(signature).is_some() {
            return Some(signature);
        }
        let options = &signature.options;
        options
            .link
            .iter()
            .chain(&options.link_error)
            .find_map(in_signature)
    }
    match canvas {
        Canvas::Signature(signature) => in_signature(signature),
        Canvas::Chain(items) | Canvas::Group(items) => items.iter().find_map(first_pause),
        Canvas::Chord(chord) => chord
            .header
            .iter()
            .find_map(first_pause)
            .or_else(|| first_pause(&chord.body)),
    }
}
