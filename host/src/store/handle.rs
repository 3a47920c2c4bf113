//! redb's open database: for reading and writing, for reading only
//! beside the processes that write it, or repaired in memory (`overlay`);
//! opened again after an I/O error, and closed without letting a panic
//! inside redb end the process.

use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use redb::{Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, WriteTransaction};

use super::error::catching;

/// redb's database: a handle, opened again after an I/O error (a full
/// disk), since redb refuses every transaction on a handle that saw one
/// until it is reopened.
pub(super) struct Db {
    current: RwLock<Arc<Handle>>,
    /// The file, to open it again; none for a database in memory.
    file: Option<PathBuf>,
}

impl Db {
    /// `db`, opened from `file` (none: in memory, never reopened).
    pub(super) fn new(db: Opened, file: Option<PathBuf>) -> Self {
        Db {
            current: RwLock::new(Arc::new(Handle(ManuallyDrop::new(db)))),
            file,
        }
    }

    /// The handle transactions begin on now.
    pub(super) fn get(&self) -> Arc<Handle> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Opens the file again, for the transactions that come next; the old
    /// handle closes once the last transaction on it ends. False if it
    /// cannot be opened (the disk is still failing): the old one stays.
    pub(super) fn reopen(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        // Only a handle that writes sees write errors.
        if self.get().is_read_only() {
            return false;
        }
        match catching(|| super::builder().open(file)) {
            Ok(Ok(db)) => {
                let handle = Arc::new(Handle(ManuallyDrop::new(Opened::Writable(db))));
                match self.current.write() {
                    Ok(mut current) => *current = handle,
                    Err(poisoned) => *poisoned.into_inner() = handle,
                }
                true
            }
            _ => false,
        }
    }
}

/// redb's database as it was opened: for reading and writing, or for
/// reading only (a file on read-only media, or one this user may not
/// write).
pub(super) enum Opened {
    Writable(Database),
    /// Read beside any process that writes it.
    ReadOnly(ReadOnlyDatabase),
    /// Read through a private layer of writes (see `overlay`): a file
    /// that redb must repair before reading and that no process writes.
    Repaired(Database),
}

impl Opened {
    /// Begins a read transaction.
    pub(super) fn begin_read(&self) -> Result<ReadTransaction, redb::TransactionError> {
        match self {
            Opened::Writable(db) | Opened::Repaired(db) => db.begin_read(),
            Opened::ReadOnly(db) => db.begin_read(),
        }
    }

    /// Begins a write transaction; one opened for reading only cannot.
    pub(super) fn begin_write(&self) -> Result<WriteTransaction, redb::Error> {
        match self {
            Opened::Writable(db) => Ok(db.begin_write()?),
            Opened::ReadOnly(_) | Opened::Repaired(_) => Err(redb::Error::Io(read_only_error())),
        }
    }

    /// Whether the database was opened for reading only.
    pub(super) fn is_read_only(&self) -> bool {
        !matches!(self, Opened::Writable(_))
    }
}

/// Why a database opened for reading only takes no write.
pub(super) fn read_only_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ReadOnlyFilesystem,
        "it is open for reading only (its medium or its permissions allow no writes)",
    )
}

/// One open handle of redb's database, closed when dropped without letting
/// a panic inside redb (closing a damaged file can index past its pages)
/// end the process.
pub(super) struct Handle(ManuallyDrop<Opened>);

impl Deref for Handle {
    type Target = Opened;

    fn deref(&self) -> &Opened {
        &self.0
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let database = &mut self.0;
        // SAFETY: the database is dropped once, here, and never used after:
        // `self` goes with this call.
        let _ = catching(|| unsafe { ManuallyDrop::drop(database) });
    }
}
