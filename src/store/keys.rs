//! Key namespaces of the store, in one place, and the small typed operations on them
//! that the rest of the host shares: dedup claims, replay memory and the refresh lock.

use std::time::Duration;

use super::{Store, StoreError};

/// Lua scripts' data (`wx.store.get/set/incr/del`).
pub const DATA: &str = "data:";
/// De-duplication records of WeChat's retries.
pub const DEDUP: &str = "dedup:";
/// Cached access_tokens, per appid.
pub const TOKEN: &str = "token:";
/// Cross-instance locks (e.g. the access_token refresh).
pub const LOCK: &str = "lock:";
/// Signed callback queries already used (replay memory).
pub const REPLAY: &str = "replay:";
/// Health probes (`/healthz`, `/readyz`).
pub const HEALTH: &str = "health:";
/// Per-user sessions of scripts (`wx.session`).
pub const SESSION: &str = "session:";
/// Cached tickets (the JS-SDK's jsapi_ticket), per type and appid.
pub const TICKET: &str = "ticket:";

/// The open platform's state: its pushed ticket, its token, its authorizers' refresh
/// tokens and list.
pub const COMPONENT: &str = "component:";

/// Key of the latest `component_verify_ticket` of the platform `component_appid`.
pub fn component_ticket_key(component_appid: &str) -> String {
    format!("{COMPONENT}ticket:{component_appid}")
}

/// Key of the component_access_token of the platform `component_appid`.
pub fn component_token_key(component_appid: &str) -> String {
    format!("{COMPONENT}token:{component_appid}")
}

/// Key of the refresh token of the authorizer `appid` of the platform `component_appid`.
pub fn authorizer_refresh_key(component_appid: &str, appid: &str) -> String {
    format!("{COMPONENT}refresh:{component_appid}:{appid}")
}

/// Key of the list of the platform's authorizers (a JSON array of appids).
pub fn authorizers_key(component_appid: &str) -> String {
    format!("{COMPONENT}authorizers:{component_appid}")
}

/// Key remembering that an authorization code was exchanged (the redirect and the
/// `authorized` event carry the same code).
pub fn auth_code_key(component_appid: &str, code: &str) -> String {
    format!("{COMPONENT}code:{component_appid}:{code}")
}

/// Key of a script's value named `name`.
pub fn data_key(name: &str) -> String {
    format!("{DATA}{name}")
}

/// Key of the session of the user `openid` of the account `account` (its original ID,
/// `gh_…`), so accounts sharing a store keep their users' sessions apart.
pub fn session_key(account: &str, openid: &str) -> String {
    format!("{SESSION}{account}:{openid}")
}

/// Key of the dedup record for one inbound message (MsgId, or FromUserName+CreateTime).
pub fn dedup_key(message_id: &str) -> String {
    format!("{DEDUP}{message_id}")
}

/// Key of the cached access_token of `appid`.
pub fn token_key(appid: &str) -> String {
    format!("{TOKEN}{appid}")
}

/// Key of the cached ticket of type `kind` (`jsapi`) of `appid`.
pub fn ticket_key(kind: &str, appid: &str) -> String {
    format!("{TICKET}{kind}:{appid}")
}

/// Key of the lock named `name`.
pub fn lock_key(name: &str) -> String {
    format!("{LOCK}{name}")
}

/// Key remembering one use of a signed callback query, by its (verified, lowercase hex)
/// signature: the sha1 of token, timestamp and nonce, so every (timestamp, nonce) pair that
/// signs the same is one key.
pub fn replay_key(signature: &str) -> String {
    format!("{REPLAY}{signature}")
}

/// Key a health probe writes.
pub fn health_key(name: &str) -> String {
    format!("{HEALTH}{name}")
}

/// Records `key` as used for `ttl`; true the first time, false while an earlier use is
/// remembered (on every instance sharing the store).
pub async fn claim_once(store: &dyn Store, key: &str, ttl: Duration) -> Result<bool, StoreError> {
    store.set_nx(key, "1", Some(ttl)).await
}

/// Tries to take the lock `name` for `holder` (a value unique to the caller) for `ttl`;
/// true when taken. The TTL frees the lock if its holder dies.
pub async fn try_lock(
    store: &dyn Store,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    store.set_nx(&lock_key(name), holder, Some(ttl)).await
}

/// Releases the lock `name` only if `holder` still holds it; true when released.
pub async fn unlock(store: &dyn Store, name: &str, holder: &str) -> Result<bool, StoreError> {
    store.del_if_eq(&lock_key(name), holder).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[test]
    fn namespaces_are_distinct() {
        let all = [
            data_key("x"),
            dedup_key("x"),
            token_key("x"),
            lock_key("x"),
            replay_key("x"),
            health_key("x"),
            ticket_key("x", "x"),
            component_ticket_key("x"),
            component_token_key("x"),
            authorizer_refresh_key("x", "x"),
            authorizers_key("x"),
            auth_code_key("x", "x"),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(token_key("wx123"), "token:wx123");
        assert_eq!(ticket_key("jsapi", "wx123"), "ticket:jsapi:wx123");
    }

    #[tokio::test]
    async fn a_claim_holds_once_until_its_ttl() {
        let store = SqliteStore::open_in_memory().unwrap();
        let key = replay_key("abc");
        assert!(claim_once(&store, &key, Duration::from_millis(200))
            .await
            .unwrap());
        assert!(!claim_once(&store, &key, Duration::from_millis(200))
            .await
            .unwrap());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            claim_once(&store, &key, Duration::from_millis(200))
                .await
                .unwrap(),
            "forgotten after its ttl"
        );
    }

    #[tokio::test]
    async fn lock_is_released_only_by_its_holder() {
        let store = SqliteStore::open_in_memory().unwrap();
        let ttl = Duration::from_secs(30);
        assert!(try_lock(&store, "token", "a", ttl).await.unwrap());
        assert!(!try_lock(&store, "token", "b", ttl).await.unwrap());
        assert!(!unlock(&store, "token", "b").await.unwrap());
        assert!(unlock(&store, "token", "a").await.unwrap());
        assert!(try_lock(&store, "token", "b", ttl).await.unwrap());
    }
}
