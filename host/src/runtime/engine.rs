//! The engine configuration shared by every store, and the epoch clock.

use std::thread;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of wall-clock limits and of
/// the yields that let other steps run on the same thread.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The wasm call stack one attempt may use; deeper recursion traps.
const MAX_WASM_STACK: usize = 1 << 20;

/// Whether compiled code counts fuel and checks epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Metering {
    /// Fuel and epoch checks compiled in: limits can be enforced.
    On,
    /// Neither: only for measuring what metering costs. Fuel and CPU-bound
    /// time limits cannot be enforced.
    Off,
}

/// Instances that may be alive at once with the pooling allocator: the
/// attempts running at once, across every workflow of the process.
pub const POOLED_INSTANCES: u32 = 64;

/// Core instances the pool holds per component instance: a Rust component
/// has a few, one that componentize-py builds 14. A component with more
/// waits for room (see `run::run_attempt`) rather than failing.
const CORE_INSTANCES_EACH: u32 = 16;

/// Bytes of each pooled memory and table kept resident between steps: a
/// small task's whole working set, and at most 64 × 2 MiB in all.
const KEEP_RESIDENT: usize = 2 << 20;

/// How the engine allocates the instances of each attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// From a pool reserved when the engine starts: no `mmap`/`munmap` per
    /// attempt, and at most [`POOLED_INSTANCES`] alive at once.
    Pooling,
    /// Mapped afresh for each instance: what is left when the pool's
    /// address-space reservation is refused.
    OnDemand,
}

fn config(metering: Metering) -> Config {
    let mut config = Config::new();
    // Fuel makes CPU limits deterministic; epochs bound wall-clock time and
    // make long-running guests yield to the async executor.
    let on = metering == Metering::On;
    config.consume_fuel(on);
    config.epoch_interruption(on);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.wasm_component_model(true);
    config
}

/// The pool: sized for [`POOLED_INSTANCES`] components, each
/// memory free to grow to the 4 GiB of wasm32 (the store's limiter is what
/// enforces `memory_mb`). The reservation is virtual address space only.
fn pool() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOLED_INSTANCES)
        .total_core_instances(POOLED_INSTANCES * CORE_INSTANCES_EACH)
        .total_memories(POOLED_INSTANCES * 2)
        .total_tables(POOLED_INSTANCES * 8)
        .total_stacks(POOLED_INSTANCES)
        .max_memory_size(4 << 30)
        // Reset what a step dirtied in place, rather than unmapping it and
        // faulting it in again for the next step: the kernel's PAGEMAP_SCAN
        // tells which pages to reset, where it has it (Linux 6.7+).
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    pool
}

/// The engine, pooling its instances if the machine grants the pool's
/// reservation, else allocating them on demand. Both compile the same code,
/// so compiled components are valid in either.
pub fn new_engine(metering: Metering) -> wasmtime::Result<(Engine, Allocation)> {
    let mut pooled = config(metering);
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool()));
    match Engine::new(&pooled) {
        Ok(engine) => Ok((engine, Allocation::Pooling)),
        Err(_) => Ok((Engine::new(&config(metering))?, Allocation::OnDemand)),
    }
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
