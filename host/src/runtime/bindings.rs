//! Host bindings of the `wfhost:task` world, generated from `wit/`.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    exports: { default: async },
});

pub use self::wfhost::task::host;
pub use self::wfhost::task::types;

/// The world the guest SDKs build, for its one export beyond `plugin`'s:
/// `schemas`, the types of a plugin's tasks. A component built before it
/// lacks it and still runs; `described::exports::wfhost::task::schemas::
/// GuestIndices::new` says whether a component has it.
pub mod described {
    wasmtime::component::bindgen!({
        world: "described-plugin",
        path: "../wit",
        exports: { default: async },
        with: {
            "wfhost:task/host": super::host,
            "wfhost:task/types": super::types,
        },
    });
}
