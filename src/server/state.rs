//! What every request handler shares.

use std::sync::Arc;

use crate::config::{Config, Secret, SecurityMode};
use crate::protocol::crypto::{CryptoError, MessageCrypto};
use crate::script::ScriptHost;
use crate::store::Store;

/// Shared state of the HTTP handlers.
pub struct AppState {
    /// The token shared with the WeChat console; signs every callback.
    pub token: Secret,
    /// Plaintext, compatible or safe mode.
    pub mode: SecurityMode,
    /// Message encryption, present unless the mode is plain.
    pub crypto: Option<MessageCrypto>,
    /// The script workers.
    pub scripts: Arc<ScriptHost>,
    /// Persistent state (dedup records, script data, outbox).
    pub store: Arc<dyn Store>,
}

impl AppState {
    /// Builds the state from the settings; an unusable EncodingAESKey stops start-up here.
    pub fn new(
        config: &Config,
        scripts: Arc<ScriptHost>,
        store: Arc<dyn Store>,
    ) -> Result<AppState, CryptoError> {
        let crypto = match (&config.encoding_aes_key, config.mode) {
            (Some(key), mode) if mode != SecurityMode::Plain => Some(MessageCrypto::new(
                key.expose(),
                config.appid.as_deref().unwrap_or_default(),
            )?),
            _ => None,
        };
        Ok(AppState {
            token: config.token.clone(),
            mode: config.mode,
            crypto,
            scripts,
            store,
        })
    }
}
