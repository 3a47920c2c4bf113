//! Host bindings of the `wfhost:task` world, generated from `wit/`.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    exports: { default: async },
});

pub use self::wfhost::task::host;
pub use self::wfhost::task::types;
