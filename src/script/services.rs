//! What the host lends to scripts: the store, the outbound HTTP client and (when configured)
//! the WeChat API. Shared by every worker, so everything here is `Send + Sync`.
//!
//! One [`Services`] describes one account (its API client, window tracker, outbox handle and
//! `wx.store` space beside what every account shares). A pool of Lua states is started with
//! the services of its owner (the `default` account for the shared scripts), and the account
//! a run acts for is chosen per run: the dispatcher hands its account's `Arc<Services>` to
//! the pool with each message, the runtime makes it the state's [`RunAccount`] for every
//! resume of the handler's coroutine, and the bindings read it when they are called
//! ([`ActingFor::Run`]) instead of capturing one at start-up. `wx.account(name)` tables are
//! bound to a name instead ([`ActingFor::Named`]), looked up in the host's
//! [`AccountDirectory`] at each call, so accounts added or removed while serving are seen.

use std::sync::{Arc, OnceLock, Weak};
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
    /// Every account of the host by name, for `wx.account(name)`; set once the host has
    /// built its registry (weak: the registry holds these services, so no cycle). Shared by
    /// every clone, so one `set` reaches the services of every account.
    pub peers: Arc<OnceLock<Weak<dyn AccountDirectory>>>,
}

/// The accounts of a host by name, as scripts reach them with `wx.account(name)`:
/// implemented by [`crate::account::Registry`], kept behind a trait so the scripts know no
/// server.
pub trait AccountDirectory: Send + Sync {
    /// The services of the account `name` (`default` included), if the host serves it now.
    fn services(&self, name: &str) -> Option<Arc<Services>>;
    /// The names of the accounts served now, sorted, for an error message.
    fn names(&self) -> Vec<String>;
}

/// Lua app data of every state: the account the run in progress acts for. The runtime puts a
/// run's account here before each resume of its coroutine and puts the previous one back
/// after, so a run keeps its account across every wait; outside a run (loading,
/// `wx.on_start`, web routes) it is the pool's own account.
pub struct RunAccount(pub Arc<Services>);

/// Which account a binding acts for, resolved when the script calls it.
#[derive(Clone)]
pub enum ActingFor {
    /// The account of the run in progress ([`RunAccount`]): `wx.kf`, `wx.store`, …
    Run,
    /// The account of that name, looked up at each call (`wx.account(name)`): one added
    /// later is found, one removed is a clear error.
    Named(Arc<str>, Arc<OnceLock<Weak<dyn AccountDirectory>>>),
}

impl ActingFor {
    /// The services to use for a call made now.
    pub fn services(&self, lua: &mlua::Lua) -> mlua::Result<Arc<Services>> {
        match self {
            ActingFor::Run => lua
                .app_data_ref::<RunAccount>()
                .map(|run| run.0.clone())
                .ok_or_else(|| mlua::Error::RuntimeError("no account to act for".into())),
            ActingFor::Named(name, peers) => peers
                .get()
                .and_then(Weak::upgrade)
                .and_then(|all| all.services(name))
                .ok_or_else(|| {
                    crate::script::bindings::error_at(
                        lua,
                        format!("wx.account: the account `{name}` is no longer served"),
                    )
                }),
        }
    }
}

/// Which account a set of services acts for.
#[derive(Debug, Clone)]
pub struct AccountLabel {
    /// The account's name: `default` for the top-level settings, else its `[[accounts]]` name.
    pub name: Arc<str>,
    /// Its AppID, when configured.
    pub appid: Option<Arc<str>>,
    /// What its `wx.store` keys start with: nothing for `default` (its keys are as they were
    /// before accounts existed), else a prefix no script key can name (made once, so a
    /// store call builds only its key).
    pub store_prefix: Arc<str>,
}

impl Default for AccountLabel {
    fn default() -> Self {
        AccountLabel::new(crate::config::DEFAULT_ACCOUNT, None)
    }
}

/// Where the keys of named accounts and of `wx.store.global` live: behind a control
/// character no script writes in a key, so no key of one space can name one of another.
pub const STORE_SPACE_MARK: char = '\u{1}';

impl AccountLabel {
    /// The label of the account `name`, AppID `appid`.
    pub fn new(name: &str, appid: Option<&str>) -> AccountLabel {
        let store_prefix = if name == crate::config::DEFAULT_ACCOUNT {
            String::new()
        } else {
            format!("{STORE_SPACE_MARK}account:{name}:")
        };
        AccountLabel {
            name: Arc::from(name),
            appid: appid.map(Arc::from),
            store_prefix: store_prefix.into(),
        }
    }

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
            peers: Arc::new(OnceLock::new()),
        }
    }

    /// The same services acting for the account `name` (appid `appid`).
    pub fn for_account(mut self, name: &str, appid: Option<&str>) -> Services {
        self.account = AccountLabel::new(name, appid);
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
