//! Outbound HTTP (wasi:http): the `http` capability — the origins a
//! plugin may reach and its per-attempt caps — and, in [`send`], the hooks
//! through which every request the guest makes is checked and sent.

mod send;

pub use send::{Denials, HttpAccess};

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wasmtime::component::Linker;
use wasmtime_wasi_http::WasiHttpCtx;

use super::GrantError;
use super::capability::{AttemptSetup, AttemptView, Capability};
use super::origin::{Origin, Target};
use crate::json::{JsonPath, SpecIssue, fields};

/// The keys of an `http` grant written as an object.
const HTTP_KEYS: &[&str] = &[
    "allow",
    "max_requests",
    "max_bytes_sent",
    "max_bytes_received",
    "timeout",
];

/// The most origins one grant may list.
const MAX_ORIGINS: usize = 1000;

/// A plugin's `http` grant: the origins it may reach, and its caps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpGrant {
    /// The origins requests may go to; none means no HTTP at all.
    pub allow: Vec<Origin>,
    /// What one attempt may do with them.
    #[serde(default)]
    pub limits: HttpLimits,
}

/// Per-attempt caps on outbound HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpLimits {
    /// Requests one attempt may send.
    pub max_requests: u32,
    /// Bytes of request bodies one attempt may send, in all.
    pub max_bytes_sent: u64,
    /// Bytes of response bodies one attempt may receive, in all.
    pub max_bytes_received: u64,
    /// Seconds one request may take to connect and to start its response.
    pub timeout: f64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_requests: 100,
            max_bytes_sent: 64 << 20,
            max_bytes_received: 64 << 20,
            timeout: 30.0,
        }
    }
}

impl HttpGrant {
    /// Whether it allows nothing.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty()
    }

    /// The first origin that covers `target`.
    fn covering(&self, target: &Target) -> Option<&Origin> {
        self.allow.iter().find(|origin| origin.covers(target))
    }

    /// Whether an origin that names `address` itself covers `target` at
    /// that address: same scheme, port and path. The exception for a
    /// restricted address is its own grant's, not one that any origin
    /// naming the address would open for every name that resolves to it.
    fn lists_address_for(&self, address: IpAddr, target: &Target) -> bool {
        let at_address = Target {
            host: address.to_string(),
            ..target.clone()
        };
        self.allow
            .iter()
            .any(|origin| origin.address() == Some(address) && origin.covers(&at_address))
    }
}

/// The `http` capability: `"http": ["https://api.example.com", …]` or
/// `{"allow": [...], "max_requests": …}`.
pub struct Http;

/// One attempt's wasi:http: its context, and the hooks that send (or
/// refuse) each request.
pub struct HttpAttempt {
    pub(crate) ctx: WasiHttpCtx,
    pub(crate) hooks: HttpAccess,
}

impl Capability for Http {
    const NAME: &'static str = "http";
    const INTERFACES: &'static [&'static str] = &["wasi:http/"];

    type Grant = HttpGrant;
    type Ready = Option<Arc<HttpGrant>>;
    type Attempt = HttpAttempt;

    fn read(
        grants: &Map<String, Value>,
        at: &JsonPath,
        _base_dir: &Path,
    ) -> Result<HttpGrant, SpecIssue> {
        match grants.get(Self::NAME) {
            Some(value) => read_grant(value, &at.key(Self::NAME)),
            None => Ok(HttpGrant::default()),
        }
    }

    fn is_empty(grant: &HttpGrant) -> bool {
        grant.is_empty()
    }

    fn is_effectful(grant: &HttpGrant) -> bool {
        !grant.is_empty()
    }

    fn within(asked: &HttpGrant, policy: &HttpGrant) -> Result<HttpGrant, String> {
        for origin in &asked.allow {
            if !policy.allow.iter().any(|wide| origin.is_within(wide)) {
                return Err(format!("http: {origin} is not within the tenant's grant"));
            }
        }
        // Limits are the lower of each: a submission that does not name
        // them gets the policy's.
        let (asked_limits, ceiling) = (asked.limits, policy.limits);
        Ok(HttpGrant {
            allow: asked.allow.clone(),
            limits: HttpLimits {
                max_requests: asked_limits.max_requests.min(ceiling.max_requests),
                max_bytes_sent: asked_limits.max_bytes_sent.min(ceiling.max_bytes_sent),
                max_bytes_received: asked_limits
                    .max_bytes_received
                    .min(ceiling.max_bytes_received),
                timeout: asked_limits.timeout.min(ceiling.timeout),
            },
        })
    }

    fn ready(grant: &HttpGrant, _plugin: &str) -> Result<Self::Ready, GrantError> {
        Ok((!grant.is_empty()).then(|| Arc::new(grant.clone())))
    }

    fn add_to_linker<T: AttemptView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
    }

    fn attempt(
        ready: &Self::Ready,
        setup: &mut AttemptSetup<'_>,
    ) -> Result<HttpAttempt, GrantError> {
        let denials = Arc::clone(setup.denials);
        let hooks = match ready {
            Some(grant) => HttpAccess::new(Arc::clone(setup.plugin), Arc::clone(grant), denials),
            None => HttpAccess::denying(denials),
        };
        Ok(HttpAttempt {
            ctx: WasiHttpCtx::new(),
            hooks,
        })
    }
}

/// Reads an `http` grant at `at`: a list of origins, or an object with
/// `allow` and limits.
fn read_grant(value: &Value, at: &JsonPath) -> Result<HttpGrant, SpecIssue> {
    let (list, list_at, limits) = match value {
        Value::Array(_) => (value, at.clone(), HttpLimits::default()),
        Value::Object(map) => {
            fields::object(value, at, "an http grant", HTTP_KEYS)?;
            let allow = map.get("allow").ok_or_else(|| {
                SpecIssue::new(at, "an http grant object needs `allow`: a list of origins")
            })?;
            let mut limits = HttpLimits::default();
            if let Some(n) = map.get("max_requests") {
                let at = at.key("max_requests");
                limits.max_requests = u32::try_from(fields::count(n, &at)?)
                    .map_err(|_| fields::expected(&at, "a count up to 4294967295", n))?;
            }
            if let Some(n) = map.get("max_bytes_sent") {
                limits.max_bytes_sent = fields::count(n, &at.key("max_bytes_sent"))?;
            }
            if let Some(n) = map.get("max_bytes_received") {
                limits.max_bytes_received = fields::count(n, &at.key("max_bytes_received"))?;
            }
            if let Some(n) = map.get("timeout") {
                limits.timeout = fields::seconds(n, &at.key("timeout"))?;
            }
            (allow, at.key("allow"), limits)
        }
        other => {
            return Err(fields::expected(
                at,
                "a list of origins or {\"allow\": [...], ...}",
                other,
            ));
        }
    };
    let items = fields::array(list, &list_at)?;
    if items.len() > MAX_ORIGINS {
        return Err(SpecIssue::new(
            &list_at,
            format!("at most {MAX_ORIGINS} origins"),
        ));
    }
    let allow = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = list_at.index(i);
            let text = fields::string(item, &at)?;
            Origin::parse(text).map_err(|reason| SpecIssue::new(&at, reason))
        })
        .collect::<Result<_, _>>()?;
    Ok(HttpGrant { allow, limits })
}
