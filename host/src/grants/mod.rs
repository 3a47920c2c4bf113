//! Grants: what one plugin of a workflow may reach beyond its sandbox.
//!
//! Deny by default: a plugin without grants reaches nothing. Each kind of
//! grant is one capability, one type implementing [`Capability`] in its own
//! module: outbound HTTP to listed origins ([`Http`]), directories
//! ([`Dirs`]), configuration values ([`Config`]) and secrets ([`Secrets`])
//! read through the environment, a pinned wall clock ([`Clock`]). The
//! registry below lists them; from it come [`Grants`] — what a chain file
//! (or a tenant's policy) says and what the store keeps: a secret's
//! source, never its value — [`Access`], the same grants made ready for
//! attempts, and [`Granted`], what one attempt holds of each.
//!
//! Adding a capability is one module and one line of the registry.

mod address;
mod capability;
mod clock;
mod config;
mod dirs;
mod http;
mod origin;
mod real_path;
mod secrets;

pub use capability::{AttemptSetup, AttemptView, Capability, Holds};
pub use clock::{Clock, ClockGrant, Instant};
pub use config::Config;
pub use dirs::{DEFAULT_MAX_BYTES_WRITTEN, DirGrant, Dirs, DirsGrant, Outside, WriteBudget};
pub use http::{Denials, Http, HttpAccess, HttpGrant, HttpLimits};
pub use origin::Origin;
#[cfg(feature = "serve")]
pub(crate) use real_path::lies_under;
pub(crate) use real_path::real_or_given;
pub use secrets::{MASK, Masker, SecretSource, Secrets};

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;
use wasmtime::component::Linker;

use crate::json::{JsonPath, SpecIssue};
use capability::capabilities;

capabilities! {
    http: Http,
    dirs: Dirs,
    config: Config,
    secrets: Secrets,
    clock: Clock,
}

/// The grants that shape what a plugin importing `interface` reaches
/// through it: what `wfhost inspect` shows an operator. `None` for an
/// interface every plugin has alike (random, stdout, the host's log).
pub fn grant_for_import(interface: &str) -> Option<String> {
    if interface.starts_with("wasi:sockets/") {
        return Some("none: raw sockets are never granted".to_string());
    }
    let names = capabilities_serving(interface);
    (!names.is_empty()).then(|| names.join(", "))
}

/// Whether a capability serves `interface` (as a component names it).
pub fn serves(interface: &str) -> bool {
    !capabilities_serving(interface).is_empty()
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

impl Access {
    /// See [`Grants::is_effectful`].
    pub fn is_effectful(&self) -> bool {
        self.effectful
    }

    /// The plugin's name in the workflow.
    pub(crate) fn plugin(&self) -> &Arc<str> {
        &self.plugin
    }

    /// The mask of the plugin's secrets.
    pub fn masker(&self) -> &Masker {
        Holds::<Secrets>::part(self).masker()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored form is the one schema 1 files hold: every capability
    /// writes its own keys, and reads back what it wrote.
    #[test]
    fn stored_grants_read_back_as_written_in_the_form_files_hold() {
        let stored = serde_json::json!({
            "http": {
                "allow": ["https://api.example.com"],
                "limits": {
                    "max_requests": 3,
                    "max_bytes_sent": 10,
                    "max_bytes_received": 20,
                    "timeout": 1.5
                }
            },
            "dirs": {"/data": {"path": "/srv/data", "write": true}, "/in": {"path": "/srv/in"}},
            "max_bytes_written": 4096,
            "config": {"REGION": "eu"},
            "secrets": {"KEY": {"env": "API_KEY"}, "CERT": {"file": "/etc/cert"}},
            "clock": {"pinned": "2026-01-01T00:00:00Z"}
        });
        let grants: Grants = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(grants.http.limits.max_requests, 3);
        assert!(grants.dirs.paths["/data"].write && !grants.dirs.paths["/in"].write);
        assert_eq!(grants.dirs.max_bytes_written, Some(4096));
        assert_eq!(serde_json::to_value(&grants).unwrap(), stored);
        assert_eq!(
            serde_json::to_value(Grants::default()).unwrap(),
            serde_json::json!({})
        );
        let unknown = serde_json::from_value::<Grants>(serde_json::json!({"files": {}}));
        assert!(unknown.unwrap_err().to_string().contains("files"));
    }
}
