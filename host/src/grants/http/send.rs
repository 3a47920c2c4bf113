//! Sending what a guest asks of wasi:http's outgoing handler: every
//! request is checked against the plugin's origins, its host name's
//! addresses against the restricted ranges, and the attempt's caps on
//! requests, bytes and time; the host connects to the very address it
//! checked.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::HttpGrant;
use crate::grants::address::restricted;
use crate::grants::origin::{Origin, Scheme, Target, target};
use crate::lock::lock;

/// Requests denied during an attempt, kept to be logged with its step.
pub type Denials = Arc<Mutex<Vec<String>>>;

/// One attempt's outbound HTTP: its grant, what it has used, and what was
/// denied. Its [`WasiHttpHooks`] send every request wasi:http makes.
pub struct HttpAccess {
    grant: Arc<HttpGrant>,
    plugin: Arc<str>,
    usage: Arc<Usage>,
    denials: Denials,
}

#[derive(Default)]
struct Usage {
    requests: AtomicU32,
    sent: AtomicU64,
    received: AtomicU64,
}

impl HttpAccess {
    /// The access of one attempt of a plugin called `plugin`.
    pub fn new(plugin: Arc<str>, grant: Arc<HttpGrant>, denials: Denials) -> Self {
        HttpAccess {
            grant,
            plugin,
            usage: Arc::default(),
            denials,
        }
    }

    /// The access of an attempt of a plugin that has no http grant: every
    /// request is denied, naming the missing grant. It counts nothing, so
    /// it shares its (never used) counters, and costs a step without
    /// grants no allocation.
    pub fn denying(denials: Denials) -> Self {
        static NONE: OnceLock<(Arc<HttpGrant>, Arc<str>, Arc<Usage>)> = OnceLock::new();
        let (grant, plugin, usage) =
            NONE.get_or_init(|| (Arc::default(), "".into(), Arc::default()));
        HttpAccess {
            grant: Arc::clone(grant),
            plugin: Arc::clone(plugin),
            usage: Arc::clone(usage),
            denials,
        }
    }
}

/// Why a request was not sent: denied by the grant, or failed on the way.
enum Refusal {
    Denied(String),
    Failed(Error),
}

impl From<Error> for Refusal {
    fn from(err: Error) -> Self {
        Refusal::Failed(err)
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpAccess {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let grant = Arc::clone(&self.grant);
        let plugin = Arc::clone(&self.plugin);
        let usage = Arc::clone(&self.usage);
        let denials = Arc::clone(&self.denials);
        Box::new(async move {
            match send(&grant, &plugin, usage, request, options).await {
                Ok(sent) => Ok(sent),
                Err(Refusal::Failed(err)) => Err(err),
                Err(Refusal::Denied(message)) => {
                    lock(&denials).push(message.clone());
                    Err(Error::InternalError(Some(message)))
                }
            }
        })
    }
}

type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

async fn send(
    grant: &HttpGrant,
    plugin: &str,
    usage: Arc<Usage>,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<Sent, Refusal> {
    let uri = request.uri();
    let url = uri.to_string();
    let target = target(
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map(|a| a.as_str()).unwrap_or_default(),
        uri.path(),
    )
    .map_err(|reason| Refusal::Denied(format!("{url}: {reason}")))?;
    if grant.covering(&target).is_none() {
        let granted = if grant.allow.is_empty() {
            "the plugin has no http grant".to_string()
        } else {
            let listed: Vec<String> = grant.allow.iter().map(Origin::to_string).collect();
            format!("plugin `{plugin}` may reach only {}", listed.join(", "))
        };
        return Err(Refusal::Denied(format!(
            "no grant covers {url}: {granted} (grants.http)"
        )));
    }
    let limits = grant.limits;
    let requests = usage.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if requests > limits.max_requests {
        return Err(Refusal::Denied(format!(
            "{url}: this attempt has sent its {} requests (grants.http.max_requests)",
            limits.max_requests
        )));
    }
    let timeout = Duration::try_from_secs_f64(limits.timeout).unwrap_or(Duration::MAX);
    let timeout = |asked: Option<Duration>| asked.map_or(timeout, |asked| asked.min(timeout));
    let options = options.unwrap_or_default();
    let address = vetted_address(grant, &target, &url, timeout(options.connect_timeout)).await?;
    let stream = tokio::time::timeout(
        timeout(options.connect_timeout),
        TcpStream::connect(address),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)?
    .map_err(|err| match err.kind() {
        std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
        _ => Error::Connect(err),
    })?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = match target.scheme {
        Scheme::Http => handshake(stream).await?,
        Scheme::Https => {
            let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|_| Error::HttpRequestUriInvalid)?;
            // rustls's own words (an unknown issuer, a name mismatch) are
            // what a task needs to see; wasi:http's TLS codes carry none.
            let tls = tokio_rustls::TlsConnector::from(tls_config())
                .connect(name, stream)
                .await
                .map_err(|err| Error::InternalError(Some(format!("{url}: TLS: {err}"))))?;
            handshake(tls).await?
        }
    };
    // The request line carries the path only; the host header (set by
    // wasi:http) names the host.
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let sent_budget = Budget {
        used: Arc::clone(&usage),
        which: Direction::Sent,
        cap: limits.max_bytes_sent,
    };
    let request = request.map(|body| Counted::new(body, sent_budget).boxed_unsync());
    let connection = tokio::spawn(connection);
    let response = tokio::time::timeout(
        timeout(options.first_byte_timeout),
        sender.send_request(request),
    )
    .await
    .map_err(|_| Error::ConnectionReadTimeout)?
    .map_err(Error::from)?;
    let received_budget = Budget {
        used: usage,
        which: Direction::Received,
        cap: limits.max_bytes_received,
    };
    let response = response.map(|incoming| {
        let incoming = incoming.map_err(Error::from);
        Counted::new(incoming, received_budget).boxed_unsync()
    });
    let io = async move {
        match connection.await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::ConnectionTerminated),
        }
    };
    Ok((response, Box::new(io)))
}

type Handshake = (
    hyper::client::conn::http1::SendRequest<WasiBody>,
    hyper::client::conn::http1::Connection<TokioIo<Box<dyn Stream>>, WasiBody>,
);

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

async fn handshake(stream: impl Stream) -> Result<Handshake, Error> {
    let stream: Box<dyn Stream> = Box::new(stream);
    Ok(hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?)
}

/// The address to connect to for `target`: its host's own, or the first
/// its name resolves to that the grant allows. A restricted address is
/// allowed only when an origin names it.
async fn vetted_address(
    grant: &HttpGrant,
    target: &Target,
    url: &str,
    timeout: Duration,
) -> Result<SocketAddr, Refusal> {
    if let Some(address) = target.address() {
        // An origin covered it, so a restricted address was named outright.
        return Ok(SocketAddr::new(address, target.port));
    }
    let resolved: Vec<SocketAddr> = tokio::time::timeout(
        timeout,
        tokio::net::lookup_host((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| Error::DnsTimeout)?
    .map_err(|_| Error::DnsError {
        rcode: Some("cannot resolve".into()),
        info_code: None,
    })?
    .collect();
    let mut refused = None;
    for address in &resolved {
        match restricted(address.ip()) {
            Some(kind) if !grant.lists_address_for(address.ip(), target) => {
                refused.get_or_insert((address.ip(), kind));
            }
            _ => return Ok(*address),
        }
    }
    match refused {
        Some((ip, kind)) => Err(Refusal::Denied(format!(
            "{url}: `{}` resolves to {ip}, {kind}, which no grant lists (grants.http must \
             name the address itself, e.g. {}://{}:{})",
            target.host,
            target.scheme.as_str(),
            match ip {
                IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            },
            target.port
        ))),
        None => Err(Refusal::Failed(Error::DestinationNotFound)),
    }
}

/// The TLS settings of every request: rustls with the bundled web roots.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
        // The ring provider supports the default protocol versions.
        Arc::new(config.unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3")))
    }))
}

#[derive(Clone, Copy)]
enum Direction {
    Sent,
    Received,
}

/// An attempt's byte cap in one direction, shared by all its requests.
struct Budget {
    used: Arc<Usage>,
    which: Direction,
    cap: u64,
}

impl Budget {
    /// Counts `n` more bytes; false once past the cap.
    fn spend(&self, n: u64) -> bool {
        let counter = match self.which {
            Direction::Sent => &self.used.sent,
            Direction::Received => &self.used.received,
        };
        counter.fetch_add(n, Ordering::Relaxed).saturating_add(n) <= self.cap
    }

    fn exceeded(&self) -> Error {
        let (what, key) = match self.which {
            Direction::Sent => ("sent", "max_bytes_sent"),
            Direction::Received => ("received", "max_bytes_received"),
        };
        Error::InternalError(Some(format!(
            "this attempt has {what} more than its {} bytes of HTTP bodies (grants.http.{key})",
            self.cap
        )))
    }
}

/// A body whose bytes count against a [`Budget`]; past it, an error.
struct Counted<B> {
    inner: B,
    budget: Budget,
}

impl<B> Counted<B> {
    fn new(inner: B, budget: Budget) -> Self {
        Counted { inner, budget }
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes, Error = Error> + Unpin,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && !self.budget.spend(data.len() as u64)
        {
            return Poll::Ready(Some(Err(self.budget.exceeded())));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
