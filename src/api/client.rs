//! The HTTP client for the outbound WeChat API: one `reqwest::Client`, the base URL, the
//! generic `get`/`post`/`upload`/`get_bytes` calls that every API family and every script
//! uses, and the errcode policy (backoff, token retry, quota stop, fatal-once logging).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::error::{self, ApiError};
use super::token::{
    Clock, MemoryPersistence, SystemClock, TokenEndpoint, TokenManager, TokenPersistence,
    TokenStatus,
};

/// The production API host; `config` reads any other (`api_base`, `WECHAT_API_BASE`).
pub const DEFAULT_API_BASE: &str = "https://api.weixin.qq.com";
/// Beijing time offset: WeChat daily quotas reset at midnight UTC+8.
const BEIJING_OFFSET_SECS: i64 = 8 * 3600;

/// Bounded exponential backoff for -1 (system busy) and 45011 (too frequent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries including the first.
    pub attempts: u32,
    /// Delay before the second try; doubled for each further one.
    pub base_delay: Duration,
    /// Upper bound for one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(300),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed try number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Everything needed to build a [`WechatClient`].
#[derive(Clone)]
pub struct ClientConfig {
    /// 开发者ID (AppID).
    pub appid: String,
    /// 开发者密码 (AppSecret); never logged.
    pub secret: String,
    /// API host without a trailing slash, e.g. `https://api.weixin.qq.com`.
    pub base_url: String,
    /// Which endpoint issues access_tokens.
    pub token_endpoint: TokenEndpoint,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Backoff for transient errcodes.
    pub retry: RetryPolicy,
    /// Fetch the next token in the background when less than this remains.
    pub refresh_ahead: Duration,
    /// Where the token survives restarts.
    pub persistence: Arc<dyn TokenPersistence>,
    /// The clock token expiry is measured against.
    pub clock: Arc<dyn Clock>,
}

impl ClientConfig {
    /// Defaults for an appid/secret pair, talking to [`DEFAULT_API_BASE`].
    pub fn new(appid: impl Into<String>, secret: impl Into<String>) -> ClientConfig {
        ClientConfig {
            appid: appid.into(),
            secret: secret.into(),
            base_url: DEFAULT_API_BASE.to_string(),
            token_endpoint: TokenEndpoint::Stable,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            refresh_ahead: Duration::from_secs(300),
            persistence: Arc::new(MemoryPersistence::default()),
            clock: Arc::new(SystemClock),
        }
    }

    /// Same config talking to another host (the fake in tests).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> ClientConfig {
        self.base_url = base_url.into();
        self
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("appid", &self.appid)
            .field("secret", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("token_endpoint", &self.token_endpoint)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("refresh_ahead", &self.refresh_ahead)
            .finish()
    }
}

/// One part of a multipart upload (rebuilt for each try, since reqwest forms are single-use).
#[derive(Debug, Clone)]
pub struct UploadPart {
    /// Form field name (`media`, `description`).
    pub name: String,
    /// File name sent to WeChat; WeChat infers the format from its extension.
    pub filename: Option<String>,
    /// MIME type, e.g. `image/jpeg`.
    pub content_type: Option<String>,
    /// The content.
    pub data: Bytes,
}

/// A non-JSON answer (downloaded media).
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// `Content-Type` as sent by WeChat.
    pub content_type: Option<String>,
    /// File name from `Content-Disposition`, if any.
    pub filename: Option<String>,
    /// The bytes.
    pub data: Bytes,
}

/// The body of one request.
pub(crate) enum Wire<'a> {
    /// Query parameters only (GET).
    Query(&'a [(&'a str, &'a str)]),
    /// A JSON body.
    Json(&'a Value),
    /// Query parameters plus a multipart body.
    Multipart(&'a [(&'a str, &'a str)], &'a [UploadPart]),
}

/// The credentials the token manager fetches with.
pub(crate) struct Credentials {
    pub(crate) appid: String,
    pub(crate) secret: String,
}

/// State shared by the client and its token manager: the HTTP client and logging memory.
pub(crate) struct Shared {
    http: reqwest::Client,
    base: String,
    pub(crate) creds: Credentials,
    /// Backoff for -1/45011, also used by token fetches.
    pub(crate) retry: RetryPolicy,
    /// Credentials errcodes already logged, so a wrong secret is reported once, not per call.
    logged_fatal: Mutex<HashSet<i64>>,
}

impl Shared {
    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        wire: &Wire<'_>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Bytes), ApiError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.query(&[("access_token", t)]);
        }
        req = match wire {
            Wire::Query(q) => req.query(q),
            Wire::Json(v) => req.json(v),
            Wire::Multipart(q, parts) => {
                let mut form = reqwest::multipart::Form::new();
                for p in parts.iter() {
                    let mut part = reqwest::multipart::Part::bytes(p.data.to_vec());
                    if let Some(f) = &p.filename {
                        part = part.file_name(f.clone());
                    }
                    if let Some(ct) = &p.content_type {
                        part = part
                            .mime_str(ct)
                            .map_err(|e| ApiError::Config(format!("bad content type {ct}: {e}")))?;
                    }
                    form = form.part(p.name.clone(), part);
                }
                req.query(q).multipart(form)
            }
        };
        let resp = req.send().await.map_err(map_reqwest)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(map_reqwest)?;
        Ok((status, headers, body))
    }

    /// One request whose answer is WeChat JSON; non-zero errcodes become errors.
    pub(crate) async fn send_json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        wire: &Wire<'_>,
    ) -> Result<Value, ApiError> {
        let (status, _, body) = self.send_raw(method, path, token, wire).await?;
        let r = interpret_json(status, &body);
        self.log_outcome(path, &r);
        r
    }

    fn log_outcome<T>(&self, path: &str, r: &Result<T, ApiError>) {
        crate::metrics::metrics().api_call(path, r.as_ref().map_or_else(ApiError::errcode, |_| 0));
        match r {
            Ok(_) => tracing::debug!(path, "WeChat API call ok"),
            Err(e @ ApiError::Credentials { errcode, hint, .. }) => {
                let first = self
                    .logged_fatal
                    .lock()
                    .map(|mut s| s.insert(*errcode))
                    .unwrap_or(true);
                if first {
                    tracing::error!(path, errcode, hint = %hint, "{e}");
                } else {
                    tracing::debug!(path, errcode, "credentials still rejected");
                }
            }
            Err(e) => tracing::warn!(path, errcode = e.errcode(), "WeChat API call failed: {e}"),
        }
    }
}

fn map_reqwest(e: reqwest::Error) -> ApiError {
    if e.is_timeout() {
        ApiError::Timeout
    } else {
        // without_url: the URL carries the access_token or the secret.
        ApiError::Network(e.without_url().to_string())
    }
}

fn truncate(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    s.chars().take(300).collect()
}

/// Turn a WeChat JSON answer into a value or a typed error.
pub(crate) fn interpret_json(status: StatusCode, body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) if status.is_success() => {
            return Err(ApiError::InvalidJson {
                raw: truncate(body),
                reason: e.to_string(),
            })
        }
        Err(_) => {
            return Err(ApiError::Http {
                status: status.as_u16(),
                body: truncate(body),
            })
        }
    };
    let errcode = v.get("errcode").and_then(Value::as_i64).unwrap_or(0);
    if errcode == 0 {
        if status.is_success() {
            return Ok(v);
        }
        return Err(ApiError::Http {
            status: status.as_u16(),
            body: truncate(body),
        });
    }
    let errmsg = v
        .get("errmsg")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if errcode == error::CLIENTMSGID_EXISTS {
        // The message was already sent under this clientmsgid: report the original msg_id.
        if let Some(msg_id) = v.get("msg_id").cloned().or_else(|| msg_id_in(&errmsg)) {
            let mut out = v.clone();
            if let Some(o) = out.as_object_mut() {
                o.insert("msg_id".into(), msg_id);
                o.insert("errcode".into(), Value::from(0));
                o.insert("duplicate".into(), Value::Bool(true));
            }
            return Ok(out);
        }
    }
    Err(ApiError::from_errcode(errcode, errmsg))
}

/// A msg_id mentioned in an errmsg ("... msg_id: 1000001").
fn msg_id_in(errmsg: &str) -> Option<Value> {
    let rest = errmsg.split("msg_id").nth(1)?;
    let digits: String = rest
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse::<i64>().ok().map(Value::from)
}

/// The next midnight in Beijing time after `now` (Unix seconds): when daily quotas reset.
fn next_quota_reset(now: i64) -> i64 {
    let local = now + BEIJING_OFFSET_SECS;
    (local.div_euclid(86_400) + 1) * 86_400 - BEIJING_OFFSET_SECS
}

struct Inner {
    shared: Arc<Shared>,
    tokens: Arc<TokenManager>,
    retry: RetryPolicy,
    /// Paths whose daily quota (45009) ran out, with the Unix time it resets: not called until then.
    quota_stopped: Mutex<HashMap<String, i64>>,
}

/// A cheap-to-clone handle on the outbound WeChat API (all clones share one token cache).
#[derive(Clone)]
pub struct WechatClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for WechatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatClient")
            .field("appid", &self.inner.shared.creds.appid)
            .field("base_url", &self.inner.shared.base)
            .finish_non_exhaustive()
    }
}

impl WechatClient {
    /// Build the client (one `reqwest::Client` with rustls and the configured timeouts).
    pub fn new(config: ClientConfig) -> Result<WechatClient, ApiError> {
        let base = config.base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ApiError::Config(format!(
                "API base URL must start with http:// or https://: {base}"
            )));
        }
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("wechat-lua/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Config(format!("cannot build HTTP client: {e}")))?;
        let shared = Arc::new(Shared {
            http,
            base,
            creds: Credentials {
                appid: config.appid,
                secret: config.secret,
            },
            retry: config.retry,
            logged_fatal: Mutex::new(HashSet::new()),
        });
        let tokens = Arc::new(TokenManager::new(
            Arc::clone(&shared),
            config.token_endpoint,
            config.refresh_ahead,
            config.persistence,
            config.clock,
        ));
        Ok(WechatClient {
            inner: Arc::new(Inner {
                shared,
                tokens,
                retry: config.retry,
                quota_stopped: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The AppID this client acts for.
    pub fn appid(&self) -> &str {
        &self.inner.shared.creds.appid
    }

    /// `GET {base}{path}?access_token=..&query..`, returning WeChat's JSON (errcode 0).
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, ApiError> {
        self.call_json(Method::GET, path, &Wire::Query(query)).await
    }

    /// `POST {base}{path}?access_token=..` with a JSON body, returning WeChat's JSON (errcode 0).
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call_json(Method::POST, path, &Wire::Json(body)).await
    }

    /// Multipart `POST` (media uploads), returning WeChat's JSON.
    pub async fn upload(
        &self,
        path: &str,
        query: &[(&str, &str)],
        parts: &[UploadPart],
    ) -> Result<Value, ApiError> {
        self.call_json(Method::POST, path, &Wire::Multipart(query, parts))
            .await
    }

    /// A call whose success answer is a file (media/get); a JSON answer with an errcode is
    /// an error, and a JSON answer without one is returned as bytes with its content type.
    pub async fn get_bytes(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<RawResponse, ApiError> {
        let (method, wire) = match body {
            Some(b) => (Method::POST, Wire::Json(b)),
            None => (Method::GET, Wire::Query(query)),
        };
        let path = normalise(path);
        let shared = Arc::clone(&self.inner.shared);
        self.with_policy(&path, |token| {
            let method = method.clone();
            let shared = Arc::clone(&shared);
            let path = path.clone();
            let wire = &wire;
            async move {
                let (status, headers, data) =
                    shared.send_raw(method, &path, Some(&token), wire).await?;
                let content_type = headers
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let is_json = content_type
                    .as_deref()
                    .is_some_and(|c| c.contains("json") || c.starts_with("text/plain"));
                if is_json || !status.is_success() {
                    let r = interpret_json(status, &data);
                    shared.log_outcome(&path, &r);
                    r?;
                }
                let filename = headers
                    .get(reqwest::header::CONTENT_DISPOSITION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split("filename=").nth(1))
                    .map(|f| f.trim_matches('"').to_string());
                Ok(RawResponse {
                    content_type,
                    filename,
                    data,
                })
            }
        })
        .await
    }

    /// The cached access_token's status (never the token itself).
    pub fn token_status(&self) -> TokenStatus {
        self.inner.tokens.status()
    }

    /// The access_token itself, fetching one if needed — only for callers that explicitly
    /// need it (e.g. `wechat-lua token --show`); never log it.
    pub async fn access_token(&self) -> Result<String, ApiError> {
        self.inner.tokens.get().await
    }

    /// Fetch the next token now if the cached one is within the refresh-ahead window
    /// (the same work the background refresh does; useful at startup and in tests).
    pub async fn refresh_token_if_due(&self) {
        self.inner.tokens.refresh_ahead_now().await
    }

    async fn call_json(
        &self,
        method: Method,
        path: &str,
        wire: &Wire<'_>,
    ) -> Result<Value, ApiError> {
        let path = normalise(path);
        let shared = Arc::clone(&self.inner.shared);
        self.with_policy(&path, |token| {
            let method = method.clone();
            let shared = Arc::clone(&shared);
            let path = path.clone();
            async move { shared.send_json(method, &path, Some(&token), wire).await }
        })
        .await
    }

    /// Apply the errcode policy around one logical call.
    async fn with_policy<T, F, Fut>(&self, path: &str, mut attempt_fn: F) -> Result<T, ApiError>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        self.check_quota(path)?;
        let mut token_retried = false;
        let mut attempt: u32 = 0;
        loop {
            let token = self.inner.tokens.get().await?;
            match attempt_fn(token.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) if error::is_token_rejected(e.errcode()) && !token_retried => {
                    token_retried = true;
                    self.inner.tokens.invalidate(&token);
                }
                Err(e)
                    if error::is_backoff_errcode(e.errcode())
                        && matches!(e, ApiError::Api { .. })
                        && attempt + 1 < self.inner.retry.attempts =>
                {
                    let delay = self.inner.retry.delay(attempt);
                    tracing::info!(path, errcode = e.errcode(), ?delay, "WeChat busy; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e @ ApiError::QuotaExhausted { .. }) => {
                    let until = next_quota_reset(self.inner.tokens.now_unix());
                    if let Ok(mut m) = self.inner.quota_stopped.lock() {
                        m.insert(path.to_string(), until);
                    }
                    tracing::error!(path, until, "daily quota for this API is exhausted; not calling it again until the quota resets");
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn check_quota(&self, path: &str) -> Result<(), ApiError> {
        let now = self.inner.tokens.now_unix();
        let Ok(mut m) = self.inner.quota_stopped.lock() else {
            return Ok(());
        };
        match m.get(path) {
            Some(&until) if now < until => Err(ApiError::QuotaExhausted {
                errmsg: format!(
                    "daily quota for {path} exhausted earlier today (45009); calls resume at Unix {until}"
                ),
            }),
            Some(_) => {
                m.remove(path);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn normalise(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0), Duration::from_millis(300));
        assert_eq!(p.delay(1), Duration::from_millis(600));
        assert_eq!(p.delay(10), Duration::from_secs(2));
        assert_eq!(p.delay(40), Duration::from_secs(2));
    }

    #[test]
    fn interpret_json_policy() {
        let ok =
            interpret_json(StatusCode::OK, br#"{"errcode":0,"errmsg":"ok","msgid":5}"#).unwrap();
        assert_eq!(ok["msgid"], 5);
        let e = interpret_json(
            StatusCode::OK,
            br#"{"errcode":45015,"errmsg":"response out of time limit"}"#,
        )
        .unwrap_err();
        assert!(matches!(e, ApiError::Api { errcode: 45015, .. }));
        let dup = interpret_json(
            StatusCode::OK,
            br#"{"errcode":45065,"errmsg":"clientmsgid exist, msg_id: 1000042"}"#,
        )
        .unwrap();
        assert_eq!(dup["msg_id"], 1000042);
        assert!(matches!(
            interpret_json(StatusCode::OK, b"<html>").unwrap_err(),
            ApiError::InvalidJson { .. }
        ));
        assert!(matches!(
            interpret_json(StatusCode::BAD_GATEWAY, b"<html>").unwrap_err(),
            ApiError::Http { status: 502, .. }
        ));
    }

    #[test]
    fn quota_resets_at_beijing_midnight() {
        // 2024-01-01T15:59:59Z is 23:59:59 in Beijing; reset one second later.
        let now = 1_704_124_799;
        assert_eq!(next_quota_reset(now), now + 1);
        assert_eq!(next_quota_reset(now + 1), now + 1 + 86_400);
    }

    /// A client whose token comes from persistence, so `with_policy` runs without a network.
    async fn offline_client() -> WechatClient {
        use super::super::token::{CachedToken, SystemClock};
        let p = MemoryPersistence::default();
        p.save(&CachedToken {
            access_token: "T1".into(),
            expires_at_unix: SystemClock.now_unix() + 7200,
        })
        .await;
        let mut cfg = ClientConfig::new("wx", "s").with_base_url("http://127.0.0.1:9");
        cfg.persistence = Arc::new(p);
        WechatClient::new(cfg).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_waits_300_then_600_ms_then_gives_up() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let client = offline_client().await;
        let tries = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r: Result<(), ApiError> = client
            .with_policy("/x", |_| {
                tries.fetch_add(1, Ordering::SeqCst);
                async { Err(ApiError::from_errcode(-1, "system error".into())) }
            })
            .await;
        assert_eq!(r.unwrap_err().errcode(), -1);
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        assert_eq!(start.elapsed(), Duration::from_millis(900));

        // Succeeds on the second try after exactly one delay.
        let tries = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r = client
            .with_policy("/x", |_| {
                let n = tries.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(ApiError::from_errcode(45011, "freq".into()))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(r.unwrap(), 1);
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_later_and_permanent_errors_return_at_once() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let client = offline_client().await;
        for code in [45066, 45015, 40164, 45009] {
            let tries = AtomicU32::new(0);
            let start = tokio::time::Instant::now();
            let r: Result<(), ApiError> = client
                .with_policy(&format!("/p{code}"), |_| {
                    tries.fetch_add(1, Ordering::SeqCst);
                    async move { Err(ApiError::from_errcode(code, "x".into())) }
                })
                .await;
            assert_eq!(r.unwrap_err().errcode(), code);
            assert_eq!(tries.load(Ordering::SeqCst), 1, "{code}");
            assert_eq!(start.elapsed(), Duration::ZERO);
        }
    }

    #[test]
    fn config_debug_redacts_secret() {
        let c = ClientConfig::new("wx123", "TOPSECRET");
        assert!(!format!("{c:?}").contains("TOPSECRET"));
        assert!(WechatClient::new(c.with_base_url("ftp://x")).is_err());
    }
}
