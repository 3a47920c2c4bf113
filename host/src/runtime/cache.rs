//! An on-disk cache of compiled components, so a plugin is compiled once
//! per engine configuration rather than on every `wfhost run`.
//!
//! An entry is keyed by the component's sha256 and the engine's
//! compatibility hash (configuration, features, CPU), and stores a checksum
//! of its payload: a damaged, truncated or foreign entry is a miss and is
//! compiled again, never handed to wasmtime's `unsafe` deserializer.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Bumped when the entry format changes.
const FORMAT: &[u8] = b"wfhost-component-cache-v1\n";

/// A directory of compiled components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentCache {
    dir: PathBuf,
}

/// Feeds `Hash` input into sha256: a hash that is stable across processes,
/// unlike `DefaultHasher`'s.
struct StableHasher(Sha256);

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only the sha256 is used; see `entry_name`.
        0
    }
}

impl ComponentCache {
    /// A cache in `dir`, created when first written.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ComponentCache { dir: dir.into() }
    }

    /// `$WFHOST_CACHE_DIR`, else `wfhost/components` in the user's cache
    /// directory (`$XDG_CACHE_HOME`, else `~/.cache`).
    pub fn default_location() -> Option<Self> {
        if let Some(dir) = std::env::var_os("WFHOST_CACHE_DIR") {
            return Some(ComponentCache::new(PathBuf::from(dir)));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
        Some(ComponentCache::new(base.join("wfhost").join("components")))
    }

    /// Where the cache keeps its entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, engine: &Engine, component_sha256: &str) -> PathBuf {
        let mut hasher = StableHasher(Sha256::new());
        FORMAT.hash(&mut hasher);
        component_sha256.hash(&mut hasher);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let key = format!("{:x}", hasher.0.finalize());
        self.dir.join(format!("{key}.cwasm"))
    }

    /// The compiled component for `bytes` (whose sha256 is given): from the
    /// cache when a sound entry exists, else compiled and stored.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        component_sha256: &str,
    ) -> wasmtime::Result<Component> {
        let path = self.entry_path(engine, component_sha256);
        if let Some(component) = read_entry(engine, &path) {
            return Ok(component);
        }
        let component = Component::new(engine, bytes)?;
        if let Ok(serialized) = component.serialize() {
            // A cache that cannot be written only costs a recompile next time.
            let _ = write_entry(&path, &serialized);
        }
        Ok(component)
    }
}

/// An entry: the format line, the sha256 of the payload, the payload.
fn read_entry(engine: &Engine, path: &Path) -> Option<Component> {
    let data = std::fs::read(path).ok()?;
    let rest = data.strip_prefix(FORMAT)?;
    let (checksum, payload) = rest.split_at_checked(32)?;
    if Sha256::digest(payload).as_slice() != checksum {
        let _ = std::fs::remove_file(path);
        return None;
    }
    // SAFETY: the payload is exactly what `Component::serialize` produced
    // for an engine with the same compatibility hash (the entry's name) and
    // was written by this host; the checksum rules out damage since then.
    match unsafe { Component::deserialize(engine, payload) } {
        Ok(component) => Some(component),
        Err(_) => {
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

fn write_entry(path: &Path, payload: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Write beside the entry and rename, so that a reader never sees half
    // an entry and concurrent writers of the same entry do not mix.
    let mut temp = tempfile_in(dir)?;
    temp.1.write_all(FORMAT)?;
    temp.1.write_all(&Sha256::digest(payload))?;
    temp.1.write_all(payload)?;
    temp.1.sync_all()?;
    std::fs::rename(&temp.0, path)
}

/// A new file with a unique name in `dir`.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    loop {
        let path = dir.join(format!(
            ".tmp-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
}
