//! An on-disk cache of compiled components, so a plugin is compiled once
//! per engine configuration rather than on every `wfhost run`.
//!
//! An entry is keyed by the component's sha256 and the engine's
//! compatibility hash (configuration, features, CPU), and sealed with an
//! HMAC-SHA256 of its key and payload under the cache's own secret (a
//! random `.key`, 0600, in a directory made 0700): a damaged, truncated,
//! foreign or tampered entry — patched native code with any checksum fixed
//! up, an entry copied from another cache or renamed to another
//! component's key — is a miss and is compiled again, never handed to
//! wasmtime's `unsafe` deserializer. A directory that others may write in,
//! or whose key is not this user's alone, is not used at all.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Part of every entry's key: bumped when the entry format changes.
const FORMAT: &[u8] = b"wfhost-component-cache-v3\n";

/// The file in the cache's directory that holds its secret.
const KEY_FILE: &str = ".key";

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
            } else if let Some(entry_name) = name
                .strip_suffix(".verified")
                .or_else(|| name.strip_suffix(".tasks"))
            {
                // A stamp or listing whose entry went (removed by another
                // process).
                if !self.dir.join(format!("{entry_name}.cwasm")).exists() {
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
            let _ = std::fs::remove_file(stamp_path(&path));
            let _ = std::fs::remove_file(listing_path(&path));
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
    /// cache when a sound entry exists, else made by `compile` and stored.
    /// A cache whose secret cannot be had (see the module's doc) is passed
    /// by.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        component_sha256: &str,
        compile: impl FnOnce() -> wasmtime::Result<Component>,
    ) -> wasmtime::Result<Component> {
        let secret = match secret(&self.dir) {
            Ok(secret) => secret,
            Err(err) => {
                warn_unused(&self.dir, &err);
                return compile();
            }
        };
        let path = self.entry_path(engine, component_sha256);
        if let Some(component) = read_entry(engine, &path, &secret) {
            // An entry's modification time is when it was last used, to
            // the minute: the cap removes the entries used longest ago.
            // (Setting it moves the change time, so the stamp is made
            // again after; within the minute both are left as they are.)
            let used_lately = std::fs::metadata(&path)
                .and_then(|file| file.modified())
                .is_ok_and(|used| used.elapsed().is_ok_and(|age| age < USED_TO_THE));
            if !used_lately {
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|file| file.set_modified(std::time::SystemTime::now()));
                let _ = stamp(&secret, &path);
            }
            return Ok(component);
        }
        let component = compile()?;
        if let Ok(serialized) = component.serialize() {
            // A cache that cannot be written only costs a recompile next
            // time, and one that cannot be pruned only holds more.
            if write_entry(&path, &serialized, &secret).is_ok() {
                let _ = stamp(&secret, &path);
                let _ = self.prune_to(self.max_bytes, true);
            }
        }
        Ok(component)
    }
}

impl ComponentCache {
    /// What was kept beside the compiled component for `bytes` (by
    /// [`Self::keep_listing`]), if a sound copy is there.
    pub fn listing(&self, engine: &Engine, component_sha256: &str) -> Option<Vec<u8>> {
        let secret = secret(&self.dir).ok()?;
        let path = listing_path(&self.entry_path(engine, component_sha256));
        let stored = std::fs::read(&path).ok()?;
        let payload_len = stored.len().checked_sub(TRAILER_LEN as usize)?;
        let (payload, trailer) = stored.split_at(payload_len);
        let (sealed, magic) = trailer.split_at(SEAL_LEN);
        let expected = seal(&secret, &path, |mac| mac.update(payload));
        let sound =
            magic == TRAILER_MAGIC && crate::sha256::equal_in_constant_time(sealed, &expected);
        if !sound {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(payload.to_vec())
    }

    /// Keeps `payload` beside the compiled component (what a component
    /// says of itself when asked: its tasks and their types), sealed as an
    /// entry is, so that a later load need not instantiate it to ask. A
    /// cache that cannot be written only costs asking again.
    pub fn keep_listing(&self, engine: &Engine, component_sha256: &str, payload: &[u8]) {
        let Ok(secret) = secret(&self.dir) else {
            return;
        };
        let path = listing_path(&self.entry_path(engine, component_sha256));
        let _ = write_entry(&path, payload, &secret);
    }
}

/// The file beside an entry that keeps what its component says of itself.
fn listing_path(entry: &Path) -> PathBuf {
    entry.with_extension("tasks")
}

/// Says once per process why the cache in `dir` is not used.
fn warn_unused(dir: &Path, err: &std::io::Error) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            dir = %dir.display().to_string().escape_debug(),
            error = %err,
            "the component cache is not used; every plugin is compiled"
        );
    });
}

/// The cache's secret: its key file, made when missing. The directory
/// (made 0700 when missing) must be this user's and closed to others'
/// writes, and the key this user's, a plain file no one else may read:
/// whoever could change either could seal entries of their own.
fn secret(dir: &Path) -> std::io::Result<[u8; 32]> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let refuse = |what: String| Err(std::io::Error::other(what));
    let folder = std::fs::metadata(dir)?;
    if folder.uid() != me || folder.mode() & 0o022 != 0 {
        return refuse(format!(
            "{} is not this user's alone (owner {}, mode {:o})",
            dir.display(),
            folder.uid(),
            folder.mode() & 0o777
        ));
    }
    let path = dir.join(KEY_FILE);
    if matches!(std::fs::symlink_metadata(&path), Err(err) if err.kind() == std::io::ErrorKind::NotFound)
    {
        make_key(dir, &path)?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.uid() != me || meta.mode() & 0o077 != 0 || meta.len() != 32 {
        return refuse(format!(
            "{} is not this user's private file (owner {}, mode {:o})",
            path.display(),
            meta.uid(),
            meta.mode() & 0o777
        ));
    }
    let mut key = [0u8; 32];
    let mut reader = file;
    reader.read_exact(&mut key)?;
    Ok(key)
}

/// Makes the key at `path`: 32 random bytes written whole beside it and
/// linked into place, so that no reader takes half a key for the key, and
/// two processes that make one at once agree on the first one linked.
fn make_key(dir: &Path, path: &Path) -> std::io::Result<()> {
    let mut fresh = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut fresh)?;
    let (temp, mut file) = tempfile_in(dir)?;
    let linked = file
        .write_all(&fresh)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => Err(err),
        _ => Ok(()),
    }
}

/// How precisely an entry's modification time says when it was last used.
const USED_TO_THE: std::time::Duration = std::time::Duration::from_secs(60);

/// How old a writer's temporary file must be to be taken for abandoned.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// An entry is the payload exactly as `Component::serialize` produced it,
/// so that wasmtime can map the file instead of copying it, followed by a
/// trailer: the seal (see [`seal`]) and [`TRAILER_MAGIC`]. wasmtime reads
/// the payload's sections by their offsets and ignores bytes past them.
const TRAILER_MAGIC: &[u8; 8] = b"wfhost\x03\n";
const SEAL_LEN: usize = 32;
const TRAILER_LEN: u64 = SEAL_LEN as u64 + TRAILER_MAGIC.len() as u64;

/// The HMAC-SHA256, under the cache's secret, of an entry's name (which
/// binds it to one component and engine) and its payload fed by `feed`.
fn seal(secret: &[u8; 32], path: &Path, feed: impl FnOnce(&mut Hmac<Sha256>)) -> [u8; SEAL_LEN] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    let name = path.file_name().unwrap_or_default().as_encoded_bytes();
    mac.update(&(name.len() as u64).to_le_bytes());
    mac.update(name);
    feed(&mut mac);
    mac.finalize().into_bytes().into()
}

/// Whether the file at `path` is a whole entry sealed under `secret`.
/// Reads it in small pieces: a whole-file buffer would cost more in page
/// faults than the hash itself.
fn entry_is_sound(path: &Path, secret: &[u8; 32]) -> std::io::Result<bool> {
    let mut file = std::fs::File::open(path)?;
    let Some(payload_len) = file.metadata()?.len().checked_sub(TRAILER_LEN) else {
        return Ok(false);
    };
    let mut read = Ok(());
    let expected = seal(secret, path, |mac| {
        let mut buffer = vec![0; 64 << 10];
        let mut remaining = payload_len;
        while remaining > 0 {
            let chunk = &mut buffer[..remaining.min(64 << 10) as usize];
            if let Err(err) = file.read_exact(chunk) {
                read = Err(err);
                return;
            }
            mac.update(chunk);
            remaining -= chunk.len() as u64;
        }
    });
    read?;
    let mut trailer = [0; TRAILER_LEN as usize];
    file.read_exact(&mut trailer)?;
    let (sealed, magic) = trailer.split_at(SEAL_LEN);
    // Compared in constant time, as a MAC is.
    Ok(magic == TRAILER_MAGIC && crate::sha256::equal_in_constant_time(sealed, &expected))
}

/// The file beside an entry that says it was verified whole: a seal of
/// what the system says of the entry's file — its inode, size and change
/// time. Any write to the entry, a rename onto it or a change of its mode
/// moves its change time, which nobody but the kernel sets, so a stamp
/// that still matches says the entry is the one verified, and a load skips
/// hashing it (the whole of a compiled Python component) again.
fn stamp_path(entry: &Path) -> PathBuf {
    entry.with_extension("verified")
}

fn stamp_of(secret: &[u8; 32], entry: &Path, file: &std::fs::Metadata) -> [u8; SEAL_LEN] {
    use std::os::unix::fs::MetadataExt;
    seal(secret, entry, |mac| {
        mac.update(b"verified\n");
        for field in [
            file.ino(),
            file.size(),
            file.ctime() as u64,
            file.ctime_nsec() as u64,
        ] {
            mac.update(&field.to_le_bytes());
        }
    })
}

/// Writes the stamp of the entry at `path` as it is now.
fn stamp(secret: &[u8; 32], path: &Path) -> std::io::Result<()> {
    let file = std::fs::symlink_metadata(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let (temp, mut written) = tempfile_in(dir)?;
    written.write_all(&stamp_of(secret, path, &file))?;
    std::fs::rename(&temp, stamp_path(path))
}

/// Whether the stamp beside the entry at `path` matches it.
fn is_stamped(secret: &[u8; 32], path: &Path) -> bool {
    let (Ok(file), Ok(stamped)) = (
        std::fs::symlink_metadata(path),
        std::fs::read(stamp_path(path)),
    ) else {
        return false;
    };
    file.is_file()
        && crate::sha256::equal_in_constant_time(&stamped, &stamp_of(secret, path, &file))
}

fn read_entry(engine: &Engine, path: &Path, secret: &[u8; 32]) -> Option<Component> {
    if !is_stamped(secret, path) {
        match entry_is_sound(path, secret) {
            Ok(true) => {}
            Ok(false) => {
                let _ = std::fs::remove_file(path);
                return None;
            }
            Err(_) => return None,
        }
    }
    // SAFETY: the file bears the seal of this cache's secret, which only
    // this user can read, over its name (the component's sha256 and the
    // engine's compatibility hash) and its payload, or a stamp under the
    // same secret says it is the file whose seal was checked: it is what
    // this host wrote from `Component::serialize` for an engine like this
    // one.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(component) => Some(component),
        Err(_) => {
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

fn write_entry(path: &Path, payload: &[u8], secret: &[u8; 32]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // Write beside the entry and rename, so that a reader never sees half
    // an entry and concurrent writers of the same entry do not mix.
    let mut temp = tempfile_in(dir)?;
    temp.1.write_all(payload)?;
    temp.1
        .write_all(&seal(secret, path, |mac| mac.update(payload)))?;
    temp.1.write_all(TRAILER_MAGIC)?;
    temp.1.sync_all()?;
    std::fs::rename(&temp.0, path)
}

/// A new file with a unique name in `dir`, readable by its owner alone.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    loop {
        let path = dir.join(format!(
            ".tmp-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
}
