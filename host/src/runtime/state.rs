//! The data of one attempt's store: what the guest may touch (its WASI
//! context, its grants) and what the host learns while it runs (logs,
//! denials, a panic's message, how long it waited for the CPU).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use super::bindings::{host, types};
use super::cpu::{CpuAccount, CpuShare};
use super::limits::MemoryLimiter;
use crate::grants::{AttemptView, Denials, Granted, Holds, Http, Masker};
use crate::lock::lock;
use crate::records::LogRecord;

/// A log message longer than this is cut, so a guest cannot grow the
/// host's memory through its logs.
pub(super) const MAX_LOG_MESSAGE: usize = 16 << 10;

pub(super) type LogCallback = Box<dyn Fn(&LogRecord) + Send + Sync>;

/// The data of one store: what the guest may touch, and what the host
/// learns about the attempt while it runs.
pub struct StepState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    /// Every capability's state in this attempt.
    pub(super) granted: Granted,
    pub(super) denials: Denials,
    pub(super) limiter: MemoryLimiter,
    pub(super) logs: Vec<LogRecord>,
    pub(super) max_logs: usize,
    pub(super) dropped_logs: u64,
    pub(super) log_callback: Option<LogCallback>,
    pub(super) panic_message: Option<String>,
    pub(super) timed_out: bool,
    pub(super) cancelled: bool,
    pub(super) masker: Masker,
    /// Set when instantiation found the instance pool full.
    pub(super) pool_full: bool,
    /// What the attempt gives back while it waits in a host call.
    pub(super) cpu: Option<Arc<dyn CpuShare>>,
    /// How long it waited to take its share again: not its own time.
    pub(super) cpu_wait: Duration,
}

impl CpuAccount for StepState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    fn cpu_share(&self) -> Option<Arc<dyn CpuShare>> {
        self.cpu.clone()
    }

    fn waited_for_cpu(&mut self, waited: Duration) {
        self.cpu_wait += waited;
    }
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StepState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let http = Holds::<Http>::part_mut(&mut self.granted);
        WasiHttpCtxView {
            ctx: &mut http.ctx,
            table: &mut self.table,
            hooks: &mut http.hooks,
        }
    }
}

impl AttemptView for StepState {
    fn granted(&mut self) -> &mut Granted {
        &mut self.granted
    }

    fn deny(&mut self, reason: String) {
        lock(&self.denials).push(reason);
    }
}

fn clip(message: String) -> String {
    crate::text::truncated(message, MAX_LOG_MESSAGE, " …[truncated]")
}

impl host::Host for StepState {
    fn log(&mut self, level: host::Level, message: String) {
        let record = LogRecord {
            level: level.into(),
            message: self.masker.mask(&clip(message)),
        };
        self.keep_log(record);
    }

    fn panicked(&mut self, message: String) {
        self.panic_message = Some(clip(message));
    }
}

impl StepState {
    /// Shows `record` live and keeps it with the attempt, up to the cap.
    pub(super) fn keep_log(&mut self, record: LogRecord) {
        if let Some(callback) = &self.log_callback {
            callback(&record);
        }
        if self.logs.len() < self.max_logs {
            self.logs.push(record);
        } else {
            self.dropped_logs += 1;
        }
    }
}

impl types::Host for StepState {}
