//! A granted directory's real path, and opening it without following any
//! symlink.
//!
//! A directory grant is judged on the directory's real path, resolved once
//! when the grant is made (a chain file read, a submission checked against
//! its tenant's policy). From then on the host opens that path one
//! component at a time, refusing a symlink anywhere on it: a symlink placed
//! or renamed into the path after the check (by a guest that may write
//! near it, or anyone else) makes the open fail instead of leading
//! somewhere the check never saw.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// `path`'s real path when it exists (every symlink on it resolved);
/// otherwise `path` as it is, for the grant's later check to report.
pub(crate) fn real_or_given(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `path` against a chain file's directory `base_dir`, made absolute, so
/// that a workflow means the same file whatever directory it is resumed
/// from.
pub(crate) fn against(base_dir: &Path, path: &str) -> PathBuf {
    let joined = base_dir.join(path);
    std::path::absolute(&joined).unwrap_or(joined)
}

/// Whether `path` is `root` or inside it, judged on the paths as written
/// (a `..` never counts as inside): meant for real paths, where what is
/// written is what is there.
pub(crate) fn lies_under(path: &Path, root: &Path) -> bool {
    !path.components().any(|c| matches!(c, Component::ParentDir)) && path.starts_with(root)
}

/// Why a granted directory could not be opened.
#[derive(Debug)]
pub(crate) enum OpenRefusal {
    /// A component of the path is a symlink.
    Symlink(PathBuf),
    /// The path is not absolute or holds `..`: not a real path.
    NotReal,
    /// The system's own error.
    Io(io::Error),
}

impl std::fmt::Display for OpenRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenRefusal::Symlink(at) => write!(
                f,
                "{} is a symlink (a granted directory is opened by its real path, \
                 following no symlink)",
                at.display()
            ),
            OpenRefusal::NotReal => f.write_str("not an absolute path without `..`"),
            OpenRefusal::Io(err) => write!(f, "{err}"),
        }
    }
}

/// Opens the directory at the absolute `path`, one component at a time
/// from `/`, refusing any component that is a symlink.
pub(crate) fn open_following_no_symlink(path: &Path) -> Result<OwnedFd, OpenRefusal> {
    if !path.is_absolute() {
        return Err(OpenRefusal::NotReal);
    }
    let mut dir = open_at(None, Path::new("/"))?;
    let mut walked = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => continue,
            Component::Normal(name) => {
                walked.push(name);
                dir = match open_at(Some(&dir), Path::new(name)) {
                    Ok(next) => next,
                    Err(OpenRefusal::Io(_)) if is_symlink(&walked) => {
                        return Err(OpenRefusal::Symlink(walked));
                    }
                    Err(other) => return Err(other),
                };
            }
            Component::ParentDir | Component::Prefix(_) => return Err(OpenRefusal::NotReal),
        }
    }
    Ok(dir)
}

/// The path through which a process opens again the directory `fd` holds,
/// exactly that one, whatever has been renamed or replaced since: what
/// hands a directory opened here to an API that takes a path.
pub(crate) fn path_of_open(fd: &OwnedFd) -> PathBuf {
    let folder = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    Path::new(folder).join(fd.as_raw_fd().to_string())
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink())
}

/// `openat(parent, name, O_DIRECTORY | O_NOFOLLOW)`, for a directory that
/// may be searched without being readable where the system allows it.
fn open_at(parent: Option<&OwnedFd>, name: &Path) -> Result<OwnedFd, OpenRefusal> {
    #[cfg(target_os = "linux")]
    const PATH_ONLY: libc::c_int = libc::O_PATH;
    #[cfg(not(target_os = "linux"))]
    const PATH_ONLY: libc::c_int = libc::O_RDONLY;
    let name = CString::new(name.as_os_str().as_bytes())
        .map_err(|_| OpenRefusal::Io(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let at = parent.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    let flags = libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC | PATH_ONLY;
    // SAFETY: `name` is a valid C string and `at` an open descriptor or
    // AT_FDCWD; the returned descriptor is owned by nothing else.
    let fd = unsafe { libc::openat(at, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(OpenRefusal::Io(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_directory_opens_and_a_symlink_anywhere_on_its_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(real.join("a/b")).unwrap();
        std::os::unix::fs::symlink(real.join("a"), real.join("link")).unwrap();
        std::os::unix::fs::symlink("b", real.join("a/inner")).unwrap();

        let opened = open_following_no_symlink(&real.join("a/b")).unwrap();
        let again = std::fs::canonicalize(path_of_open(&opened)).unwrap();
        assert_eq!(again, real.join("a/b"));

        for through in ["link/b", "link", "a/inner"] {
            match open_following_no_symlink(&real.join(through)) {
                Err(OpenRefusal::Symlink(at)) => {
                    let first = through.split('/').next().unwrap();
                    assert!(at == real.join(first) || at == real.join(through), "{at:?}");
                }
                other => panic!("{through}: {other:?}"),
            }
        }
        assert!(matches!(
            open_following_no_symlink(&real.join("a/../a")),
            Err(OpenRefusal::NotReal)
        ));
        assert!(matches!(
            open_following_no_symlink(Path::new("a")),
            Err(OpenRefusal::NotReal)
        ));
        assert!(matches!(
            open_following_no_symlink(&real.join("missing")),
            Err(OpenRefusal::Io(_))
        ));
    }

    #[test]
    fn real_or_given_resolves_what_exists_and_keeps_what_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(real.join("target")).unwrap();
        std::os::unix::fs::symlink(real.join("target"), real.join("link")).unwrap();
        assert_eq!(real_or_given(&real.join("link")), real.join("target"));
        assert_eq!(real_or_given(&real.join("none")), real.join("none"));
    }
}
