//! The steps that wait rather than run a task (DESIGN §15): a durable
//! sleep, which passes its input on at its due instant, and a wait for a
//! signal, whose result is the signal's payload. Both record when they are
//! due before they wait, so a run cut off by a crash or a stop goes on, on
//! `resume`, with the same instant — never before it, never a whole
//! duration later. Neither holds a slot, an instance or a thread.

use std::time::Duration;

use serde_json::Value;
use wfhost_canvas::Pause;

use super::attempt::cancelled;
use super::error::ExecutorError;
use super::walk::{AttemptsEnd, Run};
use crate::records::{Failure, FailureKind, StepRecord, StepStatus, iso8601, now_ms};

/// How often a wait reads the store for a signal another process put:
/// signals this process puts wake it at once.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Where a run that may park says it parks.
pub(super) struct Parking {
    /// How far off a pause's end must be for it to park.
    pub after: Duration,
    /// Told once, when a pause parks.
    pub tell: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<Parked>>>,
}

/// A run parked: until when, and why, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// When it is due to go on, in milliseconds since the Unix epoch;
    /// `u64::MAX` until a signal comes.
    pub due_ms: u64,
    /// `until 2026-…` or `for signal NAME`, for the event log.
    pub why: String,
}

/// `seconds` as whole milliseconds, rounded up: a pause never ends early.
fn millis(seconds: f64) -> u64 {
    (seconds * 1000.0).ceil() as u64
}

impl Run<'_> {
    /// Parks the run when it may and `due_ms` is far enough off: says so
    /// to whoever runs it, which then lets go of the run, so this never
    /// returns. A pause inside a group waits beside the other members.
    pub(super) async fn park_if_far(&self, due_ms: u64, why: impl FnOnce() -> String) {
        let Some(parking) = &self.parking else {
            return;
        };
        let far = Duration::from_millis(due_ms.saturating_sub(now_ms())) > parking.after;
        if !far || super::attempt::IN_GROUP.try_with(|_| ()).is_ok() {
            return;
        }
        let Some(tell) = crate::lock::lock(&parking.tell).take() else {
            return;
        };
        if tell.send(Parked { due_ms, why: why() }).is_ok() {
            std::future::pending::<()>().await;
        }
    }

    /// Does `pause` as step `record`; `previous` is its record from a run
    /// that was cut off while it waited, whose instants it keeps.
    pub(super) async fn pause(
        &self,
        pause: &Pause,
        record: &mut StepRecord,
        previous: Option<&StepRecord>,
    ) -> Result<AttemptsEnd, ExecutorError> {
        let earlier = previous
            .filter(|earlier| matches!(earlier.status, StepStatus::Sleeping | StepStatus::Waiting));
        let started = earlier
            .and_then(|earlier| earlier.started_at_ms)
            .unwrap_or_else(now_ms);
        record.attempts = 1;
        record.started_at_ms = Some(started);
        match pause {
            Pause::Sleep { seconds } => {
                let due = earlier
                    .and_then(|earlier| earlier.due_at_ms)
                    .unwrap_or_else(|| started.saturating_add(millis(*seconds)));
                record.status = StepStatus::Sleeping;
                record.due_at_ms = Some(due);
                if earlier.is_none() {
                    let until = Some(format!("until {}", iso8601(due)));
                    self.commit(&[record], "step_sleeping", until).await?;
                }
                self.park_if_far(due, || format!("asleep until {}", iso8601(due)))
                    .await;
                if !self.wait_until(Some(due)).await {
                    return Ok(AttemptsEnd::Failed(cancelled("cancelled while asleep")));
                }
                let input = record.args.first().cloned().unwrap_or(Value::Null);
                Ok(AttemptsEnd::Value(input))
            }
            Pause::Wait { signal, timeout } => {
                let deadline = match earlier {
                    Some(earlier) => earlier.due_at_ms,
                    None => timeout.map(|timeout| started.saturating_add(millis(timeout))),
                };
                record.status = StepStatus::Waiting;
                record.due_at_ms = deadline;
                if earlier.is_none() {
                    let what = Some(format!("for signal {signal}"));
                    self.commit(&[record], "step_waiting", what).await?;
                }
                self.wait_for_signal(signal, *timeout, deadline, &record.id)
                    .await
            }
        }
    }

    /// Waits for signal `name` as step `step` until `deadline` (if any),
    /// taking it durably before the step goes on.
    async fn wait_for_signal(
        &self,
        name: &str,
        timeout: Option<f64>,
        deadline: Option<u64>,
        step: &str,
    ) -> Result<AttemptsEnd, ExecutorError> {
        let (tenant, id) = (&self.identity.tenant, &self.identity.id);
        loop {
            // Listening before looking, so that a signal put in between
            // still wakes this wait.
            let put = self.store.signal_put();
            tokio::pin!(put);
            put.as_mut().enable();
            {
                // Two waits of one run never take the same signal.
                let _taking = self.signals_taken.lock().await;
                if let Some(signal) = self.store.signal_for(tenant, id, name, step)? {
                    if signal.taken_by.is_none() {
                        self.store.take_signal(tenant, id, &signal, step).await?;
                    }
                    return Ok(AttemptsEnd::Value(signal.payload));
                }
            }
            let until = deadline.unwrap_or(u64::MAX);
            self.park_if_far(until, || format!("waiting for signal {name}"))
                .await;
            let now = now_ms();
            let left = match deadline {
                Some(deadline) if deadline <= now => {
                    let within = timeout.map_or_else(String::new, |timeout| {
                        format!(" within its timeout of {timeout} s")
                    });
                    return Ok(AttemptsEnd::Failed(Failure::new(
                        FailureKind::TimedOut,
                        format!("no signal {name:?} came{within}"),
                    )));
                }
                Some(deadline) => Duration::from_millis(deadline - now).min(SIGNAL_POLL),
                None => SIGNAL_POLL,
            };
            tokio::select! {
                () = &mut put => {}
                () = tokio::time::sleep(left) => {}
                () = self.cancel.cancelled() => {}
            }
            if self.cancel.is_cancelled() {
                let message = format!("cancelled while it waited for signal {name:?}");
                return Ok(AttemptsEnd::Failed(cancelled(&message)));
            }
        }
    }
}
