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

/// The most a cache keeps unless told otherwise: room for a few dozen
/// compiled Python components (each holds CPython), or thousands of Rust ones.
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;

/// A directory of compiled components, kept under a size cap: when an
/// entry written makes the directory larger, the entries used longest ago
/// are removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// What [`ComponentCache::prune`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Entries removed.
    pub removed: usize,
    /// Their bytes.
    pub removed_bytes: u64,
    /// Entries kept.
    pub kept: usize,
    /// Their bytes.
    pub kept_bytes: u64,
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
    /// A cache in `dir`, created when first written, holding at most
    /// [`DEFAULT_MAX_BYTES`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ComponentCache {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// The same cache holding at most `max_bytes` (the newest entry is
    /// kept even when it alone is larger).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The most the cache holds.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Removes the entries used longest ago until the rest hold at most
    /// `max_bytes`, and whatever half-written files a crashed writer left.
    /// A cache directory that does not exist is empty.
    pub fn prune(&self, max_bytes: u64) -> std::io::Result<Pruned> {
        self.prune_to(max_bytes, false)
    }

    /// [`Self::prune`], keeping the newest entry whatever its size when
    /// `keep_newest` (the one just written, which is about to be used).
    fn prune_to(&self, max_bytes: u64, keep_newest: bool) -> std::io::Result<Pruned> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Pruned::default()),
            Err(err) => return Err(err),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if name.starts_with(".tmp-") {
                // Writers rename their file within moments; an old one is
                // what a killed writer left behind.
                let stale = metadata
                    .modified()
                    .ok()
                    .and_then(|modified| modified.elapsed().ok())
                    .is_some_and(|age| age > STALE_TEMP_AGE);
                if stale {
                    let _ = std::fs::remove_file(entry.path());
                }
            } else if name.ends_with(".cwasm") && metadata.is_file() {
                let used = metadata.modified().unwrap_or(std::time::UNIX_EPOCH);
                found.push((used, metadata.len(), entry.path()));
            }
        }
        // Newest first: the kept entries are a prefix.
        found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
        let mut pruned = Pruned::default();
        for (index, (_, len, path)) in found.into_iter().enumerate() {
            let fits = pruned.kept_bytes.saturating_add(len) <= max_bytes;
            if fits || (index == 0 && keep_newest) {
                pruned.kept += 1;
                pruned.kept_bytes += len;
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    pruned.removed += 1;
                    pruned.removed_bytes += len;
                }
                // Another process pruned it first.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        Ok(pruned)
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
            // An entry's modification time is when it was last used: the
            // cap removes the entries used longest ago.
            let _ = std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|file| file.set_modified(std::time::SystemTime::now()));
            return Ok(component);
        }
        let component = Component::new(engine, bytes)?;
        if let Ok(serialized) = component.serialize() {
            // A cache that cannot be written only costs a recompile next
            // time, and one that cannot be pruned only holds more.
            if write_entry(&path, &serialized).is_ok() {
                let _ = self.prune_to(self.max_bytes, true);
            }
        }
        Ok(component)
    }
}

/// How old a writer's temporary file must be to be taken for abandoned.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

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
