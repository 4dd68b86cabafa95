//! Accounts: the Official Accounts one host serves. The top-level settings describe the
//! implicit account `default`, served at `/wechat` exactly as a single-account host always
//! did; every `[[accounts]]` table adds one served at `/wechat/<name>`.
//!
//! An [`Account`] holds what the callback needs to take a message for it: the token its
//! requests are signed with, its mode and envelope (its EncodingAESKey and appid), and the
//! dispatcher that answers it. Each dispatcher has the account's own services (API client and
//! access_token, retry-cache namespace, window tracker, `wx.store` space, outbox handle on the
//! host's one queue); see [`crate::host`] for how they are assembled.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Secret, SecurityMode};
use crate::dispatch::Dispatcher;
use crate::protocol::crypto::{CryptoError, MessageCrypto};
use crate::protocol::envelope::Envelope;

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
        })
    }
}

/// The `[[accounts]]` of a host by name (the `default` account is not among them: it is
/// served at `/wechat`, not `/wechat/default`).
pub type Accounts = HashMap<String, Arc<Account>>;
