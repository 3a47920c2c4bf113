//! Attempts share the CPUs by slots (the run's concurrency and, in
//! `serve`, the tenants' turns). An attempt waiting in a host call — a
//! sleep, an HTTP response, a read of a stream — is on no CPU: it gives
//! its slot back for the wait and takes one again, in its turn, to go on,
//! as a task of an async runtime gives back its thread. So a tenant's
//! sleeping steps do not stall another tenant's working ones.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::io::poll::{Host as _, HostPollable as _};
use wasmtime_wasi::p2::bindings::io::streams::{Host as _, HostInputStream as _};
use wasmtime_wasi::p2::{DynInputStream, DynPollable};

/// What an attempt holds while it runs on a CPU.
pub trait CpuShare: Send + Sync {
    /// Gives the share back: the attempt is about to wait.
    fn release(&self);
    /// Takes a share again, waiting for it as for the first.
    fn reacquire(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The WASI interfaces whose blocking calls are shadowed (the version
/// wasmtime-wasi defines; guests of any 0.2.x import them).
const POLL: &str = "wasi:io/poll@0.2.12";
const STREAMS: &str = "wasi:io/streams@0.2.12";

/// What the waits need of a store's data: its resource table, the
/// attempt's CPU share, and where to count the time spent taking it again.
pub(super) trait CpuAccount: Send + 'static {
    /// The store's resource table.
    fn table(&mut self) -> &mut ResourceTable;
    /// The share the attempt holds, if it holds one.
    fn cpu_share(&self) -> Option<Arc<dyn CpuShare>>;
    /// Counts `waited`, spent taking the share again: not the attempt's
    /// own time.
    fn waited_for_cpu(&mut self, waited: Duration);
}

/// The share an attempt gave back for a wait, taken again when dropped
/// through [`Away::back`].
struct Away {
    share: Option<Arc<dyn CpuShare>>,
}

impl Away {
    fn start(state: &impl CpuAccount) -> Away {
        let share = state.cpu_share();
        if let Some(share) = &share {
            share.release();
        }
        Away { share }
    }

    /// Takes the share again; how long that took (not the attempt's own
    /// time).
    async fn back(self) -> Duration {
        match &self.share {
            Some(share) => {
                let waiting = Instant::now();
                share.reacquire().await;
                waiting.elapsed()
            }
            None => Duration::ZERO,
        }
    }
}

/// Shadows WASI's blocking calls — `poll`, `pollable.block`,
/// `input-stream.blocking-read` — with the same calls made without the
/// attempt's CPU share.
pub(super) fn add_waits_to_linker<T: CpuAccount>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance(POLL)?;
    poll.func_wrap_async(
        "poll",
        |mut store, (pollables,): (Vec<Resource<DynPollable>>,)| {
            Box::new(async move {
                let away = Away::start(store.data());
                let ready = store.data_mut().table().poll(pollables).await;
                let waited = away.back().await;
                store.data_mut().waited_for_cpu(waited);
                Ok((ready?,))
            })
        },
    )?;
    poll.func_wrap_async(
        "[method]pollable.block",
        |mut store, (pollable,): (Resource<DynPollable>,)| {
            Box::new(async move {
                let away = Away::start(store.data());
                let blocked = store.data_mut().table().block(pollable).await;
                let waited = away.back().await;
                store.data_mut().waited_for_cpu(waited);
                blocked
            })
        },
    )?;
    let mut streams = linker.instance(STREAMS)?;
    streams.func_wrap_async(
        "[method]input-stream.blocking-read",
        |mut store, (stream, len): (Resource<DynInputStream>, u64)| {
            Box::new(async move {
                let away = Away::start(store.data());
                let read = store.data_mut().table().blocking_read(stream, len).await;
                let waited = away.back().await;
                store.data_mut().waited_for_cpu(waited);
                let read = match read {
                    Ok(bytes) => Ok(bytes),
                    Err(err) => Err(store.data_mut().table().convert_stream_error(err)?),
                };
                Ok((read,))
            })
        },
    )?;
    Ok(())
}
