//! A plugin's `grants` in a chain file (DESIGN §10): read strictly, every
//! mistake named by its JSON path; directories and secret files resolved
//! against the chain file's directory.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::fields;
use super::path::{JsonPath, SpecIssue};
use crate::grants::{DirGrant, Grants, HttpGrant, HttpLimits, Origin, SecretSource};

const GRANT_KEYS: &[&str] = &["http", "dirs", "max_bytes_written", "config", "secrets"];
const HTTP_KEYS: &[&str] = &[
    "allow",
    "max_requests",
    "max_bytes_sent",
    "max_bytes_received",
    "timeout",
];

/// The most origins one grant may list.
const MAX_ORIGINS: usize = 1000;

/// Reads the `grants` object at `at`.
pub fn grants(value: &Value, at: &JsonPath, base_dir: &Path) -> Result<Grants, SpecIssue> {
    let map = fields::object(value, at, "an object of grants", GRANT_KEYS)?;
    let mut grants = Grants::default();
    if let Some(http) = map.get("http") {
        grants.http = http_grant(http, &at.key("http"))?;
    }
    if let Some(dirs) = map.get("dirs") {
        grants.dirs = dir_grants(dirs, &at.key("dirs"), base_dir)?;
    }
    if let Some(cap) = map.get("max_bytes_written") {
        grants.max_bytes_written = Some(fields::count(cap, &at.key("max_bytes_written"))?);
    }
    if let Some(config) = map.get("config") {
        let at = at.key("config");
        for (name, value) in fields::object_of_any(config, &at)? {
            check_name(name, &at.key(name))?;
            let text = fields::string(value, &at.key(name))?;
            grants.config.insert(name.clone(), text.to_string());
        }
    }
    if let Some(secrets) = map.get("secrets") {
        let at = at.key("secrets");
        for (name, source) in fields::object_of_any(secrets, &at)? {
            let at = at.key(name);
            check_name(name, &at)?;
            if grants.config.contains_key(name) {
                return Err(SpecIssue::new(
                    &at,
                    format!("`{name}` is both a config value and a secret"),
                ));
            }
            grants
                .secrets
                .insert(name.clone(), secret_source(source, &at, base_dir)?);
        }
    }
    Ok(grants)
}

fn http_grant(value: &Value, at: &JsonPath) -> Result<HttpGrant, SpecIssue> {
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

fn dir_grants(
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
                path: resolved(base_dir, path),
                write,
            },
        );
    }
    Ok(dirs)
}

fn secret_source(value: &Value, at: &JsonPath, base_dir: &Path) -> Result<SecretSource, SpecIssue> {
    let map = fields::object(
        value,
        at,
        "{\"env\": NAME} or {\"file\": PATH}",
        &["env", "file"],
    )?;
    match (map.get("env"), map.get("file")) {
        (Some(name), None) => Ok(SecretSource::Env(
            fields::string(name, &at.key("env"))?.to_string(),
        )),
        (None, Some(path)) => Ok(SecretSource::File(resolved(
            base_dir,
            fields::string(path, &at.key("file"))?,
        ))),
        _ => Err(SpecIssue::new(
            at,
            "a secret comes from exactly one of `env` or `file`",
        )),
    }
}

/// `path` against the chain file's directory, made absolute, so that the
/// workflow means the same directory whatever directory it is resumed from.
fn resolved(base_dir: &Path, path: &str) -> std::path::PathBuf {
    let joined = base_dir.join(path);
    std::path::absolute(&joined).unwrap_or(joined)
}

/// Config and secret names are environment variable names.
fn check_name(name: &str, at: &JsonPath) -> Result<(), SpecIssue> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128;
    if valid {
        Ok(())
    } else {
        Err(SpecIssue::new(
            at,
            "a name is letters, digits and `_`, not starting with a digit",
        ))
    }
}
