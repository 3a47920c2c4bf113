//! Attempts: a step's retry loop under its policy, its countdown and retry
//! waits as deadlines that survive a restart, the workflow's fuel budget,
//! and where each attempt runs (its concurrency slot, its tenant's turn,
//! the attempt pool).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde_json::Value;
use wfhost_canvas::{ACCUMULATE, Expires, Pause, Signature, StepOptions, accumulate};

use super::Working;
use super::error::ExecutorError;
use super::fair::{FairScheduler, Slot};
use super::walk::{AttemptsEnd, Run, replacement};
use crate::lock::lock;
use crate::records::{Failure, FailureKind, StepRecord, StepStatus};
use crate::records::{iso8601, now_ms, parse_iso8601};
use crate::runtime::{Attempt, AttemptResult, CpuShare, Invocation, Limits, Plugin};
use crate::store::Flush;
use wfhost_canvas::retry::{RetryPolicy, seconds_to_duration};

/// A group member whose task typically takes less than this runs where its
/// group runs rather than on a task of its own: two thread hand-overs
/// (there and back) cost about as much as such a step, and the group's
/// other members go on meanwhile on the thread that commits their records.
const QUICK_ATTEMPT: Duration = Duration::from_micros(50);

/// An attempt whose task typically takes less than this does not go to the
/// attempt pool: the two hand-overs to a pool thread, which may be asleep,
/// cost about as much, and it holds the run's thread no longer than tokio
/// asks of any task between two awaits.
const SHORT_ATTEMPT: Duration = Duration::from_micros(100);

tokio::task_local! {
    /// Set while a group member runs: see [`Run::attempt`].
    pub(super) static IN_GROUP: ();
}

impl Run<'_> {
    /// Runs one step, with retries, and fills in its record. `previous` is
    /// the step's record from an earlier run that stopped while the step
    /// waited for its countdown or a retry, or that failed and is re-driven.
    /// With its end comes the last attempt's place among the steps under
    /// way (see [`Run::attempt`]): the caller holds it until the end is
    /// committed, so that a graceful stop waits for that commit.
    pub(super) async fn run_step(
        &self,
        signature: &Signature,
        record: &mut StepRecord,
        previous: Option<&StepRecord>,
    ) -> Result<(AttemptsEnd, Option<Working>), ExecutorError> {
        let started = Instant::now();
        let mut underway = Underway::default();
        let end = self
            .attempt_until_done(signature, record, previous, &mut underway)
            .await;
        let own = started.elapsed().saturating_sub(underway.queued);
        record.duration_ms += own.as_secs_f64() * 1000.0;
        record.due_at_ms = None;
        record.ended_at_ms = Some(now_ms());
        Ok((end?, underway.working))
    }

    /// One attempt, within the run's concurrency and, with fair shares, at
    /// its tenant's turn. Both are waited for here, where the workflow runs,
    /// so that an attempt reaches the attempt pool holding its turn: spawned
    /// first and waiting there, behind a flood of another tenant's attempts,
    /// it would not even be in the scheduler's queue until a pool thread busy
    /// with guest code got round to polling it. The attempt then runs on the
    /// attempt pool when the run has one, unless its task is short
    /// ([`SHORT_ATTEMPT`]); else, inside a group, on a task of its own, so
    /// members spread over the worker threads — unless its task is quick
    /// ([`QUICK_ATTEMPT`]), when the two thread hand-overs would cost more
    /// than running it where the group runs; else where the chain runs.
    ///
    /// Only once it has both does the attempt count as under way for a
    /// graceful stop, and once the host is stopping it never starts: an
    /// attempt still waiting for its slot when the stop comes is left for
    /// the next start to run, not run during the stop. The place among the
    /// steps under way is returned with the attempt, to be held until its
    /// outcome is committed, and so is how long it waited for its slot and
    /// turn, which is not the step's own time. Once it has them, a step past
    /// its expiry fails with kind `expired` and never starts; else
    /// `running` (the step's record as it stands while the attempt runs) is
    /// recorded lazily, with a `step_started` event.
    async fn attempt(
        &self,
        plugin: &Arc<Plugin>,
        invocation: Invocation,
        limits: Limits,
        mut running: StepRecord,
    ) -> Result<Ran, Failure> {
        let waiting = Instant::now();
        // The semaphore is never closed, so acquiring cannot fail.
        let slot = Arc::clone(&self.slots).acquire_owned().await.ok();
        let turn = match &self.fair_share {
            Some(scheduler) => Some(scheduler.acquire(&invocation.tenant).await),
            None => None,
        };
        let working = self.begin_step().await;
        let waited = waiting.elapsed();
        // Checked once it could start, as Celery's worker checks a task's
        // expiry when it comes to run it: waiting for a slot counts.
        if let Some(expired) = running.expires_at_ms.filter(|at| now_ms() >= *at) {
            return Err(Failure::new(
                FailureKind::Expired,
                format!("not started by {}, when it expired", iso8601(expired)),
            ));
        }
        // What `status` shows while the attempt runs. Nothing waits for it,
        // and a store that cannot take it fails the step's outcome instead;
        // but an effectful step starts only once it is durable, and with it
        // the step's input (commits keep their order).
        let started_at_ms = now_ms();
        running.started_at_ms.get_or_insert(started_at_ms);
        let attempt_number = Some(format!("attempt {}", running.attempts));
        let access = self.workflow.plugins.access(plugin.name());
        let started = self
            .commit_flushed(&[&running], "step_started", attempt_number, Flush::Lazily)
            .await;
        if let Err(err) = started
            && access.is_effectful()
        {
            return Err(Failure::new(
                FailureKind::Trap,
                format!("not started: its input could not be made durable: {err}"),
            ));
        }
        let typical = plugin.typical_attempt(&invocation.task);
        let shorter = |bound: Duration| typical.is_some_and(|typical| typical < bound);
        let (short, quick) = (shorter(SHORT_ATTEMPT), shorter(QUICK_ATTEMPT));
        let runtime = self.runtime.clone();
        let plugin = Arc::clone(plugin);
        let cancel = self.cancel.clone();
        // The run's slot bounds the attempts in flight and is held to the
        // end; the tenant's turn is a CPU and is given back while the
        // attempt waits in a host call.
        let share = Arc::new(TurnShare {
            fair_share: self
                .fair_share
                .clone()
                .map(|scheduler| (scheduler, invocation.tenant.clone())),
            turn: Mutex::new(turn),
        });
        let attempt = async move {
            // Given back when the attempt ends, wherever it ran.
            let _slot = slot;
            if cancel.is_cancelled() {
                return Attempt::failed(cancelled("cancelled before it started"));
            }
            runtime
                .run_sharing(&plugin, &invocation, &limits, access, cancel, share)
                .await
        };
        let pool = self.attempt_pool.as_ref().filter(|_| !short);
        let ended = if let Some(pool) = pool {
            pool.spawn(attempt).await.map_err(|err| err.to_string())
        } else if IN_GROUP.try_with(|_| ()).is_ok() && !quick {
            tokio::spawn(attempt).await.map_err(|err| err.to_string())
        } else {
            AssertUnwindSafe(attempt)
                .catch_unwind()
                .await
                .map_err(|_| "panicked".to_string())
        };
        let attempt = ended.unwrap_or_else(|err| {
            Attempt::failed(Failure::new(
                FailureKind::Trap,
                format!("the host task running the attempt ended abnormally: {err}"),
            ))
        });
        Ok(Ran {
            attempt,
            working,
            waited,
            started_at_ms,
        })
    }

    /// Counts an attempt as under way for a graceful stop; never returns
    /// once the host is stopping.
    async fn begin_step(&self) -> Option<Working> {
        match &self.drain {
            Some(drain) => Some(drain.begin().await),
            None => None,
        }
    }

    /// The limits of the next attempt under the workflow's fuel budget, and
    /// what is left of the budget when that, not the step's own limit, is
    /// the attempt's fuel; or the failure of a spent budget.
    fn budgeted(&self, limits: &Limits) -> Result<(Limits, Option<u64>), Failure> {
        let Some(budget) = self.fuel_budget else {
            return Ok((limits.clone(), None));
        };
        let left = budget.saturating_sub(self.fuel_spent.load(Ordering::Relaxed));
        if left == 0 {
            return Err(Failure::new(
                FailureKind::FuelExhausted,
                format!("the workflow has used all of its fuel budget of {budget}"),
            ));
        }
        let mut budgeted = limits.clone();
        let capped = limits.fuel.is_none_or(|fuel| fuel > left);
        if capped {
            budgeted.fuel = Some(left);
        }
        Ok((budgeted, capped.then_some(left)))
    }

    /// Sleeps until `due_ms` (milliseconds since the Unix epoch), if it is
    /// still ahead: a wait that survives restarts is a deadline, not a
    /// duration. Returns `false` if the run is cancelled first.
    pub(super) async fn wait_until(&self, due_ms: Option<u64>) -> bool {
        if let Some(due) = due_ms {
            let now = now_ms();
            if due > now {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(due - now)) => {}
                    () = self.cancel.cancelled() => {}
                }
            }
        }
        !self.cancel.is_cancelled()
    }

    /// [`Run::wait_until`], parking the run first when it may and the
    /// wait is long (a countdown, an `eta`, a retry's delay), the step's
    /// record saying when it is due being on record already.
    async fn wait_or_park(&self, due_ms: Option<u64>, step: &str) -> bool {
        if let Some(due) = due_ms {
            self.park_if_far(due, || format!("step {step} due {}", iso8601(due)))
                .await;
        }
        self.wait_until(due_ms).await
    }

    async fn attempt_until_done(
        &self,
        signature: &Signature,
        record: &mut StepRecord,
        previous: Option<&StepRecord>,
        underway: &mut Underway,
    ) -> Result<AttemptsEnd, ExecutorError> {
        if let Some(pause) = Pause::of(signature) {
            return match pause {
                Ok(pause) => self.pause(&pause, record, previous).await,
                Err(message) => Ok(AttemptsEnd::Failed(Failure::new(
                    FailureKind::Fail,
                    message,
                ))),
            };
        }
        if signature.task == ACCUMULATE {
            // Celery's built-in runs here, with no sandbox: it only hands
            // on its arguments.
            record.attempts = 1;
            record.started_at_ms.get_or_insert_with(now_ms);
            return Ok(match accumulate(&record.args, &record.kwargs) {
                Ok(value) => AttemptsEnd::Value(value),
                Err(message) => AttemptsEnd::Failed(Failure::new(FailureKind::Fail, message)),
            });
        }
        let plugin = match self.workflow.plugins.resolve(signature) {
            Ok((plugin, _)) => plugin,
            Err(message) => {
                return Ok(AttemptsEnd::Failed(Failure::new(
                    FailureKind::PluginError,
                    message,
                )));
            }
        };
        let options = signature.options.or(&self.workflow.spec.defaults);
        let policy = RetryPolicy::from_options(&options);
        let limits = self
            .workflow
            .ceilings
            .default_limits()
            .with_options(&options);
        // Fixed once, when the step first became ready, and kept by every
        // record of it, so a restart does not move it.
        if record.expires_at_ms.is_none() {
            record.expires_at_ms = previous
                .and_then(|earlier| earlier.expires_at_ms)
                .or_else(|| expiry(&options));
        }
        let mut attempt = 1;
        // Attempts before this run: a re-driven step gets a fresh retry
        // budget, but its attempt numbers go on.
        let mut earlier_attempts = 0;
        match previous {
            Some(earlier)
                if matches!(earlier.status, StepStatus::Retrying | StepStatus::Running) =>
            {
                // Attempts go on from where they were: after a retry's wait,
                // or, for an attempt under way when its process ended, again
                // (at least once) and numbered after the one cut off.
                attempt = earlier.attempts + 1;
                record.attempts = earlier.attempts;
                record.fuel_used = earlier.fuel_used;
                record.duration_ms = earlier.duration_ms;
                record.queued_ms = earlier.queued_ms;
                record.started_at_ms = earlier.started_at_ms;
                if !self.wait_or_park(earlier.due_at_ms, &record.id).await {
                    return Ok(AttemptsEnd::Failed(cancelled(WHILE_WAITING)));
                }
            }
            Some(failed) if failed.status == StepStatus::Failed => {
                attempt = failed.attempts + 1;
                earlier_attempts = failed.attempts;
                record.fuel_used = failed.fuel_used;
            }
            Some(waiting) if waiting.status == StepStatus::Scheduled => {
                if !self.wait_or_park(waiting.due_at_ms, &record.id).await {
                    return Ok(AttemptsEnd::Failed(cancelled(WHILE_WAITING)));
                }
            }
            _ => {
                let due = match (&options.eta, options.countdown.filter(|c| *c > 0.0)) {
                    (Some(eta), _) => parse_iso8601(eta),
                    (None, Some(countdown)) => Some(
                        now_ms().saturating_add(seconds_to_duration(countdown).as_millis() as u64),
                    ),
                    (None, None) => None,
                };
                if let Some(due) = due.filter(|due| *due > now_ms()) {
                    record.status = StepStatus::Scheduled;
                    record.due_at_ms = Some(due);
                    self.commit(&[record], "step_scheduled", None).await?;
                    if !self.wait_or_park(Some(due), &record.id).await {
                        return Ok(AttemptsEnd::Failed(cancelled(WHILE_WAITING)));
                    }
                }
            }
        }
        let args = Value::Array(record.args.clone()).to_string();
        let kwargs = Value::Object(record.kwargs.clone()).to_string();
        loop {
            let invocation = Invocation {
                workflow_id: self.identity.id.clone(),
                step_id: record.id.clone(),
                attempt,
                tenant: self.identity.tenant.clone(),
                plugin: plugin.name().to_string(),
                task: signature.task_name().to_string(),
                args: args.clone(),
                kwargs: kwargs.clone(),
            };
            let (attempt_limits, budget_left) = match self.budgeted(&limits) {
                Ok(budgeted) => budgeted,
                Err(failure) => return Ok(AttemptsEnd::Failed(failure)),
            };
            let mut running = record.clone();
            running.status = StepStatus::Running;
            running.attempts = attempt;
            let ran = self
                .attempt(plugin, invocation, attempt_limits, running)
                .await;
            let Ran {
                attempt: mut outcome,
                working: held,
                waited,
                started_at_ms,
            } = match ran {
                Ok(ran) => ran,
                Err(expired) => return Ok(AttemptsEnd::Failed(expired)),
            };
            record.started_at_ms.get_or_insert(started_at_ms);
            underway.working = held;
            underway.queued += waited;
            record.queued_ms += waited.as_secs_f64() * 1000.0;
            self.fuel_spent
                .fetch_add(outcome.fuel_used, Ordering::Relaxed);
            if let (Some(left), AttemptResult::Failed(failure)) = (budget_left, &mut outcome.result)
                && failure.kind == FailureKind::FuelExhausted
            {
                failure.message = format!(
                    "used the last {left} units of the workflow's fuel budget of {}",
                    self.fuel_budget.unwrap_or_default()
                );
            }
            tracing::debug!(
                workflow = %self.identity.id.escape_debug(),
                step = %record.id,
                task = %record.task.escape_debug(),
                attempt,
                outcome = outcome.result.kind(),
                fuel = outcome.fuel_used,
                "attempt ended"
            );
            record.attempts = attempt;
            record.fuel_used = record.fuel_used.saturating_add(outcome.fuel_used);
            record.stdout = outcome.stdout;
            record.stderr = outcome.stderr;
            record.logs.extend(outcome.logs);
            let (reason, countdown) = match outcome.result {
                AttemptResult::Value(value) => return Ok(AttemptsEnd::Value(value)),
                AttemptResult::Replace(json) => {
                    let end = replacement(&json, &record.id, signature);
                    record.result = Some(json);
                    return Ok(end);
                }
                AttemptResult::Retry {
                    message,
                    countdown,
                    max_retries,
                } => {
                    if !policy.allows_another(attempt - earlier_attempts, max_retries) {
                        return Ok(AttemptsEnd::Failed(Failure::new(
                            FailureKind::RetriesExhausted,
                            format!(
                                "gave up after {} attempts: {message}",
                                attempt - earlier_attempts
                            ),
                        )));
                    }
                    (message, countdown)
                }
                AttemptResult::Failed(failure) => {
                    let retry = failure.kind.is_resource_limit()
                        && policy.retry_on_limit
                        && policy.allows_another(attempt - earlier_attempts, None);
                    if !retry {
                        return Ok(AttemptsEnd::Failed(failure));
                    }
                    (failure.to_string(), None)
                }
            };
            let delay = policy.delay(attempt - earlier_attempts - 1, countdown, fastrand::f64);
            record.status = StepStatus::Retrying;
            record.due_at_ms = Some(now_ms().saturating_add(delay.as_millis() as u64));
            self.commit(&[record], "step_retrying", Some(reason.clone()))
                .await?;
            // Waiting for the next attempt is not being under way.
            underway.working = None;
            self.observer.retrying(record, &reason, delay);
            if !self.wait_or_park(record.due_at_ms, &record.id).await {
                return Ok(AttemptsEnd::Failed(cancelled(WHILE_WAITING)));
            }
            attempt += 1;
        }
    }
}

/// One attempt as it ran: its outcome, its place among the steps under way,
/// how long it waited for a slot, and when it started.
struct Ran {
    attempt: Attempt,
    working: Option<Working>,
    waited: Duration,
    started_at_ms: u64,
}

/// What a step's attempts in one run leave besides their end: the last
/// attempt's place among the steps under way, and how long they waited for
/// a slot to run in.
#[derive(Default)]
struct Underway {
    working: Option<Working>,
    queued: Duration,
}

/// When a step ready now expires, as its `expires` says.
fn expiry(options: &StepOptions) -> Option<u64> {
    match options.expires.as_ref()? {
        Expires::After(seconds) => {
            Some(now_ms().saturating_add(seconds_to_duration(*seconds).as_millis() as u64))
        }
        Expires::At(moment) => parse_iso8601(moment),
    }
}

/// What a step waiting for its countdown or retry says when cancelled.
const WHILE_WAITING: &str = "cancelled while it waited to run";

/// A `cancelled` failure.
pub(super) fn cancelled(message: &str) -> Failure {
    Failure::new(FailureKind::Cancelled, message)
}

/// An attempt's turn at the CPUs among the tenants (`serve`'s fair
/// shares): held while it runs, given back while it waits in a host call,
/// and taken again in the tenant's turn to go on.
struct TurnShare {
    fair_share: Option<(Arc<FairScheduler>, String)>,
    turn: Mutex<Option<Slot>>,
}

impl CpuShare for TurnShare {
    fn release(&self) {
        let released = lock(&self.turn).take();
        drop(released);
    }

    fn reacquire(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if let Some((scheduler, tenant)) = &self.fair_share {
                let turn = scheduler.acquire(tenant).await;
                *lock(&self.turn) = Some(turn);
            }
        })
    }
}
