//! A new database appears whole or not at all. It is made under a temporary
//! name beside its path, its tables committed, and only then linked into
//! place, so that a process killed while making it leaves no half-made file
//! that every later open would refuse.
//!
//! The file is private to the user that makes it (0600, in folders made
//! 0700; a stricter umask stays stricter): it holds every tenant's
//! results. Its temporary name is random and made exclusively, so nobody
//! who can write in the folder can hand the host a file of theirs to fill.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
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
    let dir = folder_of(path);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed)?;
    remove_abandoned(path);
    let (file, making) = make_exclusive(path).map_err(failed)?;
    let db = redb::backends::FileBackend::new(file)
        .and_then(|backend| builder().create_with_backend(backend))
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
    work_prefix(path, "making")
}

/// How the private copies `wfhost check` takes of the database at `path`
/// begin (the checking process's id follows).
pub(super) fn checking_prefix(path: &Path) -> String {
    work_prefix(path, "checking")
}

/// How the files a process makes beside the database at `path` for `work`
/// begin: hidden, named after the database and the work.
fn work_prefix(path: &Path, work: &str) -> String {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state.redb".into());
    format!(".{name}.{work}-")
}

/// The folder the database at `path` lies in (`.` for a bare name).
pub(super) fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes the file this process makes the database for `path` in: a new
/// hidden file beside it, `<prefix><pid>-<random>`, created exclusively
/// (never one that was there) and readable by its owner alone.
fn make_exclusive(path: &Path) -> std::io::Result<(File, PathBuf)> {
    let dir = folder_of(path);
    let prefix = format!("{}{}-", making_prefix(path), std::process::id());
    let made = tempfile::Builder::new()
        .prefix(&prefix)
        .rand_bytes(12)
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)?;
    made.keep().map_err(|err| err.error)
}

/// Removes what processes killed while making the database for `path` left
/// beside it (a file that never reached `path`, or a second name of one
/// that did), or while checking it (a copy). The files of a process still
/// alive are its own to finish.
pub(super) fn remove_abandoned(path: &Path) {
    let prefixes = [making_prefix(path), checking_prefix(path)];
    let dir = folder_of(path);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|name| {
                prefixes
                    .iter()
                    .find_map(|prefix| name.strip_prefix(prefix.as_str()))
            })
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok());
        // Only a plain file of this user's: in a shared folder a name
        // that looks abandoned may be someone else's, or a symlink.
        let ours = std::fs::symlink_metadata(entry.path())
            .is_ok_and(|meta| meta.file_type().is_file() && meta.uid() == me);
        if ours && pid.is_some_and(|pid| !alive(pid)) {
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The database holds every tenant's results: nobody but its owner may
    /// read it, or the folders made for it (security probe, finding 3).
    #[test]
    fn a_new_database_and_its_new_folders_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state.redb");
        let store = create(&path, Durability::default()).unwrap();
        drop(store);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
    }

    /// A file planted under the name this process once made the database
    /// in is neither used nor removed (security probe, finding 7).
    #[test]
    fn a_planted_making_file_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let planted = dir
            .path()
            .join(format!("{}{}", making_prefix(&path), std::process::id()));
        std::fs::write(&planted, b"planted").unwrap();
        let store = create(&path, Durability::default()).unwrap();
        drop(store);
        assert_eq!(std::fs::read(&planted).unwrap(), b"planted");
        assert_eq!(mode(&path), 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }
}
