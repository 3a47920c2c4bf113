//! A small blocking HTTP client over wasi:http, for plugins granted
//! `http` origins.
//!
//! ```ignore
//! use wfhost_guest::http;
//!
//! let page = http::get("https://api.example.com/items/7").send()?.error_for_status()?;
//! let item: Item = page.json()?;
//! let receipt = http::post("http://127.0.0.1:8000/charge")
//!     .json(&Charge { order: 7, cents: 1999 })?
//!     .send()?;
//! ```
//!
//! Every request is checked by the host against the plugin's grant; one
//! that no grant covers fails with an [`Error`] whose message names the
//! URL and the grant. Redirects are followed (up to 5 by default) as new
//! requests, so each is checked again. Inside a task, every request
//! carries the header `Idempotency-Key: <workflow id>/<step id>` — the same
//! on every attempt and every resume of the step — unless
//! [`Request::without_idempotency_key`] says not to.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

/// Bytes written to a body stream per call: what wasi:io promises to take.
const WRITE_CHUNK: usize = 4096;

/// Bytes asked for per read of a response body.
const READ_CHUNK: u64 = 64 << 10;

/// A request to build and send.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    idempotency_key: Option<String>,
    automatic_key: bool,
    max_redirects: u32,
}

/// A `GET` of `url`.
pub fn get(url: impl Into<String>) -> Request {
    Request::new("GET", url)
}

/// A `POST` to `url`.
pub fn post(url: impl Into<String>) -> Request {
    Request::new("POST", url)
}

/// A `PUT` to `url`.
pub fn put(url: impl Into<String>) -> Request {
    Request::new("PUT", url)
}

/// A `DELETE` of `url`.
pub fn delete(url: impl Into<String>) -> Request {
    Request::new("DELETE", url)
}

impl Request {
    /// A request with any method (`PATCH`, `HEAD`, …).
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            idempotency_key: None,
            automatic_key: true,
            max_redirects: 5,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(value).map_err(|err| Error {
            method: self.method.clone(),
            url: self.url.clone(),
            message: format!("the body is not JSON: {err}"),
        })?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Sends `key` as the `Idempotency-Key` instead of the step's own (for
    /// a step that makes several effectful requests: one key each).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sends no `Idempotency-Key`.
    pub fn without_idempotency_key(mut self) -> Self {
        self.idempotency_key = None;
        self.automatic_key = false;
        self
    }

    /// Follows at most `n` redirects (0: none).
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.max_redirects = n;
        self
    }

    /// Sends the request and reads the whole response, following redirects.
    pub fn send(self) -> Result<Response, Error> {
        let key = self.idempotency_key.clone().or_else(|| {
            self.automatic_key
                .then(crate::context::current_idempotency_key)
                .flatten()
        });
        let mut method = self.method.clone();
        let mut url = self.url.clone();
        let mut body = self.body.clone();
        let mut redirects = 0;
        loop {
            let error = |message: String| Error {
                method: method.clone(),
                url: url.clone(),
                message,
            };
            let mut headers = self.headers.clone();
            if let Some(key) = &key {
                headers.push(("idempotency-key".into(), key.clone()));
            }
            let response = send_once(&method, &url, &headers, &body).map_err(error)?;
            let location = response.header("location").map(str::to_string);
            match (response.status, location) {
                (301 | 302 | 303 | 307 | 308, Some(location)) if redirects < self.max_redirects => {
                    redirects += 1;
                    url = resolve(&url, &location);
                    // As browsers do: 303 (and 301/302 after a POST) turn
                    // into a GET without a body.
                    let keeps_method = matches!(response.status, 307 | 308)
                        || (method != "POST" && response.status != 303);
                    if !keeps_method {
                        method = "GET".into();
                        body.clear();
                    }
                }
                _ => return Ok(response),
            }
        }
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    url: String,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body read as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|err| Error {
            method: String::new(),
            url: self.url.clone(),
            message: format!("the response is not the JSON expected: {err}"),
        })
    }

    /// The response itself when its status is below 400; else an error
    /// with the status and the start of the body.
    pub fn error_for_status(self) -> Result<Self, Error> {
        if self.status < 400 {
            return Ok(self);
        }
        let text = self.text();
        let start: String = text.chars().take(200).collect();
        Err(Error {
            method: String::new(),
            url: self.url.clone(),
            message: format!("status {}: {start}", self.status),
        })
    }
}

/// Why a request failed: the host's refusal (naming the missing grant), a
/// network error, or a body that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    method: String,
    url: String,
    message: String,
}

impl Error {
    /// What went wrong, in words.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.method.is_empty() {
            write!(f, "{}: {}", self.url, self.message)
        } else {
            write!(f, "{} {}: {}", self.method, self.url, self.message)
        }
    }
}

impl std::error::Error for Error {}

/// `location` made absolute against `base`.
fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let authority = rest.split('/').next().unwrap_or(rest);
    if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = &rest[authority.len()..];
        let dir = path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
        format!("{scheme}://{authority}{dir}/{location}")
    }
}

fn describe(code: ErrorCode) -> String {
    match code {
        ErrorCode::InternalError(Some(message)) => message,
        other => format!("{other:?}"),
    }
}

fn send_once(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Response, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("the URL has no scheme (expected http:// or https://)")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let slash = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(slash);
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    let fields = Fields::new();
    // A known length, not chunked encoding, which small servers often
    // do not read.
    let sends_body = !body.is_empty() || !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS");
    if sends_body {
        fields
            .append("content-length", body.len().to_string().as_bytes())
            .map_err(|err| format!("header `content-length`: {err:?}"))?;
    }
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|err| format!("header `{name}`: {err:?}"))?;
    }
    let request = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };
    let invalid = |what: &str| format!("the {what} is not valid");
    request.set_method(&method).map_err(|_| invalid("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|_| invalid("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|_| invalid("host"))?;
    request
        .set_path_with_query(Some(&path))
        .map_err(|_| invalid("path"))?;
    let outgoing = request.body().map_err(|_| "the body was taken")?;
    let future = outgoing_handler::handle(request, None).map_err(describe)?;
    {
        let stream = outgoing.write().map_err(|_| "the body stream was taken")?;
        for chunk in body.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|err| format!("sending the body: {err:?}"))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(describe)?;
    let response = loop {
        match future.get() {
            Some(Ok(Ok(response))) => break response,
            Some(Ok(Err(code))) => return Err(describe(code)),
            Some(Err(())) => return Err("the response was already taken".into()),
            None => future.subscribe().block(),
        }
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(&value).into_owned();
            (name.to_ascii_lowercase(), value)
        })
        .collect();
    let incoming = response.consume().map_err(|_| "the body was taken")?;
    let mut body = Vec::new();
    {
        let stream = incoming.stream().map_err(|_| "the body stream was taken")?;
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(bytes) => body.extend_from_slice(&bytes),
                Err(wasip2::io::streams::StreamError::Closed) => break,
                Err(wasip2::io::streams::StreamError::LastOperationFailed(err)) => {
                    return Err(format!("reading the body: {}", err.to_debug_string()));
                }
            }
        }
    }
    drop(incoming);
    Ok(Response {
        status,
        headers,
        body,
        url: url.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn redirect_locations_resolve_against_the_request() {
        assert_eq!(resolve("http://h:1/a/b", "/c"), "http://h:1/c");
        assert_eq!(resolve("http://h:1/a/b", "c"), "http://h:1/a/c");
        assert_eq!(resolve("http://h:1/a/b", "https://x/y"), "https://x/y");
    }
}
