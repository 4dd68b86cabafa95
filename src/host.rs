//! Assembling a running host from its settings: the store, the WeChat API client, the pool of
//! Lua states with its reload watcher, the dispatcher and the HTTP state. `serve`, `chat` and
//! the tests build hosts the same way, through [`Host::builder`]; what differs between them
//! (the store, the API base, the late-reply sink) is given to the builder, never patched into
//! a built host.

use std::sync::Arc;

use crate::api::token_store::StoreTokenPersistence;
use crate::api::{ClientConfig, WechatClient};
use crate::config::Config;
use crate::dispatch::LateReplies;
use crate::script::reload::ReloadWatcher;
use crate::script::{LuaPool, RuntimeOptions, Services};
use crate::server::AppState;
use crate::store::Store;

/// Why a host could not be built; each names the setting or file at fault. The messages
/// carry their cause's text themselves (no `source`), so a report shows it once.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(crate::store::StoreError),
    /// The scripts did not load (message has file:line).
    #[error("scripts at {location}: {error}")]
    Scripts {
        /// The scripts location.
        location: String,
        /// What went wrong.
        error: crate::script::ScriptError,
    },
    /// The scripts cannot be watched for changes.
    #[error("cannot watch {location} for changes: {reason}")]
    Watch {
        /// The scripts location.
        location: String,
        /// Why.
        reason: String,
    },
    /// The EncodingAESKey is unusable.
    #[error("encoding_aes_key (WECHAT_AES_KEY): {0}")]
    AesKey(crate::protocol::crypto::CryptoError),
    /// No token was configured and none was generated.
    #[error("{0}")]
    NoToken(crate::server::state::StateError),
    /// The API client could not be set up.
    #[error("WeChat API client: {0}")]
    Api(crate::api::ApiError),
    /// An `[[accounts]]` table could not be served.
    #[error("[[accounts]]: {0}")]
    Account(crate::account::RegistryError),
    /// `[oauth]` is configured but sign-in cannot work.
    #[error("[oauth]: {0}")]
    Oauth(String),
}

impl From<crate::store::StoreError> for BuildError {
    fn from(e: crate::store::StoreError) -> Self {
        BuildError::Store(e)
    }
}

impl From<crate::protocol::crypto::CryptoError> for BuildError {
    fn from(e: crate::protocol::crypto::CryptoError) -> Self {
        BuildError::AesKey(e)
    }
}

impl From<crate::server::state::StateError> for BuildError {
    fn from(e: crate::server::state::StateError) -> Self {
        match e {
            crate::server::state::StateError::Crypto(e) => BuildError::AesKey(e),
            no_token => BuildError::NoToken(no_token),
        }
    }
}

impl From<crate::api::ApiError> for BuildError {
    fn from(e: crate::api::ApiError) -> Self {
        BuildError::Api(e)
    }
}

/// The WeChat API client for the configured account, its access_token kept in `store`;
/// `None` when no appid and appsecret are configured.
pub fn api_client(
    config: &Config,
    store: &Arc<dyn Store>,
) -> Result<Option<WechatClient>, BuildError> {
    api_client_at(config, store, &config.api_base, None)
}

/// [`api_client`] calling the API at `base` instead of the configured base, through `http`
/// when given.
fn api_client_at(
    config: &Config,
    store: &Arc<dyn Store>,
    base: &str,
    http: Option<&reqwest::Client>,
) -> Result<Option<WechatClient>, BuildError> {
    let (Some(appid), Some(secret)) = (&config.appid, &config.appsecret) else {
        return Ok(None);
    };
    client_for(config, appid, secret, store, base, http).map(Some)
}

/// The WeChat API client of an `[[accounts]]` table; `None` without an appsecret.
fn account_client_at(
    config: &Config,
    account: &crate::config::AccountConfig,
    store: &Arc<dyn Store>,
    base: &str,
    http: Option<&reqwest::Client>,
) -> Result<Option<WechatClient>, BuildError> {
    let Some(secret) = &account.appsecret else {
        return Ok(None);
    };
    client_for(config, &account.appid, secret, store, base, http).map(Some)
}

/// The client of the account `appid`, its access_token and jsapi_ticket kept in `store` under
/// its appid (so every account, and every instance on Redis, has its own and shares it), with
/// the settings' timeouts and token endpoint, calling the API at `base` through `http` (the
/// host's shared client: [`api_http_client`]) or a client of its own. What an account added
/// while serving gets its client from when it has an AppSecret.
pub fn client_for(
    config: &Config,
    appid: &str,
    secret: &crate::config::Secret,
    store: &Arc<dyn Store>,
    base: &str,
    http: Option<&reqwest::Client>,
) -> Result<WechatClient, BuildError> {
    let mut client_config = ClientConfig::new(appid, secret.expose()).with_base_url(base);
    client_config.http = http.cloned();
    client_config.token_endpoint = config.token_endpoint;
    client_config.timeout = config.api_timeout;
    client_config.connect_timeout = client_config.connect_timeout.min(config.api_timeout);
    client_config.persistence = Arc::new(StoreTokenPersistence::new(store.clone(), appid));
    client_config.ticket_persistence =
        Arc::new(StoreTokenPersistence::jsapi_ticket(store.clone(), appid));
    Ok(WechatClient::new(client_config)?)
}

/// The HTTP client every account's WeChat API client shares (one connection pool and TLS
/// setup), with the settings' timeouts.
pub fn api_http_client(config: &Config) -> Result<reqwest::Client, BuildError> {
    let connect = crate::api::ClientConfig::new("", "")
        .connect_timeout
        .min(config.api_timeout);
    Ok(crate::api::transport::http_client(
        config.api_timeout,
        connect,
    )?)
}

/// Beyond this many `[[accounts]]`, start-up logs one line for them all, not one each.
const ACCOUNTS_LOGGED_ONE_BY_ONE: usize = 20;

/// Wraps (or replaces) the host's late-reply sink.
type LateRepliesLayer = Box<dyn FnOnce(Arc<dyn LateReplies>) -> Arc<dyn LateReplies> + Send>;

/// The parts of a host that differ between `serve`, `chat` and tests; everything else comes
/// from the settings.
pub struct HostBuilder<'a> {
    config: &'a Config,
    /// Reload the scripts when they change.
    watch: bool,
    /// A store already open, instead of the configured one.
    store: Option<Arc<dyn Store>>,
    /// The WeChat API's base URL, instead of the configured one (`chat`'s fake WeChat).
    api_base: Option<String>,
    /// Applied to the late-reply sink the settings call for.
    late_replies: Option<LateRepliesLayer>,
    /// Told of every `wx.http` request the scripts finish (`chat` prints them).
    http_observer: Option<crate::net::RequestObserver>,
    /// Who is signed in on web routes (`req.openid`); everyone is signed out without it.
    sessions: Option<Arc<dyn crate::web::Sessions>>,
}

impl HostBuilder<'_> {
    /// Whether the scripts are watched and reloaded when they change (off by default).
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// Uses `store` instead of opening the configured one.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Calls the WeChat API at `base` instead of the configured base URL.
    pub fn api_base(mut self, base: impl Into<String>) -> Self {
        self.api_base = Some(base.into());
        self
    }

    /// Wraps or replaces the late-reply sink: `layer` gets the one the settings call for
    /// (customer service with API credentials, the log without) and returns the one to use.
    pub fn late_replies(
        mut self,
        layer: impl FnOnce(Arc<dyn LateReplies>) -> Arc<dyn LateReplies> + Send + 'static,
    ) -> Self {
        self.late_replies = Some(Box::new(layer));
        self
    }

    /// Tells `observer` of every `wx.http` request the scripts finish.
    pub fn http_observer(mut self, observer: crate::net::RequestObserver) -> Self {
        self.http_observer = Some(observer);
        self
    }

    /// Reads web visitors with `sessions` (sign-in with WeChat), so route handlers see
    /// `req.openid`.
    pub fn sessions(mut self, sessions: Arc<dyn crate::web::Sessions>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// Opens the store, sets up the API client (when appid and appsecret are configured),
    /// loads the scripts, watches them if asked, and assembles the dispatcher and HTTP state.
    pub async fn build(self) -> Result<Host, BuildError> {
        let config = self.config;
        let store = match self.store {
            Some(store) => store,
            None => {
                crate::store::open_with(config.store.as_deref(), &config.data, config.store_timeout)
                    .await?
            }
        };
        let base = self.api_base.as_deref().unwrap_or(&config.api_base);
        let mut services = Services::new(store.clone())
            .with_http(config.http.clone())
            .with_session_ttl(config.session_ttl);
        if let Some(observer) = self.http_observer {
            let client = crate::net::HttpClient::new(config.http.clone()).observed(observer);
            services = services.with_http_client(client);
        }
        services = services.for_account(crate::config::DEFAULT_ACCOUNT, config.appid.as_deref());
        // Every account's services share `peers` (one `Arc`): set once here, it is how
        // `wx.account(name)` finds the accounts, those added while serving too.
        let registry = Arc::new(crate::account::Registry::new());
        let directory: std::sync::Weak<dyn crate::script::services::AccountDirectory> =
            Arc::downgrade(&registry) as _;
        let _ = services.peers.set(directory);
        let common = services.clone();
        let api_http = api_http_client(config)?;
        match api_client_at(config, &store, base, Some(&api_http))? {
            Some(client) => services = services.with_api(client),
            None if config.accounts.is_empty() => {
                tracing::info!("no appid/appsecret configured: scripts cannot call the WeChat API")
            }
            None => {}
        }

        // The shared scripts: one pool for the default account and every account without
        // scripts of its own, loaded once per state however many accounts share it.
        let scripts = start_scripts(config, &config.scripts, services.clone()).await?;
        // Start-up work (`wx.on_start`) is done before the first message is served; a
        // failure is logged with its file:line and does not stop the host.
        scripts.run_start().await;
        let mut watchers = Vec::new();
        if self.watch {
            watchers.push(watch_scripts(&scripts, &config.scripts)?);
        }
        // One outbox queue and one worker for every account: each handle stamps its account's
        // appid on what it queues, and the worker sends each item with that account's token.
        let (outbox_stop, stop) = tokio::sync::watch::channel(false);
        registry.set_shared(
            config,
            scripts.clone(),
            common,
            services.outbox.clone(),
            stop,
            api_http.clone(),
        );

        let many = config.accounts.len() > ACCOUNTS_LOGGED_ONE_BY_ONE;
        for account in &config.accounts {
            let settings = crate::account::AccountSettings {
                name: account.name.clone(),
                appid: Some(account.appid.clone()),
                token: account.token.clone(),
                mode: account.mode,
                encoding_aes_key: account.encoding_aes_key.clone(),
                envelope_appid: None,
                origin: crate::account::Origin::Configured,
            };
            let client = account_client_at(config, account, &store, base, Some(&api_http))?;
            let built = match &account.scripts {
                None => registry.shared_account(&settings, client),
                Some(location) => {
                    // Its own pool and watcher: a broken edit there touches no other account.
                    let own = registry
                        .account_services(&settings, client)
                        .map_err(BuildError::Account)?;
                    let pool = start_scripts(config, location, own).await?;
                    pool.run_start().await;
                    if self.watch {
                        watchers.push(watch_scripts(&pool, location)?);
                    }
                    let own = pool.services().clone();
                    let dispatcher = registry
                        .dispatcher(pool, own)
                        .ok_or(crate::account::RegistryError::NoSharedScripts)
                        .map_err(BuildError::Account)?;
                    crate::account::account_for(&settings, dispatcher)
                }
            }
            .map_err(BuildError::Account)?;
            let api = built.dispatcher.services().api.is_some();
            if many {
                tracing::debug!(account = %account.name, mode = %account.mode, api, "serving account at {}/{}", crate::server::CALLBACK_PATH, account.name);
            } else {
                tracing::info!(account = %account.name, mode = %account.mode, api, "serving account at {}/{}", crate::server::CALLBACK_PATH, account.name);
            }
            registry.insert(built);
        }
        if many {
            tracing::info!(
                accounts = config.accounts.len(),
                "serving the [[accounts]] at {}/<name>",
                crate::server::CALLBACK_PATH
            );
        }
        let mut watchers = watchers.into_iter();
        let watcher = watchers.next();
        let account_watchers = watchers.collect();
        let own = scripts.services().clone();
        let mut dispatcher = registry
            .dispatcher(scripts, own)
            .ok_or(crate::account::RegistryError::NoSharedScripts)
            .map_err(BuildError::Account)?;
        if let Some(layer) = self.late_replies {
            dispatcher = dispatcher.map_late_replies(layer);
        }
        let mut state =
            AppState::with_dispatcher(config, Arc::new(dispatcher), store)?.with_registry(registry);
        let sign_in = match &config.oauth {
            Some(oauth) => Some(sign_in(oauth, services.api.clone())?),
            None => None,
        };
        if sign_in.is_some() || self.sessions.is_some() {
            let scripts = state.dispatcher.scripts().clone();
            let mut web = crate::web::Web::new(config, scripts);
            if let Some(sign_in) = sign_in {
                web = web.with_sign_in(sign_in);
            }
            if let Some(sessions) = self.sessions {
                web = web.with_sessions(sessions);
            }
            state.web = Arc::new(web);
        }
        if let Some(component) = &config.component {
            let platform = platform(config, component, &state, base, &api_http)?;
            match platform.serve_authorized().await {
                Ok(n) => tracing::info!(
                    component = %component.appid,
                    authorizers = n,
                    "serving the open platform at /component/events and /component/<appid>/callback"
                ),
                Err(e) => tracing::error!("cannot read the open platform's authorizers: {e}"),
            }
            state.platform = Some(platform);
        }
        let state = Arc::new(state);
        // One worker for the one queue, whichever account made it (also one added later).
        state.accounts.start_outbox();
        Ok(Host {
            state,
            watcher,
            account_watchers,
            outbox_stop,
        })
    }
}

/// The open platform `[component]` describes, its authorizers served from the host's registry
/// by the shared scripts.
fn platform(
    config: &Config,
    component: &crate::config::ComponentConfig,
    state: &AppState,
    base: &str,
    http: &reqwest::Client,
) -> Result<Arc<crate::component::Platform>, BuildError> {
    let store = &state.store;
    let mut settings = crate::api::component::ComponentSettings::new(
        &component.appid,
        component.appsecret.expose(),
        base,
    );
    settings.timeout = config.api_timeout;
    settings.http = Some(http.clone());
    let client = crate::api::component::ComponentClient::new(settings, store.clone())?;
    let host = Arc::new(RegistryAuthorizers {
        registry: state.accounts.clone(),
        token: component.token.clone(),
        key: component.encoding_aes_key.clone(),
        component_appid: component.appid.clone(),
    });
    Ok(Arc::new(crate::component::Platform::new(
        component.clone(),
        client,
        host,
    )?))
}

/// The open platform's authorizers as accounts of the host's registry: each named by its
/// appid, answered by the shared scripts with its authorizer token, its messages signed and
/// sealed with the platform's token and key.
struct RegistryAuthorizers {
    registry: Arc<crate::account::Registry>,
    token: crate::config::Secret,
    key: crate::config::Secret,
    component_appid: String,
}

impl crate::component::AuthorizerHost for RegistryAuthorizers {
    fn account(
        &self,
        appid: &str,
        api: WechatClient,
    ) -> Result<Arc<crate::account::Account>, String> {
        if let Some(account) = self.registry.get(appid) {
            return match account.origin {
                crate::account::Origin::Authorized => Ok(account),
                crate::account::Origin::Configured => Err(format!(
                    "an [[accounts]] table is named `{appid}`, the authorizer's appid: rename it so the authorizer can be served"
                )),
            };
        }
        let settings = crate::account::AccountSettings::new(appid, self.token.clone())
            .authorized()
            .appid(appid)
            .encrypted(
                crate::config::SecurityMode::Safe,
                self.key.clone(),
                self.component_appid.clone(),
            );
        let account = self
            .registry
            .shared_account(&settings, Some(api))
            .map_err(|e| e.to_string())?;
        self.registry.insert(account);
        self.registry
            .get(appid)
            .ok_or_else(|| format!("account {appid} removed while being added"))
    }

    fn remove(&self, appid: &str) {
        // A configured account that happens to be named like the appid stays.
        if self
            .registry
            .get(appid)
            .is_some_and(|account| account.origin == crate::account::Origin::Authorized)
        {
            self.registry.remove(appid);
        }
    }

    fn notify(
        &self,
        event: crate::component::AuthorizationEvent,
    ) -> futures::future::BoxFuture<'static, ()> {
        let registry = self.registry.clone();
        Box::pin(async move {
            let Some(pool) = registry.shared_pool().cloned() else {
                return;
            };
            // Acting for the authorizer while it is served, else for the pool's own account.
            let services = registry
                .get(&event.appid)
                .map(|a| a.dispatcher.services().clone())
                .unwrap_or_else(|| pool.services().clone());
            let appid = event.appid.clone();
            let event = crate::script::runtime::ComponentEvent {
                event: event.kind.wire(),
                appid: event.appid,
                func_info: event.func_info,
            };
            if let Err(e) = pool.component_event(event, &services).await {
                tracing::error!(authorizer = %appid, "component event handler failed: {e}");
            }
        })
    }
}

/// Sign-in with WeChat as `[oauth]` says: it exchanges codes with the account's credentials,
/// so it needs them; without a `cookie_secret` (serve reads or generates the one in the data
/// directory first) sessions are signed with a key made for this run, and end with it.
fn sign_in(
    oauth: &crate::config::OauthConfig,
    api: Option<WechatClient>,
) -> Result<Arc<crate::web::oauth::SignIn>, BuildError> {
    let api = api.ok_or_else(|| {
        BuildError::Oauth(
            "sign-in with WeChat exchanges codes with the account's appid and appsecret: set them"
                .into(),
        )
    })?;
    let secret = match &oauth.cookie_secret {
        Some(secret) => secret.clone(),
        None => {
            tracing::info!(
                "[oauth] cookie_secret: none kept, so sessions last until the host stops"
            );
            crate::config::generate_cookie_secret()
        }
    };
    tracing::info!(
        scope = oauth.scope.as_str(),
        callback = %format!("{}{}", oauth.public_url, crate::web::oauth::CALLBACK_PATH),
        "sign-in with WeChat at {}",
        crate::web::oauth::LOGIN_PATH
    );
    Ok(Arc::new(crate::web::oauth::SignIn::new(
        oauth, &secret, api,
    )))
}

/// Watches the scripts of `pool` at `location` and reloads them when they change.
fn watch_scripts(
    pool: &Arc<LuaPool>,
    location: &std::path::Path,
) -> Result<ReloadWatcher, BuildError> {
    crate::script::reload::watch(pool.clone()).map_err(|e| BuildError::Watch {
        location: location.display().to_string(),
        reason: e.to_string(),
    })
}

/// Loads the scripts at `location` into a pool of Lua states, on a blocking thread (loading
/// compiles every file).
async fn start_scripts(
    config: &Config,
    location: &std::path::Path,
    services: Services,
) -> Result<Arc<LuaPool>, BuildError> {
    let options = RuntimeOptions {
        memory_limit: config.lua_memory_limit,
        run_limit: config.reply_timeout,
        time_budget: config.handler_time_budget,
    };
    let shown = location.display().to_string();
    let location = location.to_path_buf();
    let workers = config.workers;
    tokio::task::spawn_blocking(move || LuaPool::start(&location, options, workers, services))
        .await
        .map_err(|e| BuildError::Scripts {
            location: shown.clone(),
            error: crate::script::ScriptError::Load(crate::script::LoadError::host(format!(
                "loader task failed: {e}"
            ))),
        })?
        .map_err(|error| BuildError::Scripts {
            location: shown,
            error,
        })
}

/// A host ready to serve.
pub struct Host {
    /// The state the HTTP handlers share.
    pub state: Arc<AppState>,
    /// Keeps the scripts watched; reloads stop when it is dropped.
    pub watcher: Option<ReloadWatcher>,
    /// Keeps the scripts of the `[[accounts]]` watched, each pool on its own, so a broken
    /// edit in one account's scripts never touches another's.
    account_watchers: Vec<ReloadWatcher>,
    /// Stops the outbox worker (which the registry keeps: it may start while serving).
    outbox_stop: tokio::sync::watch::Sender<bool>,
}

impl Host {
    /// The builder of a host from `config`.
    pub fn builder(config: &Config) -> HostBuilder<'_> {
        HostBuilder {
            config,
            watch: false,
            store: None,
            api_base: None,
            late_replies: None,
            http_observer: None,
            sessions: None,
        }
    }

    /// A host as the settings describe it, its scripts watched if `watch` is set.
    pub async fn build(config: &Config, watch: bool) -> Result<Host, BuildError> {
        Host::builder(config).watch(watch).build().await
    }

    /// Ends what runs beside the HTTP server, after it stopped: reloads stop and the outbox
    /// worker finishes the send it is on (queued sends stay in the store for the next start).
    pub async fn shutdown(mut self) {
        drop(self.watcher.take());
        self.account_watchers.clear();
        let _ = self.outbox_stop.send(true);
        if let Some(task) = self.state.accounts.take_outbox_task() {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::config::Overrides;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn the_builder_uses_the_parts_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.lua"), "").unwrap();
        let overrides = Overrides {
            scripts: Some(dir.path().to_path_buf()),
            data: Some(dir.path().join("data")),
            ..Overrides::default()
        };
        let env = [("WECHAT_TOKEN".to_string(), "t0ken".to_string())].into();
        let config = Config::load_with_env(&overrides, &env).unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        let layered = Arc::new(AtomicBool::new(false));
        let seen = layered.clone();
        let host = Host::builder(&config)
            .store(store.clone())
            .late_replies(move |sink| {
                seen.store(true, Ordering::SeqCst);
                sink
            })
            .build()
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&host.state.store, &store), "the given store");
        assert!(
            layered.load(Ordering::SeqCst),
            "the late-reply layer applied"
        );
        assert!(host.watcher.is_none(), "not watched unless asked");
        assert!(
            !dir.path().join("data").exists(),
            "no configured store opened"
        );
        host.shutdown().await;
    }

    /// Signs everyone in as `o_visitor`.
    struct Everyone;

    impl crate::web::Sessions for Everyone {
        fn visitor(&self, _request: &axum::http::request::Parts) -> Option<crate::web::Visitor> {
            Some(crate::web::Visitor {
                openid: "o_visitor".into(),
                unionid: None,
            })
        }
    }

    #[tokio::test]
    async fn sessions_given_to_the_builder_fill_req_openid() {
        use tower::ServiceExt;

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.lua"),
            "wx.route('GET', '/me', function(req) return req.openid or 'nobody' end)\n",
        )
        .unwrap();
        let overrides = Overrides {
            scripts: Some(dir.path().to_path_buf()),
            data: Some(dir.path().join("data")),
            ..Overrides::default()
        };
        let env = [("WECHAT_TOKEN".to_string(), "t0ken".to_string())].into();
        let config = Config::load_with_env(&overrides, &env).unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        for (sessions, expected) in [
            (None, "nobody"),
            (
                Some(Arc::new(Everyone) as Arc<dyn crate::web::Sessions>),
                "o_visitor",
            ),
        ] {
            let mut builder = Host::builder(&config).store(store.clone());
            if let Some(sessions) = sessions {
                builder = builder.sessions(sessions);
            }
            let host = builder.build().await.unwrap();
            let response = crate::server::app(host.state.clone())
                .oneshot(
                    axum::http::Request::get("/me")
                        .body(axum::body::Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
            assert_eq!(body, expected);
            host.shutdown().await;
        }
    }

    #[tokio::test]
    async fn oauth_serves_sign_in_and_gives_routes_the_page_url() {
        use tower::ServiceExt;

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.lua"),
            "wx.route('GET', '/here', function(req) return req.page_url or 'no url' end)\n",
        )
        .unwrap();
        let toml = dir.path().join("c.toml");
        std::fs::write(&toml, "[oauth]\npublic_url = \"https://shop.example\"\n").unwrap();
        let get = |host: &Host, uri: &str| {
            crate::server::app(host.state.clone()).oneshot(
                axum::http::Request::get(uri)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
        };
        let (fake, base) = crate::fake_wechat::FakeWechat::start().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        for with_oauth in [false, true] {
            let overrides = Overrides {
                scripts: Some(dir.path().to_path_buf()),
                data: Some(dir.path().join("data")),
                config: with_oauth.then(|| toml.clone()),
                ..Overrides::default()
            };
            let env = [
                ("WECHAT_TOKEN".to_string(), "t0ken".to_string()),
                ("WECHAT_APPID".to_string(), fake.appid()),
                ("WECHAT_APPSECRET".to_string(), fake.secret()),
            ]
            .into();
            let config = Config::load_with_env(&overrides, &env).unwrap();
            let host = Host::builder(&config)
                .store(store.clone())
                .api_base(base.clone())
                .build()
                .await
                .unwrap();
            let login = get(&host, "/oauth/login?next=/here").await.unwrap();
            let page = get(&host, "/here?x=1").await.unwrap();
            let body = axum::body::to_bytes(page.into_body(), 1024).await.unwrap();
            if with_oauth {
                assert_eq!(login.status(), axum::http::StatusCode::FOUND);
                let to = login.headers()["location"].to_str().unwrap();
                assert!(
                    to.starts_with(&format!("{base}/connect/oauth2/authorize?")),
                    "{to}"
                );
                assert!(
                    to.contains("redirect_uri=https%3A%2F%2Fshop.example%2Foauth%2Fcallback"),
                    "{to}"
                );
                assert_eq!(body, "https://shop.example/here?x=1");
            } else {
                assert_eq!(login.status(), axum::http::StatusCode::NOT_FOUND);
                assert_eq!(body, "no url");
            }
            host.shutdown().await;

            if with_oauth {
                // Without the account's credentials sign-in cannot exchange codes.
                let mut bare = config.clone();
                bare.appid = None;
                bare.appsecret = None;
                let err = Host::builder(&bare)
                    .store(store.clone())
                    .build()
                    .await
                    .err()
                    .expect("refused")
                    .to_string();
                assert!(err.contains("[oauth]") && err.contains("appid"), "{err}");
            }
        }
    }
}
