//! An HTTP origin a grant lists, and whether a request's URL falls under it.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One entry of a plugin's `http` grant: a scheme, a host (a name, a
/// `*.name` wildcard or an IP address), a port and a path prefix.
///
/// `https://images.example.com` allows any path on port 443 of that host;
/// `http://127.0.0.1:8000/upload/` allows only paths under `/upload/` there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin {
    scheme: Scheme,
    host: Host,
    port: u16,
    /// Starts with `/`; `/` alone allows every path.
    path_prefix: String,
}

/// `http` or `https`: nothing else is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The scheme's name in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port a URL without one means.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// A DNS name, in lowercase.
    Name(String),
    /// `*.suffix`: any name ending in `.suffix` (not `suffix` itself).
    Wildcard(String),
    /// An address, which also allows a name to resolve to it.
    Address(IpAddr),
}

/// A request's target, split as the grant check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its scheme.
    pub scheme: Scheme,
    /// Its host: a lowercase name or an address.
    pub host: String,
    /// Its port, the scheme's default when the URL has none.
    pub port: u16,
    /// Its path, without the query.
    pub path: String,
}

impl Target {
    /// The host as an address, when it is one.
    pub fn address(&self) -> Option<IpAddr> {
        parse_address(&self.host)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.address() {
            Some(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => self.host.clone(),
        };
        write!(
            f,
            "{}://{host}:{}{}",
            self.scheme.as_str(),
            self.port,
            self.path
        )
    }
}

fn parse_address(text: &str) -> Option<IpAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse().ok()
}

/// Splits `authority` (`host[:port]`, with an IPv6 host in brackets) into
/// a lowercase host and a port, if it has one.
fn split_authority(authority: &str) -> Result<(String, Option<u16>), String> {
    if authority.contains('@') {
        return Err("user information (`user@`) is not allowed".into());
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address lacks its closing `]`")?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("expected `:PORT` after the IPv6 address")?,
            ),
        };
        (format!("[{v6}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("the host is empty".into());
    }
    let port = port
        .map(|port| {
            port.parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| format!("`{port}` is not a port from 1 to 65535"))
        })
        .transpose()?;
    Ok((host.to_ascii_lowercase(), port))
}

impl Origin {
    /// Reads `scheme://host[:port][/path/prefix]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("expected `http://` or `https://` then a host")?;
        let scheme = Scheme::parse(scheme)
            .ok_or_else(|| format!("the scheme `{scheme}` is not http or https"))?;
        if rest.contains(['?', '#']) {
            return Err("an origin has no query or fragment".into());
        }
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/"),
        };
        let (host, port) = split_authority(authority)?;
        let host = if let Some(address) = parse_address(&host) {
            Host::Address(address)
        } else if let Some(suffix) = host.strip_prefix("*.") {
            check_name(suffix)?;
            Host::Wildcard(suffix.to_string())
        } else {
            check_name(&host)?;
            Host::Name(host)
        };
        if has_dot_segment(path) {
            return Err("the path prefix has `.` or `..` segments".into());
        }
        Ok(Origin {
            scheme,
            host,
            port: port.unwrap_or(scheme.default_port()),
            path_prefix: path.to_string(),
        })
    }

    /// The address this origin names as its host, if it names one.
    pub fn address(&self) -> Option<IpAddr> {
        match self.host {
            Host::Address(address) => Some(address),
            _ => None,
        }
    }

    /// Whether `target` falls under this origin: same scheme, host and
    /// port, and a path under the prefix (at a segment boundary).
    pub fn covers(&self, target: &Target) -> bool {
        if self.scheme != target.scheme || self.port != target.port {
            return false;
        }
        let host_matches = match &self.host {
            Host::Name(name) => *name == target.host,
            Host::Wildcard(suffix) => target
                .host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            Host::Address(address) => target.address() == Some(*address),
        };
        host_matches && self.covers_path(&target.path)
    }

    fn covers_path(&self, path: &str) -> bool {
        let prefix = self.path_prefix.as_str();
        if prefix == "/" {
            return true;
        }
        // Under a narrower prefix the path is judged as a server reads it,
        // decoded; one that a server could read as another path does not
        // pass: `/upload/../admin`, `/upload/..%2fadmin`, `/upload/..\admin`.
        let Some(path) = plain_path(path) else {
            return false;
        };
        let prefix = plain_path(prefix).unwrap_or_else(|| prefix.to_string());
        match path.strip_prefix(prefix.as_str()) {
            Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// Whether every URL this origin covers, `wider` covers too.
    pub fn is_within(&self, wider: &Origin) -> bool {
        if self.scheme != wider.scheme || self.port != wider.port {
            return false;
        }
        let host_within = match (&self.host, &wider.host) {
            (a, b) if a == b => true,
            (Host::Name(name), Host::Wildcard(suffix)) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (Host::Wildcard(inner), Host::Wildcard(outer)) => inner
                .strip_suffix(outer.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            _ => false,
        };
        host_within && wider.covers_path(&self.path_prefix)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            Host::Name(name) => name.clone(),
            Host::Wildcard(suffix) => format!("*.{suffix}"),
            Host::Address(IpAddr::V6(v6)) => format!("[{v6}]"),
            Host::Address(address) => address.to_string(),
        };
        write!(f, "{}://{host}", self.scheme.as_str())?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        if self.path_prefix != "/" {
            f.write_str(&self.path_prefix)?;
        }
        Ok(())
    }
}

impl TryFrom<String> for Origin {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Origin::parse(&text)
    }
}

impl From<Origin> for String {
    fn from(origin: Origin) -> String {
        origin.to_string()
    }
}

/// Reads a request's URL parts into a [`Target`]. `scheme` and `authority`
/// are as the guest set them; `path` may carry a query, which is dropped.
pub fn target(scheme: &str, authority: &str, path: &str) -> Result<Target, String> {
    let scheme = Scheme::parse(scheme)
        .ok_or_else(|| format!("the scheme `{scheme}` is not http or https"))?;
    let (host, port) = split_authority(authority)?;
    let path = path.split(['?', '#']).next().unwrap_or_default();
    Ok(Target {
        scheme,
        host: host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .map(str::to_string)
            .unwrap_or(host),
        port: port.unwrap_or(scheme.default_port()),
        path: if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
    })
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if valid {
        Ok(())
    } else {
        Err(format!("`{name}` is not a host name"))
    }
}

/// `path` percent-decoded, when every server reads it as the same path:
/// not when it holds an encoded `/` or `\`, a `\` at all, a dot segment
/// (encoded or not), an encoded `%` (read twice, it is any of these), a
/// NUL, or an encoding that is not one.
fn plain_path(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let byte = match bytes[at] {
            b'%' => {
                let hex = bytes.get(at + 1..at + 3)?;
                let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                if matches!(value, b'/' | b'\\' | b'%' | 0) {
                    return None;
                }
                at += 3;
                value
            }
            b'\\' | 0 => return None,
            other => {
                at += 1;
                other
            }
        };
        decoded.push(byte);
    }
    let decoded = String::from_utf8(decoded).ok()?;
    (!has_dot_segment(&decoded)).then_some(decoded)
}

/// Whether `path` has a `.` or `..` segment, plainly or percent-encoded.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(origin: &str, scheme: &str, authority: &str, path: &str) -> bool {
        Origin::parse(origin)
            .unwrap()
            .covers(&target(scheme, authority, path).unwrap())
    }

    /// Security probe, finding 2: a path a server decodes to one outside
    /// the prefix does not pass under it.
    #[test]
    fn encoded_slashes_backslashes_and_dots_do_not_pass_a_path_prefix() {
        let ok = |path: &str| covers("http://127.0.0.1:8000/ok/", "http", "127.0.0.1:8000", path);
        for refused in [
            "/ok/..%2fadmin.txt",
            "/ok/%2e%2e%2fadmin.txt",
            "/ok/%2E%2E%2Fadmin.txt",
            "/ok/..\\admin",
            "/ok/..%5cadmin",
            "/ok/%252e%252e%252fadmin",
            "/ok/a%00",
            "/ok/%zz",
            "/ok/%2",
            "/o%6b/../admin",
            "/%6f%6b/%2e/../admin",
        ] {
            assert!(!ok(refused), "{refused}");
        }
        for allowed in [
            "/ok/",
            "/ok/a%20b.txt",
            "/%6fk/x",
            "/ok/caf%C3%A9",
            "/ok/a..b",
        ] {
            assert!(ok(allowed), "{allowed}");
        }
        assert!(!ok("/o%6b"), "the prefix ends with a slash");
    }

    #[test]
    fn an_origin_covers_its_host_port_and_path_prefix() {
        assert!(covers("https://example.com", "https", "example.com", "/a"));
        assert!(covers(
            "https://example.com",
            "https",
            "EXAMPLE.com:443",
            "/"
        ));
        assert!(!covers("https://example.com", "http", "example.com", "/"));
        assert!(!covers(
            "https://example.com",
            "https",
            "example.com:8443",
            "/"
        ));
        assert!(!covers("https://example.com", "https", "evil.com", "/"));
        assert!(covers(
            "http://127.0.0.1:8000/up/",
            "http",
            "127.0.0.1:8000",
            "/up/x?y=1"
        ));
        assert!(!covers(
            "http://127.0.0.1:8000/up/",
            "http",
            "127.0.0.1:8000",
            "/upx"
        ));
        assert!(!covers(
            "http://127.0.0.1:8000/up/",
            "http",
            "127.0.0.1:8000",
            "/up/../admin"
        ));
        assert!(!covers(
            "http://127.0.0.1:8000/up/",
            "http",
            "127.0.0.1:8000",
            "/up/%2E%2e/a"
        ));
        assert!(covers(
            "http://127.0.0.1:8000/up",
            "http",
            "127.0.0.1:8000",
            "/up"
        ));
        assert!(covers(
            "http://127.0.0.1:8000/up",
            "http",
            "127.0.0.1:8000",
            "/up/a"
        ));
        assert!(!covers(
            "http://127.0.0.1:8000/up",
            "http",
            "127.0.0.1:8000",
            "/upload"
        ));
        assert!(covers("http://[::1]:9/", "http", "[::1]:9", "/"));
    }

    #[test]
    fn a_wildcard_covers_subdomains_only() {
        assert!(covers(
            "https://*.example.com",
            "https",
            "a.example.com",
            "/"
        ));
        assert!(covers(
            "https://*.example.com",
            "https",
            "a.b.example.com",
            "/"
        ));
        assert!(!covers(
            "https://*.example.com",
            "https",
            "example.com",
            "/"
        ));
        assert!(!covers(
            "https://*.example.com",
            "https",
            "badexample.com",
            "/"
        ));
    }

    #[test]
    fn malformed_origins_are_refused_with_a_reason() {
        for (text, reason) in [
            ("example.com", "expected `http://`"),
            ("ftp://example.com", "not http or https"),
            ("http://user@example.com", "user information"),
            ("http://example.com:0", "not a port"),
            ("http://example.com:99999", "not a port"),
            ("http://exa mple.com", "not a host name"),
            ("http://example.com/a?b", "no query"),
            ("http://example.com/a/../b", "`..` segments"),
            ("http://", "empty"),
        ] {
            let err = Origin::parse(text).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn narrower_origins_are_within_wider_ones() {
        let within = |a: &str, b: &str| {
            Origin::parse(a)
                .unwrap()
                .is_within(&Origin::parse(b).unwrap())
        };
        assert!(within("https://a.example.com", "https://*.example.com"));
        assert!(within("http://h:1/a/b", "http://h:1/a/"));
        assert!(within("http://h:1/a/", "http://h:1"));
        assert!(!within("http://h:1", "http://h:1/a/"));
        assert!(!within("http://h:2", "http://h:1"));
        assert!(!within("https://*.example.com", "https://a.example.com"));
    }

    #[test]
    fn origins_round_trip_through_text() {
        for text in [
            "https://example.com",
            "http://127.0.0.1:8000/up/",
            "http://[::1]:9",
        ] {
            assert_eq!(Origin::parse(text).unwrap().to_string(), text);
        }
    }
}
