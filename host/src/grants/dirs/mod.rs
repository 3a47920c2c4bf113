//! Directories (wasi:filesystem preopens): the `dirs` capability. A guest
//! path maps to a host directory, read-only unless granted `write`, and
//! one attempt may write at most `max_bytes_written` bytes into them all.
//! The host opens each directory by its real path, refusing any symlink on
//! the way ([`super::real_path`]); [`write_cap`] counts what is written
//! and explains refusals; [`nowhere`] shows an empty directory at `/` so
//! that a path under no grant can be explained.

mod nowhere;
mod write_cap;

pub use nowhere::Outside;
pub use write_cap::WriteBudget;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wasmtime::component::Linker;
use wasmtime_wasi::FsPerms;

use super::GrantError;
use super::capability::{AttemptSetup, AttemptView, Capability};
use super::real_path::{self, against, lies_under, real_or_given};
use crate::json::{JsonPath, SpecIssue, fields};

/// Bytes one attempt may write into its directories unless its grant says.
pub const DEFAULT_MAX_BYTES_WRITTEN: u64 = 64 << 20;

/// The key of the cap on bytes written, beside `dirs`.
const MAX_BYTES_WRITTEN: &str = "max_bytes_written";

/// One granted directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirGrant {
    /// The host directory (absolute once read from a chain file).
    pub path: PathBuf,
    /// Whether the guest may create, change and remove files in it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub write: bool,
}

/// A plugin's directory grants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirsGrant {
    /// Directories by the path the guest sees them at.
    pub paths: BTreeMap<String, DirGrant>,
    /// Bytes one attempt may write into its directories, in all.
    pub max_bytes_written: Option<u64>,
}

/// The `dirs` capability: `"dirs": {"/data": "./data" | {"path": …,
/// "write": true}}`, and `"max_bytes_written": N` beside it.
pub struct Dirs;

/// A plugin's directories, checked to be there.
#[derive(Debug, Default)]
pub struct ReadyDirs {
    plugin: Arc<str>,
    paths: BTreeMap<String, DirGrant>,
    max_bytes_written: u64,
}

/// One attempt's share of the directories: what it may still write, and
/// the empty directory at `/` when it is shown one.
pub struct DirsAttempt {
    write_budget: Arc<WriteBudget>,
    outside: Option<Outside>,
}

impl Capability for Dirs {
    const NAME: &'static str = "dirs";
    const MORE_KEYS: &'static [&'static str] = &[MAX_BYTES_WRITTEN];
    const INTERFACES: &'static [&'static str] = &["wasi:filesystem/"];

    type Grant = DirsGrant;
    type Ready = Arc<ReadyDirs>;
    type Attempt = DirsAttempt;

    fn read(
        grants: &Map<String, Value>,
        at: &JsonPath,
        base_dir: &Path,
    ) -> Result<DirsGrant, SpecIssue> {
        let mut dirs = DirsGrant::default();
        if let Some(value) = grants.get(Self::NAME) {
            dirs.paths = read_paths(value, &at.key(Self::NAME), base_dir)?;
        }
        if let Some(cap) = grants.get(MAX_BYTES_WRITTEN) {
            dirs.max_bytes_written = Some(fields::count(cap, &at.key(MAX_BYTES_WRITTEN))?);
        }
        Ok(dirs)
    }

    fn is_empty(grant: &DirsGrant) -> bool {
        grant.paths.is_empty()
    }

    fn is_effectful(grant: &DirsGrant) -> bool {
        !grant.paths.is_empty()
    }

    fn within(asked: &DirsGrant, policy: &DirsGrant) -> Result<DirsGrant, String> {
        let mut paths = BTreeMap::new();
        for (guest, dir) in &asked.paths {
            let Some(allowed) = policy.paths.get(guest) else {
                return Err(format!(
                    "dirs.{guest} is not among the tenant's directories"
                ));
            };
            // Judged on real paths, and the real path is what is granted:
            // a symlink on the way cannot lead out of the tenant's
            // directory, and one put there later makes the open fail.
            let real = real_or_given(&dir.path);
            let real_allowed = real_or_given(&allowed.path);
            if !lies_under(&real, &real_allowed) {
                let through = if real == dir.path {
                    String::new()
                } else {
                    format!(" resolves to {} through a symlink, and", real.display())
                };
                return Err(format!(
                    "dirs.{guest}: {}{through} is not inside the tenant's directory for it",
                    dir.path.display()
                ));
            }
            if dir.write && !allowed.write {
                return Err(format!("dirs.{guest}: the tenant's grant is read-only"));
            }
            paths.insert(
                guest.clone(),
                DirGrant {
                    path: real,
                    write: dir.write,
                },
            );
        }
        let ceiling = policy
            .max_bytes_written
            .unwrap_or(DEFAULT_MAX_BYTES_WRITTEN);
        Ok(DirsGrant {
            paths,
            max_bytes_written: Some(asked.max_bytes_written.map_or(ceiling, |n| n.min(ceiling))),
        })
    }

    fn at_real_paths(mut grant: DirsGrant) -> DirsGrant {
        for dir in grant.paths.values_mut() {
            dir.path = real_or_given(&dir.path);
        }
        grant
    }

    fn store(grant: &DirsGrant, into: &mut Map<String, Value>) -> serde_json::Result<()> {
        if !grant.paths.is_empty() {
            into.insert(Self::NAME.into(), serde_json::to_value(&grant.paths)?);
        }
        if let Some(cap) = grant.max_bytes_written {
            into.insert(MAX_BYTES_WRITTEN.into(), cap.into());
        }
        Ok(())
    }

    fn load(from: &Map<String, Value>) -> serde_json::Result<DirsGrant> {
        Ok(DirsGrant {
            paths: match from.get(Self::NAME) {
                Some(paths) => BTreeMap::deserialize(paths)?,
                None => BTreeMap::new(),
            },
            max_bytes_written: match from.get(MAX_BYTES_WRITTEN) {
                Some(cap) => Some(u64::deserialize(cap)?),
                None => None,
            },
        })
    }

    fn ready(grant: &DirsGrant, plugin: &str) -> Result<Arc<ReadyDirs>, GrantError> {
        for (guest, dir) in &grant.paths {
            if !dir.path.is_dir() {
                return Err(GrantError {
                    plugin: plugin.to_string(),
                    grant: format!("dirs.{guest}"),
                    reason: format!("{} is not a directory", dir.path.display()),
                });
            }
        }
        Ok(Arc::new(ReadyDirs {
            plugin: plugin.into(),
            paths: grant.paths.clone(),
            max_bytes_written: grant.max_bytes_written.unwrap_or(DEFAULT_MAX_BYTES_WRITTEN),
        }))
    }

    fn add_to_linker<T: AttemptView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        write_cap::add_to_linker(linker)
    }

    /// Gives the attempt its directories, each opened now (one that cannot
    /// be is an error naming it). A guest that opens files is shown an
    /// empty directory at `/` where no grant puts one, so that a path
    /// outside every grant reaches the host and its refusal can be
    /// explained.
    fn attempt(
        ready: &Arc<ReadyDirs>,
        setup: &mut AttemptSetup<'_>,
    ) -> Result<DirsAttempt, GrantError> {
        let refused = |grant: String, reason: String| GrantError {
            plugin: setup.plugin.to_string(),
            grant,
            reason,
        };
        let root = (setup.opens_files && !ready.paths.contains_key(nowhere::ROOT))
            .then(nowhere::root)
            .flatten();
        if let Some(root) = root {
            setup
                .builder
                .preopened_dir(root, nowhere::ROOT, FsPerms::ReadOnly)
                .map_err(|err| {
                    let reason = format!("cannot open the empty directory shown at `/`: {err:#}");
                    refused(Self::NAME.to_string(), reason)
                })?;
        }
        for (guest, dir) in &ready.paths {
            let perms = if dir.write {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            let open_refused = |reason: String| {
                let reason = format!("cannot open {}: {reason}", dir.path.display());
                refused(format!("dirs.{guest}"), reason)
            };
            // wasmtime-wasi opens a preopen by path; it is given the
            // directory opened here, by descriptor, so that no symlink is
            // followed between the grant's check and the guest's use.
            let opened = real_path::open_following_no_symlink(&dir.path)
                .map_err(|refusal| open_refused(refusal.to_string()))?;
            setup
                .builder
                .preopened_dir(real_path::path_of_open(&opened), guest, perms)
                .map_err(|err| open_refused(format!("{err:#}")))?;
        }
        Ok(DirsAttempt {
            write_budget: ready.write_budget(),
            outside: root.map(|_| Outside::new(Arc::clone(ready))),
        })
    }

    /// A path under no grant is told only where it explains a failure: a
    /// guest may look for files that are not there as it goes.
    fn refusals(attempt: &DirsAttempt, failure: Option<&str>) -> Vec<String> {
        let unreached = failure.zip(attempt.outside.as_ref());
        let why = unreached.and_then(|(failure, outside)| outside.explaining(failure));
        let over_cap = attempt.write_budget.refusal().map(str::to_string);
        why.into_iter().chain(over_cap).collect()
    }
}

impl ReadyDirs {
    /// A fresh write budget for one attempt; without directories, where
    /// nothing can be written, one shared by all.
    fn write_budget(&self) -> Arc<WriteBudget> {
        static NOWHERE: OnceLock<Arc<WriteBudget>> = OnceLock::new();
        if self.paths.is_empty() {
            return Arc::clone(NOWHERE.get_or_init(|| WriteBudget::new(0)));
        }
        WriteBudget::new(self.max_bytes_written)
    }

    /// Why the guest path `path` was not reached: no grant covers it, and
    /// what the grants do cover.
    fn outside_every_grant(&self, path: &str) -> String {
        let granted = if self.paths.is_empty() {
            "the plugin has no dirs grant".to_string()
        } else {
            let listed: Vec<String> = self
                .paths
                .iter()
                .map(|(guest, dir)| {
                    let how = if dir.write { "read-write" } else { "read-only" };
                    format!("{guest} ({how})")
                })
                .collect();
            format!(
                "plugin `{}` may reach only {}",
                self.plugin,
                listed.join(", ")
            )
        };
        format!("no grant covers {path}: {granted} (grants.dirs)")
    }
}

/// Reads the `dirs` object at `at`: guest paths to host directories.
fn read_paths(
    value: &Value,
    at: &JsonPath,
    base_dir: &Path,
) -> Result<BTreeMap<String, DirGrant>, SpecIssue> {
    let mut dirs = BTreeMap::new();
    for (guest, entry) in fields::object_of_any(value, at)? {
        let at = at.key(guest);
        let absolute = guest.starts_with('/');
        let dotted = guest.split('/').any(|part| part == "." || part == "..");
        if !absolute || dotted {
            return Err(SpecIssue::new(
                &at,
                "a guest path must be absolute, without `.` or `..` (e.g. \"/data\")",
            ));
        }
        let (path, write) = match entry {
            Value::String(path) => (path.as_str(), false),
            Value::Object(map) => {
                fields::object(entry, &at, "a directory grant", &["path", "write"])?;
                let path = map
                    .get("path")
                    .ok_or_else(|| SpecIssue::new(&at, "a directory grant needs a `path`"))
                    .and_then(|p| fields::string(p, &at.key("path")))?;
                let write = map
                    .get("write")
                    .map(|w| fields::boolean(w, &at.key("write")))
                    .transpose()?
                    .unwrap_or(false);
                (path, write)
            }
            other => {
                return Err(fields::expected(
                    &at,
                    "a directory or {\"path\", \"write\"}",
                    other,
                ));
            }
        };
        dirs.insert(
            guest.clone(),
            DirGrant {
                path: against(base_dir, path),
                write,
            },
        );
    }
    Ok(dirs)
}
