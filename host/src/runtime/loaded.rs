//! What this runtime has loaded, so that a plugin loaded again (by every
//! workflow that names it, in a service) costs next to nothing:
//! components by the sha256 of their bytes (no second deserialization, and
//! instances of one reuse the pool's slots already laid out for it), and
//! plugins by the file they were read from, as long as the file is the one
//! they were made of.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fs::Metadata;
use std::hash::Hash;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wasmtime::component::Component;

use super::Plugin;
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
        make_room(&mut loaded, sha256);
        Ok(loaded
            .entry(sha256.to_string())
            .or_insert(component)
            .clone())
    }
}

/// Drops one of `kept` when it holds [`MOST_KEPT`] and none under `key`,
/// so that what is kept next fits.
fn make_room<K, Q, V>(kept: &mut HashMap<K, V>, key: &Q)
where
    K: Borrow<Q> + Eq + Hash + Clone,
    Q: Eq + Hash + ?Sized,
{
    if kept.len() >= MOST_KEPT
        && !kept.contains_key(key)
        && let Some(evicted) = kept.keys().next().cloned()
    {
        kept.remove::<K>(&evicted);
    }
}

/// Which file, as the system knows it, its last change, and a CRC-32 of
/// what it holds: a file written since (in place or replaced) has another
/// change time, which no user can set back, and where the system's clock
/// is too coarse to tell two writes apart, other bytes have another
/// checksum; so a plugin made of the file as it was is not taken for one
/// made of what it holds now. (What a kept plugin runs is always what its
/// recorded sha256 says: it was hashed when it was made.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileStamp {
    device: u64,
    inode: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
    crc32: u32,
}

impl FileStamp {
    /// The stamp of an open file's `metadata` and `bytes`.
    pub(super) fn of(metadata: &Metadata, bytes: &[u8]) -> Self {
        FileStamp {
            device: metadata.dev(),
            inode: metadata.ino(),
            len: metadata.len(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
            crc32: crc32fast::hash(bytes),
        }
    }
}

/// Plugins by the path they were read from, with the stamp of the file
/// they were made of; clones of a runtime share them.
#[derive(Default)]
pub(super) struct KnownFiles(Mutex<HashMap<PathBuf, (FileStamp, Plugin)>>);

impl KnownFiles {
    /// The plugin made of the file at `path` when it had `stamp`, if any.
    pub(super) fn get(&self, path: &Path, stamp: &FileStamp) -> Option<Plugin> {
        let known = lock(&self.0);
        let (made_of, plugin) = known.get(path)?;
        (made_of == stamp).then(|| plugin.clone())
    }

    /// Keeps `plugin`, made of the file at `path` when it had `stamp`.
    pub(super) fn keep(&self, path: &Path, stamp: FileStamp, plugin: &Plugin) {
        let mut known = lock(&self.0);
        make_room(&mut known, path);
        known.insert(path.to_path_buf(), (stamp, plugin.clone()));
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
