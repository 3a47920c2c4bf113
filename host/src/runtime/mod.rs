//! The sandbox runtime: one wasmtime engine for the process, plugins loaded
//! and pre-linked once, and every attempt of every step run in a fresh,
//! metered store that is denied everything it was not granted.

mod attempt;
mod bindings;
mod cache;
mod cancel;
mod capture;
mod component_file;
mod cpu;
mod engine;
mod limits;
mod loaded;
mod masking;
mod pace;
mod plugin;
mod run;
mod sandbox;
mod state;
mod tasks;
mod world;

pub use attempt::{Attempt, AttemptResult, Invocation};
pub use cache::{ComponentCache, DEFAULT_MAX_BYTES as DEFAULT_CACHE_MAX_BYTES, Pruned};
pub use cancel::CancelToken;
pub use cpu::CpuShare;
pub use engine::{Allocation, Metering, POOLED_INSTANCES};
pub use limits::{Ceilings, Limits, mib};
pub use plugin::{Plugin, PluginError};
pub use tasks::{ParamInfo, TaskInfo, TaskSchema};

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::grants::Access;
use crate::records::LogRecord;
use crate::runtime::engine::EpochTicker;
use crate::runtime::state::StepState;

/// Receives guest log lines as they are written, e.g. to show them live.
pub type LogSink = Arc<dyn Fn(&Invocation, &LogRecord) + Send + Sync>;

/// What is told of a component being compiled (see
/// [`Runtime::with_compile_notice`]): called with its file name, it returns
/// what is dropped when the compile ends.
pub type CompileNotice = Arc<dyn Fn(&str) -> Box<dyn std::any::Any> + Send + Sync>;

/// The engine, the linker of everything a plugin may import, and the clock
/// that enforces wall-clock limits. Cloning is cheap: clones share all of it,
/// so attempts can run on tasks of their own.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<StepState>>,
    log_sink: Option<LogSink>,
    cache: Option<ComponentCache>,
    compile_notice: Option<CompileNotice>,
    loaded: Arc<loaded::Loaded>,
    known_files: Arc<loaded::KnownFiles>,
    allocation: Allocation,
    instance_slots: Arc<Semaphore>,
    _ticker: Arc<EpochTicker>,
}

impl Runtime {
    /// Creates the process's engine and linker.
    pub fn new() -> Result<Self, PluginError> {
        Self::with_metering(Metering::On)
    }

    /// Creates a runtime whose compiled code does or does not meter fuel
    /// and epochs. [`Metering::Off`] exists to measure what metering costs;
    /// never run untrusted code with it.
    pub fn with_metering(metering: Metering) -> Result<Self, PluginError> {
        let (engine, allocation) = engine::new_engine(metering).map_err(PluginError::engine)?;
        let instance_slots = match allocation {
            Allocation::Pooling => engine::POOLED_INSTANCES as usize,
            Allocation::OnDemand => Semaphore::MAX_PERMITS,
        };
        let linker = world::new_linker(&engine).map_err(PluginError::engine)?;
        let ticker = EpochTicker::start(&engine)
            .map_err(|err| PluginError::Engine(format!("cannot start the epoch clock: {err}")))?;
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            log_sink: None,
            cache: None,
            compile_notice: None,
            loaded: Arc::default(),
            known_files: Arc::default(),
            allocation,
            instance_slots: Arc::new(Semaphore::new(instance_slots)),
            _ticker: Arc::new(ticker),
        })
    }

    /// How instances are allocated: pooled, or on demand where the pool's
    /// reservation was refused.
    pub fn allocation(&self) -> Allocation {
        self.allocation
    }

    /// Waits for room for one more live instance, so that a full pool makes
    /// an attempt wait rather than fail.
    pub(crate) async fn instance_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed, so acquiring cannot fail.
        self.instance_slots.acquire().await.ok()
    }

    /// Whether attempts other than the caller's hold instances now; the
    /// caller holds its own slot.
    pub(crate) fn others_running(&self) -> bool {
        let total = match self.allocation {
            Allocation::Pooling => engine::POOLED_INSTANCES as usize,
            Allocation::OnDemand => Semaphore::MAX_PERMITS,
        };
        self.instance_slots.available_permits() + 1 < total
    }

    /// Sends every guest log line to `sink` as well as to the step's record.
    pub fn with_log_sink(mut self, sink: LogSink) -> Self {
        self.log_sink = Some(sink);
        self
    }

    /// Tells `notice` of every component compiled rather than found
    /// compiled (its first use: a large one may take many seconds), with the
    /// component's file name; what `notice` returns is dropped when the
    /// compile ends.
    pub fn with_compile_notice(mut self, notice: CompileNotice) -> Self {
        self.compile_notice = Some(notice);
        self
    }

    /// Keeps compiled components in `cache`, so each is compiled once.
    pub fn with_component_cache(mut self, cache: ComponentCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The component of `bytes`: loaded already, or loaded compiled from
    /// the cache, or compiled.
    fn compile(
        &self,
        bytes: &[u8],
        sha256: &str,
        file_name: &str,
    ) -> wasmtime::Result<wasmtime::component::Component> {
        let compile = || {
            let _told = self.compile_notice.as_ref().map(|notice| notice(file_name));
            wasmtime::component::Component::new(&self.engine, bytes)
        };
        self.loaded.get_or_make(sha256, || match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, sha256, compile),
            None => compile(),
        })
    }

    /// What the component of `sha256` said of itself when last asked (see
    /// [`ComponentCache::keep_listing`]), where a cache keeps it.
    fn cached_listing(&self, sha256: &str) -> Option<Vec<u8>> {
        self.cache.as_ref()?.listing(&self.engine, sha256)
    }

    /// Keeps what the component of `sha256` says of itself, where there is
    /// a cache.
    fn keep_listing(&self, sha256: &str, listing: &[u8]) {
        if let Some(cache) = &self.cache {
            cache.keep_listing(&self.engine, sha256, listing);
        }
    }

    /// Loads, checks and pre-links the component at `path` under `name`.
    ///
    /// With `sha256`, the file must hash to it. The component must target
    /// the `wfhost:task` world and import nothing the host does not grant.
    pub async fn load_plugin(
        &self,
        name: &str,
        path: &Path,
        sha256: Option<&str>,
    ) -> Result<Plugin, PluginError> {
        plugin::load(self, name, path, sha256).await
    }

    /// Runs one attempt of a task in a fresh store under `limits`, with
    /// no grants.
    pub async fn run(&self, plugin: &Plugin, invocation: &Invocation, limits: &Limits) -> Attempt {
        self.run_with(
            plugin,
            invocation,
            limits,
            Access::none(),
            CancelToken::new(),
        )
        .await
    }

    /// Runs one attempt like [`Runtime::run`] with what `access` grants,
    /// stopping it with a `cancelled` failure once `cancel` is cancelled.
    pub async fn run_with(
        &self,
        plugin: &Plugin,
        invocation: &Invocation,
        limits: &Limits,
        access: Arc<Access>,
        cancel: CancelToken,
    ) -> Attempt {
        run::run_attempt(self, plugin, invocation, limits, access, cancel, None).await
    }

    /// Runs one attempt like [`Runtime::run_with`] holding `cpu`, which it
    /// gives back while it waits in a host call (a sleep, an HTTP
    /// response, a stream read) and takes again to go on. The time spent
    /// taking it again is not counted in the attempt's duration.
    pub async fn run_sharing(
        &self,
        plugin: &Plugin,
        invocation: &Invocation,
        limits: &Limits,
        access: Arc<Access>,
        cancel: CancelToken,
        cpu: Arc<dyn CpuShare>,
    ) -> Attempt {
        run::run_attempt(self, plugin, invocation, limits, access, cancel, Some(cpu)).await
    }
}
