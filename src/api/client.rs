//! The client of the outbound WeChat API: the generic `get`/`post`/`upload`/`get_bytes`
//! calls that every API family and every script uses, and the errcode policy around each
//! (token retry, busy backoff, quota stop). Requests travel through [`super::transport`];
//! tokens come from [`super::token`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use reqwest::Method;
use serde_json::Value;

use super::error::{self, ApiError};
use super::ticket::{TicketManager, TicketSettings, TicketStatus};
use super::token::{
    Clock, Credentials, MemoryPersistence, SystemClock, TokenEndpoint, TokenManager,
    TokenPersistence, TokenSettings, TokenSource, TokenStatus,
};
use super::transport::{interpret_json, RetryPolicy, Transport, UploadPart, Wire};
use crate::sync::lock;

/// The production API host; `config` reads any other (`api_base`, `WECHAT_API_BASE`).
pub const DEFAULT_API_BASE: &str = "https://api.weixin.qq.com";
/// Where WeChat's 网页授权 sign-in page lives (`/connect/oauth2/authorize`).
pub const DEFAULT_AUTHORIZE_BASE: &str = "https://open.weixin.qq.com";
/// Beijing time offset: WeChat daily quotas reset at midnight UTC+8.
const BEIJING_OFFSET_SECS: i64 = 8 * 3600;

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
    /// Where the jsapi_ticket survives restarts (and is shared between instances).
    pub ticket_persistence: Arc<dyn TokenPersistence>,
    /// Origin of the 网页授权 page users are sent to (`wx.oauth.url`): WeChat's, or the
    /// fake's when the API is the fake.
    pub authorize_base: String,
    /// The clock token expiry is measured against.
    pub clock: Arc<dyn Clock>,
    /// Where access_tokens come from instead of the AppSecret (an open platform's
    /// authorizer: its refresh token); `None` for a configured account.
    pub token_source: Option<Arc<dyn TokenSource>>,
    /// The open platform this client acts through (an authorizer's): calls WeChat
    /// authenticates with the AppSecret go through the platform's endpoints with its
    /// component_access_token instead; `None` for a configured account.
    pub component: Option<Arc<dyn ComponentAccess>>,
    /// An HTTP client to send through, shared with other accounts' clients (one connection
    /// pool, one TLS setup; see [`transport::http_client`](crate::api::transport::http_client));
    /// `None` builds one for this client alone with `timeout` and `connect_timeout`.
    pub http: Option<reqwest::Client>,
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
            ticket_persistence: Arc::new(MemoryPersistence::default()),
            authorize_base: DEFAULT_AUTHORIZE_BASE.to_string(),
            clock: Arc::new(SystemClock),
            token_source: None,
            component: None,
            http: None,
        }
    }

    /// Same config talking to another host (the fake in tests). The sign-in page follows:
    /// WeChat's own for any `*.weixin.qq.com` API host (api2, sh.api, …), otherwise that host,
    /// which is the fake (tests, `chat`), serving its own sign-in page.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> ClientConfig {
        self.base_url = base_url.into();
        self.authorize_base = authorize_base_for(&self.base_url);
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

/// The open platform (第三方平台) an authorizer's client acts through. An authorizer has no
/// AppSecret here: the calls a configured account signs with it (网页授权's code exchange)
/// have component variants that carry the platform's appid and component_access_token.
pub trait ComponentAccess: Send + Sync {
    /// The platform's AppID (`component_appid`).
    fn component_appid(&self) -> &str;
    /// The platform's component_access_token, fetched if needed; never log it.
    fn component_token(&self) -> BoxFuture<'_, Result<String, ApiError>>;
    /// WeChat refused `token` (40001, 42001): drop it so the next call fetches another.
    fn component_token_rejected(&self, token: &str);
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

/// The sign-in page's origin for an API host (see [`ClientConfig::with_base_url`]).
fn authorize_base_for(api_base: &str) -> String {
    let wechat = url::Url::parse(api_base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|h| h == "weixin.qq.com" || h.ends_with(".weixin.qq.com"));
    if wechat {
        DEFAULT_AUTHORIZE_BASE.to_string()
    } else {
        api_base.trim_end_matches('/').to_string()
    }
}

/// The next midnight in Beijing time after `now` (Unix seconds): when daily quotas reset.
fn next_quota_reset(now: i64) -> i64 {
    let local = now + BEIJING_OFFSET_SECS;
    (local.div_euclid(86_400) + 1) * 86_400 - BEIJING_OFFSET_SECS
}

struct Inner {
    transport: Arc<Transport>,
    tokens: Arc<TokenManager>,
    /// The JS-SDK's jsapi_ticket, kept like the token.
    jsapi_ticket: TicketManager,
    /// Origin of the 网页授权 page.
    authorize_base: String,
    retry: RetryPolicy,
    /// Whole-request timeout of one HTTP exchange, for [`WechatClient::longest_call`].
    timeout: Duration,
    /// The open platform an authorizer's client acts through.
    component: Option<Arc<dyn ComponentAccess>>,
    /// Paths whose daily quota (45009) ran out, with the Unix time it resets: not called until then.
    quota_stopped: Mutex<HashMap<String, i64>>,
}

/// A cheap-to-clone handle on the outbound WeChat API (all clones share one token cache).
#[derive(Clone)]
pub struct WechatClient {
    inner: Arc<Inner>,
}

/// A handle on a [`WechatClient`] that does not keep it alive: what the client's own
/// jsapi_ticket source holds to fetch tickets through it.
pub(crate) struct WeakClient(Weak<Inner>);

impl WeakClient {
    /// The client, unless every handle on it is gone.
    pub(crate) fn upgrade(&self) -> Option<WechatClient> {
        self.0.upgrade().map(|inner| WechatClient { inner })
    }
}

impl fmt::Debug for WechatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatClient")
            .field("appid", &self.appid())
            .field("base_url", &self.inner.transport.base())
            .finish_non_exhaustive()
    }
}

impl WechatClient {
    /// Build the client (one `reqwest::Client` with rustls and the configured timeouts).
    pub fn new(config: ClientConfig) -> Result<WechatClient, ApiError> {
        let transport = Transport::new(
            &config.base_url,
            config.timeout,
            config.connect_timeout,
            config.http,
        )?;
        let ticket_settings = TicketSettings {
            appid: config.appid.clone(),
            retry: config.retry,
            refresh_ahead: config.refresh_ahead,
            persistence: config.ticket_persistence,
            clock: Arc::clone(&config.clock),
        };
        let tokens = Arc::new(TokenManager::new(
            Arc::clone(&transport),
            TokenSettings {
                creds: Credentials {
                    appid: config.appid,
                    secret: config.secret,
                },
                retry: config.retry,
                endpoint: config.token_endpoint,
                refresh_ahead: config.refresh_ahead,
                persistence: config.persistence,
                clock: config.clock,
                source: config.token_source,
            },
        ));
        // The ticket is fetched through this very client, which it must not keep alive.
        let inner = Arc::new_cyclic(|this| Inner {
            jsapi_ticket: TicketManager::new(
                "jsapi",
                WeakClient(this.clone()),
                Arc::clone(&transport),
                ticket_settings,
            ),
            transport,
            tokens,
            authorize_base: config.authorize_base.trim_end_matches('/').to_string(),
            retry: config.retry,
            timeout: config.timeout,
            component: config.component,
            quota_stopped: Mutex::new(HashMap::new()),
        });
        Ok(WechatClient { inner })
    }

    /// The HTTP client this one sends through, to share with another account's client
    /// ([`ClientConfig::http`]).
    pub fn http(&self) -> reqwest::Client {
        self.inner.transport.http().clone()
    }

    /// The AppID this client acts for.
    pub fn appid(&self) -> &str {
        self.inner.tokens.appid()
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
        let transport = Arc::clone(&self.inner.transport);
        self.with_policy(&path, |token| {
            let method = method.clone();
            let transport = Arc::clone(&transport);
            let path = path.clone();
            let wire = &wire;
            async move {
                let (status, headers, data) = transport
                    .send_raw(method, &path, Some(&token), wire)
                    .await?;
                let content_type = headers
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let is_json = content_type
                    .as_deref()
                    .is_some_and(|c| c.contains("json") || c.starts_with("text/plain"));
                if is_json || !status.is_success() {
                    let r = interpret_json(status, &data);
                    transport.log_outcome(&path, &r);
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

    /// The longest one call can take, every try included: each of the busy retries and the
    /// one retry with a fresh token may wait for a token fetch and for the call itself, each
    /// up to the timeout, plus the backoff between them. The outbox holds an item at least
    /// this long before another attempt may take it.
    pub fn longest_call(&self) -> Duration {
        let retry = self.inner.retry;
        let tries = retry.attempts.max(1) + 1;
        let waits: Duration = (0..retry.attempts.saturating_sub(1))
            .map(|n| retry.delay(n))
            .sum();
        self.inner.timeout.saturating_mul(2 * tries) + waits
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

    /// Drops the cached access_token unconditionally (an authorizer withdrew its
    /// authorization); the next call fetches again and says why it cannot.
    pub fn forget_token(&self) {
        self.inner.tokens.forget();
    }

    /// Fetch the next token now if the cached one is within the refresh-ahead window
    /// (the same work the background refresh does; useful at startup and in tests).
    pub async fn refresh_token_if_due(&self) {
        self.inner.tokens.refresh_ahead_now().await
    }

    /// The JS-SDK's jsapi_ticket, fetching one if needed (once, however many callers wait);
    /// never log it.
    pub async fn jsapi_ticket(&self) -> Result<String, ApiError> {
        self.inner.jsapi_ticket.get(self).await
    }

    /// The cached jsapi_ticket's status (never the ticket itself).
    pub fn jsapi_ticket_status(&self) -> TicketStatus {
        self.inner.jsapi_ticket.status()
    }

    /// Fetch the next jsapi_ticket now if the cached one is within the refresh-ahead window.
    pub async fn refresh_jsapi_ticket_if_due(&self) {
        self.inner.jsapi_ticket.refresh_ahead_now(self).await
    }

    /// Now, in Unix seconds, on the clock tokens and tickets are measured against.
    pub(crate) fn now_unix(&self) -> i64 {
        self.inner.tokens.now_unix()
    }

    /// How many access_tokens WeChat has rejected (tickets fetched before are stale).
    pub(crate) fn token_rejections(&self) -> u64 {
        self.inner.tokens.rejections()
    }

    /// Origin of the 网页授权 sign-in page, without a trailing slash.
    pub fn authorize_base(&self) -> &str {
        &self.inner.authorize_base
    }

    /// The open platform this client acts through, for an authorizer; `None` for a
    /// configured account.
    pub fn component(&self) -> Option<&Arc<dyn ComponentAccess>> {
        self.inner.component.as_ref()
    }

    /// `GET {base}{path}?appid=..&query..&component_appid=..&component_access_token=..`: an
    /// authorizer's variant of [`WechatClient::get_with_credentials`], signed with the
    /// platform's token. A rejected component token is dropped and the call made once more
    /// with a fresh one; busy answers back off as every call does.
    pub(crate) async fn get_with_component_token(
        &self,
        component: &dyn ComponentAccess,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        let mut token_retried = false;
        loop {
            let token = component.component_token().await?;
            let mut q = vec![("appid", self.appid())];
            q.extend_from_slice(query);
            q.push(("component_appid", component.component_appid()));
            q.push(("component_access_token", token.as_str()));
            match self.call_without_account_token(path, None, &q).await {
                Err(e) if error::is_token_rejected(e.errcode()) && !token_retried => {
                    token_retried = true;
                    component.component_token_rejected(&token);
                }
                r => return r,
            }
        }
    }

    /// `GET {base}{path}?appid=..&secret=..&query..`: the calls WeChat authenticates with the
    /// AppSecret (网页授权's code exchange), with the busy backoff of every call but none of
    /// the access_token policy. The secret is in the query only; log lines name the path.
    pub(crate) async fn get_with_credentials(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        let q = self.inner.tokens.with_credentials(query)?;
        self.call_without_account_token(path, None, &q).await
    }

    /// `GET {base}{path}?access_token=<token>&query..` with a token that is not the account's
    /// (a user's 网页授权 access_token): WeChat rejecting it (40001, 42001) is the caller's
    /// error, never a reason to drop the account's token.
    pub(crate) async fn get_with_token(
        &self,
        path: &str,
        token: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        self.call_without_account_token(path, Some(token), query)
            .await
    }

    async fn call_without_account_token(
        &self,
        path: &str,
        token: Option<&str>,
        query: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        let path = normalise(path);
        let mut attempt = 0;
        loop {
            let r = self
                .inner
                .transport
                .send_json(Method::GET, &path, token, &Wire::Query(query))
                .await;
            match r {
                Err(e) => match self.inner.retry.retry_after_busy(&e, attempt) {
                    Some(delay) => {
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
                ok => return ok,
            }
        }
    }

    async fn call_json(
        &self,
        method: Method,
        path: &str,
        wire: &Wire<'_>,
    ) -> Result<Value, ApiError> {
        let path = normalise(path);
        let transport = Arc::clone(&self.inner.transport);
        self.with_policy(&path, |token| {
            let method = method.clone();
            let transport = Arc::clone(&transport);
            let path = path.clone();
            async move { transport.send_json(method, &path, Some(&token), wire).await }
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
            // A token that cannot be had fails the call before it is sent: a definite failure.
            let token = self.inner.tokens.get().await?;
            match attempt_fn(token.clone())
                .await
                .map_err(ApiError::after_sending)
            {
                Ok(v) => return Ok(v),
                Err(e) if error::is_token_rejected(e.errcode()) && !token_retried => {
                    token_retried = true;
                    self.inner.tokens.invalidate(&token);
                }
                Err(e) if self.inner.retry.retry_after_busy(&e, attempt).is_some() => {
                    let delay = self.inner.retry.delay(attempt);
                    tracing::info!(path, errcode = e.errcode(), ?delay, "WeChat busy; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e @ ApiError::QuotaExhausted { .. }) => {
                    let until = next_quota_reset(self.inner.tokens.now_unix());
                    lock(&self.inner.quota_stopped).insert(path.to_string(), until);
                    tracing::error!(path, until, "daily quota for this API is exhausted; not calling it again until the quota resets");
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn check_quota(&self, path: &str) -> Result<(), ApiError> {
        let now = self.inner.tokens.now_unix();
        let mut m = lock(&self.inner.quota_stopped);
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
    fn the_sign_in_page_follows_a_fake_api_but_not_wechats_other_hosts() {
        let cfg = || ClientConfig::new("wx", "s");
        assert_eq!(cfg().authorize_base, DEFAULT_AUTHORIZE_BASE);
        for wechat in [
            "https://api2.weixin.qq.com",
            "https://sh.api.weixin.qq.com/",
        ] {
            assert_eq!(
                cfg().with_base_url(wechat).authorize_base,
                DEFAULT_AUTHORIZE_BASE
            );
        }
        assert_eq!(
            cfg().with_base_url("http://127.0.0.1:9/").authorize_base,
            "http://127.0.0.1:9"
        );
        // A look-alike host is not WeChat's.
        assert_eq!(
            cfg()
                .with_base_url("https://evilweixin.qq.com.example")
                .authorize_base,
            "https://evilweixin.qq.com.example"
        );
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

    #[tokio::test(start_paused = true)]
    async fn a_timeout_after_sending_is_an_unknown_outcome_and_is_not_tried_again() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let client = offline_client().await;
        let tries = AtomicU32::new(0);
        let r: Result<(), ApiError> = client
            .with_policy("/x", |_| {
                tries.fetch_add(1, Ordering::SeqCst);
                async { Err(ApiError::Timeout) }
            })
            .await;
        let e = r.unwrap_err();
        assert!(e.outcome_unknown(), "{e:?}");
        assert_eq!(e.errcode(), super::error::ERRCODE_TIMEOUT);
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn longest_call_covers_every_try_and_wait() {
        let mut cfg = ClientConfig::new("wx", "s");
        cfg.timeout = Duration::from_secs(10);
        let client = WechatClient::new(cfg).unwrap();
        // 3 busy tries + 1 token retry, each a token fetch and a call; 300 + 600 ms of backoff.
        assert_eq!(client.longest_call(), Duration::from_millis(80_900));
    }

    #[test]
    fn config_debug_redacts_secret() {
        let c = ClientConfig::new("wx123", "TOPSECRET");
        assert!(!format!("{c:?}").contains("TOPSECRET"));
        assert!(WechatClient::new(c.with_base_url("ftp://x")).is_err());
    }
}
