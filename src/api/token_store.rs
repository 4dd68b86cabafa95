//! The access_token kept in the store, so a restart does not spend one of the account's 2000
//! daily fetches, and a lock so that with a shared store exactly one instance fetches. It
//! lives beside the token manager, so that `store` depends on nothing above it.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::token::{CachedToken, TokenPersistence};
use crate::store::keys::{token_key, try_lock, unlock};
use crate::store::Store;

/// How long a fetch lock lives if its holder dies mid-fetch.
const FETCH_LOCK_TTL: Duration = Duration::from_secs(30);

/// [`TokenPersistence`] over a [`Store`].
pub struct StoreTokenPersistence {
    store: Arc<dyn Store>,
    appid: String,
    /// Identifies this instance as the lock holder.
    holder: String,
}

impl StoreTokenPersistence {
    /// Persistence of `appid`'s token in `store`.
    pub fn new(store: Arc<dyn Store>, appid: &str) -> StoreTokenPersistence {
        use rand::distr::{Alphanumeric, SampleString};
        StoreTokenPersistence {
            store,
            appid: appid.to_string(),
            holder: Alphanumeric.sample_string(&mut rand::rng(), 16),
        }
    }

    fn lock_name(&self) -> String {
        format!("token-fetch:{}", self.appid)
    }
}

impl TokenPersistence for StoreTokenPersistence {
    fn load(&self) -> BoxFuture<'_, Option<CachedToken>> {
        Box::pin(async move {
            let raw = match self.store.get(&token_key(&self.appid)).await {
                Ok(raw) => raw?,
                Err(e) => {
                    tracing::warn!("cannot read the stored access_token: {e}");
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
            if let Err(e) = self
                .store
                .set(&token_key(&self.appid), &value, Some(ttl))
                .await
            {
                tracing::warn!("cannot keep the access_token in the store: {e}");
            }
        })
    }

    fn lock_fetch(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            match try_lock(
                self.store.as_ref(),
                &self.lock_name(),
                &self.holder,
                FETCH_LOCK_TTL,
            )
            .await
            {
                Ok(taken) => taken,
                // A store that cannot lock must not stop the bot from getting a token.
                Err(e) => {
                    tracing::warn!("token fetch lock unavailable, fetching anyway: {e}");
                    true
                }
            }
        })
    }

    fn unlock_fetch(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = unlock(self.store.as_ref(), &self.lock_name(), &self.holder).await;
        })
    }
}
