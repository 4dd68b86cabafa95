//! The outbound HTTP client scripts use (`wx.http`): reqwest with a resolver that checks every
//! address against [`rules`] and hands reqwest only the addresses it checked (so DNS rebinding
//! cannot slip a second answer in), a redirect policy that checks every hop again (at most
//! [`MAX_REDIRECTS`]), caps on requests in flight, and one error type whose [`ErrorKind`] is
//! what scripts see as `err.kind`. It knows no Lua and never sees an access_token.

pub mod rules;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use tokio::sync::Semaphore;
use url::Url;

pub use rules::{HostRule, RuleError, Rules};

/// Redirect hops followed before giving up.
pub const MAX_REDIRECTS: usize = 5;
/// Default of `[http] max_requests`: requests in flight for the whole process.
pub const DEFAULT_MAX_REQUESTS: usize = 256;
/// Default of `[http] max_requests_per_worker`: requests in flight for one Lua state.
pub const DEFAULT_MAX_REQUESTS_PER_WORKER: usize = 32;

/// The `[http]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Where scripts may and may not go.
    pub rules: Rules,
    /// The `user-agent` sent unless a script sets its own.
    pub user_agent: String,
    /// Requests in flight for the whole process; more wait.
    pub max_requests: usize,
    /// Requests in flight for one Lua state (a loop of calls in one handler); more wait.
    pub max_requests_per_worker: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            rules: Rules::default(),
            user_agent: format!("wechat-lua/{}", env!("CARGO_PKG_VERSION")),
            max_requests: DEFAULT_MAX_REQUESTS,
            max_requests_per_worker: DEFAULT_MAX_REQUESTS_PER_WORKER,
        }
    }
}

/// What went wrong, as `err.kind` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request took longer than its `timeout`.
    Timeout,
    /// The connection could not be made or broke.
    Connect,
    /// The host name does not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The body is larger than `max_bytes`.
    TooLarge,
    /// The `[http]` rules refuse the address.
    Denied,
    /// Too many redirects, or a redirect to something that is not http(s).
    Redirect,
    /// The URL cannot be requested.
    InvalidUrl,
}

impl ErrorKind {
    /// The name scripts see.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Denied => "denied",
            ErrorKind::Redirect => "redirect",
            ErrorKind::InvalidUrl => "invalid_url",
        }
    }
}

/// A request that did not produce a response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} ({}): {message}", kind.as_str(), url)]
pub struct HttpError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What happened, readable.
    pub message: String,
    /// The URL asked for, without its query (which may carry keys).
    pub url: String,
}

/// A request as a script built it, checked.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// The method.
    pub method: Method,
    /// The URL, query included.
    pub url: Url,
    /// Headers set by the script (and `content-type` for `json`/`form`).
    pub headers: HeaderMap,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// Everything (waiting for a slot, connecting, reading) must be done within it.
    pub timeout: Duration,
    /// Most body bytes read.
    pub max_bytes: usize,
}

/// A response, whatever its status.
#[derive(Debug, Clone)]
pub struct InboundResponse {
    /// The status code.
    pub status: u16,
    /// Lower-case names, in the order received; repeated headers joined with `", "`.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// One finished request, as an observer of the client sees it (`chat` shows each one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// The method.
    pub method: String,
    /// The URL without its query (which may carry keys).
    pub url: String,
    /// The status, or what went wrong and how.
    pub outcome: Result<u16, (ErrorKind, String)>,
    /// From the call to its end, waiting for a slot included.
    pub elapsed: Duration,
}

/// Told of every request a client finished.
pub type RequestObserver = Arc<dyn Fn(&SeenRequest) + Send + Sync>;

/// Refusals raised inside reqwest (resolver, redirect policy), found again in its error chain.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Redirect(String),
    #[error("cannot resolve {0}: {1}")]
    Lookup(String, String),
}

/// Resolves with the system resolver, then keeps only the addresses the rules accept.
struct CheckedResolver {
    rules: Arc<Rules>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.rules.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> {
                    // Boxed as the trait object itself, so `classify` can downcast it.
                    Box::new(Refusal::Lookup(host.clone(), e.to_string()))
                })?
                .collect();
            if found.is_empty() {
                return Err(Box::new(Refusal::Lookup(host, "no addresses".into())) as _);
            }
            let mut refused = None;
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match rules.check_resolved(&host, addr.ip()) {
                    Ok(()) => true,
                    Err(reason) => {
                        refused.get_or_insert(reason);
                        false
                    }
                })
                .collect();
            if kept.is_empty() {
                let reason = refused.unwrap_or_else(|| format!("{host} refused"));
                return Err(Box::new(Refusal::Denied(reason)) as _);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// `scheme://host[:port]/path` of a URL: what logs and errors show.
pub fn without_query(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    shown.to_string()
}

/// The client of one host process, shared by every Lua state.
pub struct HttpClient {
    settings: HttpSettings,
    rules: Arc<Rules>,
    /// Built on first use, so hosts whose scripts never call `wx.http` pay nothing.
    client: OnceLock<Result<reqwest::Client, String>>,
    /// The process-wide cap on requests in flight.
    in_flight: Arc<Semaphore>,
    /// Told of every finished request (`chat` prints them), when set.
    observer: Option<RequestObserver>,
}

impl HttpClient {
    /// A client under `settings`.
    pub fn new(settings: HttpSettings) -> HttpClient {
        HttpClient {
            rules: Arc::new(settings.rules.clone()),
            in_flight: Arc::new(Semaphore::new(settings.max_requests)),
            settings,
            client: OnceLock::new(),
            observer: None,
        }
    }

    /// The same client, telling `observer` of every request it finishes.
    pub fn observed(mut self, observer: RequestObserver) -> HttpClient {
        self.observer = Some(observer);
        self
    }

    /// The settings in effect.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// A new per-state cap, one for each Lua state.
    pub fn worker_slots(&self) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(self.settings.max_requests_per_worker))
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                let rules = self.rules.clone();
                let policy = reqwest::redirect::Policy::custom(move |attempt| {
                    if attempt.previous().len() > MAX_REDIRECTS {
                        let e = Refusal::Redirect(format!("more than {MAX_REDIRECTS} redirects"));
                        return attempt.error(e);
                    }
                    let url = attempt.url();
                    if !matches!(url.scheme(), "http" | "https") {
                        let e = Refusal::Redirect(format!(
                            "redirect to {}, which is not http(s)",
                            without_query(url)
                        ));
                        return attempt.error(e);
                    }
                    match rules.check_url(url) {
                        Ok(()) => attempt.follow(),
                        Err(reason) => {
                            let e = Refusal::Denied(format!(
                                "redirect to {} refused: {reason}",
                                without_query(url)
                            ));
                            attempt.error(e)
                        }
                    }
                });
                reqwest::Client::builder()
                    .dns_resolver(Arc::new(CheckedResolver {
                        rules: self.rules.clone(),
                    }))
                    .redirect(policy)
                    // A proxy would resolve names itself, past the checks.
                    .no_proxy()
                    .user_agent(self.settings.user_agent.clone())
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| e.clone())
    }

    /// Sends `request`, waiting for a slot under both caps first (`worker` is the calling
    /// state's). One debug line and the metrics record every call.
    pub async fn send(
        &self,
        worker: &Semaphore,
        request: OutboundRequest,
    ) -> Result<InboundResponse, HttpError> {
        let started = Instant::now();
        let shown = without_query(&request.url);
        let host = request.url.host_str().unwrap_or("").to_string();
        let method = request.method.clone();
        let timeout = request.timeout;
        let result = match tokio::time::timeout(timeout, self.send_within(worker, request)).await {
            Ok(result) => result,
            Err(_) => Err((
                ErrorKind::Timeout,
                format!("no complete response within {} s", timeout.as_secs_f64()),
            )),
        };
        let elapsed = started.elapsed();
        if let Some(observer) = &self.observer {
            observer(&SeenRequest {
                method: method.to_string(),
                url: shown.clone(),
                outcome: match &result {
                    Ok(resp) => Ok(resp.status),
                    Err((kind, message)) => Err((*kind, message.clone())),
                },
                elapsed,
            });
        }
        let outcome = match &result {
            Ok(resp) => format!("{}xx", resp.status / 100),
            Err((kind, _)) => kind.as_str().to_string(),
        };
        crate::metrics::metrics().http_request(&host, &outcome, elapsed);
        match &result {
            Ok(resp) => tracing::debug!(
                %method, host, status = resp.status, ms = elapsed.as_millis() as u64,
                bytes = resp.body.len(), "wx.http"
            ),
            Err((kind, _)) => tracing::debug!(
                %method, host, error = kind.as_str(), ms = elapsed.as_millis() as u64, "wx.http"
            ),
        }
        result.map_err(|(kind, message)| HttpError {
            kind,
            message,
            url: shown,
        })
    }

    async fn send_within(
        &self,
        worker: &Semaphore,
        request: OutboundRequest,
    ) -> Result<InboundResponse, (ErrorKind, String)> {
        if let Err(reason) = self.rules.check_url(&request.url) {
            return Err((ErrorKind::Denied, reason));
        }
        let closed = |_| (ErrorKind::Connect, "the host is shutting down".to_string());
        let _worker_slot = worker.acquire().await.map_err(closed)?;
        let _slot = self.in_flight.acquire().await.map_err(closed)?;
        let client = self.client().map_err(|e| (ErrorKind::Connect, e))?;
        let mut builder = client
            .request(request.method, request.url)
            .headers(request.headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(classify)?;
        let max = request.max_bytes;
        let too_large = || {
            (
                ErrorKind::TooLarge,
                format!("the response body is larger than max_bytes ({max})"),
            )
        };
        if response.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        let status = response.status().as_u16();
        let headers = joined_headers(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(InboundResponse {
            status,
            headers,
            body,
        })
    }
}

/// Header names in order of first appearance; values of a repeated header joined with `", "`.
fn joined_headers(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .keys()
        .map(|name: &HeaderName| {
            let mut joined = Vec::new();
            for (i, value) in headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(value.as_bytes());
            }
            (name.as_str().to_string(), joined)
        })
        .collect()
}

/// The errors in `e`'s source chain, looking inside `io::Error`s (whose `source` skips the
/// error they wrap).
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        out.push(err);
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    out
}

/// The kind and message of a reqwest failure.
fn classify(e: reqwest::Error) -> (ErrorKind, String) {
    let errors = chain(&e);
    for err in &errors {
        if let Some(refusal) = err.downcast_ref::<Refusal>() {
            let kind = match refusal {
                Refusal::Denied(_) => ErrorKind::Denied,
                Refusal::Redirect(_) => ErrorKind::Redirect,
                Refusal::Lookup(..) => ErrorKind::Dns,
            };
            return (kind, refusal.to_string());
        }
    }
    let is_tls = errors
        .iter()
        .any(|e| e.downcast_ref::<rustls::Error>().is_some());
    // The deepest error says what happened; the outer ones repeat it with reqwest's framing.
    let cause = errors.last().map(|e| e.to_string()).unwrap_or_default();
    let (kind, message) = if e.is_timeout() {
        (ErrorKind::Timeout, format!("timed out: {cause}"))
    } else if is_tls {
        (ErrorKind::Tls, format!("TLS failed: {cause}"))
    } else if e.is_redirect() {
        (ErrorKind::Redirect, format!("redirect failed: {cause}"))
    } else if e.is_builder() {
        (ErrorKind::InvalidUrl, cause)
    } else if e.is_connect() {
        (ErrorKind::Connect, format!("cannot connect: {cause}"))
    } else {
        (
            ErrorKind::Connect,
            format!("the connection failed: {cause}"),
        )
    };
    (kind, message)
}

/// A header value a script gave, refused when it holds CR, LF or NUL (header injection).
pub fn header_value(value: &[u8]) -> Option<HeaderValue> {
    if value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return None;
    }
    HeaderValue::from_bytes(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_headers_are_joined_once_in_order() {
        let mut h = HeaderMap::new();
        h.append("set-cookie", HeaderValue::from_static("a=1"));
        h.append("x-one", HeaderValue::from_static("v"));
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        assert_eq!(
            joined_headers(&h),
            vec![
                ("set-cookie".to_string(), b"a=1, b=2".to_vec()),
                ("x-one".to_string(), b"v".to_vec())
            ]
        );
    }
}
