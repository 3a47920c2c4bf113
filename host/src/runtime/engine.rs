//! The engine configuration shared by every store, and the epoch clock.

use std::thread;
use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the epoch advances: the granularity of wall-clock limits and of
/// the yields that let other steps run on the same thread.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The wasm call stack one attempt may use; deeper recursion traps.
const MAX_WASM_STACK: usize = 1 << 20;

/// Whether compiled code counts fuel and checks epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metering {
    /// Fuel and epoch checks compiled in: limits can be enforced.
    On,
    /// Neither: only for measuring what metering costs. Fuel and CPU-bound
    /// time limits cannot be enforced.
    Off,
}

pub fn new_engine(metering: Metering) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    // Fuel makes CPU limits deterministic; epochs bound wall-clock time and
    // make long-running guests yield to the async executor.
    let on = metering == Metering::On;
    config.consume_fuel(on);
    config.epoch_interruption(on);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.wasm_component_model(true);
    Engine::new(&config)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
pub struct EpochTicker {
    _thread: thread::JoinHandle<()>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let weak = engine.weak();
        let thread = thread::Builder::new()
            .name("wfhost-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    thread::sleep(EPOCH_TICK);
                }
            })?;
        Ok(EpochTicker { _thread: thread })
    }
}
