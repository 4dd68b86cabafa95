//! What the host lends to scripts: the store, the outbound HTTP client and (when configured)
//! the WeChat API. Shared by every worker, so everything here is `Send + Sync`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::api::outbox::Outbox;
use crate::api::{KfWindowTracker, WechatClient};
use crate::net::{HttpClient, HttpSettings};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// Host services reachable from Lua bindings.
#[derive(Clone)]
pub struct Services {
    /// Script data (`wx.store`) and the host's own records.
    pub store: Arc<dyn Store>,
    /// The WeChat API, when an appid and appsecret are configured.
    pub api: Option<WechatClient>,
    /// When each user last wrote or clicked, for `wx.kf.window` and customer-service sends.
    pub kf_window: Arc<KfWindowTracker>,
    /// Sends that failed for a transient reason, retried until they succeed (with the API).
    pub outbox: Option<Arc<Outbox>>,
    /// The outbound HTTP client of `wx.http` (its own, never the WeChat API's: no token).
    pub http: Arc<HttpClient>,
    /// How long a `wx.session` table is kept after the last handler that saved it.
    pub session_ttl: Duration,
    /// The account these services act for (`msg.account`, `msg.appid`, `wx.store`'s space).
    pub account: AccountLabel,
    /// Every account of the host by name, for `wx.account(name)`; filled once the host has
    /// built them all. The services inside have an empty map of their own (no cycle).
    pub peers: Arc<OnceLock<HashMap<String, Services>>>,
}

/// Which account a set of services acts for.
#[derive(Debug, Clone)]
pub struct AccountLabel {
    /// The account's name: `default` for the top-level settings, else its `[[accounts]]` name.
    pub name: Arc<str>,
    /// Its AppID, when configured.
    pub appid: Option<Arc<str>>,
}

impl Default for AccountLabel {
    fn default() -> Self {
        AccountLabel {
            name: Arc::from(crate::config::DEFAULT_ACCOUNT),
            appid: None,
        }
    }
}

impl AccountLabel {
    /// Whether this is the implicit account of the top-level settings.
    pub fn is_default(&self) -> bool {
        &*self.name == crate::config::DEFAULT_ACCOUNT
    }
}

/// The default of [`Services::session_ttl`]: 30 days.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 86_400);

impl Services {
    /// Services over the given store, without the WeChat API.
    pub fn new(store: Arc<dyn Store>) -> Services {
        Services {
            store,
            api: None,
            kf_window: Arc::new(KfWindowTracker::default()),
            outbox: None,
            http: Arc::new(HttpClient::new(HttpSettings::default())),
            session_ttl: DEFAULT_SESSION_TTL,
            account: AccountLabel::default(),
            peers: Arc::default(),
        }
    }

    /// The same services acting for the account `name` (appid `appid`).
    pub fn for_account(mut self, name: &str, appid: Option<&str>) -> Services {
        self.account = AccountLabel {
            name: Arc::from(name),
            appid: appid.map(Arc::from),
        };
        self
    }

    /// The same services with the WeChat API through `api`, its failed sends queued in
    /// `outbox`'s queue (one queue and one worker for all the accounts of a host).
    pub fn with_api_sharing(mut self, api: WechatClient, outbox: &Outbox) -> Services {
        self.outbox = Some(outbox.for_account(api.clone()));
        self.api = Some(api);
        self
    }

    /// The same services with `wx.session` tables kept for `ttl` (the `session_ttl` setting).
    pub fn with_session_ttl(mut self, ttl: Duration) -> Services {
        self.session_ttl = ttl;
        self
    }

    /// The same services with `wx.http` under `settings` (the `[http]` table).
    pub fn with_http(mut self, settings: HttpSettings) -> Services {
        self.http = Arc::new(HttpClient::new(settings));
        self
    }

    /// The same services with `wx.http` going through `client` (one built with an observer).
    pub fn with_http_client(mut self, client: HttpClient) -> Services {
        self.http = Arc::new(client);
        self
    }

    /// The same services with the WeChat API.
    pub fn with_api(mut self, api: WechatClient) -> Services {
        self.outbox = Some(Outbox::new(self.store.clone(), api.clone()));
        self.api = Some(api);
        self
    }

    /// Services on a private in-memory store: tests and one-off checks.
    pub fn in_memory() -> Result<Services, StoreError> {
        Ok(Services::new(Arc::new(SqliteStore::open_in_memory()?)))
    }
}
