//! Assembling a running host from its settings: the store, the WeChat API client, the script
//! workers with their reload watcher, and the HTTP state. `serve` and the tests build hosts
//! the same way through [`Host::build`].

use std::sync::Arc;

use crate::api::token_store::StoreTokenPersistence;
use crate::api::{ClientConfig, WechatClient};
use crate::config::Config;
use crate::script::reload::ReloadWatcher;
use crate::script::{RuntimeOptions, ScriptHost, Services};
use crate::server::AppState;

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
    store: &Arc<dyn crate::store::Store>,
) -> Result<Option<WechatClient>, BuildError> {
    let (Some(appid), Some(secret)) = (&config.appid, &config.appsecret) else {
        return Ok(None);
    };
    let mut client_config = ClientConfig::new(appid.clone(), secret.expose());
    client_config.base_url = config.api_base.clone();
    client_config.token_endpoint = config.token_endpoint;
    client_config.persistence = Arc::new(StoreTokenPersistence::new(store.clone(), appid));
    Ok(Some(WechatClient::new(client_config)?))
}

/// A host ready to serve.
pub struct Host {
    /// The state the HTTP handlers share.
    pub state: Arc<AppState>,
    /// Keeps the scripts watched; reloads stop when it is dropped.
    pub watcher: Option<ReloadWatcher>,
    /// Stops the outbox worker.
    outbox_stop: tokio::sync::watch::Sender<bool>,
    outbox_task: Option<tokio::task::JoinHandle<()>>,
}

impl Host {
    /// Opens the store, sets up the API client (when appid and appsecret are configured),
    /// loads the scripts and, if `watch` is set, watches them for changes.
    pub async fn build(config: &Config, watch: bool) -> Result<Host, BuildError> {
        let store = crate::store::open(config.store.as_deref(), &config.data).await?;
        let mut services = Services::new(store.clone()).with_http(config.http.clone());
        match api_client(config, &store)? {
            Some(client) => services = services.with_api(client),
            None => {
                tracing::info!("no appid/appsecret configured: scripts cannot call the WeChat API")
            }
        }
        let options = RuntimeOptions {
            memory_limit: config.lua_memory_limit,
            run_limit: config.reply_timeout,
            time_budget: config.handler_time_budget,
        };
        let location = config.scripts.clone();
        let workers = config.workers;
        let script_services = services.clone();
        let scripts = tokio::task::spawn_blocking(move || {
            ScriptHost::start(&location, options, workers, script_services)
        })
        .await
        .map_err(|e| BuildError::Scripts {
            location: config.scripts.display().to_string(),
            error: crate::script::ScriptError::Load(format!("loader task failed: {e}")),
        })?
        .map_err(|error| BuildError::Scripts {
            location: config.scripts.display().to_string(),
            error,
        })?;
        let watcher = if watch {
            Some(
                crate::script::reload::watch(scripts.clone()).map_err(|e| BuildError::Watch {
                    location: config.scripts.display().to_string(),
                    reason: e.to_string(),
                })?,
            )
        } else {
            None
        };
        let state = Arc::new(AppState::new(config, scripts, &services)?);
        let (outbox_stop, stop) = tokio::sync::watch::channel(false);
        let outbox_task = services
            .outbox
            .clone()
            .map(|outbox| tokio::spawn(outbox.run(stop)));
        Ok(Host {
            state,
            watcher,
            outbox_stop,
            outbox_task,
        })
    }

    /// Ends what runs beside the HTTP server, after it stopped: reloads stop and the outbox
    /// worker finishes the send it is on (queued sends stay in the store for the next start).
    pub async fn shutdown(mut self) {
        drop(self.watcher.take());
        let _ = self.outbox_stop.send(true);
        if let Some(task) = self.outbox_task.take() {
            let _ = task.await;
        }
    }
}
