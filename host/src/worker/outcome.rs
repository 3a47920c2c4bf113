//! What an attempt's end commits: the task's own meta (SUCCESS, RETRY or
//! FAILURE, with wfhost's account of the attempt) and what it sends on,
//! under the retry policy of `wfhost run`.

use serde_json::{Value, json};
use wfhost_canvas::StepOptions;
use wfhost_canvas::retry::RetryPolicy;

use super::WorkerConfig;
use super::canvas::{FollowUp, Op};
use super::claim::Claimed;
use super::message::TaskMessage;
use super::meta::{Exception, Meta, State, task_key};
use super::routing::list_key;
use super::task::Shared;
use crate::records::{Failure, FailureKind, now_ms};
use crate::runtime::{Attempt, AttemptResult};

fn wfhost_account(attempt: &Attempt, message: &TaskMessage) -> Value {
    json!({
        "kind": attempt.result.kind(),
        "attempt": message.retries.saturating_add(1),
        "fuel": attempt.fuel_used,
        "duration_ms": attempt.duration.as_secs_f64() * 1000.0,
    })
}

pub(super) fn outcome(
    shared: &Shared,
    claimed: &Claimed,
    message: &TaskMessage,
    attempt: &Attempt,
) -> (FollowUp, Option<Own>) {
    let account = wfhost_account(attempt, message);
    let failed = |failure: &Failure| {
        let exception = Exception::of_failure(failure);
        tracing::info!(kind = failure.kind.as_str(), error = %failure.message.escape_debug(), "failed");
        let traceback = format!(
            "{}.{}: {}\n  raised by {} [{}], attempt {}, as wfhost `{}`",
            exception.module,
            exception.kind,
            exception.message,
            message.task,
            message.id,
            message.retries.saturating_add(1),
            failure.kind.as_str()
        );
        ending_in_failure(
            shared,
            message,
            State::Failure,
            &exception,
            traceback,
            Some(account.clone()),
        )
    };
    let policy = retry_policy(message, &shared.config);
    let this_attempt = message.retries.saturating_add(1);
    let (why, countdown) = match &attempt.result {
        AttemptResult::Value(value) => {
            tracing::info!(
                duration_ms = attempt.duration.as_millis() as u64,
                fuel = attempt.fuel_used,
                "succeeded"
            );
            return ending_in_success(shared, message, value, Some(account));
        }
        AttemptResult::Replace(replacement) => {
            return match shared.follow_ups().replaced(message, replacement) {
                Ok(follow) => {
                    tracing::info!("replaced");
                    (follow, None)
                }
                Err(why) => failed(&Failure::new(
                    FailureKind::InvalidOutput,
                    format!("the task's replacement is not a canvas: {why}"),
                )),
            };
        }
        AttemptResult::Retry {
            message: why,
            countdown,
            max_retries,
        } => {
            if !policy.allows_another(this_attempt, *max_retries) {
                return failed(&Failure::new(
                    FailureKind::RetriesExhausted,
                    format!(
                        "Can't retry {}[{}] args:{} kwargs:{}: {why}",
                        message.task,
                        message.id,
                        Value::Array(message.args.clone()),
                        Value::Object(message.kwargs.clone())
                    ),
                ));
            }
            (why.clone(), *countdown)
        }
        // Ended by `revoke --terminate`: REVOKED, as Celery stores it.
        AttemptResult::Failed(failure)
            if failure.kind == FailureKind::Cancelled && shared.control.is_revoked(&message.id) =>
        {
            tracing::info!("terminated by a revoke");
            let exception = Exception::new("celery.exceptions", "TaskRevokedError", "terminated");
            return ending_in_failure(
                shared,
                message,
                State::Revoked,
                &exception,
                "celery.exceptions.TaskRevokedError: terminated".into(),
                Some(account),
            );
        }
        AttemptResult::Failed(failure) => {
            let retry = failure.kind.is_resource_limit()
                && policy.retry_on_limit
                && policy.allows_another(this_attempt, None);
            if !retry {
                return failed(failure);
            }
            (failure.to_string(), None)
        }
    };
    let delay = policy.delay(message.retries, countdown, fastrand::f64);
    let due_ms = now_ms().saturating_add(delay.as_millis() as u64);
    tracing::info!(countdown = delay.as_secs_f64(), reason = %why, "retry");
    let exception = Exception::new("celery.exceptions", "Retry", why.clone());
    let retried = message.retried(&claimed.text, due_ms, &super::outgoing::new_uuid());
    let key = list_key(&message.routing_key, message.priority);
    let follow = FollowUp {
        ops: vec![Op::Delay {
            due_ms,
            key,
            message: retried,
        }],
        ..FollowUp::default()
    };
    let own = own_meta(
        shared,
        message,
        State::Retry,
        exception.to_json(),
        Some(format!("celery.exceptions.Retry: {why}")),
        std::slice::from_ref(&message.id),
        Some(account),
    );
    (follow, Some(own))
}

/// The retry policy of `message`: its own options, then the task's own
/// limit, then the worker's (`--max-retries`, `--default-retry-delay`).
fn retry_policy(message: &TaskMessage, config: &WorkerConfig) -> RetryPolicy {
    let mut policy = RetryPolicy::from_options(&message.options.or(&StepOptions {
        default_retry_delay: Some(config.default_retry_delay),
        ..StepOptions::default()
    }));
    policy.default_max_retries = config.max_retries;
    policy
}

/// A task's end in success: what it sends on, and its meta naming those
/// as its children.
pub(super) fn ending_in_success(
    shared: &Shared,
    message: &TaskMessage,
    value: &Value,
    account: Option<Value>,
) -> (FollowUp, Option<Own>) {
    let follow = shared.follow_ups().succeeded(message, value);
    let own = own_meta(
        shared,
        message,
        State::Success,
        value.clone(),
        None,
        &follow.children,
        account,
    );
    (follow, Some(own))
}

/// A task's end in failure (or revocation): what that marks and sends,
/// and its meta.
pub(super) fn ending_in_failure(
    shared: &Shared,
    message: &TaskMessage,
    state: State,
    exception: &Exception,
    traceback: String,
    account: Option<Value>,
) -> (FollowUp, Option<Own>) {
    let follow = shared
        .follow_ups()
        .failed(message, state, exception, &traceback);
    let own = own_meta(
        shared,
        message,
        state,
        exception.to_json(),
        Some(traceback),
        &[],
        account,
    );
    (follow, Some(own))
}

/// The task's own meta, as an operation of its commit, and its end's
/// event when task events are sent.
pub(super) fn own_meta(
    shared: &Shared,
    message: &TaskMessage,
    state: State,
    result: Value,
    traceback: Option<String>,
    children: &[String],
    account: Option<Value>,
) -> Own {
    let runtime = account
        .as_ref()
        .and_then(|account| account.get("duration_ms"))
        .and_then(Value::as_f64)
        .map(|ms| ms / 1000.0);
    let event = shared
        .events
        .task_end(&message.id, state, &result, traceback.as_deref(), runtime);
    let meta = Meta {
        state,
        result,
        traceback,
        children,
        task_id: &message.id,
        group_id: message.group.as_deref(),
        parent_id: message.parent_id.as_deref(),
        // Celery leaves `date_done` empty until the task is ready.
        done_ms: (state != State::Retry).then(now_ms),
        wfhost: account,
    };
    Own {
        state,
        op: Op::Meta {
            key: task_key(&message.id),
            text: meta.to_text(),
        },
        event,
    }
}

/// A task's own meta, and its state.
pub(super) struct Own {
    /// Its state.
    pub(super) state: State,
    /// Its meta, stored.
    pub(super) op: Op,
    /// Its end's event (JSON text), when task events are sent.
    pub(super) event: Option<String>,
}
