//! Why the state database cannot be used, and the one place where what went
//! wrong inside (redb, a record that does not decode) becomes that error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

/// Why the state database cannot be used. Causes are kept as `source()`:
/// an embedder can tell a full disk from a damaged file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A process that does not share the database has it open: another
    /// program, or a wfhost from before databases were shared.
    #[error("the state database {} is in use by a process that does not share it (an older wfhost?)", path.display())]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// There is no database at the path, and the command only reads one.
    #[error("no state database at {} (give its path with --db or WFHOST_DB)", path.display())]
    Missing {
        /// The path looked at.
        path: PathBuf,
    },
    /// The file is damaged or is not a wfhost database.
    #[error("the state database {} is damaged or is not a wfhost database: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The database is of a schema this wfhost does not read.
    #[error("the state database {} has schema version {found}; this wfhost reads version {expected}", path.display())]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u64,
        /// The version this wfhost reads.
        expected: u64,
    },
    /// The database is of an older schema, which must be written to be
    /// read by this wfhost, and it is open for reading only.
    #[error("the state database {} has schema version {found} and is open for reading only (its medium or its permissions allow no writes); this wfhost reads version {expected}, to which the file is brought by any wfhost command that can write it", path.display())]
    ReadOnlyUpgrade {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u64,
        /// The version this wfhost reads.
        expected: u64,
    },
    /// The database (or its directory) cannot be created.
    #[error("cannot create the state database {}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The system refused to open the file (permissions, read-only media).
    #[error("cannot open the state database {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the database failed.
    #[error("the state database {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What redb said (shared by the writers of one commit).
        #[source]
        source: Arc<redb::Error>,
    },
    /// The locks that say which workflows run cannot be taken or seen.
    #[error("the state database {}: cannot lock its workflow leases", path.display())]
    Lease {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The store's flush thread could not be started.
    #[error("the state database {}: cannot start its flush thread", path.display())]
    FlushThread {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The commit holding a write was abandoned before it answered.
    #[error("the state database {}: a commit was abandoned", path.display())]
    Abandoned {
        /// The file.
        path: PathBuf,
    },
}

/// What went wrong inside a read or a commit, before it is named.
#[derive(Debug)]
pub(super) enum Fault {
    Redb(redb::Error),
    /// A stored record that does not decode.
    Decode(serde_json::Error),
    /// A stored record whose checksum does not hold: the record, or the
    /// key it was found under, changed since it was written.
    Checksum {
        table: String,
        key: String,
    },
}

impl Fault {
    /// Whether redb refused because its handle saw an I/O error earlier.
    pub(super) fn is_previous_io(&self) -> bool {
        matches!(self, Fault::Redb(redb::Error::PreviousIo))
    }

    /// The error of this fault in the database at `path`.
    pub(super) fn at(self, path: &Path) -> StoreError {
        match self {
            Fault::Redb(err) => redb_error(path, Arc::new(err)),
            Fault::Decode(err) => StoreError::Damaged {
                path: path.to_path_buf(),
                reason: format!("a stored record does not decode: {err}"),
            },
            Fault::Checksum { table, key } => StoreError::Damaged {
                path: path.to_path_buf(),
                reason: format!(
                    "the record of table `{table}` under {key} fails its checksum \
                     (the file changed since wfhost wrote it)"
                ),
            },
        }
    }
}

/// Runs `work` on the database at `path`, turning a panic inside redb (a
/// damaged file can make it index out of its pages) into the error of a
/// damaged database: the host reports it and goes on, rather than dying.
pub(super) fn guarded<R>(
    path: &Path,
    work: impl FnOnce() -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    catching(work).unwrap_or_else(|panic| Err(panicked(path, panic.as_ref())))
}

thread_local! {
    /// How many calls into redb this thread is in whose panics are caught.
    static CATCHING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Runs `work`, catching a panic in it, and saying meanwhile (see
/// [`catching_redb_panic`]) that a panic here is caught and reported.
pub(super) fn catching<R>(work: impl FnOnce() -> R) -> std::thread::Result<R> {
    CATCHING.with(|depth| depth.set(depth.get() + 1));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    CATCHING.with(|depth| depth.set(depth.get() - 1));
    result
}

/// Whether a panic on this thread now comes from inside redb, where the
/// store catches it and reports the database as damaged.
fn catching_redb_panic() -> bool {
    CATCHING.with(|depth| depth.get() > 0)
}

/// Sets the process's panic hook to stay quiet about a panic inside redb
/// on a damaged file: the store catches it and returns a
/// [`StoreError`] saying the database is damaged, and redb's own message
/// printed first would only confuse. Every other panic is reported by the
/// hook that was set before.
pub fn hush_caught_redb_panics() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !catching_redb_panic() {
            report(info);
        }
    }));
}

/// The error of a panic inside redb on the database at `path`.
pub(super) fn panicked(path: &Path, panic: &(dyn std::any::Any + Send)) -> StoreError {
    damaged_by_panic(path, &panic_text(panic))
}

/// What a panic said.
pub(super) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

/// The error of the database at `path` once redb panicked on it, saying
/// `what`.
pub(super) fn damaged_by_panic(path: &Path, what: &str) -> StoreError {
    StoreError::Damaged {
        path: path.to_path_buf(),
        reason: format!("redb failed on it: {what}"),
    }
}

/// The error of `err` in the database at `path`: damage is named as such.
pub(super) fn redb_error(path: &Path, err: Arc<redb::Error>) -> StoreError {
    let path = path.to_path_buf();
    match &*err {
        redb::Error::Corrupted(reason) => StoreError::Damaged {
            path,
            reason: reason.clone(),
        },
        _ => StoreError::Io { path, source: err },
    }
}

impl From<serde_json::Error> for Fault {
    fn from(err: serde_json::Error) -> Self {
        Fault::Decode(err)
    }
}

/// Each of redb's error types becomes a fault by way of `redb::Error`.
macro_rules! redb_faults {
    ($($error:ty),*) => {$(
        impl From<$error> for Fault {
            fn from(err: $error) -> Self {
                Fault::Redb(err.into())
            }
        }
    )*};
}

redb_faults!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
