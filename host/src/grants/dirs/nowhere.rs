//! What a guest finds at `/` where no grant puts a directory: an empty one
//! it may only read.
//!
//! WASI's libc resolves an absolute path against the directories the guest
//! was given and refuses a path under none of them itself, with a bare "No
//! such file or directory" the host never hears of. With this directory at
//! `/`, such a path reaches the host, finds nothing there either — the
//! guest sees the same error as before — and the host can say which grant
//! does not cover it.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::ReadyDirs;
use crate::grants::real_path::{open_following_no_symlink, path_of_open};

/// The guest path the empty directory is shown at.
pub(crate) const ROOT: &str = "/";

/// The empty directory, by a path that reaches exactly the one opened and
/// checked here whatever is renamed since; none where it cannot be made
/// safely (then a path under no grant is refused by the guest's libc,
/// unexplained, as without it).
pub(crate) fn root() -> Option<&'static Path> {
    static NOWHERE: OnceLock<Option<(OwnedFd, PathBuf)>> = OnceLock::new();
    NOWHERE
        .get_or_init(|| match open() {
            Ok(opened) => {
                let path = path_of_open(&opened);
                Some((opened, path))
            }
            Err(err) => {
                tracing::warn!(error = %err, "no empty directory to show at `/`: a path outside every directory grant fails unexplained");
                None
            }
        })
        .as_ref()
        .map(|(_, path)| path.as_path())
}

/// The empty directory at `/` as one attempt sees it: which of the guest's
/// descriptors are it, and the last path under no grant the guest reached
/// for there.
#[derive(Debug)]
pub struct Outside {
    dirs: Arc<ReadyDirs>,
    roots: Vec<u32>,
    /// The latest guest paths under no grant.
    unreached: VecDeque<String>,
}

impl Outside {
    /// For an attempt granted `dirs`, shown the empty directory at `/`.
    pub(crate) fn new(dirs: Arc<ReadyDirs>) -> Self {
        Outside {
            dirs,
            roots: Vec::new(),
            unreached: VecDeque::new(),
        }
    }

    /// Notes that the guest's descriptor `rep` is the directory at `/` (as
    /// the guest's libc asks for its directories, once).
    pub(crate) fn note_root(&mut self, rep: u32) {
        if !self.roots.contains(&rep) && self.roots.len() < MAX_ROOTS {
            self.roots.push(rep);
        }
    }

    /// Notes a call through the descriptor `rep` to `path`: when `rep` is
    /// the directory at `/`, the path is under no grant (nothing else is
    /// there). True when it was.
    pub(crate) fn reaching(&mut self, rep: u32, path: &str) -> bool {
        if !self.roots.contains(&rep) {
            return false;
        }
        if !matches!(path, "" | ".") {
            let path = format!("{ROOT}{}", path.trim_start_matches('/'));
            let path = crate::text::truncated(path, MAX_PATH, "…");
            if self.unreached.len() == MAX_UNREACHED {
                self.unreached.pop_front();
            }
            self.unreached.push_back(path);
        }
        true
    }

    /// What explains `failure` (a guest's message), if a path under no
    /// grant does: the latest one it names, or, for an OS error that names
    /// none (Rust's), the latest one. A failure unrelated to files is left
    /// alone, though the guest may have looked for files and found none
    /// (Python's imports and tracebacks do).
    pub(crate) fn explaining(&self, failure: &str) -> Option<String> {
        let named = self.unreached.iter().rev().find(|path| {
            // A relative path is named as the guest gave it, quoted
            // (Python's `'orders.csv'`).
            let relative = format!("'{}'", &path[ROOT.len()..]);
            failure.contains(path.as_str()) || failure.contains(&relative)
        });
        let os_error = failure.contains("(os error ") || failure.contains("[Errno ");
        named
            .or_else(|| self.unreached.back().filter(|_| os_error))
            .map(|path| self.dirs.outside_every_grant(path))
    }
}

/// The descriptors noted as the directory at `/`: a guest's libc asks
/// once; more are not noted.
const MAX_ROOTS: usize = 8;

/// A path longer than this is kept cut.
const MAX_PATH: usize = 1 << 10;

/// The paths under no grant kept to explain a failure: the latest.
const MAX_UNREACHED: usize = 16;

/// Makes (when missing) and opens this user's empty directory in the
/// temporary folder: it must be a directory of this user's, that no one
/// may write into, with nothing in it.
fn open() -> std::io::Result<OwnedFd> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let dir = std::env::temp_dir().join(format!("wfhost-{me}-nowhere"));
    match std::fs::DirBuilder::new().mode(0o500).create(&dir) {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => return Err(err),
        _ => {}
    }
    let opened = open_following_no_symlink(&dir)
        .map_err(|refusal| std::io::Error::other(format!("{}: {refusal}", dir.display())))?;
    let path = path_of_open(&opened);
    let meta = std::fs::metadata(&path)?;
    let refuse = |why: &str| {
        Err(std::io::Error::other(format!(
            "{} {why} (owner {}, mode {:o})",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o777
        )))
    };
    if meta.uid() != me || meta.mode() & 0o222 != 0 {
        return refuse("is not this user's alone, closed to writes");
    }
    if std::fs::read_dir(&path)?.next().is_some() {
        return refuse("is not empty");
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_an_empty_directory_no_one_may_write_into() {
        let root = root().expect("made in the temporary folder");
        assert!(std::fs::read_dir(root).unwrap().next().is_none());
        let mode = std::fs::metadata(root).unwrap().mode();
        assert_eq!(mode & 0o222, 0, "mode {mode:o}");
        assert_eq!(super::root(), Some(root), "made once per process");
    }

    #[test]
    fn a_failure_is_explained_by_the_path_it_names_or_an_os_error_by_the_latest() {
        let dirs =
            <crate::grants::Dirs as crate::grants::Capability>::ready(&Default::default(), "files");
        let mut outside = Outside::new(dirs.unwrap());
        outside.note_root(3);
        assert!(!outside.reaching(4, "secret/a.csv"), "not the root");
        assert!(outside.reaching(3, "secret/a.csv"));
        assert!(outside.reaching(3, "orders.csv"));
        // Python looking for a module's source to print a traceback.
        assert!(outside.reaching(3, "1/module.py"));
        assert!(outside.reaching(3, "."), "the root itself is no path");
        let why = |path: &str| {
            format!("no grant covers {path}: the plugin has no dirs grant (grants.dirs)")
        };
        let named = "FileNotFoundError: [Errno 44] No such file or directory: '/secret/a.csv'";
        assert_eq!(outside.explaining(named), Some(why("/secret/a.csv")));
        let relative = "FileNotFoundError: [Errno 44] No such file or directory: 'orders.csv'";
        assert_eq!(outside.explaining(relative), Some(why("/orders.csv")));
        let unnamed = "No such file or directory (os error 44)";
        assert_eq!(outside.explaining(unnamed), Some(why("/1/module.py")));
        assert_eq!(outside.explaining("ValueError: not a number"), None);
    }
}
