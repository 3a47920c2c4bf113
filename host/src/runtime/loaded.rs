//! Components this runtime has loaded, by the sha256 of their bytes, so
//! that a plugin loaded again (by every workflow that names it) is the same
//! compiled component: no second deserialization, and instances of it
//! reuse the pool's slots already laid out for it.

use std::collections::HashMap;
use std::sync::Mutex;

use wasmtime::component::Component;

use crate::lock::lock;

/// Components kept at most; past it, one is dropped to make room. A host
/// serving many rebuilt plugins does not keep every build forever.
const MOST_KEPT: usize = 64;

/// Loaded components by content hash; clones of a runtime share it.
#[derive(Default)]
pub(super) struct Loaded(Mutex<HashMap<String, Component>>);

impl Loaded {
    /// The component of bytes hashing to `sha256`, made by `make` the
    /// first time.
    pub(super) fn get_or_make(
        &self,
        sha256: &str,
        make: impl FnOnce() -> wasmtime::Result<Component>,
    ) -> wasmtime::Result<Component> {
        if let Some(component) = lock(&self.0).get(sha256) {
            return Ok(component.clone());
        }
        // Made outside the lock: compiling can take seconds.
        let component = make()?;
        let mut loaded = lock(&self.0);
        if loaded.len() >= MOST_KEPT
            && let Some(evicted) = loaded.keys().next().cloned()
        {
            loaded.remove(&evicted);
        }
        Ok(loaded
            .entry(sha256.to_string())
            .or_insert(component)
            .clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The preamble of an empty component: a valid one with nothing in it.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    #[test]
    fn a_component_is_made_once_and_the_kept_ones_are_bounded() {
        let engine = wasmtime::Engine::default();
        let loaded = Loaded::default();
        let made = std::cell::Cell::new(0);
        let make = || {
            made.set(made.get() + 1);
            Component::new(&engine, EMPTY_COMPONENT)
        };
        loaded.get_or_make("a", make).unwrap();
        loaded.get_or_make("a", make).unwrap();
        assert_eq!(made.get(), 1);
        for key in 0..MOST_KEPT * 2 {
            loaded.get_or_make(&key.to_string(), make).unwrap();
        }
        assert_eq!(lock(&loaded.0).len(), MOST_KEPT);
        assert!(
            loaded
                .get_or_make("b", || Err(wasmtime::Error::msg("no")))
                .is_err()
        );
    }
}
