//! Which workflows are running, in this process or in any other that has
//! the database open: a workflow runs while its lease is held, and a
//! process that dies gives its leases back with it.
//!
//! A lease is a lock on one byte of the database file, chosen by a hash of
//! the workflow's tenant and id, and taken as an open-file-description lock
//! (`F_OFD_SETLK`): the system releases it when the process ends, however
//! it ends, so a crash never leaves a workflow that looks as if it ran. The
//! bytes lie in `[2^61, 2^62)`, past anything redb writes and below the
//! range where redb keeps its own locks (`2^62` on). Locks of one open file
//! description do not exclude each other, so leases taken in this process
//! are also kept in a set, which two requests in one process race on.

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::lock::lock;

/// The first byte a lease may lock.
const FIRST_BYTE: u64 = 1 << 61;

/// The leases of one database.
pub(crate) struct Leases(Arc<Shared>);

struct Shared {
    /// The database file, opened apart from redb's handle (a lock taken
    /// through it is this process's); none for a database in memory,
    /// which no other process sees.
    file: Option<File>,
    /// The workflows leased in this process, by tenant and id.
    held: Mutex<HashSet<(String, String)>>,
}

/// A held lease on one workflow; dropping it gives it back.
pub(crate) struct Lease {
    shared: Arc<Shared>,
    key: (String, String),
    byte: u64,
}

/// The byte that stands for the lease on workflow `id` of `tenant`.
fn byte_of(tenant: &str, id: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(tenant.as_bytes())
        .chain_update([0])
        .chain_update(id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    FIRST_BYTE + (u64::from_le_bytes(first) % FIRST_BYTE)
}

impl Leases {
    /// The leases of the database file at `path`: opens the file for
    /// locking, for reading and writing if the system allows, else for
    /// reading only (whose leases can be seen but not taken).
    pub(crate) fn on_file(path: &Path) -> std::io::Result<Self> {
        let file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .or_else(|_| File::open(path))?;
        Ok(Self::with_file(Some(file)))
    }

    /// The leases of a database no other process sees.
    pub(crate) fn in_process() -> Self {
        Self::with_file(None)
    }

    fn with_file(file: Option<File>) -> Self {
        Leases(Arc::new(Shared {
            file,
            held: Mutex::new(HashSet::new()),
        }))
    }

    /// Takes the lease on workflow `id` of `tenant`, unless this or another
    /// process holds it.
    pub(crate) fn take(&self, tenant: &str, id: &str) -> std::io::Result<Option<Lease>> {
        let key = (tenant.to_string(), id.to_string());
        let byte = byte_of(tenant, id);
        let mut held = lock(&self.0.held);
        if held.contains(&key) {
            return Ok(None);
        }
        if let Some(file) = &self.0.file
            && !try_lock(file, byte)?
        {
            return Ok(None);
        }
        held.insert(key.clone());
        Ok(Some(Lease {
            shared: Arc::clone(&self.0),
            key,
            byte,
        }))
    }

    /// Fails when a lock that is no lease lies over the leases' bytes, so
    /// that no lease could be taken: what a service's readiness reports.
    pub(crate) fn check_unblocked(&self) -> std::io::Result<()> {
        let Some(file) = &self.0.file else {
            return Ok(());
        };
        // The byte below the leases': neither redb's nor a lease's, so a
        // lock on it is one over more than a lease.
        match holder(file, FIRST_BYTE - 1)? {
            Some(lock) => Err(foreign(&lock)),
            None => Ok(()),
        }
    }

    /// How many workflows this process holds leases on: runs now.
    pub(crate) fn held(&self) -> usize {
        lock(&self.0.held).len()
    }

    /// Whether some process (this one included) holds the lease on
    /// workflow `id` of `tenant`, which is to say: runs it now.
    pub(crate) fn is_held(&self, tenant: &str, id: &str) -> std::io::Result<bool> {
        if lock(&self.0.held).contains(&(tenant.to_string(), id.to_string())) {
            return Ok(true);
        }
        match &self.0.file {
            Some(file) => locked_elsewhere(file, byte_of(tenant, id)),
            None => Ok(false),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut held = lock(&self.shared.held);
        if let Some(file) = &self.shared.file {
            // Should the system refuse, the lock goes with the process.
            let _ = unlock(file, self.byte);
        }
        held.remove(&self.key);
    }
}

/// A lock request of `kind` on the one byte `byte`.
fn request(kind: libc::c_int, byte: u64) -> libc::flock {
    // SAFETY: `flock` is plain data, for which all zeroes is a valid value
    // (and `l_pid` must be zero for open-file-description locks).
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    // The kinds and SEEK_SET are small constants that fit any width.
    request.l_type = kind as libc::c_short;
    request.l_whence = libc::SEEK_SET as libc::c_short;
    // Bytes lie below 2^62, within `off_t`.
    request.l_start = byte as libc::off_t;
    request.l_len = 1;
    request
}

/// Calls `fcntl(command)` with `request` on `file`, again when a signal
/// interrupts it.
fn fcntl(file: &File, command: libc::c_int, request: &mut libc::flock) -> std::io::Result<()> {
    loop {
        // SAFETY: the descriptor is open for as long as `file` lives, and
        // `request` is a valid `flock` the call may write to.
        let status = unsafe { libc::fcntl(file.as_raw_fd(), command, request as *mut _) };
        if status != -1 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Locks `byte` of `file` for this open file description, if no other
/// lease holds it. A lock held there that is no lease (a lock over more
/// than this byte: something other than wfhost has the file locked) is an
/// error, not a workflow that runs elsewhere: blaming the workflow would
/// refuse every start with a conflict while the file is what is wrong.
fn try_lock(file: &File, byte: u64) -> std::io::Result<bool> {
    // A lock given back between the refusal and the look at its holder
    // is tried for again; a few rounds, for locks that come and go.
    for _ in 0..3 {
        match fcntl(file, libc::F_OFD_SETLK, &mut request(libc::F_WRLCK, byte)) {
            Ok(()) => return Ok(true),
            Err(err) if matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => {}
            Err(err) => return Err(err),
        }
        match holder(file, byte)? {
            None => continue,
            Some(lock) if is_lease(&lock, byte) => return Ok(false),
            Some(lock) => return Err(foreign(&lock)),
        }
    }
    Ok(false)
}

/// The lock another open file description holds over `byte`, if any.
fn holder(file: &File, byte: u64) -> std::io::Result<Option<libc::flock>> {
    let mut probe = request(libc::F_WRLCK, byte);
    fcntl(file, libc::F_OFD_GETLK, &mut probe)?;
    Ok((probe.l_type != libc::F_UNLCK as libc::c_short).then_some(probe))
}

/// Whether `lock` is a lease on `byte`: a write lock on that byte alone.
fn is_lease(lock: &libc::flock, byte: u64) -> bool {
    lock.l_type == libc::F_WRLCK as libc::c_short
        && lock.l_start == byte as libc::off_t
        && lock.l_len == 1
}

/// The error for a lock on the file that is not a wfhost lease.
fn foreign(lock: &libc::flock) -> std::io::Error {
    let span = if lock.l_len == 0 {
        format!("from byte {} to the end", lock.l_start)
    } else {
        format!("bytes {}..{}", lock.l_start, lock.l_start + lock.l_len)
    };
    let who = if lock.l_pid > 0 {
        format!("process {}", lock.l_pid)
    } else {
        "another open file".to_string()
    };
    std::io::Error::other(format!(
        "{span} of the file are locked by {who}, which is no wfhost lease; no workflow \
         can start until that lock is released"
    ))
}

fn unlock(file: &File, byte: u64) -> std::io::Result<()> {
    fcntl(file, libc::F_OFD_SETLK, &mut request(libc::F_UNLCK, byte))
}

/// Whether another open file description holds a lock on `byte` of `file`.
fn locked_elsewhere(file: &File, byte: u64) -> std::io::Result<bool> {
    Ok(holder(file, byte)?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two handles on one file stand for two processes: a lease one holds
    /// the other can neither take nor miss, until it is given back.
    #[test]
    fn a_lease_excludes_other_holders_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"").unwrap();
        let (here, there) = (
            Leases::on_file(&path).unwrap(),
            Leases::on_file(&path).unwrap(),
        );
        let lease = here.take("t", "wf").unwrap().expect("a free lease");
        assert!(here.take("t", "wf").unwrap().is_none(), "held here");
        assert!(there.take("t", "wf").unwrap().is_none(), "held elsewhere");
        assert!(here.is_held("t", "wf").unwrap() && there.is_held("t", "wf").unwrap());
        assert!(!there.is_held("u", "wf").unwrap());
        let other = there.take("u", "wf").unwrap().expect("another workflow's");
        drop(lease);
        assert!(!there.is_held("t", "wf").unwrap());
        assert!(there.take("t", "wf").unwrap().is_some());
        drop(other);
    }

    /// A lock over the whole file, as any reader of it may take, is no
    /// lease: starting a workflow is an error that names it, and the
    /// readiness check fails, instead of every workflow seeming to run.
    #[test]
    fn a_lock_that_is_no_lease_is_an_error_not_a_running_workflow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"").unwrap();
        let leases = Leases::on_file(&path).unwrap();
        leases.check_unblocked().unwrap();
        let reader = File::open(&path).unwrap();
        let mut whole = request(libc::F_RDLCK, 0);
        whole.l_len = 0;
        fcntl(&reader, libc::F_OFD_SETLK, &mut whole).unwrap();
        let err = leases
            .take("t", "wf")
            .err()
            .expect("an error, not a held lease");
        assert!(err.to_string().contains("no wfhost lease"), "{err}");
        let err = leases.check_unblocked().unwrap_err();
        assert!(err.to_string().contains("from byte 0 to the end"), "{err}");
        drop(reader);
        leases.check_unblocked().unwrap();
        assert!(leases.take("t", "wf").unwrap().is_some());
    }

    #[test]
    fn bytes_lie_between_two_to_the_61_and_redbs_locks() {
        for id in ["a", "b", "wf-1", ""] {
            let byte = byte_of("t", id);
            assert!((FIRST_BYTE..2 * FIRST_BYTE).contains(&byte), "{byte}");
        }
        assert_ne!(byte_of("t", "a"), byte_of("ta", ""));
    }
}
