//! An on-disk cache of compiled components, so a plugin is compiled once
//! per engine configuration rather than on every `wfhost run`.
//!
//! An entry is keyed by the component's sha256 and the engine's
//! compatibility hash (configuration, features, CPU), and stores a CRC-32
//! of its payload: a damaged, truncated or foreign entry is a miss and is
//! compiled again, never handed to wasmtime's `unsafe` deserializer. (The
//! CRC guards against damage, not against someone who can write the cache
//! directory; they could as well replace the `wfhost` binary. It is checked
//! on every load, so it must be far cheaper than sha256.)

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Part of every entry's key: bumped when the entry format changes.
const FORMAT: &[u8] = b"wfhost-component-cache-v2\n";

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

/// An entry is the payload exactly as `Component::serialize` produced it,
/// so that wasmtime can map the file instead of copying it, followed by a
/// trailer: the payload's CRC-32 (little-endian) and [`TRAILER_MAGIC`].
/// wasmtime reads the payload's sections by their offsets and ignores bytes
/// past them.
const TRAILER_MAGIC: &[u8; 8] = b"wfhost\x02\n";
const TRAILER_LEN: u64 = 4 + TRAILER_MAGIC.len() as u64;

/// Whether the file at `path` is a whole entry whose payload is undamaged.
/// Reads it in small pieces: a whole-file buffer would cost more in page
/// faults than the checksum itself.
fn entry_is_sound(path: &Path) -> std::io::Result<bool> {
    let mut file = std::fs::File::open(path)?;
    let Some(payload_len) = file.metadata()?.len().checked_sub(TRAILER_LEN) else {
        return Ok(false);
    };
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0; 64 << 10];
    let mut remaining = payload_len;
    while remaining > 0 {
        let chunk = &mut buffer[..remaining.min(64 << 10) as usize];
        file.read_exact(chunk)?;
        hasher.update(chunk);
        remaining -= chunk.len() as u64;
    }
    let mut trailer = [0; TRAILER_LEN as usize];
    file.read_exact(&mut trailer)?;
    let (checksum, magic) = trailer.split_at(4);
    Ok(magic == TRAILER_MAGIC && checksum == hasher.finalize().to_le_bytes())
}

fn read_entry(engine: &Engine, path: &Path) -> Option<Component> {
    match entry_is_sound(path) {
        Ok(true) => {}
        Ok(false) => {
            let _ = std::fs::remove_file(path);
            return None;
        }
        Err(_) => return None,
    }
    // SAFETY: the file was written by this host from what
    // `Component::serialize` produced for an engine with the same
    // compatibility hash (the entry's name), and its checksum rules out
    // damage since then.
    match unsafe { Component::deserialize_file(engine, path) } {
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
    temp.1.write_all(payload)?;
    temp.1.write_all(&crc32fast::hash(payload).to_le_bytes())?;
    temp.1.write_all(TRAILER_MAGIC)?;
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
