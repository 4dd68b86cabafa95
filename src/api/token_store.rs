//! The access_token kept in the store, so a restart does not spend one of the account's 2000
//! daily fetches, and a lock so that with a shared store exactly one instance fetches; the
//! jsapi_ticket is kept the same way under its own key and lock. It lives beside the token
//! manager, so that `store` depends on nothing above it.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::token::{CachedToken, TokenPersistence};
use crate::store::keys::{ticket_key, token_key, try_lock, unlock};
use crate::store::Store;

/// How long a fetch lock lives if its holder dies mid-fetch.
const FETCH_LOCK_TTL: Duration = Duration::from_secs(30);

/// [`TokenPersistence`] over a [`Store`].
pub struct StoreTokenPersistence {
    store: Arc<dyn Store>,
    /// Where the token (or ticket) is kept.
    key: String,
    /// The lock one instance holds while it fetches.
    lock_name: String,
    /// Identifies this instance as the lock holder.
    holder: String,
}

impl StoreTokenPersistence {
    /// Persistence of `appid`'s access_token in `store`.
    pub fn new(store: Arc<dyn Store>, appid: &str) -> StoreTokenPersistence {
        Self::at(store, token_key(appid), format!("token-fetch:{appid}"))
    }

    /// Persistence of `appid`'s jsapi_ticket in `store`.
    pub fn jsapi_ticket(store: Arc<dyn Store>, appid: &str) -> StoreTokenPersistence {
        Self::at(
            store,
            ticket_key("jsapi", appid),
            format!("ticket-fetch:jsapi:{appid}"),
        )
    }

    /// Persistence of the open platform `component_appid`'s component_access_token.
    pub fn component_token(store: Arc<dyn Store>, component_appid: &str) -> StoreTokenPersistence {
        Self::at(
            store,
            crate::store::keys::component_token_key(component_appid),
            format!("component-token-fetch:{component_appid}"),
        )
    }

    fn at(store: Arc<dyn Store>, key: String, lock_name: String) -> StoreTokenPersistence {
        use rand::distr::{Alphanumeric, SampleString};
        StoreTokenPersistence {
            store,
            key,
            lock_name,
            holder: Alphanumeric.sample_string(&mut rand::rng(), 16),
        }
    }
}

impl TokenPersistence for StoreTokenPersistence {
    fn load(&self) -> BoxFuture<'_, Option<CachedToken>> {
        Box::pin(async move {
            let raw = match self.store.get(&self.key).await {
                Ok(raw) => raw?,
                Err(e) => {
                    tracing::warn!(key = %self.key, "cannot read the stored token: {e}");
                    return None;
                }
            };
            let (expires, token) = raw.split_once(':')?;
            Some(CachedToken {
                access_token: token.to_string(),
                expires_at_unix: expires.parse().ok()?,
            })
        })
    }

    fn save(&self, token: &CachedToken) -> BoxFuture<'_, ()> {
        let value = format!("{}:{}", token.expires_at_unix, token.access_token);
        let now = crate::clock::unix_secs();
        let ttl = Duration::from_secs((token.expires_at_unix - now).max(1) as u64);
        Box::pin(async move {
            if let Err(e) = self.store.set(&self.key, &value, Some(ttl)).await {
                tracing::warn!(key = %self.key, "cannot keep the token in the store: {e}");
            }
        })
    }

    fn lock_fetch(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            match try_lock(
                self.store.as_ref(),
                &self.lock_name,
                &self.holder,
                FETCH_LOCK_TTL,
            )
            .await
            {
                Ok(taken) => taken,
                // A store that cannot lock must not stop the bot from getting a token.
                Err(e) => {
                    tracing::warn!(lock = %self.lock_name, "fetch lock unavailable, fetching anyway: {e}");
                    true
                }
            }
        })
    }

    fn unlock_fetch(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = unlock(self.store.as_ref(), &self.lock_name, &self.holder).await;
        })
    }
}
