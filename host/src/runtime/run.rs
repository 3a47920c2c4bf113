//! One attempt from start to end: a slot, a fresh sandbox, the task run,
//! and, when the instance pool was full, the wait for room and a new try.

use std::sync::Arc;
use std::time::Duration;

use super::Runtime;
use super::attempt::{Attempt, Invocation};
use super::cancel::CancelToken;
use super::cpu::CpuShare;
use super::limits::Limits;
use super::plugin::Plugin;
use super::sandbox::Sandbox;
use super::state::LogCallback;
use crate::grants::Access;
use crate::records::LogRecord;

/// Runs one attempt of `invocation` against `plugin`.
pub async fn run_attempt(
    runtime: &Runtime,
    plugin: &Plugin,
    invocation: &Invocation,
    limits: &Limits,
    access: Arc<Access>,
    cancel: CancelToken,
    cpu: Option<Arc<dyn CpuShare>>,
) -> Attempt {
    let mut room_wait = POOL_RETRY_FIRST;
    loop {
        let log_callback: Option<LogCallback> = runtime.log_sink.clone().map(|sink| {
            let invocation = invocation.clone();
            Box::new(move |record: &LogRecord| sink(&invocation, record)) as LogCallback
        });
        let slot = runtime.instance_slot().await;
        let sandbox = Sandbox::new(
            &runtime.engine,
            limits,
            (&access, plugin.opens_files()),
            log_callback,
            cancel.clone(),
            cpu.clone(),
        );
        let mut sandbox = match sandbox {
            Ok(sandbox) => sandbox,
            Err(failure) => return Attempt::failed(failure),
        };
        let result = sandbox.run_task(plugin.pre(), invocation).await;
        // A component of many core instances can fill the pool's
        // instances before its count of live components is reached: the
        // attempt waits for others to end, as it waits for a slot. Alone,
        // it would wait for ever, and fails instead.
        if sandbox.found_pool_full() && runtime.others_running() && !cancel.is_cancelled() {
            drop((sandbox, slot));
            tokio::time::sleep(room_wait).await;
            room_wait = (room_wait * 2).min(POOL_RETRY_MAX);
            continue;
        }
        let attempt = sandbox.finish(result);
        plugin.observe_attempt(&invocation.task, attempt.duration);
        return attempt;
    }
}

/// The first wait before trying again an attempt that found the pool full.
const POOL_RETRY_FIRST: Duration = Duration::from_millis(1);

/// The longest wait between tries of an attempt that found the pool full.
const POOL_RETRY_MAX: Duration = Duration::from_millis(50);
