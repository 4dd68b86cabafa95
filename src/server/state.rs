//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Secret, SecurityMode};
use crate::protocol::crypto::{CryptoError, MessageCrypto};
use crate::protocol::envelope::Envelope;
use crate::script::{ScriptHost, Services};
use crate::store::Store;

use super::connection::ConnectionLimits;
use super::deadline::{LateReplies, LogLateReplies};
use super::dedup::Dedup;
use super::late::KfLateReplies;

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
    /// The script workers.
    pub scripts: Arc<ScriptHost>,
    /// Persistent state (dedup records, script data, outbox).
    pub store: Arc<dyn Store>,
    /// Retries of messages already handled or being handled.
    pub dedup: Arc<Dedup>,
    /// How long a handler may take before `success` is sent for it.
    pub reply_timeout: Duration,
    /// Where replies that missed the deadline go.
    pub late: Arc<dyn LateReplies>,
    /// The host services scripts use (store, API, customer-service windows).
    pub services: Services,
    /// Deadlines and the cap on connections.
    pub limits: ConnectionLimits,
}

impl AppState {
    /// Builds the state from the settings; a missing token or an unusable EncodingAESKey
    /// stops start-up here.
    pub fn new(
        config: &Config,
        scripts: Arc<ScriptHost>,
        services: &Services,
    ) -> Result<AppState, StateError> {
        let token = config.token.clone().ok_or(StateError::NoToken)?;
        let store = services.store.clone();
        let envelope = match (&config.encoding_aes_key, config.mode) {
            (Some(key), mode) if mode != SecurityMode::Plain => Some(Arc::new(Envelope::new(
                token.expose(),
                MessageCrypto::new(key.expose(), config.appid.as_deref().unwrap_or_default())?,
            ))),
            _ => None,
        };
        Ok(AppState {
            token,
            mode: config.mode,
            envelope,
            scripts: scripts.clone(),
            dedup: Dedup::new(
                config.store_is_shared().then(|| store.clone()),
                config.reply_timeout,
                config.retry_cache_bytes,
            ),
            store,
            reply_timeout: config.reply_timeout,
            late: match (&services.api, &services.outbox) {
                (Some(api), Some(outbox)) => Arc::new(KfLateReplies::new(
                    api.clone(),
                    outbox.clone(),
                    scripts.clone(),
                )),
                _ => Arc::new(LogLateReplies),
            },
            services: services.clone(),
            limits: config.connections,
        })
    }
}
