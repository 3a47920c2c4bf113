//! The tenant policy file of `wfhost serve`: who may call, with what key,
//! which plugins, and within which limits.
//!
//! ```toml
//! [admin]
//! key_sha256 = "…"          # the operator's key: reads every tenant's /metrics
//!
//! [tenants.acme]
//! key_sha256 = "…"          # sha256 (hex) of the tenant's API key; the key itself is never stored
//! max_fuel = 100000000      # per attempt
//! max_memory_mb = 64        # per attempt
//! max_time_limit = 10       # seconds per attempt
//! max_running_steps = 2     # attempts of all its workflows at once
//! max_workflows = 100       # workflows in flight at once
//! max_workflow_fuel = 10000000000  # fuel of all of one workflow's attempts
//! max_stored_bytes = 1073741824     # its records in the state file; past it, submissions are refused
//! max_schedules = 100       # schedules it may have
//! min_schedule_interval = 1 # seconds: the shortest gap between two ticks of one of its schedules
//!
//! root = "tenants/acme"    # the tenant's directories lie under it
//!
//! [tenants.acme.plugins]
//! math = { path = "plugins/math.wasm", sha256 = "…" }
//!
//! [tenants.acme.plugins.shop]
//! path = "plugins/shop.wasm"
//! sha256 = "…"
//! # What the plugin may reach, as in a chain file's `grants`; a submitted
//! # chain may narrow it, never widen it.
//! grants = { http = ["http://127.0.0.1:8000"], dirs = { "/out" = { path = "out", write = true } } }
//! ```
//!
//! Plugin paths and `root` are relative to the file's directory; a grant's
//! directories are relative to the tenant's `root` and must lie inside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sha256;
use serde::Deserialize;
use thiserror::Error;

use crate::executor::MAX_CONCURRENCY;
use crate::grants::{self, Grants};
use crate::runtime::Ceilings;
use crate::spec::{self, PluginRef};

/// Why a tenant policy file cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TenantsError {
    /// The file cannot be read.
    #[error("cannot read the tenant file {}: {cause}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// What the system said.
        cause: std::io::Error,
    },
    /// The file is not a valid policy.
    #[error("the tenant file {}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// What is wrong, in words.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    admin: Option<AdminEntry>,
    tenants: BTreeMap<String, TenantEntry>,
}

/// Schedules a tenant may have unless its policy says otherwise.
pub const DEFAULT_MAX_SCHEDULES: usize = 100;

/// The shortest gap between two ticks of a tenant's schedule unless its
/// policy says otherwise: one second.
pub const DEFAULT_MIN_SCHEDULE_INTERVAL_MS: u64 = 1000;

/// The operator's key: it reads every tenant's metrics.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminEntry {
    key_sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantEntry {
    key_sha256: String,
    #[serde(default)]
    plugins: BTreeMap<String, PluginEntry>,
    max_fuel: Option<u64>,
    max_memory_mb: Option<u64>,
    max_time_limit: Option<f64>,
    max_running_steps: Option<usize>,
    max_workflows: Option<usize>,
    max_workflow_fuel: Option<u64>,
    max_stored_bytes: Option<u64>,
    max_schedules: Option<usize>,
    min_schedule_interval: Option<f64>,
    root: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginEntry {
    path: PathBuf,
    sha256: String,
    grants: Option<toml::Value>,
}

/// One tenant's policy.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The tenant's name: every record of its workflows is keyed by it.
    pub name: String,
    key_sha256: String,
    /// The plugins its workflows may use, by name, each pinned by sha256.
    pub plugins: BTreeMap<String, PluginRef>,
    /// Caps on every attempt of its steps.
    pub ceilings: Ceilings,
    /// Attempts of all its workflows together that may run at once.
    pub max_running_steps: usize,
    /// Its workflows that may be in flight at once.
    pub max_workflows: usize,
    /// Fuel one of its workflows may use in all.
    pub max_workflow_fuel: Option<u64>,
    /// Bytes its records may take in the state file: once they take this
    /// many, its submissions are refused until retention or a purge
    /// frees room.
    pub max_stored_bytes: Option<u64>,
    /// Schedules it may have.
    pub max_schedules: usize,
    /// The shortest gap between two ticks of one of its schedules, in
    /// milliseconds.
    pub min_schedule_interval_ms: u64,
    /// The directory its granted directories lie under, if it has one.
    pub root: Option<PathBuf>,
}

/// Every tenant of a service.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    by_name: BTreeMap<String, Tenant>,
    /// The sha256 (hex) of the operator's key, if the policy has one.
    admin_key_sha256: Option<String>,
    /// Whether any tenant name stands for a tenant with no limits and no
    /// plugins of its own (`wfhost ui` over a local database, whose
    /// workflows name their plugins themselves).
    open: bool,
}

/// A plugin's grants in the policy, read as a chain file's are, with its
/// directories under the tenant's `root`.
fn policy_grants(value: &toml::Value, at: &str, root: Option<&Path>) -> Result<Grants, String> {
    let json = serde_json::to_value(value).map_err(|err| format!("{at}: {err}"))?;
    let base = root.unwrap_or(Path::new("/"));
    let grants = Grants::read(&json, &spec::JsonPath::root(), base)
        .map_err(|issue| format!("{at}{}", issue.to_string().trim_start_matches('$')))?
        .with_real_dirs();
    for (guest, dir) in &grants.dirs.paths {
        match root {
            None => {
                return Err(format!(
                    "{at}.dirs: a tenant with directories needs a `root`"
                ));
            }
            Some(root) if !grants::lies_under(&dir.path, root) => {
                return Err(format!(
                    "{at}.dirs.{guest}: {} is not inside the tenant's root {}",
                    dir.path.display(),
                    root.display()
                ));
            }
            Some(_) => {}
        }
    }
    Ok(grants)
}

/// The lowercase hex sha256 of an API key: what the policy file stores.
pub fn key_hash(key: &str) -> String {
    crate::sha256::hex_of(key.as_bytes())
}

impl Tenants {
    /// Reads the policy file at `file`.
    pub fn load(file: &Path) -> Result<Self, TenantsError> {
        let text = std::fs::read_to_string(file).map_err(|cause| TenantsError::Read {
            file: file.to_path_buf(),
            cause,
        })?;
        let invalid = |message: String| TenantsError::Invalid {
            file: file.to_path_buf(),
            message,
        };
        let parsed: File = toml::from_str(&text).map_err(|err| invalid(err.to_string()))?;
        // Absolute, so that a workflow's plugins do not depend on the
        // directory the service runs in.
        let base = std::path::absolute(file)
            .map_err(|err| invalid(format!("cannot resolve its path: {err}")))?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut by_name = BTreeMap::new();
        for (name, entry) in parsed.tenants {
            let tenant = Tenant::from_entry(&name, entry, &base).map_err(invalid)?;
            by_name.insert(name, tenant);
        }
        let admin_key_sha256 = match parsed.admin {
            Some(admin) if !sha256::is_hex(&admin.key_sha256) => {
                return Err(invalid(
                    "admin.key_sha256: expected the 64 hex digits of a sha256".to_string(),
                ));
            }
            Some(admin) => Some(admin.key_sha256.to_ascii_lowercase()),
            None => None,
        };
        Ok(Tenants {
            by_name,
            admin_key_sha256,
            open: false,
        })
    }

    /// No tenants of its own, but every tenant on record reachable with
    /// `admin_key`: what `wfhost ui` serves a local database with.
    pub fn local(admin_key: &str) -> Self {
        Tenants {
            by_name: BTreeMap::new(),
            admin_key_sha256: Some(key_hash(admin_key)),
            open: true,
        }
    }

    /// The tenant called `name` for the operator: the policy's, or, for
    /// [`Tenants::local`], one without limits.
    pub fn resolve(&self, name: &str) -> Option<Tenant> {
        match self.by_name.get(name) {
            Some(tenant) => Some(tenant.clone()),
            None if self.open => Some(Tenant::unrestricted(name)),
            None => None,
        }
    }

    /// Whether the policy has tenant `name` (any name, for `wfhost ui`'s).
    pub fn knows(&self, name: &str) -> bool {
        self.open || self.by_name.contains_key(name)
    }

    /// Whether `key` is the operator's key of the policy's `[admin]`.
    pub fn is_admin(&self, key: &str) -> bool {
        self.admin_key_sha256.as_ref().is_some_and(|admin| {
            sha256::equal_in_constant_time(admin.as_bytes(), key_hash(key).as_bytes())
        })
    }

    /// Every tenant, by name.
    pub fn all(&self) -> impl Iterator<Item = &Tenant> {
        self.by_name.values()
    }

    /// The tenant whose API key is `key`, if any.
    pub fn authenticate(&self, key: &str) -> Option<&Tenant> {
        let hash = key_hash(key);
        self.by_name.values().find(|tenant| {
            sha256::equal_in_constant_time(tenant.key_sha256.as_bytes(), hash.as_bytes())
        })
    }

    /// The tenant called `name`, if the policy still has it.
    pub fn get(&self, name: &str) -> Option<&Tenant> {
        self.by_name.get(name)
    }
}

impl Tenant {
    /// A tenant no key logs in as, with no plugins and no limits: how
    /// `wfhost ui` acts on the workflows of a local database.
    fn unrestricted(name: &str) -> Self {
        Tenant {
            name: name.to_string(),
            key_sha256: String::new(),
            plugins: BTreeMap::new(),
            ceilings: Ceilings::default(),
            max_running_steps: MAX_CONCURRENCY,
            max_workflows: usize::MAX,
            max_workflow_fuel: None,
            max_stored_bytes: None,
            max_schedules: usize::MAX,
            min_schedule_interval_ms: DEFAULT_MIN_SCHEDULE_INTERVAL_MS,
            root: None,
        }
    }

    fn from_entry(name: &str, entry: TenantEntry, base: &Path) -> Result<Self, String> {
        crate::names::check(name)
            .map_err(|err| format!("tenants.{}: a tenant's name {err}", name.escape_debug()))?;
        if !sha256::is_hex(&entry.key_sha256) {
            return Err(format!(
                "tenants.{name}.key_sha256: expected the 64 hex digits of a sha256"
            ));
        }
        if entry.max_running_steps > Some(MAX_CONCURRENCY) {
            return Err(format!(
                "tenants.{name}.max_running_steps: at most {MAX_CONCURRENCY}"
            ));
        }
        // Real, so that the grants under it, resolved to their real paths
        // as they are read, are judged against what is there.
        let root = entry
            .root
            .map(|root| grants::real_or_given(&base.join(root)));
        let mut plugins = BTreeMap::new();
        for (plugin, allowed) in entry.plugins {
            if !sha256::is_hex(&allowed.sha256) {
                return Err(format!(
                    "tenants.{name}.plugins.{plugin}.sha256: expected the 64 hex digits of a sha256"
                ));
            }
            let at = format!("tenants.{name}.plugins.{plugin}.grants");
            let grants = match allowed.grants {
                Some(grants) => policy_grants(&grants, &at, root.as_deref())?,
                None => Grants::default(),
            };
            plugins.insert(
                plugin,
                PluginRef {
                    path: base.join(allowed.path),
                    sha256: Some(allowed.sha256.to_ascii_lowercase()),
                    grants,
                },
            );
        }
        let min_schedule_interval_ms = match entry.min_schedule_interval {
            None => DEFAULT_MIN_SCHEDULE_INTERVAL_MS,
            Some(seconds)
                if (1.0..=crate::schedule::MAX_EVERY_MS as f64 / 1000.0).contains(&seconds) =>
            {
                (seconds * 1000.0) as u64
            }
            Some(_) => {
                return Err(format!(
                    "tenants.{name}.min_schedule_interval: expected seconds, from 1 to 10 years"
                ));
            }
        };
        let time_limit = match entry.max_time_limit {
            Some(seconds) => Some(
                Duration::try_from_secs_f64(seconds)
                    .ok()
                    .filter(|limit| !limit.is_zero())
                    .ok_or_else(|| {
                        format!(
                            "tenants.{name}.max_time_limit: expected a positive number of seconds"
                        )
                    })?,
            ),
            None => None,
        };
        Ok(Tenant {
            name: name.to_string(),
            key_sha256: entry.key_sha256.to_ascii_lowercase(),
            plugins,
            ceilings: Ceilings::at_most(entry.max_fuel, entry.max_memory_mb, time_limit),
            max_running_steps: entry.max_running_steps.unwrap_or(1).max(1),
            max_workflows: entry.max_workflows.unwrap_or(100).max(1),
            max_workflow_fuel: entry.max_workflow_fuel,
            max_stored_bytes: entry.max_stored_bytes,
            max_schedules: entry.max_schedules.unwrap_or(DEFAULT_MAX_SCHEDULES),
            min_schedule_interval_ms,
            root,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tenants.toml");
        std::fs::write(&file, text).unwrap();
        (dir, file)
    }

    #[test]
    fn keys_are_checked_by_hash_and_plugins_resolve_beside_the_file() {
        let policy = format!(
            "[tenants.acme]\nkey_sha256 = \"{}\"\nmax_memory_mb = 64\n\
             [tenants.acme.plugins]\nmath = {{ path = \"p/math.wasm\", sha256 = \"{}\" }}\n",
            key_hash("secret-a"),
            "ab".repeat(32)
        );
        let (dir, file) = write(&policy);
        let tenants = Tenants::load(&file).unwrap();
        let acme = tenants.authenticate("secret-a").unwrap();
        assert_eq!(acme.name, "acme");
        assert_eq!(acme.plugins["math"].path, dir.path().join("p/math.wasm"));
        assert_eq!(acme.ceilings.memory_bytes, Some(64 << 20));
        assert!(tenants.authenticate("secret-b").is_none());
        assert!(tenants.authenticate("").is_none());
    }

    #[test]
    fn plugin_paths_are_absolute_even_from_a_relative_policy_path() {
        // Tests run in the package's directory: a policy beside it, named
        // by a relative path.
        let dir = tempfile::tempdir_in(".").unwrap();
        let name = dir.path().file_name().unwrap();
        let file = Path::new(name).join("tenants.toml");
        let policy = format!(
            "[tenants.t]\nkey_sha256 = \"{}\"\n[tenants.t.plugins]\n\
             math = {{ path = \"math.wasm\", sha256 = \"{}\" }}\n",
            key_hash("k"),
            "cd".repeat(32)
        );
        std::fs::write(&file, policy).unwrap();
        let tenants = Tenants::load(&file).unwrap();
        let math = &tenants.get("t").unwrap().plugins["math"].path;
        assert!(math.is_absolute(), "{}", math.display());
        assert_eq!(
            math,
            &std::path::absolute(dir.path()).unwrap().join("math.wasm")
        );
    }

    #[test]
    fn a_bad_policy_is_refused_with_where() {
        let (_dir, file) = write("[tenants.acme]\nkey_sha256 = \"nope\"\n");
        let err = Tenants::load(&file).unwrap_err().to_string();
        assert!(err.contains("tenants.acme.key_sha256"), "{err}");
        let (_dir, file) = write("[tenants.acme]\nkey = \"plain\"\n");
        let err = Tenants::load(&file).unwrap_err().to_string();
        assert!(err.contains("unknown field `key`"), "{err}");
        // Slots past counting would panic the semaphore that holds them.
        let policy = format!(
            "[tenants.acme]\nkey_sha256 = \"{}\"\nmax_running_steps = 2305843009213693952\n",
            key_hash("k")
        );
        let (_dir, file) = write(&policy);
        let err = Tenants::load(&file).unwrap_err().to_string();
        assert!(
            err.contains("tenants.acme.max_running_steps: at most 65536"),
            "{err}"
        );
    }
}
