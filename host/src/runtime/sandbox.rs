//! One attempt of one step: a fresh store with its own WASI context, fuel,
//! memory limiter and deadline; the task's outcome or a classified failure.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use super::attempt::{Attempt, AttemptResult, Invocation};
use super::bindings::described::exports::wfhost::task::schemas::{
    GuestIndices as SchemasIndices, TaskSchema,
};
use super::bindings::{Plugin as PluginWorld, PluginPre, types};
use super::cancel::CancelToken;
use super::capture::CapturePipe;
use super::cpu::CpuShare;
use super::limits::{Limits, MemoryLimiter};
use super::masking::{masked, masked_output, with_denial};
use super::state::{LogCallback, StepState};
use crate::grants::{Access, AttemptSetup, Denials, GrantError};
use crate::lock::lock;
use crate::records::{Failure, FailureKind, LogLevel, LogRecord};

/// A store set up for one attempt, with its output pipes.
pub struct Sandbox {
    store: Store<StepState>,
    stdout: CapturePipe,
    stderr: CapturePipe,
    initial_fuel: u64,
    limits: Limits,
    started: Instant,
    cancel: CancelToken,
}

/// Why a guarded call did not return normally.
enum Interrupted {
    TimedOut,
    Cancelled,
    Error(wasmtime::Error),
}

impl Sandbox {
    /// A fresh store: no files, no network, no environment, no arguments,
    /// stdin closed, output captured, and the attempt's limits armed; then
    /// what `access` grants (directories, environment, HTTP origins). A
    /// granted directory that cannot be opened
    /// is a `plugin_error` failure.
    pub fn new(
        engine: &Engine,
        limits: &Limits,
        (access, opens_files): (&Arc<Access>, bool),
        log_callback: Option<LogCallback>,
        cancel: CancelToken,
        cpu: Option<Arc<dyn CpuShare>>,
    ) -> Result<Self, Failure> {
        let stdout = CapturePipe::new(limits.max_output_bytes);
        let stderr = CapturePipe::new(limits.max_output_bytes);
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let denials = Denials::default();
        let granted = access
            .attempt(&mut AttemptSetup {
                builder: &mut builder,
                plugin: access.plugin(),
                denials: &denials,
                opens_files,
            })
            .map_err(|err: GrantError| Failure::new(FailureKind::PluginError, err.to_string()))?;
        let state = StepState {
            wasi: builder.build(),
            table: ResourceTable::new(),
            granted,
            denials,
            limiter: MemoryLimiter::new(limits.memory_bytes),
            logs: Vec::new(),
            max_logs: limits.max_log_records,
            dropped_logs: 0,
            log_callback,
            panic_message: None,
            timed_out: false,
            cancelled: false,
            masker: access.masker().clone(),
            pool_full: false,
            cpu,
            cpu_wait: Duration::ZERO,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        let initial_fuel = limits.fuel.unwrap_or(u64::MAX);
        // This fails only on an unmetered engine, where there is no fuel to set.
        let _ = store.set_fuel(initial_fuel);
        let started = Instant::now();
        // A limit past the clock's range is no deadline at all.
        let deadline = limits
            .time_limit
            .and_then(|limit| started.checked_add(limit));
        // Every epoch tick the guest yields, so one busy step never holds a
        // worker thread; past the deadline, or once cancelled, it is
        // interrupted.
        store.set_epoch_deadline(1);
        let watched = cancel.clone();
        store.epoch_deadline_callback(move |mut ctx| {
            if watched.is_cancelled() {
                ctx.data_mut().cancelled = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                ctx.data_mut().timed_out = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(Sandbox {
            store,
            stdout,
            stderr,
            initial_fuel,
            limits: limits.clone(),
            started,
            cancel,
        })
    }

    /// Runs `call` under the wall-clock limit and the cancel token. Epochs
    /// interrupt running wasm; the timeout and the token also cover time
    /// blocked in host calls (sleeps, polls).
    async fn guarded<T>(
        time_limit: Option<Duration>,
        cancel: CancelToken,
        call: impl Future<Output = wasmtime::Result<T>>,
    ) -> Result<T, Interrupted> {
        let limited = async {
            match time_limit {
                Some(limit) => match tokio::time::timeout(limit, call).await {
                    Ok(result) => result.map_err(Interrupted::Error),
                    Err(_) => Err(Interrupted::TimedOut),
                },
                None => call.await.map_err(Interrupted::Error),
            }
        };
        tokio::select! {
            result = limited => result,
            () = cancel.cancelled() => Err(Interrupted::Cancelled),
        }
    }

    /// Instantiates the plugin and asks it for its tasks, and for their
    /// types where it exports `schemas` (`described`). Types it cannot say
    /// (its `describe` traps: a type's own `Deserialize` panicking on what
    /// the SDK's probe offers it) are not known; its tasks still are.
    pub async fn list_tasks(
        &mut self,
        pre: &PluginPre<StepState>,
        described: Option<&SchemasIndices>,
    ) -> Result<(Vec<types::TaskInfo>, Option<Vec<TaskSchema>>), Failure> {
        let store = &mut self.store;
        let result = Self::guarded(self.limits.time_limit, self.cancel.clone(), async move {
            let instance = pre.instance_pre().instantiate_async(&mut *store).await?;
            let plugin = PluginWorld::new(&mut *store, &instance)?;
            let tasks = plugin
                .wfhost_task_tasks()
                .call_list_tasks(&mut *store)
                .await?;
            let schemas = match described {
                Some(indices) => match indices.load(&mut *store, &instance) {
                    Ok(schemas) => schemas.call_describe(&mut *store).await.ok(),
                    Err(_) => None,
                },
                None => None,
            };
            Ok((tasks, schemas))
        })
        .await;
        result.map_err(|interrupted| self.classify(interrupted))
    }

    /// Instantiates the plugin and runs one task.
    pub async fn run_task(
        &mut self,
        pre: &PluginPre<StepState>,
        invocation: &Invocation,
    ) -> AttemptResult {
        let ctx = types::Context {
            chain_id: invocation.workflow_id.clone(),
            step_id: invocation.step_id.clone(),
            attempt: invocation.attempt,
            tenant: invocation.tenant.clone(),
        };
        let store = &mut self.store;
        let result = Self::guarded(self.limits.time_limit, self.cancel.clone(), async move {
            let plugin = pre.instantiate_async(&mut *store).await?;
            plugin
                .wfhost_task_tasks()
                .call_run(
                    &mut *store,
                    &invocation.task,
                    &ctx,
                    &invocation.args,
                    &invocation.kwargs,
                )
                .await
        })
        .await;
        match result {
            Ok(Ok(types::Outcome::Value(json))) => self.parse_output(&json, AttemptResult::Value),
            Ok(Ok(types::Outcome::Replace(json))) => {
                self.parse_output(&json, AttemptResult::Replace)
            }
            Ok(Err(types::TaskError::Retry(request))) => AttemptResult::Retry {
                message: request.message,
                countdown: request.countdown,
                max_retries: request.max_retries,
            },
            Ok(Err(types::TaskError::Fail(message))) => {
                // A guest whose allocator reports failure instead of
                // trapping (Python's `MemoryError`) fails the task; the
                // refusal seen here names the cause.
                let failure = match self.memory_refused() {
                    Some(refused) => Failure::new(
                        FailureKind::MemoryLimit,
                        format!("{}: {message}", refused.message),
                    ),
                    None => Failure::new(FailureKind::Fail, message),
                };
                AttemptResult::Failed(failure)
            }
            Err(Interrupted::Error(err)) if is_pool_full(&err) => {
                self.store.data_mut().pool_full = true;
                AttemptResult::Failed(self.classify(Interrupted::Error(err)))
            }
            Err(interrupted) => AttemptResult::Failed(self.classify(interrupted)),
        }
    }

    /// Whether the attempt found the instance pool full: its instantiation
    /// failed before any guest code ran, so it may simply be tried again.
    pub(super) fn found_pool_full(&self) -> bool {
        self.store.data().pool_full
    }

    fn parse_output(&self, json: &str, wrap: fn(Value) -> AttemptResult) -> AttemptResult {
        if json.len() > self.limits.max_result_bytes {
            return AttemptResult::Failed(Failure::new(
                FailureKind::InvalidOutput,
                format!(
                    "the result is {} bytes, over the limit of {} bytes",
                    json.len(),
                    self.limits.max_result_bytes
                ),
            ));
        }
        // Repeated keys are refused here as in a chain file: a result that
        // means two things is not taken as the last of them.
        match serde_json::from_str(json) {
            Ok(crate::unique::Unique(value)) => wrap(value),
            Err(err) => AttemptResult::Failed(Failure::new(
                FailureKind::InvalidOutput,
                format!("the result is not valid JSON: {err}"),
            )),
        }
    }

    /// The `memory_limit` failure of an attempt whose memory growth was
    /// refused, if it was.
    fn memory_refused(&self) -> Option<Failure> {
        let asked = self.store.data().limiter.denied?;
        let limit = self.limits.memory_bytes.unwrap_or_default();
        Some(Failure::new(
            FailureKind::MemoryLimit,
            format!(
                "exceeded the memory limit of {} MiB (asked for {} MiB in all)",
                limit >> 20,
                asked.div_ceil(1 << 20)
            ),
        ))
    }

    /// Names the cause of a failed call. The store's own records come
    /// first: a denied memory growth or a reported panic explain the trap
    /// that follows them better than the trap itself.
    fn classify(&self, interrupted: Interrupted) -> Failure {
        let state = self.store.data();
        if state.cancelled || matches!(interrupted, Interrupted::Cancelled) {
            return Failure::new(FailureKind::Cancelled, "cancelled while it ran");
        }
        let err = match interrupted {
            Interrupted::Error(err) if !state.timed_out => err,
            _ => {
                let limit = self.limits.time_limit.unwrap_or_default();
                return Failure::new(
                    FailureKind::TimeLimit,
                    format!("exceeded the time limit of {:.3} s", limit.as_secs_f64()),
                );
            }
        };
        if let Some(refused) = self.memory_refused() {
            return refused;
        }
        if let Some(message) = &state.panic_message {
            return Failure::new(FailureKind::Fail, message.clone());
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => Failure::new(
                FailureKind::FuelExhausted,
                format!("used all of its {} units of fuel", self.initial_fuel),
            ),
            Some(Trap::Interrupt) => Failure::new(FailureKind::TimeLimit, "interrupted"),
            Some(trap) => Failure::new(FailureKind::Trap, trap.to_string()),
            None => match err.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => Failure::new(
                    FailureKind::Trap,
                    format!("the guest exited with status {}", exit.0),
                ),
                None => Failure::new(FailureKind::Trap, format!("{err:#}")),
            },
        }
    }

    /// Everything the attempt produced besides its result.
    pub fn finish(self, result: AttemptResult) -> Attempt {
        let remaining = self.store.get_fuel().unwrap_or(0);
        let fuel_used = match &result {
            AttemptResult::Failed(failure) if failure.kind == FailureKind::FuelExhausted => {
                self.initial_fuel
            }
            _ => self.initial_fuel.saturating_sub(remaining),
        };
        let mut state = self.store.into_data();
        let duration = self.started.elapsed().saturating_sub(state.cpu_wait);
        // What a grant refused is told to the step's record too, so that
        // a task swallowing the error does not hide it.
        let mut refusals: Vec<String> = std::mem::take(&mut *lock(&state.denials));
        let failure = match &result {
            AttemptResult::Failed(failure) => Some(failure.message.as_str()),
            AttemptResult::Retry { message, .. } => Some(message.as_str()),
            _ => None,
        };
        refusals.extend(state.granted.refusals(failure));
        for refusal in refusals {
            state.keep_log(LogRecord {
                level: LogLevel::Warn,
                message: format!("denied: {}", state.masker.mask(&refusal)),
            });
        }
        let masker = &state.masker;
        let result = with_denial(
            result,
            state.logs.iter().rev().find_map(|log| {
                log.message
                    .strip_prefix("denied: ")
                    .filter(|_| log.level == LogLevel::Warn)
            }),
        );
        Attempt {
            result: masked(masker, result),
            fuel_used,
            duration,
            stdout: masked_output(masker, self.stdout.captured()),
            stderr: masked_output(masker, self.stderr.captured()),
            logs: state.logs,
            dropped_logs: state.dropped_logs,
        }
    }
}

/// Whether `err` says the instance pool has no room for another instance.
fn is_pool_full(err: &wasmtime::Error) -> bool {
    err.chain()
        .any(|cause| cause.is::<wasmtime::PoolConcurrencyLimitError>())
}
