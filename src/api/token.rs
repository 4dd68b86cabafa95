//! The access_token lifecycle: fetching (stable_token or classic endpoint), caching with
//! expiry, refreshing ahead in the background, single-flight fetches, invalidation after a
//! rejection, and the persistence hook that lets a restart reuse a still-valid token.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;

use super::error::ApiError;
use super::transport::{RetryPolicy, Transport, Wire};
use crate::sync::lock;

/// Seconds before expiry at which a cached token is treated as expired (clock skew, latency).
const EXPIRY_SKEW_SECS: i64 = 30;
/// Minimum spacing between two background refresh-ahead attempts.
const REFRESH_AHEAD_SPACING_SECS: i64 = 30;

/// Which WeChat endpoint issues access_tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenEndpoint {
    /// `POST /cgi-bin/stable_token`: fetching does not invalidate tokens other hosts hold.
    #[default]
    Stable,
    /// `GET /cgi-bin/token`: every fetch invalidates the previous token after 5 minutes.
    Classic,
}

/// An access_token with its absolute expiry, as cached and persisted; a jsapi_ticket is kept
/// in the same shape ([`super::ticket`]), the ticket in `access_token`.
#[derive(Clone, PartialEq, Eq)]
pub struct CachedToken {
    /// The token itself; never logged.
    pub access_token: String,
    /// Unix seconds at which WeChat stops accepting it.
    pub expires_at_unix: i64,
}

/// A credential WeChat answered with (`access_token`, `ticket`, `component_access_token`…):
/// the non-empty string `name` of answer `v`. The error names the field only, never the
/// answer, which may hold other credentials.
pub(crate) fn credential_field(v: &serde_json::Value, name: &str) -> Result<String, ApiError> {
    v.get(name)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ApiError::InvalidJson {
            raw: format!("<answer without {name}>"),
            reason: format!("missing {name}"),
        })
}

/// The lifetime in seconds a credential answer gives, 7200 (WeChat's) when it gives none.
pub(crate) fn expires_in(v: &serde_json::Value) -> i64 {
    v.get("expires_in")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(7200)
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("access_token", &"<redacted>")
            .field("expires_at_unix", &self.expires_at_unix)
            .finish()
    }
}

/// Where the access_token survives restarts (implemented by the store module).
pub trait TokenPersistence: Send + Sync {
    /// The last saved token, if any (expired ones are ignored by the caller).
    fn load(&self) -> BoxFuture<'_, Option<CachedToken>>;
    /// Remember a freshly fetched token.
    fn save(&self, token: &CachedToken) -> BoxFuture<'_, ()>;
    /// Asks to be the one instance that fetches the next token; `false` means another
    /// instance is fetching and this one should read the result with [`load`](Self::load).
    /// Persistence not shared between instances always grants it.
    fn lock_fetch(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { true })
    }
    /// Ends a fetch begun after [`lock_fetch`](Self::lock_fetch) granted it.
    fn unlock_fetch(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Where tokens come from when not from the account's AppID and AppSecret: the open
/// platform's component_access_token (fetched with the pushed ticket), its authorizers'
/// access_tokens (fetched with their refresh tokens) and an account's jsapi_ticket (fetched
/// with its access_token, [`super::ticket`]). The [`TokenManager`] around it does the rest as
/// for any access_token: cache, refresh ahead, single flight, the store, the cross-instance
/// lock and refetching after a rejection.
pub trait TokenSource: Send + Sync {
    /// One fetch from WeChat (no retries: the manager backs off while WeChat is busy).
    fn fetch(&self) -> BoxFuture<'_, Result<CachedToken, ApiError>>;
    /// What it fetches, as the manager's log lines name it (never the value itself).
    fn what(&self) -> &'static str {
        "access_token"
    }
    /// Whether a fetch counts in the `token_fetches` metric (access_tokens do; a ticket,
    /// which is no access_token, does not).
    fn is_access_token(&self) -> bool {
        true
    }
}

/// How long an instance waits for another instance's token fetch before fetching itself.
pub(crate) const SHARED_FETCH_WAIT: Duration = Duration::from_secs(10);

/// The default persistence: in memory only, so a restart fetches a new token.
#[derive(Default)]
pub struct MemoryPersistence {
    slot: Mutex<Option<CachedToken>>,
}

impl TokenPersistence for MemoryPersistence {
    fn load(&self) -> BoxFuture<'_, Option<CachedToken>> {
        let t = lock(&self.slot).clone();
        Box::pin(async move { t })
    }
    fn save(&self, token: &CachedToken) -> BoxFuture<'_, ()> {
        *lock(&self.slot) = Some(token.clone());
        Box::pin(async {})
    }
}

/// The wall clock the token cache measures expiry against (swappable for tests and the simulator).
pub trait Clock: Send + Sync {
    /// Current time in Unix seconds.
    fn now_unix(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        crate::clock::unix_secs()
    }
}

/// A clock that only moves when told to; starts at the system time.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock {
            now: AtomicI64::new(SystemClock.now_unix()),
        }
    }
}

impl ManualClock {
    /// Move the clock forward.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_secs() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// How usable a cached token is at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Use it.
    Fresh,
    /// Use it, but fetch the next one in the background.
    RefreshAhead,
    /// Do not use it; fetch first.
    Expired,
}

/// Classify a token expiring at `expires_at` at time `now` (both Unix seconds).
pub fn freshness(expires_at: i64, now: i64, refresh_ahead: Duration) -> Freshness {
    let remaining = expires_at - now;
    if remaining <= EXPIRY_SKEW_SECS {
        Freshness::Expired
    } else if remaining < refresh_ahead.as_secs() as i64 {
        Freshness::RefreshAhead
    } else {
        Freshness::Fresh
    }
}

/// What `wechat-lua token` shows: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStatus {
    /// Whether a token is cached.
    pub cached: bool,
    /// Unix seconds at which the cached token expires.
    pub expires_at_unix: Option<i64>,
    /// Seconds until then (negative when already expired).
    pub expires_in_secs: Option<i64>,
    /// Which endpoint fetches tokens.
    pub endpoint: TokenEndpoint,
    /// Tokens fetched from WeChat by this process.
    pub fetches: u64,
}

/// The account's credentials, which only the token manager uses.
pub(crate) struct Credentials {
    /// 开发者ID (AppID).
    pub(crate) appid: String,
    /// 开发者密码 (AppSecret); never logged.
    pub(crate) secret: String,
}

/// How a [`TokenManager`] fetches and keeps tokens (taken from the client's config).
pub(crate) struct TokenSettings {
    pub(crate) creds: Credentials,
    pub(crate) retry: RetryPolicy,
    pub(crate) endpoint: TokenEndpoint,
    pub(crate) refresh_ahead: Duration,
    pub(crate) persistence: Arc<dyn TokenPersistence>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Fetches tokens instead of the AppSecret endpoints, when set.
    pub(crate) source: Option<Arc<dyn TokenSource>>,
}

/// The token cache shared by every clone of a `WechatClient`.
pub(crate) struct TokenManager {
    transport: Arc<Transport>,
    creds: Credentials,
    /// Backoff while the token endpoint says busy (-1/45011), as for every other call.
    retry: RetryPolicy,
    endpoint: TokenEndpoint,
    refresh_ahead: Duration,
    persistence: Arc<dyn TokenPersistence>,
    clock: Arc<dyn Clock>,
    /// Where tokens come from instead of the AppSecret endpoints (open platform).
    source: Option<Arc<dyn TokenSource>>,
    cache: Mutex<Option<CachedToken>>,
    /// The most recently rejected token: stable_token handing it back means "force_refresh".
    last_rejected: Mutex<Option<String>>,
    /// Serialises fetches: everyone who needs a token queues here, and re-checks the cache
    /// after getting the lock, so N waiters cause one fetch.
    fetch_lock: tokio::sync::Mutex<()>,
    loaded: tokio::sync::OnceCell<()>,
    refreshing: AtomicBool,
    last_ahead_attempt: AtomicI64,
    fetches: AtomicU64,
    /// Bumped after every fetch attempt; lets queued callers see that one finished.
    fetch_gen: AtomicU64,
    /// Why the latest fetch attempt failed, shared with the callers that waited for it.
    last_error: Mutex<Option<ApiError>>,
    /// How many cached tokens WeChat rejected: a jsapi_ticket fetched before the latest
    /// rejection is fetched again with the new token.
    rejections: AtomicU64,
}

impl TokenManager {
    pub(crate) fn new(transport: Arc<Transport>, settings: TokenSettings) -> TokenManager {
        TokenManager {
            transport,
            creds: settings.creds,
            retry: settings.retry,
            endpoint: settings.endpoint,
            refresh_ahead: settings.refresh_ahead,
            persistence: settings.persistence,
            clock: settings.clock,
            source: settings.source,
            cache: Mutex::new(None),
            last_rejected: Mutex::new(None),
            fetch_lock: tokio::sync::Mutex::new(()),
            loaded: tokio::sync::OnceCell::new(),
            refreshing: AtomicBool::new(false),
            last_ahead_attempt: AtomicI64::new(i64::MIN / 2),
            fetches: AtomicU64::new(0),
            fetch_gen: AtomicU64::new(0),
            last_error: Mutex::new(None),
            rejections: AtomicU64::new(0),
        }
    }

    /// How many cached tokens WeChat has rejected so far (see `rejections`).
    pub(crate) fn rejections(&self) -> u64 {
        self.rejections.load(Ordering::SeqCst)
    }

    /// The AppID tokens are fetched for.
    pub(crate) fn appid(&self) -> &str {
        &self.creds.appid
    }

    /// `query` followed by the AppID and AppSecret, for the calls WeChat authenticates with
    /// the secret instead of an access_token (网页授权's code exchange).
    pub(crate) fn with_credentials<'a>(
        &'a self,
        query: &[(&'a str, &'a str)],
    ) -> Result<Vec<(&'a str, &'a str)>, ApiError> {
        let cfg = &self.creds;
        if cfg.appid.is_empty() || cfg.secret.is_empty() {
            return Err(ApiError::Config(
                "no appid/secret configured; cannot call WeChat".into(),
            ));
        }
        let mut q = vec![
            ("appid", cfg.appid.as_str()),
            ("secret", cfg.secret.as_str()),
        ];
        q.extend_from_slice(query);
        Ok(q)
    }

    pub(crate) fn now_unix(&self) -> i64 {
        self.clock.now_unix()
    }

    /// What this manager keeps, for its log lines.
    fn what(&self) -> &'static str {
        self.source.as_ref().map_or("access_token", |s| s.what())
    }

    fn cached(&self) -> Option<CachedToken> {
        lock(&self.cache).clone()
    }

    fn set_cached(&self, t: Option<CachedToken>) {
        *lock(&self.cache) = t;
    }

    /// Cached token status for the CLI.
    pub(crate) fn status(&self) -> TokenStatus {
        let cached = self.cached();
        let now = self.clock.now_unix();
        TokenStatus {
            cached: cached.is_some(),
            expires_at_unix: cached.as_ref().map(|t| t.expires_at_unix),
            expires_in_secs: cached.as_ref().map(|t| t.expires_at_unix - now),
            endpoint: self.endpoint,
            fetches: self.fetches.load(Ordering::SeqCst),
        }
    }

    async fn ensure_loaded(&self) {
        self.loaded
            .get_or_init(|| async {
                if let Some(t) = self.persistence.load().await {
                    let usable =
                        freshness(t.expires_at_unix, self.clock.now_unix(), Duration::ZERO)
                            != Freshness::Expired;
                    if usable && self.cached().is_none() {
                        tracing::debug!(
                            expires_at = t.expires_at_unix,
                            "reusing persisted {}",
                            self.what()
                        );
                        self.set_cached(Some(t));
                    }
                }
            })
            .await;
    }

    /// A usable token: from the cache, or fetched exactly once however many callers wait.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<String, ApiError> {
        self.ensure_loaded().await;
        if let Some(t) = self.cached() {
            match freshness(t.expires_at_unix, self.clock.now_unix(), self.refresh_ahead) {
                Freshness::Fresh => return Ok(t.access_token),
                Freshness::RefreshAhead => {
                    self.spawn_refresh_ahead();
                    return Ok(t.access_token);
                }
                Freshness::Expired => {}
            }
        }
        let seen_gen = self.fetch_gen.load(Ordering::SeqCst);
        let _guard = self.fetch_lock.lock().await;
        if let Some(t) = self.cached() {
            if freshness(t.expires_at_unix, self.clock.now_unix(), Duration::ZERO)
                != Freshness::Expired
            {
                return Ok(t.access_token);
            }
        }
        if self.fetch_gen.load(Ordering::SeqCst) != seen_gen {
            // A fetch finished while we queued and left no token: share its failure
            // instead of hammering WeChat once per waiting caller.
            if let Some(e) = lock(&self.last_error).clone() {
                return Err(e);
            }
        }
        let t = self.fetch_locked().await?;
        Ok(t.access_token)
    }

    /// Drop `failed` after WeChat rejected it — but only if it is still the cached one, so a
    /// late failure of an old token never throws away a newer token.
    pub(crate) fn invalidate(&self, failed: &str) {
        let mut cached = lock(&self.cache);
        if cached.as_ref().is_some_and(|t| t.access_token == failed) {
            *cached = None;
            *lock(&self.last_rejected) = Some(failed.to_string());
            self.rejections.fetch_add(1, Ordering::SeqCst);
            tracing::info!("access_token rejected by WeChat; fetching a new one");
        }
    }

    /// Drop the cached token, whatever it is, as no longer to be used, and do not take the
    /// same one back from the store: a jsapi_ticket fetched with an access_token WeChat has
    /// rejected since ([`super::ticket`]). Unlike [`invalidate`](Self::invalidate) it does not
    /// count as a rejection of this manager's own token.
    pub(crate) fn retire_cached(&self) {
        let mut cached = lock(&self.cache);
        if let Some(t) = cached.take() {
            *lock(&self.last_rejected) = Some(t.access_token);
        }
    }

    /// Drop the cached token whatever it is (an authorizer withdrew its authorization: its
    /// token must not be used again, and the next fetch reports why it cannot be had).
    pub(crate) fn forget(&self) {
        *lock(&self.cache) = None;
    }

    /// Start a background fetch of the next token unless one is running or ran recently.
    pub(crate) fn spawn_refresh_ahead(self: &Arc<Self>) {
        let now = self.clock.now_unix();
        if now - self.last_ahead_attempt.load(Ordering::SeqCst) < REFRESH_AHEAD_SPACING_SECS {
            return;
        }
        if self.refreshing.swap(true, Ordering::SeqCst) {
            return;
        }
        self.last_ahead_attempt.store(now, Ordering::SeqCst);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            this.refresh_ahead_now().await;
            this.refreshing.store(false, Ordering::SeqCst);
        });
    }

    /// Fetch the next token now if the cached one is close to expiry (what the background
    /// task runs; callable directly so tests need not race a spawned task).
    pub(crate) async fn refresh_ahead_now(&self) {
        let _guard = self.fetch_lock.lock().await;
        let due = match self.cached() {
            Some(t) => {
                freshness(t.expires_at_unix, self.clock.now_unix(), self.refresh_ahead)
                    != Freshness::Fresh
            }
            None => true,
        };
        if due {
            if let Err(e) = self.fetch_locked().await {
                tracing::warn!(
                    errcode = e.errcode(),
                    "refreshing {} ahead of expiry failed: {e}",
                    self.what()
                );
            }
        }
    }

    /// Fetch from WeChat and record the outcome; the caller holds `fetch_lock`.
    async fn fetch_locked(&self) -> Result<CachedToken, ApiError> {
        let r = self.fetch_and_store().await;
        *lock(&self.last_error) = r.as_ref().err().cloned();
        self.fetch_gen.fetch_add(1, Ordering::SeqCst);
        r
    }

    async fn fetch_and_store(&self) -> Result<CachedToken, ApiError> {
        let rejected = lock(&self.last_rejected).clone();
        let current = self.cached().map(|t| t.access_token);
        // With several instances on one store, one fetches and the others read its token.
        let waited_since = std::time::Instant::now();
        loop {
            if let Some(t) = self.persistence.load().await {
                let newer = Some(&t.access_token) != current.as_ref()
                    && Some(&t.access_token) != rejected.as_ref();
                let usable = freshness(t.expires_at_unix, self.clock.now_unix(), Duration::ZERO)
                    != Freshness::Expired;
                if newer && usable {
                    tracing::debug!("using the {} another instance fetched", self.what());
                    self.set_cached(Some(t.clone()));
                    return Ok(t);
                }
            }
            if self.persistence.lock_fetch().await {
                // Another instance may have stored a token and let go of the lock between
                // the read above and taking it: read once more before fetching another.
                if let Some(t) = self.persistence.load().await {
                    let newer = Some(&t.access_token) != current.as_ref()
                        && Some(&t.access_token) != rejected.as_ref();
                    if newer
                        && freshness(t.expires_at_unix, self.clock.now_unix(), Duration::ZERO)
                            != Freshness::Expired
                    {
                        self.persistence.unlock_fetch().await;
                        self.set_cached(Some(t.clone()));
                        return Ok(t);
                    }
                }
                break;
            }
            if waited_since.elapsed() > SHARED_FETCH_WAIT {
                tracing::warn!(
                    "another instance holds the {} fetch lock too long; fetching here",
                    self.what()
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let result = self.fetch_new(rejected).await;
        self.persistence.unlock_fetch().await;
        result
    }

    async fn fetch_new(&self, rejected: Option<String>) -> Result<CachedToken, ApiError> {
        let mut t = self.fetch_with_backoff(false).await?;
        if self.source.is_none()
            && self.endpoint == TokenEndpoint::Stable
            && rejected.as_deref() == Some(&t.access_token)
        {
            // Normal mode handed back the very token WeChat just rejected.
            tracing::info!("stable_token returned the rejected access_token; forcing a refresh");
            t = self.fetch_with_backoff(true).await?;
        }
        self.set_cached(Some(t.clone()));
        self.persistence.save(&t).await;
        Ok(t)
    }

    /// `fetch_once`, retried with the client's backoff while WeChat says busy (-1/45011).
    async fn fetch_with_backoff(&self, force_refresh: bool) -> Result<CachedToken, ApiError> {
        let mut attempt = 0;
        loop {
            match self.fetch_once(force_refresh).await {
                Err(e) => match self.retry.retry_after_busy(&e, attempt) {
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

    async fn fetch_once(&self, force_refresh: bool) -> Result<CachedToken, ApiError> {
        if let Some(source) = &self.source {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if source.is_access_token() {
                crate::metrics::metrics().token_fetch();
            }
            return source.fetch().await;
        }
        let cfg = &self.creds;
        if cfg.appid.is_empty() || cfg.secret.is_empty() {
            return Err(ApiError::Config(
                "no appid/secret configured; cannot fetch an access_token".into(),
            ));
        }
        self.fetches.fetch_add(1, Ordering::SeqCst);
        crate::metrics::metrics().token_fetch();
        let started = self.clock.now_unix();
        let v = match self.endpoint {
            TokenEndpoint::Stable => {
                let body = json!({
                    "grant_type": "client_credential",
                    "appid": cfg.appid,
                    "secret": cfg.secret,
                    "force_refresh": force_refresh,
                });
                self.transport
                    .send_json(
                        reqwest::Method::POST,
                        "/cgi-bin/stable_token",
                        None,
                        &Wire::Json(&body),
                    )
                    .await?
            }
            TokenEndpoint::Classic => {
                let q = [
                    ("grant_type", "client_credential"),
                    ("appid", cfg.appid.as_str()),
                    ("secret", cfg.secret.as_str()),
                ];
                self.transport
                    .send_json(
                        reqwest::Method::GET,
                        "/cgi-bin/token",
                        None,
                        &Wire::Query(&q),
                    )
                    .await?
            }
        };
        let access_token = credential_field(&v, "access_token")?;
        let expires_in = expires_in(&v);
        tracing::info!(expires_in, force_refresh, "fetched a new access_token");
        Ok(CachedToken {
            access_token,
            expires_at_unix: started + expires_in,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_windows() {
        let ahead = Duration::from_secs(300);
        assert_eq!(freshness(10_000, 0, ahead), Freshness::Fresh);
        assert_eq!(freshness(299, 0, ahead), Freshness::RefreshAhead);
        assert_eq!(freshness(31, 0, ahead), Freshness::RefreshAhead);
        assert_eq!(freshness(30, 0, ahead), Freshness::Expired);
        assert_eq!(freshness(-5, 0, ahead), Freshness::Expired);
    }

    #[test]
    fn debug_redacts_token() {
        let t = CachedToken {
            access_token: "SECRET_TOKEN".into(),
            expires_at_unix: 1,
        };
        assert!(!format!("{t:?}").contains("SECRET_TOKEN"));
    }

    #[tokio::test]
    async fn memory_persistence_round_trips() {
        let p = MemoryPersistence::default();
        assert!(p.load().await.is_none());
        let t = CachedToken {
            access_token: "a".into(),
            expires_at_unix: 5,
        };
        p.save(&t).await;
        assert_eq!(p.load().await, Some(t));
    }

    #[test]
    fn manual_clock_advances() {
        let c = ManualClock::default();
        let t0 = c.now_unix();
        c.advance(Duration::from_secs(90));
        assert_eq!(c.now_unix(), t0 + 90);
    }
}
