//! What every request handler shares.

use std::sync::Arc;

use crate::config::{Config, Secret, SecurityMode};
use crate::dispatch::Dispatcher;
use crate::protocol::crypto::CryptoError;
use crate::protocol::envelope::Envelope;
use crate::script::{LuaPool, Services};
use crate::store::Store;

use super::connection::ConnectionLimits;
use super::replay::ReplayMemory;

/// Why the handlers' state cannot be built from the settings.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Callbacks cannot be verified without a token.
    #[error("no token to verify callbacks with: set `token` (WECHAT_TOKEN), or let `serve` generate one")]
    NoToken,
    /// The EncodingAESKey is unusable.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Shared state of the HTTP handlers.
pub struct AppState {
    /// The token shared with the WeChat console; signs every callback.
    pub token: Secret,
    /// Plaintext, compatible or safe mode.
    pub mode: SecurityMode,
    /// The encrypted envelope (token and EncodingAESKey), present unless the mode is plain.
    pub envelope: Option<Arc<Envelope>>,
    /// Where the outbox is counted (`/metrics`), and what `/healthz` and `/readyz` probe.
    pub store: Arc<dyn Store>,
    /// The most a health probe waits for the store (the message path's bound, `claim_timeout`).
    pub store_timeout: std::time::Duration,
    /// Signed queries already used (replays are refused).
    pub replay: ReplayMemory,
    /// What answers each message.
    pub dispatcher: Arc<Dispatcher>,
    /// Deadlines and the cap on connections.
    pub limits: ConnectionLimits,
    /// The `default` account (the top-level settings), served at `/wechat`: the fields above
    /// as one [`Account`](crate::account::Account).
    pub default_account: Arc<crate::account::Account>,
    /// The other accounts, served at `/wechat/<name>`: the `[[accounts]]`, and any added
    /// while serving.
    pub accounts: Arc<crate::account::Registry>,
    /// The open platform (`[component]`), served at `/component/…`.
    pub platform: Option<Arc<crate::component::Platform>>,
    /// The scripts' web routes and static files (a sign-in hook goes in with
    /// [`Web::with_sessions`](crate::web::Web::with_sessions)).
    pub web: Arc<crate::web::Web>,
}

impl AppState {
    /// Builds the state from the settings, with a dispatcher for `scripts`; a missing token or
    /// an unusable EncodingAESKey stops start-up here.
    pub fn new(
        config: &Config,
        scripts: Arc<LuaPool>,
        services: &Services,
    ) -> Result<AppState, StateError> {
        let dispatcher = Dispatcher::new(config, scripts, services);
        AppState::with_dispatcher(config, Arc::new(dispatcher), services.store.clone())
    }

    /// Builds the state from the settings around an assembled dispatcher; `store` remembers
    /// signed queries.
    pub fn with_dispatcher(
        config: &Config,
        dispatcher: Arc<Dispatcher>,
        store: Arc<dyn Store>,
    ) -> Result<AppState, StateError> {
        let token = config.token.clone().ok_or(StateError::NoToken)?;
        let default_account = Arc::new(crate::account::Account::new(
            crate::config::DEFAULT_ACCOUNT,
            config.appid.as_deref(),
            token.clone(),
            config.mode,
            config.encoding_aes_key.as_ref(),
            dispatcher.clone(),
        )?);
        let envelope = default_account.envelope.clone();
        let accounts = Arc::new(crate::account::Registry::new());
        accounts.set_default(default_account.clone());
        let web = Arc::new(crate::web::Web::new(config, dispatcher.scripts().clone()));
        Ok(AppState {
            web,
            token,
            mode: config.mode,
            envelope,
            // The replay check comes before the claim and the handler, inside the same reply
            // deadline: it may take at most half of it, whatever `claim_timeout` says.
            replay: ReplayMemory::new(
                config.store_is_shared().then(|| store.clone()),
                config.claim_timeout.min(config.reply_timeout / 2),
            ),
            store_timeout: config.claim_timeout,
            store,
            dispatcher,
            default_account,
            accounts,
            platform: None,
            limits: config.connections,
        })
    }

    /// Waits until every account's handler runs have finished or `until` comes; returns how
    /// many still run then. A shutdown calls it after the server stopped.
    pub async fn wait_for_handlers(&self, until: tokio::time::Instant) -> usize {
        let mut still_running = self.dispatcher.wait_for_handlers(until).await;
        for account in self.accounts.all() {
            still_running += account.dispatcher.wait_for_handlers(until).await;
        }
        still_running
    }

    /// The same state serving the accounts of `registry` at `/wechat/<name>` beside the
    /// default account (which the registry is given).
    pub fn with_registry(mut self, registry: Arc<crate::account::Registry>) -> AppState {
        registry.set_default(self.default_account.clone());
        self.accounts = registry;
        self
    }
}
