//! The contract between the host and a plugin: the interfaces a plugin may
//! import, the export it must provide, and the linker that serves them to
//! every store.

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use super::bindings::Plugin as PluginWorld;
use super::state::StepState;
use crate::grants;

/// The interfaces every plugin may import: WASI 0.2's command world (with
/// a context that denies files, network, environment and arguments unless
/// the plugin's grants allow them) and wfhost's host interface. Each
/// capability adds those it serves ([`grants::Capability::INTERFACES`]);
/// anything else is refused when the plugin loads.
const SERVED_TO_EVERY_PLUGIN: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
    "wfhost:task/host@",
    "wfhost:task/types@",
];

/// Whether a plugin may import `interface` (as its component names it).
pub fn may_import(interface: &str) -> bool {
    SERVED_TO_EVERY_PLUGIN
        .iter()
        .any(|served| interface.starts_with(served))
        || grants::serves(interface)
}

/// The export a plugin must provide (any 0.1.x version).
pub const REQUIRED_EXPORT: &str = "wfhost:task/tasks@0.1";

/// The linker shared by every store: WASI p2, what each capability puts
/// in front of the guest, the waits that give back the CPU, and the host
/// interface.
pub fn new_linker(engine: &Engine) -> wasmtime::Result<Linker<StepState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    grants::add_to_linker(&mut linker)?;
    super::cpu::add_waits_to_linker(&mut linker)?;
    PluginWorld::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |state| state)?;
    Ok(linker)
}
