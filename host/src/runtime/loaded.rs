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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// How long before a file was read its last change must have been for the
/// file's times alone to tell it apart from anything written to it later
/// (git's rule for "racily clean" files): a later write has a later change
/// time, even on a file system whose clock ticks this coarsely.
const SETTLED: Duration = Duration::from_secs(2);

/// Which file, as the system knows it, and its last change: a file written
/// since (in place or replaced) has another change time, which no user can
/// set back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileTimes {
    device: u64,
    inode: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileTimes {
    /// The times of a file with `metadata`.
    pub(super) fn of(metadata: &Metadata) -> Self {
        FileTimes {
            device: metadata.dev(),
            inode: metadata.ino(),
            len: metadata.len(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }

    /// Whether its last change was [`SETTLED`] before `read_at`.
    fn settled_by(&self, read_at: SystemTime) -> bool {
        let at = |(seconds, nanos): (i64, i64)| {
            let since_epoch =
                Duration::new(seconds.max(0) as u64, nanos.clamp(0, 999_999_999) as u32);
            UNIX_EPOCH.checked_add(since_epoch)
        };
        [self.modified, self.changed].into_iter().all(|time| {
            at(time)
                .and_then(|time| time.checked_add(SETTLED))
                .is_some_and(|settled| settled < read_at)
        })
    }
}

/// A file's times and a CRC-32 of what it holds: where the system's clock
/// is too coarse to tell two writes apart, other bytes have another
/// checksum; so a plugin made of the file as it was is not taken for one
/// made of what it holds now. (What a kept plugin runs is always what its
/// recorded sha256 says: it was hashed when it was made.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileStamp {
    times: FileTimes,
    crc32: u32,
}

impl FileStamp {
    /// The stamp of an open file's `metadata` and `bytes`.
    pub(super) fn of(metadata: &Metadata, bytes: &[u8]) -> Self {
        FileStamp {
            times: FileTimes::of(metadata),
            crc32: crc32fast::hash(bytes),
        }
    }
}

/// A plugin kept by the path it was read from.
struct Known {
    /// The file it was made of, as last read.
    stamp: FileStamp,
    /// Whether the file's times had settled when it was last read: then
    /// the same times say it is the same file, without reading it again.
    settled: bool,
    plugin: Plugin,
}

/// Plugins by the path they were read from, with the stamp of the file
/// they were made of; clones of a runtime share them.
#[derive(Default)]
pub(super) struct KnownFiles(Mutex<HashMap<PathBuf, Known>>);

impl KnownFiles {
    /// The plugin made of the file at `path`, if the file still has the
    /// times it had when it was last read, and they had settled by then.
    pub(super) fn get_settled(&self, path: &Path, times: &FileTimes) -> Option<Plugin> {
        let known = lock(&self.0);
        let known = known.get(path)?;
        (known.settled && known.stamp.times == *times).then(|| known.plugin.clone())
    }

    /// The plugin made of the file at `path` when it had `stamp`, if any;
    /// `read_at` is when the file was read with that stamp.
    pub(super) fn get(
        &self,
        path: &Path,
        stamp: &FileStamp,
        read_at: SystemTime,
    ) -> Option<Plugin> {
        let mut known = lock(&self.0);
        let known = known.get_mut(path).filter(|known| known.stamp == *stamp)?;
        known.settled = known.settled || stamp.times.settled_by(read_at);
        Some(known.plugin.clone())
    }

    /// Keeps `plugin`, made of the file at `path` read at `read_at` with
    /// `stamp`.
    pub(super) fn keep(&self, path: &Path, stamp: FileStamp, read_at: SystemTime, plugin: &Plugin) {
        let mut known = lock(&self.0);
        make_room(&mut known, path);
        let settled = stamp.times.settled_by(read_at);
        let plugin = plugin.clone();
        known.insert(
            path.to_path_buf(),
            Known {
                stamp,
                settled,
                plugin,
            },
        );
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
