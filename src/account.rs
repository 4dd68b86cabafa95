//! Accounts: the Official Accounts one host serves. The top-level settings describe the
//! implicit account `default`, served at `/wechat` exactly as a single-account host always
//! did; every `[[accounts]]` table adds one served at `/wechat/<name>`, and more can be added
//! while the host serves (the authorizers of the open platform).
//!
//! An [`Account`] holds what the callback needs to take a message for it: the token its
//! requests are signed with, its mode and envelope (its EncodingAESKey and appid), and the
//! dispatcher that answers it. Each dispatcher has the account's own services (API client and
//! access_token, retry-cache namespace, window tracker, `wx.store` space, outbox handle on the
//! host's one queue); see [`crate::host`] for how they are assembled.
//!
//! # Scripts: one pool for every account that shares them
//!
//! Accounts without a `scripts` directory of their own are answered by one pool of Lua
//! states, the shared scripts' (loaded once per state, not once per account): the dispatcher
//! of each hands its account's services to the pool with every message, and the bindings act
//! for that account for the length of the run (see [`crate::script::services`]). An account
//! therefore costs its settings, its envelope, its API client and its dispatcher: memory,
//! never a Lua state or a task. An account with its own `scripts` has its own pool and
//! watcher, so a broken edit there touches no other account.
//!
//! # The registry
//!
//! [`Registry`] is what the server looks accounts up in: `/wechat/<name>` reads
//! [`Registry::get`] (a read lock and one hash lookup per request; `/wechat` itself never
//! looks), `wx.account(name)` reads it through [`AccountDirectory`]. Accounts can be added
//! and removed while serving:
//!
//! ```ignore
//! let settings = AccountSettings::new("wx_authorizer_appid", component_token)
//!     .appid("wx_authorizer_appid")
//!     .encrypted(SecurityMode::Safe, component_key, "wx_component_appid");
//! // Its API client, sharing the host's connection pool:
//! // ClientConfig { http: registry.api_http().cloned(), .. } (or host::client_for(..)).
//! let account = registry.shared_account(&settings, Some(authorizer_client))?;
//! registry.insert(account);        // served from the next request on
//! registry.remove("wx_authorizer_appid"); // gone from the next request on
//! ```
//!
//! [`Registry::shared_account`] builds an account answered by the shared scripts with the
//! given API client (one that gets its access_token however it must: an authorizer token,
//! for the open platform), a window tracker and `wx.store` space of its own, and a handle on
//! the host's outbox queue. Messages in flight for a removed account finish with it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::api::outbox::Outbox;
use crate::api::WechatClient;
use crate::config::{Config, Secret, SecurityMode};
use crate::dispatch::Dispatcher;
use crate::protocol::crypto::{CryptoError, MessageCrypto};
use crate::protocol::envelope::Envelope;
use crate::script::services::AccountDirectory;
use crate::script::{LuaPool, Services};

/// One account's callback side.
pub struct Account {
    /// `default`, or the `[[accounts]]` name (the path segment).
    pub name: String,
    /// The token WeChat signs this account's callbacks with.
    pub token: Secret,
    /// Plaintext, compatible or safe mode.
    pub mode: SecurityMode,
    /// The encrypted envelope, present unless the mode is plain.
    pub envelope: Option<Arc<Envelope>>,
    /// What answers this account's messages.
    pub dispatcher: Arc<Dispatcher>,
    /// How it came to be served, which decides the path it is served at.
    pub origin: Origin,
}

/// How an account came to be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The top-level settings or an `[[accounts]]` table: served at `/wechat[/<name>]`.
    Configured,
    /// An authorizer of the open platform: served only at `/component/<appid>/callback`,
    /// where each message is checked against the platform's list of authorizers. At
    /// `/wechat/<appid>` it would skip that check (and the release test's handler).
    Authorized,
}

impl Account {
    /// The account `name` from its settings; an unusable EncodingAESKey is an error.
    pub fn new(
        name: &str,
        appid: Option<&str>,
        token: Secret,
        mode: SecurityMode,
        encoding_aes_key: Option<&Secret>,
        dispatcher: Arc<Dispatcher>,
    ) -> Result<Account, CryptoError> {
        let envelope = match encoding_aes_key {
            Some(key) if mode != SecurityMode::Plain => Some(Arc::new(Envelope::new(
                token.expose(),
                MessageCrypto::new(key.expose(), appid.unwrap_or_default())?,
            ))),
            _ => None,
        };
        Ok(Account {
            name: name.to_string(),
            token,
            mode,
            envelope,
            dispatcher,
            origin: Origin::Configured,
        })
    }

    /// What `/healthz` says of this account (no secret, no setting beyond its name);
    /// `shared` is the shared scripts' pool.
    pub fn health(&self, shared: Option<&Arc<LuaPool>>) -> AccountHealth {
        let scripts = self.dispatcher.scripts();
        AccountHealth {
            name: self.name.clone(),
            api: self.dispatcher.services().api.is_some(),
            scripts: if shared.is_some_and(|shared| Arc::ptr_eq(shared, scripts)) {
                "shared"
            } else {
                "own"
            },
            scripts_generation: scripts.generation(),
        }
    }
}

/// One account as `/healthz` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountHealth {
    /// The account's name.
    pub name: String,
    /// Whether it has a WeChat API client (credentials configured, or authorized).
    pub api: bool,
    /// `shared` when the shared scripts answer it, `own` for a `scripts` of its own.
    pub scripts: &'static str,
    /// The generation of the scripts answering it.
    pub scripts_generation: u64,
}

/// The settings of an account to serve: what its callbacks are checked and opened with, and
/// what its scripts see (`msg.account`, `msg.appid`).
#[derive(Clone)]
pub struct AccountSettings {
    /// URL-safe and unique: `/wechat/<name>` and `msg.account`.
    pub name: String,
    /// The account's AppID (`msg.appid`), when known.
    pub appid: Option<String>,
    /// The token its callbacks are signed with.
    pub token: Secret,
    /// How its inbound messages are protected.
    pub mode: SecurityMode,
    /// The EncodingAESKey of its envelope (none in plain mode).
    pub encoding_aes_key: Option<Secret>,
    /// The AppID the envelope carries, when it is not `appid`: the open platform seals an
    /// authorizer's messages with the component's key and the component's AppID.
    pub envelope_appid: Option<String>,
    /// Configured, or an authorizer of the open platform.
    pub origin: Origin,
}

impl AccountSettings {
    /// A plaintext account `name` signed with `token`.
    pub fn new(name: impl Into<String>, token: Secret) -> AccountSettings {
        AccountSettings {
            name: name.into(),
            appid: None,
            token,
            mode: SecurityMode::Plain,
            encoding_aes_key: None,
            envelope_appid: None,
            origin: Origin::Configured,
        }
    }

    /// The same as an authorizer of the open platform (see [`Origin::Authorized`]).
    pub fn authorized(mut self) -> AccountSettings {
        self.origin = Origin::Authorized;
        self
    }

    /// The same with AppID `appid`.
    pub fn appid(mut self, appid: impl Into<String>) -> AccountSettings {
        self.appid = Some(appid.into());
        self
    }

    /// The same in `mode` with the envelope key `key`, sealed for `envelope_appid`.
    pub fn encrypted(
        mut self,
        mode: SecurityMode,
        key: Secret,
        envelope_appid: impl Into<String>,
    ) -> AccountSettings {
        self.mode = mode;
        self.encoding_aes_key = Some(key);
        self.envelope_appid = Some(envelope_appid.into());
        self
    }
}

/// Why an account could not be built or added.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The EncodingAESKey is unusable.
    #[error("encoding_aes_key of account `{name}`: {source}")]
    AesKey {
        /// The account.
        name: String,
        /// Why.
        source: CryptoError,
    },
    /// The name cannot be a path segment, or names the `default` account.
    #[error(
        "account name `{0}` is not usable: 1 to 64 letters, digits, `-` or `_`, not `default`"
    )]
    BadName(String),
    /// The host has no shared scripts to answer the account with (not built by a host).
    #[error("this registry has no shared scripts to serve accounts with")]
    NoSharedScripts,
}

/// What accounts answered by the shared scripts are built from, kept so accounts can be
/// added while serving.
struct SharedScripts {
    /// The dispatcher settings (deadline, retry cache, claims).
    config: Config,
    /// The shared scripts' pool.
    pool: Arc<LuaPool>,
    /// What every account shares (store, `wx.http`, session TTL, the directory); the
    /// account's own parts are put in by [`Registry::shared_account`].
    common: Services,
    /// The host's outbox queue and its worker.
    outbox: std::sync::Mutex<OutboxWorker>,
    /// The HTTP client every account's API client shares.
    api_http: reqwest::Client,
    /// The retry cache every account's dispatcher shares (keys carry the account), so
    /// `retry_cache_mb` bounds the instance however many accounts it serves.
    retry_cache: Arc<crate::dispatch::Dedup>,
}

/// The host's one outbox queue and the one worker that sends what waits in it: made by the
/// first account with an API client, configured or added while serving (an open platform
/// whose own account has no AppSecret gets its queue from its first authorizer).
struct OutboxWorker {
    /// The queue, once an account with an API client made it.
    queue: Option<Arc<Outbox>>,
    /// Stops the worker (the host's shutdown).
    stop: tokio::sync::watch::Receiver<bool>,
    /// Whether the host serves already, so a queue made now gets its worker at once (at
    /// start-up the host starts it once every configured account is built).
    serving: bool,
    /// The worker, once started.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl OutboxWorker {
    /// Starts the worker of the queue, if there is one and it has none yet.
    fn start(&mut self) {
        if let (Some(queue), None) = (&self.queue, &self.task) {
            self.task = Some(tokio::spawn(queue.clone().run(self.stop.clone())));
        }
    }
}

/// The accounts a host serves, by name; see the module doc.
#[derive(Default)]
pub struct Registry {
    /// The `default` account, served at `/wechat` (not among `named`).
    default: OnceLock<Arc<Account>>,
    /// Every other account, served at `/wechat/<name>`.
    named: RwLock<HashMap<String, Arc<Account>>>,
    /// Set by the host: what [`Registry::shared_account`] builds with.
    shared: OnceLock<SharedScripts>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The account served at `/wechat/<name>` now (never `default`, served at `/wechat`).
    pub fn get(&self, name: &str) -> Option<Arc<Account>> {
        crate::sync::read(&self.named).get(name).cloned()
    }

    /// Serves `account` at `/wechat/<name>` from the next request on; the account it
    /// replaces, if one had that name.
    pub fn insert(&self, account: Account) -> Option<Arc<Account>> {
        let account = Arc::new(account);
        tracing::info!(account = %account.name, "account added");
        crate::sync::write(&self.named).insert(account.name.clone(), account)
    }

    /// Stops serving the account `name`; it, if it was served.
    pub fn remove(&self, name: &str) -> Option<Arc<Account>> {
        let removed = crate::sync::write(&self.named).remove(name);
        if removed.is_some() {
            tracing::info!(account = %name, "account removed");
        }
        removed
    }

    /// How many accounts besides `default` are served.
    pub fn len(&self) -> usize {
        crate::sync::read(&self.named).len()
    }

    /// Whether only `default` is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every account besides `default`, in no order.
    pub fn all(&self) -> Vec<Arc<Account>> {
        crate::sync::read(&self.named).values().cloned().collect()
    }

    /// The `default` account, once the host set it.
    pub fn default_account(&self) -> Option<&Arc<Account>> {
        self.default.get()
    }

    /// Sets the `default` account (once; later calls are ignored).
    pub fn set_default(&self, account: Arc<Account>) {
        let _ = self.default.set(account);
    }

    /// Keeps what [`Registry::shared_account`] builds with: the dispatcher settings
    /// `config`, the shared scripts' `pool`, the services every account shares, the host's
    /// outbox queue if there is one yet (its worker stops when `outbox_stop` says so), and
    /// the HTTP client API clients share. Set once, by the host.
    pub fn set_shared(
        &self,
        config: &Config,
        pool: Arc<LuaPool>,
        common: Services,
        outbox: Option<Arc<Outbox>>,
        outbox_stop: tokio::sync::watch::Receiver<bool>,
        api_http: reqwest::Client,
    ) {
        let retry_cache = crate::dispatch::retry_cache(config, &common.store);
        let _ = self.shared.set(SharedScripts {
            config: config.clone(),
            retry_cache,
            pool,
            common,
            outbox: std::sync::Mutex::new(OutboxWorker {
                queue: outbox,
                stop: outbox_stop,
                serving: false,
                task: None,
            }),
            api_http,
        });
    }

    /// Starts the outbox worker (the host, once its configured accounts are built); a queue
    /// made later, by the first account added with an API client, gets its worker at once.
    pub fn start_outbox(&self) {
        if let Some(shared) = self.shared.get() {
            let mut worker = crate::sync::lock(&shared.outbox);
            worker.serving = true;
            worker.start();
        }
    }

    /// The outbox worker, for the host's shutdown to wait for (once).
    pub fn take_outbox_task(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.shared
            .get()
            .and_then(|shared| crate::sync::lock(&shared.outbox).task.take())
    }

    /// A dispatcher for the account `services` answered by `scripts`, remembering answers in
    /// the retry cache every account shares; `None` before the host set the registry up.
    pub fn dispatcher(&self, scripts: Arc<LuaPool>, services: Arc<Services>) -> Option<Dispatcher> {
        let shared = self.shared.get()?;
        Some(Dispatcher::sharing(
            &shared.config,
            scripts,
            services,
            shared.retry_cache.clone(),
        ))
    }

    /// The HTTP client the accounts' API clients share, for the client of an account added
    /// while serving ([`crate::api::ClientConfig::http`]).
    pub fn api_http(&self) -> Option<&reqwest::Client> {
        self.shared.get().map(|shared| &shared.api_http)
    }

    /// The shared scripts' pool, when the host set one.
    pub fn shared_pool(&self) -> Option<&Arc<LuaPool>> {
        self.shared.get().map(|shared| &shared.pool)
    }

    /// The host's outbox queue, once an account with an API client made one.
    pub fn outbox(&self) -> Option<Arc<Outbox>> {
        self.shared
            .get()
            .and_then(|shared| crate::sync::lock(&shared.outbox).queue.clone())
    }

    /// What `/healthz` says of every account, `default` first, the others by name.
    pub fn health(&self) -> Vec<AccountHealth> {
        let shared = self.shared_pool();
        let mut named: Vec<AccountHealth> = self.all().iter().map(|a| a.health(shared)).collect();
        named.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        self.default
            .get()
            .map(|default| default.health(shared))
            .into_iter()
            .chain(named)
            .collect()
    }

    /// An account answered by the shared scripts, from `settings`, calling the WeChat API
    /// through `api` (none: its scripts' API calls answer `errcode = -5`). It gets its own
    /// window tracker, `wx.store` space and retry-cache namespace, and a handle on the host's
    /// outbox queue. Not served until [`Registry::insert`]ed.
    pub fn shared_account(
        &self,
        settings: &AccountSettings,
        api: Option<WechatClient>,
    ) -> Result<Account, RegistryError> {
        let shared = self.shared.get().ok_or(RegistryError::NoSharedScripts)?;
        let own = self.account_services(settings, api)?;
        let dispatcher = Dispatcher::sharing(
            &shared.config,
            shared.pool.clone(),
            own.into(),
            shared.retry_cache.clone(),
        );
        account_for(settings, dispatcher)
    }

    /// The services of the account `settings` describes, calling the API through `api`:
    /// what every account shares, with a window tracker and `wx.store` space of its own and
    /// a handle on the host's outbox queue (made now if `api` is the first client). What
    /// [`Registry::shared_account`] builds on; the host gives them to an account's own pool.
    pub fn account_services(
        &self,
        settings: &AccountSettings,
        api: Option<WechatClient>,
    ) -> Result<Services, RegistryError> {
        if !usable_name(&settings.name) {
            return Err(RegistryError::BadName(settings.name.clone()));
        }
        let shared = self.shared.get().ok_or(RegistryError::NoSharedScripts)?;
        let mut own = shared
            .common
            .clone()
            .for_account(&settings.name, settings.appid.as_deref());
        // Its own window tracker: a user's window at one account says nothing of another.
        own.kf_window = Arc::default();
        own.api = None;
        own.outbox = None;
        if let Some(client) = api {
            let mut worker = crate::sync::lock(&shared.outbox);
            own = match worker.queue.as_ref() {
                Some(queue) => own.with_api_sharing(client, queue),
                None => {
                    let own = own.with_api(client);
                    worker.queue = own.outbox.clone();
                    if worker.serving {
                        worker.start();
                    }
                    own
                }
            };
        }
        Ok(own)
    }
}

/// The [`Account`] of `settings` answered by `dispatcher`.
pub fn account_for(
    settings: &AccountSettings,
    dispatcher: Dispatcher,
) -> Result<Account, RegistryError> {
    let envelope_appid = settings
        .envelope_appid
        .as_deref()
        .or(settings.appid.as_deref());
    Account::new(
        &settings.name,
        envelope_appid,
        settings.token.clone(),
        settings.mode,
        settings.encoding_aes_key.as_ref(),
        Arc::new(dispatcher),
    )
    .map(|account| Account {
        origin: settings.origin,
        ..account
    })
    .map_err(|source| RegistryError::AesKey {
        name: settings.name.clone(),
        source,
    })
}

/// Whether `name` can be an account's path segment: letters, digits, `-` and `_`, 1 to 64,
/// and not the `default` account's.
pub fn usable_name(name: &str) -> bool {
    name != crate::config::DEFAULT_ACCOUNT
        && (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// At most this many names in an error message: a host may serve thousands.
const NAMES_SHOWN: usize = 20;

impl AccountDirectory for Registry {
    fn services(&self, name: &str) -> Option<Arc<Services>> {
        if name == crate::config::DEFAULT_ACCOUNT {
            return self
                .default
                .get()
                .map(|account| account.dispatcher.services().clone());
        }
        self.get(name)
            .map(|account| account.dispatcher.services().clone())
    }

    fn names(&self) -> Vec<String> {
        let named = crate::sync::read(&self.named);
        let mut names: Vec<String> = named.keys().cloned().collect();
        drop(named);
        names.sort_unstable();
        let more = names.len().saturating_sub(NAMES_SHOWN);
        names.truncate(NAMES_SHOWN);
        if more > 0 {
            names.push(format!("… {more} more"));
        }
        names.insert(0, crate::config::DEFAULT_ACCOUNT.to_string());
        names
    }
}
