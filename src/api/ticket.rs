//! The jsapi_ticket (`/cgi-bin/ticket/getticket?type=jsapi`): a [`TokenSource`] that fetches
//! it with the account's access_token through the account's own client, and a
//! [`TokenManager`] that keeps it the way it keeps any access_token ([`super::token`]): cached
//! with its expiry, kept in the store so a restart (and, on Redis, every instance) reuses it,
//! fetched once however many callers wait, refreshed in the background ahead of expiry, one
//! instance fetching under the store's lock while the others read its ticket.
//!
//! What a ticket needs beyond that, this module adds:
//! - WeChat never rejects a ticket by name (it is only hashed into pages' signatures), but a
//!   ticket fetched with an access_token WeChat has rejected since (40001/40014/42001) is
//!   fetched again: [`TicketManager`] remembers the client's rejection count its cached
//!   ticket was fetched (or loaded) under, and retires the ticket once the count moved.
//! - getticket answering 40001/42001 is about the access_token, not the ticket: the fetch
//!   goes through [`WechatClient::get`], whose policy drops that access_token, fetches another
//!   and retries once, so the access_token is refreshed and the ticket comes with the new one.
//!   The count is read after that call, so a rejection the fetch itself recovered from does
//!   not make its own ticket stale.
//! - WeChat busy (-1/45011) is retried by that same client policy; the ticket's manager gets
//!   one try per fetch so the two backoffs do not multiply.
//!
//! WeChat allows few getticket calls a day and asks that the ticket be cached globally, so a
//! page that signs a JS-SDK config on every view must not cost a fetch per view.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use super::client::{WeakClient, WechatClient};
use super::error::ApiError;
use super::token::{
    credential_field, expires_in, CachedToken, Clock, Credentials, TokenEndpoint, TokenManager,
    TokenPersistence, TokenSettings, TokenSource,
};
use super::transport::{RetryPolicy, Transport};
use crate::sync::lock;

/// The endpoint that issues tickets.
pub const GETTICKET_PATH: &str = "/cgi-bin/ticket/getticket";

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

/// Fetches one type of ticket with the account's access_token.
struct TicketSource {
    /// The `type` parameter of getticket.
    kind: &'static str,
    /// The account's client (weak: the client holds this source's manager).
    client: WeakClient,
    /// Where a fetch records the access_token rejection count it finished under.
    fetched_under: Arc<Mutex<u64>>,
}

impl TokenSource for TicketSource {
    fn fetch(&self) -> BoxFuture<'_, Result<CachedToken, ApiError>> {
        Box::pin(async move {
            let client = self
                .client
                .upgrade()
                .ok_or_else(|| ApiError::Config("the account's client is gone".into()))?;
            let started = client.now_unix();
            // Through the client: an access_token rejected here is replaced and the call retried.
            let v = client.get(GETTICKET_PATH, &[("type", self.kind)]).await?;
            let ticket = credential_field(&v, "ticket")?;
            let expires_in = expires_in(&v);
            tracing::info!(kind = self.kind, expires_in, "fetched a new ticket");
            // Read after the call: a rejection it recovered from is already counted, so the
            // ticket fetched with the replacement token is current.
            *lock(&self.fetched_under) = client.token_rejections();
            Ok(CachedToken {
                access_token: ticket,
                expires_at_unix: started + expires_in,
            })
        })
    }

    fn what(&self) -> &'static str {
        "jsapi_ticket"
    }

    fn is_access_token(&self) -> bool {
        false
    }
}

/// The cached ticket of one type (`jsapi`) shared by every clone of a `WechatClient`.
pub(crate) struct TicketManager {
    tickets: Arc<TokenManager>,
    /// The client's access_token rejection count the cached ticket was fetched or loaded
    /// under; once the count moves past it, the ticket is retired and fetched again.
    fetched_under: Arc<Mutex<u64>>,
}

impl TicketManager {
    /// A manager of `kind` tickets for the account of `client`, kept in `persistence`.
    pub(crate) fn new(
        kind: &'static str,
        client: WeakClient,
        transport: Arc<Transport>,
        ticket: TicketSettings,
    ) -> TicketManager {
        let fetched_under = Arc::new(Mutex::new(0));
        let source = TicketSource {
            kind,
            client,
            fetched_under: Arc::clone(&fetched_under),
        };
        let tickets = TokenManager::new(
            transport,
            TokenSettings {
                creds: Credentials {
                    appid: ticket.appid,
                    // Tickets are fetched with the access_token, never the AppSecret.
                    secret: String::new(),
                },
                // One try per fetch: the client's policy already backs off while WeChat is
                // busy, and a second backoff around it would multiply the calls.
                retry: RetryPolicy {
                    attempts: 1,
                    ..ticket.retry
                },
                endpoint: TokenEndpoint::default(),
                refresh_ahead: ticket.refresh_ahead,
                persistence: ticket.persistence,
                clock: ticket.clock,
                source: Some(Arc::new(source)),
            },
        );
        TicketManager {
            tickets: Arc::new(tickets),
            fetched_under,
        }
    }

    /// The cached ticket's status (never the ticket itself).
    pub(crate) fn status(&self) -> TicketStatus {
        let s = self.tickets.status();
        TicketStatus {
            cached: s.cached,
            expires_at_unix: s.expires_at_unix,
            expires_in_secs: s.expires_in_secs,
            fetches: s.fetches,
        }
    }

    /// Retire the cached ticket if the access_token has been rejected since it was fetched.
    fn retire_if_stale(&self, client: &WechatClient) {
        let rejections = client.token_rejections();
        let mut fetched_under = lock(&self.fetched_under);
        if *fetched_under != rejections {
            // A ticket read from the store or another instance from now on is taken as
            // current, as a restarted instance takes it.
            *fetched_under = rejections;
            self.tickets.retire_cached();
            tracing::debug!("access_token rejected since the jsapi_ticket was fetched; fetching the ticket again");
        }
    }

    /// A usable ticket: from the cache, or fetched exactly once however many callers wait.
    pub(crate) async fn get(&self, client: &WechatClient) -> Result<String, ApiError> {
        self.retire_if_stale(client);
        self.tickets.get().await
    }

    /// Fetch the next ticket now if the cached one is close to expiry (what the background
    /// task runs; callable directly so tests need not race a spawned task).
    pub(crate) async fn refresh_ahead_now(&self, client: &WechatClient) {
        self.retire_if_stale(client);
        self.tickets.refresh_ahead_now().await
    }
}

/// How a [`TicketManager`] keeps its tickets (taken from the client's config).
pub(crate) struct TicketSettings {
    /// The account's AppID.
    pub(crate) appid: String,
    /// The client's backoff, of which the manager keeps one try (see [`TicketManager::new`]).
    pub(crate) retry: RetryPolicy,
    pub(crate) refresh_ahead: std::time::Duration,
    pub(crate) persistence: Arc<dyn TokenPersistence>,
    pub(crate) clock: Arc<dyn Clock>,
}
