//! The jsapi_ticket lifecycle (`/cgi-bin/ticket/getticket?type=jsapi`), kept the way the
//! access_token is kept ([`super::token`]): cached with its expiry, kept in the store so a
//! restart (and, on Redis, every instance) reuses it, fetched once however many callers wait,
//! refreshed in the background ahead of expiry, and fetched again once the access_token it
//! was fetched with has been rejected (40001/40014/42001) and replaced.
//!
//! WeChat allows few getticket calls a day and asks that the ticket be cached globally, so a
//! page that signs a JS-SDK config on every view must not cost a fetch per view.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::client::WechatClient;
use super::error::ApiError;
use super::token::{freshness, CachedToken, Clock, Freshness, TokenPersistence, SHARED_FETCH_WAIT};
use crate::sync::lock;

/// The endpoint that issues tickets.
pub const GETTICKET_PATH: &str = "/cgi-bin/ticket/getticket";
/// Minimum spacing between two background refresh-ahead attempts.
const REFRESH_AHEAD_SPACING_SECS: i64 = 30;

/// What `wechat-lua token` shows of a ticket: never the ticket itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketStatus {
    /// Whether a ticket is cached.
    pub cached: bool,
    /// Unix seconds at which the cached ticket expires.
    pub expires_at_unix: Option<i64>,
    /// Seconds until then (negative when already expired).
    pub expires_in_secs: Option<i64>,
    /// Tickets fetched from WeChat by this process.
    pub fetches: u64,
}

/// A cached ticket and the access_token generation it was fetched under.
#[derive(Clone)]
struct Entry {
    ticket: CachedToken,
    /// [`super::token`]'s rejection count when the ticket was fetched (or loaded): once the
    /// account's access_token has been rejected since, the ticket is fetched again.
    token_generation: u64,
}

/// The cached ticket of one type (`jsapi`) shared by every clone of a `WechatClient`.
pub(crate) struct TicketManager {
    /// The `type` parameter of getticket.
    kind: &'static str,
    persistence: Arc<dyn TokenPersistence>,
    clock: Arc<dyn Clock>,
    refresh_ahead: Duration,
    cache: Mutex<Option<Entry>>,
    /// Serialises fetches, so N callers waiting for a ticket cause one getticket.
    fetch_lock: tokio::sync::Mutex<()>,
    loaded: tokio::sync::OnceCell<()>,
    refreshing: AtomicBool,
    last_ahead_attempt: AtomicI64,
    fetches: AtomicU64,
    /// Bumped after every fetch attempt; lets queued callers see that one finished.
    fetch_gen: AtomicU64,
    /// Why the latest fetch failed, shared with the callers that waited for it.
    last_error: Mutex<Option<ApiError>>,
}

impl TicketManager {
    pub(crate) fn new(
        kind: &'static str,
        persistence: Arc<dyn TokenPersistence>,
        clock: Arc<dyn Clock>,
        refresh_ahead: Duration,
    ) -> TicketManager {
        TicketManager {
            kind,
            persistence,
            clock,
            refresh_ahead,
            cache: Mutex::new(None),
            fetch_lock: tokio::sync::Mutex::new(()),
            loaded: tokio::sync::OnceCell::new(),
            refreshing: AtomicBool::new(false),
            last_ahead_attempt: AtomicI64::new(i64::MIN / 2),
            fetches: AtomicU64::new(0),
            fetch_gen: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// The cached ticket's status (never the ticket itself).
    pub(crate) fn status(&self) -> TicketStatus {
        let cached = lock(&self.cache).clone();
        let now = self.clock.now_unix();
        TicketStatus {
            cached: cached.is_some(),
            expires_at_unix: cached.as_ref().map(|e| e.ticket.expires_at_unix),
            expires_in_secs: cached.as_ref().map(|e| e.ticket.expires_at_unix - now),
            fetches: self.fetches.load(Ordering::SeqCst),
        }
    }

    /// The cached ticket if it may still be used: not expired, and fetched under an
    /// access_token generation WeChat has not rejected since.
    fn usable(&self, client: &WechatClient, window: Duration) -> Option<(String, Freshness)> {
        let entry = lock(&self.cache).clone()?;
        if entry.token_generation != client.token_rejections() {
            return None;
        }
        match freshness(entry.ticket.expires_at_unix, self.clock.now_unix(), window) {
            Freshness::Expired => None,
            f => Some((entry.ticket.access_token, f)),
        }
    }

    async fn ensure_loaded(&self, client: &WechatClient) {
        self.loaded
            .get_or_init(|| async {
                if let Some(t) = self.persistence.load().await {
                    let usable =
                        freshness(t.expires_at_unix, self.clock.now_unix(), Duration::ZERO)
                            != Freshness::Expired;
                    let mut cache = lock(&self.cache);
                    if usable && cache.is_none() {
                        tracing::debug!(kind = self.kind, "reusing the stored ticket");
                        *cache = Some(Entry {
                            ticket: t,
                            token_generation: client.token_rejections(),
                        });
                    }
                }
            })
            .await;
    }

    /// A usable ticket: from the cache, or fetched exactly once however many callers wait.
    pub(crate) async fn get(self: &Arc<Self>, client: &WechatClient) -> Result<String, ApiError> {
        self.ensure_loaded(client).await;
        if let Some((ticket, f)) = self.usable(client, self.refresh_ahead) {
            if f == Freshness::RefreshAhead {
                self.spawn_refresh_ahead(client);
            }
            return Ok(ticket);
        }
        let seen_gen = self.fetch_gen.load(Ordering::SeqCst);
        let _guard = self.fetch_lock.lock().await;
        if let Some((ticket, _)) = self.usable(client, Duration::ZERO) {
            return Ok(ticket);
        }
        if self.fetch_gen.load(Ordering::SeqCst) != seen_gen {
            // A fetch finished while we queued and left no ticket: share its failure
            // rather than spend one more of the few daily getticket calls per caller.
            if let Some(e) = lock(&self.last_error).clone() {
                return Err(e);
            }
        }
        self.fetch_locked(client).await
    }

    fn spawn_refresh_ahead(self: &Arc<Self>, client: &WechatClient) {
        let now = self.clock.now_unix();
        if now - self.last_ahead_attempt.load(Ordering::SeqCst) < REFRESH_AHEAD_SPACING_SECS {
            return;
        }
        if self.refreshing.swap(true, Ordering::SeqCst) {
            return;
        }
        self.last_ahead_attempt.store(now, Ordering::SeqCst);
        let this = Arc::clone(self);
        let client = client.clone();
        tokio::spawn(async move {
            this.refresh_ahead_now(&client).await;
            this.refreshing.store(false, Ordering::SeqCst);
        });
    }

    /// Fetch the next ticket now if the cached one is close to expiry (what the background
    /// task runs; callable directly so tests need not race a spawned task).
    pub(crate) async fn refresh_ahead_now(&self, client: &WechatClient) {
        let _guard = self.fetch_lock.lock().await;
        if matches!(
            self.usable(client, self.refresh_ahead),
            Some((_, Freshness::Fresh))
        ) {
            return;
        }
        if let Err(e) = self.fetch_locked(client).await {
            tracing::warn!(
                kind = self.kind,
                errcode = e.errcode(),
                "refreshing the ticket ahead of expiry failed: {e}"
            );
        }
    }

    /// Fetch and record the outcome; the caller holds `fetch_lock`.
    async fn fetch_locked(&self, client: &WechatClient) -> Result<String, ApiError> {
        let r = self.fetch_and_store(client).await;
        *lock(&self.last_error) = r.as_ref().err().cloned();
        self.fetch_gen.fetch_add(1, Ordering::SeqCst);
        r
    }

    async fn fetch_and_store(&self, client: &WechatClient) -> Result<String, ApiError> {
        let current = lock(&self.cache).clone().map(|e| e.ticket.access_token);
        // With several instances on one store, one fetches and the others read its ticket.
        let waited_since = std::time::Instant::now();
        loop {
            if let Some(t) = self.persistence.load().await {
                let newer = Some(&t.access_token) != current.as_ref();
                let usable = freshness(t.expires_at_unix, self.clock.now_unix(), Duration::ZERO)
                    != Freshness::Expired;
                if newer && usable {
                    tracing::debug!(
                        kind = self.kind,
                        "using the ticket another instance fetched"
                    );
                    let ticket = t.access_token.clone();
                    self.set(t, client.token_rejections());
                    return Ok(ticket);
                }
            }
            if self.persistence.lock_fetch().await {
                // Another instance may have stored a ticket and let go of the lock between
                // the read above and taking it: read once more before fetching another.
                if let Some(t) = self.persistence.load().await {
                    if Some(&t.access_token) != current.as_ref()
                        && freshness(t.expires_at_unix, self.clock.now_unix(), Duration::ZERO)
                            != Freshness::Expired
                    {
                        self.persistence.unlock_fetch().await;
                        let ticket = t.access_token.clone();
                        self.set(t, client.token_rejections());
                        return Ok(ticket);
                    }
                }
                break;
            }
            if waited_since.elapsed() > SHARED_FETCH_WAIT {
                tracing::warn!(
                    kind = self.kind,
                    "another instance holds the ticket fetch lock too long; fetching here"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let result = self.fetch_new(client).await;
        self.persistence.unlock_fetch().await;
        result
    }

    async fn fetch_new(&self, client: &WechatClient) -> Result<String, ApiError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let started = self.clock.now_unix();
        // Through the client: an access_token rejected here is replaced and the call retried.
        let v = client.get(GETTICKET_PATH, &[("type", self.kind)]).await?;
        let ticket = v
            .get("ticket")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::InvalidJson {
                raw: "<getticket answer without ticket>".into(),
                reason: "missing ticket".into(),
            })?
            .to_string();
        let expires_in = v.get("expires_in").and_then(|e| e.as_i64()).unwrap_or(7200);
        tracing::info!(kind = self.kind, expires_in, "fetched a new ticket");
        let t = CachedToken {
            access_token: ticket.clone(),
            expires_at_unix: started + expires_in,
        };
        self.persistence.save(&t).await;
        // Read after the call: a rejection it recovered from is already counted, so the
        // ticket fetched with the replacement token is current.
        self.set(t, client.token_rejections());
        Ok(ticket)
    }

    fn set(&self, ticket: CachedToken, token_generation: u64) {
        *lock(&self.cache) = Some(Entry {
            ticket,
            token_generation,
        });
    }
}
