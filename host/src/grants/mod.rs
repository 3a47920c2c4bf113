//! Grants: what one plugin of a workflow may reach beyond its sandbox.
//!
//! Deny by default: a plugin without grants reaches nothing. Each kind of
//! grant is one capability with its own module — outbound HTTP to listed
//! origins ([`HttpGrant`]), directories ([`DirGrant`]), configuration
//! values and secrets read through the environment ([`SecretSource`]). A [`Grants`] is what
//! a chain file (or a tenant's policy) says and what the store keeps: a
//! secret's source, never its value. [`Access`] is the same grants made
//! ready for attempts, with secret values read and their mask built.

mod address;
mod dirs;
mod http;
mod nowhere;
mod origin;
mod real_path;
mod secrets;

pub use dirs::{DirAccess, DirGrant, WriteBudget, add_write_cap_to_linker};
pub use http::{Denials, HttpAccess, HttpGrant, HttpLimits};
pub use nowhere::Outside;
pub use origin::Origin;
pub(crate) use real_path::{lies_under, real_or_given};
pub use secrets::{MASK, Masker, SecretSource};

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// The grant that gives a plugin importing `interface` something to reach
/// through it: what `wfhost inspect` shows an operator. `None` for an
/// interface every plugin has (clocks, random, stdout, the host's log).
pub fn grant_for_import(interface: &str) -> Option<&'static str> {
    let name = interface.split('@').next().unwrap_or(interface);
    match name {
        _ if name.starts_with("wasi:http/") => Some("http"),
        _ if name.starts_with("wasi:filesystem/") => Some("dirs"),
        "wasi:cli/environment" => Some("config, secrets"),
        _ if name.starts_with("wasi:sockets/") => Some("none: raw sockets are never granted"),
        _ => None,
    }
}

/// Bytes one attempt may write into its directories unless its grant says.
pub const DEFAULT_MAX_BYTES_WRITTEN: u64 = 64 << 20;

/// What one plugin may reach, as a chain file grants it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Outbound HTTP.
    #[serde(default, skip_serializing_if = "HttpGrant::is_empty")]
    pub http: HttpGrant,
    /// Directories by the path the guest sees them at.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dirs: BTreeMap<String, DirGrant>,
    /// Bytes one attempt may write into its directories, in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes_written: Option<u64>,
    /// Configuration values by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Secrets by name: where each value is read from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretSource>,
}

/// Why a plugin's grants cannot be used.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("plugin `{plugin}`: grants.{grant}: {reason}")]
pub struct GrantError {
    /// The plugin's name in the workflow.
    pub plugin: String,
    /// Which grant, as a path inside `grants` (`secrets.api_key`).
    pub grant: String,
    /// What is wrong, in words.
    pub reason: String,
}

impl Grants {
    /// Whether it grants nothing.
    pub fn is_empty(&self) -> bool {
        self.http.is_empty()
            && self.dirs.is_empty()
            && self.config.is_empty()
            && self.secrets.is_empty()
    }

    /// Whether a step of the plugin may have effects outside its sandbox
    /// (see DESIGN §7): it holds a grant that reaches out or keeps data.
    pub fn is_effectful(&self) -> bool {
        !self.http.is_empty() || !self.dirs.is_empty()
    }

    /// The same grants with each directory at its real path (see
    /// `real_path`): what a chain file's or a policy's grants become when
    /// read, whose author chose the symlinks on them.
    pub fn with_real_dirs(mut self) -> Grants {
        for dir in self.dirs.values_mut() {
            dir.path = real_or_given(&dir.path);
        }
        self
    }

    /// Makes the grants ready for attempts of `plugin`: every directory
    /// must exist and every secret must be readable.
    pub fn access(&self, plugin: &str) -> Result<Arc<Access>, GrantError> {
        let error = |grant: String, reason: String| GrantError {
            plugin: plugin.to_string(),
            grant,
            reason,
        };
        for (guest, dir) in &self.dirs {
            if !dir.path.is_dir() {
                return Err(error(
                    format!("dirs.{guest}"),
                    format!("{} is not a directory", dir.path.display()),
                ));
            }
        }
        let mut env: Vec<(String, String)> = self
            .config
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let mut secret_values = Vec::new();
        for (name, source) in &self.secrets {
            let value = source
                .read()
                .map_err(|reason| error(format!("secrets.{name}"), reason))?;
            secret_values.push(value.clone());
            env.push((name.clone(), value));
        }
        Ok(Arc::new(Access {
            plugin: plugin.into(),
            http: (!self.http.is_empty()).then(|| Arc::new(self.http.clone())),
            dirs: self.dirs.clone(),
            env,
            masker: Masker::new(secret_values),
            max_bytes_written: self.max_bytes_written.unwrap_or(DEFAULT_MAX_BYTES_WRITTEN),
            effectful: self.is_effectful(),
        }))
    }

    /// These grants, as asked for by a submission, checked to lie within
    /// `policy`'s; each limit is the lower of the two. The error names the
    /// grant that reaches past the policy.
    pub fn within(&self, policy: &Grants) -> Result<Grants, String> {
        for origin in &self.http.allow {
            if !policy.http.allow.iter().any(|wide| origin.is_within(wide)) {
                return Err(format!("http: {origin} is not within the tenant's grant"));
            }
        }
        // Limits are the lower of each: a submission that does not name
        // them gets the policy's.
        let (asked, ceiling) = (self.http.limits, policy.http.limits);
        let limits = HttpLimits {
            max_requests: asked.max_requests.min(ceiling.max_requests),
            max_bytes_sent: asked.max_bytes_sent.min(ceiling.max_bytes_sent),
            max_bytes_received: asked.max_bytes_received.min(ceiling.max_bytes_received),
            timeout: asked.timeout.min(ceiling.timeout),
        };
        let mut dirs = BTreeMap::new();
        for (guest, dir) in &self.dirs {
            let Some(allowed) = policy.dirs.get(guest) else {
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
            dirs.insert(
                guest.clone(),
                DirGrant {
                    path: real,
                    write: dir.write,
                },
            );
        }
        let policy_written = policy
            .max_bytes_written
            .unwrap_or(DEFAULT_MAX_BYTES_WRITTEN);
        for (name, value) in &self.config {
            if policy.config.get(name) != Some(value) {
                return Err(format!(
                    "config.{name} is not the tenant's (a submission may leave out config, \
                     not change it)"
                ));
            }
        }
        for (name, source) in &self.secrets {
            if policy.secrets.get(name) != Some(source) {
                return Err(format!("secrets.{name} is not one of the tenant's secrets"));
            }
        }
        Ok(Grants {
            http: HttpGrant {
                allow: self.http.allow.clone(),
                limits,
            },
            dirs,
            max_bytes_written: Some(
                self.max_bytes_written
                    .map_or(policy_written, |n| n.min(policy_written)),
            ),
            config: self.config.clone(),
            secrets: self.secrets.clone(),
        })
    }
}

/// Grants made ready for attempts: secrets read, directories checked.
#[derive(Debug)]
pub struct Access {
    plugin: Arc<str>,
    http: Option<Arc<HttpGrant>>,
    dirs: BTreeMap<String, DirGrant>,
    /// Config values and secrets, as the guest's environment.
    env: Vec<(String, String)>,
    masker: Masker,
    max_bytes_written: u64,
    effectful: bool,
}

impl Access {
    /// Access to nothing.
    pub fn none() -> Arc<Access> {
        static NONE: std::sync::OnceLock<Arc<Access>> = std::sync::OnceLock::new();
        Arc::clone(NONE.get_or_init(|| {
            Arc::new(Access {
                plugin: "".into(),
                http: None,
                dirs: BTreeMap::new(),
                env: Vec::new(),
                masker: Masker::default(),
                max_bytes_written: 0,
                effectful: false,
            })
        }))
    }

    /// See [`Grants::is_effectful`].
    pub fn is_effectful(&self) -> bool {
        self.effectful
    }

    /// The mask of the plugin's secrets.
    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// The attempt's outbound HTTP, if it may make any.
    pub(crate) fn http(&self, denials: Denials) -> Option<HttpAccess> {
        let grant = self.http.as_ref()?;
        Some(HttpAccess::new(
            Arc::clone(&self.plugin),
            Arc::clone(grant),
            denials,
        ))
    }

    /// A fresh write budget for one attempt; without directories, where
    /// nothing can be written, one shared by all.
    pub(crate) fn write_budget(&self) -> Arc<WriteBudget> {
        static NOWHERE: std::sync::OnceLock<Arc<WriteBudget>> = std::sync::OnceLock::new();
        if self.dirs.is_empty() {
            return Arc::clone(NOWHERE.get_or_init(|| WriteBudget::new(0)));
        }
        WriteBudget::new(self.max_bytes_written)
    }

    /// Gives `builder` the directories and environment granted. A
    /// directory that cannot be opened now is an error naming it. A guest
    /// that `opens_files` is shown an empty directory at `/` where no
    /// grant puts one, so that a path outside every grant reaches the host
    /// and its refusal can be explained ([`Access::outside_every_grant`]);
    /// true when it is.
    pub(crate) fn configure(
        &self,
        builder: &mut WasiCtxBuilder,
        opens_files: bool,
    ) -> Result<bool, GrantError> {
        for (name, value) in &self.env {
            builder.env(name, value);
        }
        let root = (opens_files && !self.dirs.contains_key(nowhere::ROOT))
            .then(nowhere::root)
            .flatten();
        if let Some(root) = root {
            builder
                .preopened_dir(root, nowhere::ROOT, FsPerms::ReadOnly)
                .map_err(|err| GrantError {
                    plugin: self.plugin.to_string(),
                    grant: "dirs".to_string(),
                    reason: format!("cannot open the empty directory shown at `/`: {err:#}"),
                })?;
        }
        for (guest, dir) in &self.dirs {
            let perms = if dir.write {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            let refused = |reason: String| GrantError {
                plugin: self.plugin.to_string(),
                grant: format!("dirs.{guest}"),
                reason: format!("cannot open {}: {reason}", dir.path.display()),
            };
            // wasmtime-wasi opens a preopen by path; it is given the
            // directory opened here, by descriptor, so that no symlink is
            // followed between the grant's check and the guest's use.
            let opened = real_path::open_following_no_symlink(&dir.path)
                .map_err(|refusal| refused(refusal.to_string()))?;
            builder
                .preopened_dir(real_path::path_of_open(&opened), guest, perms)
                .map_err(|err| refused(format!("{err:#}")))?;
        }
        Ok(root.is_some())
    }

    /// Why the guest path `path` was not reached: no grant covers it, and
    /// what the grants do cover.
    pub(crate) fn outside_every_grant(&self, path: &str) -> String {
        let granted = if self.dirs.is_empty() {
            "the plugin has no dirs grant".to_string()
        } else {
            let listed: Vec<String> = self
                .dirs
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
