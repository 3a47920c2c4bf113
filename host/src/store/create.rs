//! A new database appears whole or not at all. It is made under a temporary
//! name beside its path, its tables committed, and only then linked into
//! place, so that a process killed while making it leaves no half-made file
//! that every later open would refuse.

use std::path::{Path, PathBuf};

use super::leases::Leases;
use super::{Durability, Store, StoreError, builder, open_error};

/// Makes the database at `path`, which does not exist yet; if another
/// process makes it first, opens that one.
pub(super) fn create(path: &Path, durability: Durability) -> Result<Store, StoreError> {
    let failed = |source: std::io::Error| StoreError::Create {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(failed)?;
    remove_abandoned(path);
    let making = making_path(path);
    let db = builder()
        .create(&making)
        .map_err(|err| open_error(&making, err))?;
    // The file made is the one linked: its leases are the database's.
    let leases = Leases::on_file(&making).map_err(failed)?;
    // The schema's first commit reaches the disk before the file is linked.
    let db = super::handle::Opened::Writable(db);
    let store = match Store::start(db, path.to_path_buf(), durability, leases) {
        Ok(store) => store,
        Err(err) => {
            let _ = std::fs::remove_file(&making);
            return Err(err);
        }
    };
    // A link, unlike a rename, never replaces a database another process
    // made meanwhile.
    let linked = std::fs::hard_link(&making, path);
    let _ = std::fs::remove_file(&making);
    match linked {
        Ok(()) => {
            // The name must outlast a power cut as the file's content does.
            std::fs::File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(failed)?;
            Ok(store)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            drop(store);
            Store::open_file(path, durability)
        }
        Err(err) => Err(failed(err)),
    }
}

/// The prefix of the names the database for `path` is made under.
fn making_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state.redb".into());
    format!(".{name}.making-")
}

/// Where this process makes the database for `path`: a hidden name beside
/// it.
fn making_path(path: &Path) -> PathBuf {
    path.with_file_name(format!("{}{}", making_prefix(path), std::process::id()))
}

/// Removes what processes killed while making the database for `path` left
/// beside it: a file that never reached `path`, or a second name of one
/// that did. The files of a process still alive are its own to finish.
pub(super) fn remove_abandoned(path: &Path) {
    let prefix = making_prefix(path);
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|name| name.strip_prefix(&prefix))
            .and_then(|pid| pid.parse::<i32>().ok());
        if pid.is_some_and(|pid| !alive(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` exists (signal 0 checks without sending one).
fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only reports whether the
    // process exists and may be signalled.
    let status = unsafe { libc::kill(pid, 0) };
    status == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
