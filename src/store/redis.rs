//! Redis backend, for several host instances sharing one state.
//!
//! Keys live under a prefix (default `wechat-lua:`): plain keys as `<prefix>kv:<key>`
//! with native `PX` expiry, the outbox as a sorted set `<prefix>outbox:due` (score =
//! next_at in ms) plus a hash `<prefix>outbox:items` (id → JSON). Compare-and-delete and
//! the outbox claim are Lua scripts so they are atomic across instances.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, Script};
use serde::{Deserialize, Serialize};

use super::{ttl_ms, OutboxItem, Store, StoreError, StoreFuture};

/// Key prefix used when the spec names none.
pub const DEFAULT_PREFIX: &str = "wechat-lua:";

/// Deletes KEYS[1] only while it still holds ARGV[1].
const DEL_IF_EQ: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Sets KEYS[1] to ARGV[2] (with a PX of ARGV[3] when it is not 0) only while it still holds
/// ARGV[1].
const SET_IF_EQ: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[3] ~= '0' then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  else
    redis.call('SET', KEYS[1], ARGV[2])
  end
  return 1
end
return 0
";

/// Claims up to ARGV[2] ids due at ARGV[1] by moving their score to ARGV[3] (lease end);
/// returns a flat list id, json, id, json... Ids without a body are dropped as orphans.
const TAKE_DUE: &str = r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local body = redis.call('HGET', KEYS[2], id)
  if body then
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    out[#out + 1] = id
    out[#out + 1] = body
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
";

/// Rewrites item ARGV[1] with body ARGV[2] due at ARGV[3], unless it was done meanwhile.
const RETRY: &str = r"
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
";

/// Outbox item as stored in the items hash; `next_at` lives in the sorted set only.
#[derive(Serialize, Deserialize)]
struct StoredItem {
    payload: String,
    attempts: u32,
    created_at_unix_ms: i64,
    last_error: Option<String>,
}

/// The Redis store. One multiplexed, self-reconnecting connection per instance.
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    del_if_eq: Script,
    set_if_eq: Script,
    take_due: Script,
    retry: Script,
    oldest: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Splits a `redis://...?prefix=NAME` spec into the URL for the client and the prefix.
pub fn split_prefix(spec: &str) -> Result<(String, String), StoreError> {
    let Some((base, query)) = spec.split_once('?') else {
        return Ok((spec.to_owned(), DEFAULT_PREFIX.to_owned()));
    };
    let mut prefix = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("prefix", value)) => prefix = Some(value.to_owned()),
            _ => rest.push(pair),
        }
    }
    let prefix = prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
    if prefix.is_empty() {
        return Err(StoreError::InvalidSpec {
            spec: spec.to_owned(),
            reason: "empty key prefix".to_owned(),
        });
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, prefix))
}

/// Sorts a failure by what it says about the command: refused (never sent), unanswered or cut
/// off (sent, maybe applied), or answered with an error.
fn map_err(e: RedisError) -> StoreError {
    if e.is_connection_refusal() {
        StoreError::Unavailable(format!("redis: {e}"))
    } else if e.is_timeout() || e.is_connection_dropped() {
        // The command left this host: Redis may have run it, or run it when it resumes.
        StoreError::UnknownOutcome(format!("redis: {e}"))
    } else if e.is_io_error() {
        StoreError::Unavailable(format!("redis: {e}"))
    } else {
        StoreError::Backend(format!("redis: {e}"))
    }
}

/// The oldest `created_at_unix_ms` among the items hash's JSON bodies (false when empty). The
/// outbox is small, so one pass over it on a health check is cheap.
const OLDEST: &str = r"
local oldest = false
for _, body in ipairs(redis.call('HVALS', KEYS[1])) do
  local ok, item = pcall(cjson.decode, body)
  if ok and type(item.created_at_unix_ms) == 'number' then
    if not oldest or item.created_at_unix_ms < oldest then oldest = item.created_at_unix_ms end
  end
end
return oldest
";

impl RedisStore {
    /// Connects to `url` (`redis://HOST:PORT/DB`) and keeps keys under `prefix`; commands wait
    /// at most [`super::DEFAULT_TIMEOUT`] for their answer.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::connect_with_timeout(url, prefix, super::DEFAULT_TIMEOUT).await
    }

    /// Connects to `url` and keeps keys under `prefix`; connecting, and each command, waits at
    /// most `timeout` (a command past it fails as [`StoreError::UnknownOutcome`]).
    pub async fn connect_with_timeout(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let client = Client::open(url).map_err(|e| StoreError::InvalidSpec {
            spec: url.to_owned(),
            reason: e.to_string(),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(3);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| StoreError::Unavailable(format!("redis {url}: {e}")))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            del_if_eq: Script::new(DEL_IF_EQ),
            set_if_eq: Script::new(SET_IF_EQ),
            take_due: Script::new(TAKE_DUE),
            retry: Script::new(RETRY),
            oldest: Script::new(OLDEST),
        })
    }

    /// The key prefix this store writes under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn kv(&self, key: &str) -> String {
        format!("{}kv:{key}", self.prefix)
    }

    fn due_key(&self) -> String {
        format!("{}outbox:due", self.prefix)
    }

    fn items_key(&self) -> String {
        format!("{}outbox:items", self.prefix)
    }
}

impl Store for RedisStore {
    fn get(&self, key: &str) -> StoreFuture<'_, Option<String>> {
        let key = self.kv(key);
        let mut conn = self.conn.clone();
        Box::pin(async move {
            ::redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(map_err)
        })
    }

    fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> StoreFuture<'_, ()> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.kv(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_ms(ttl));
        }
        let mut conn = self.conn.clone();
        Box::pin(async move { cmd.query_async::<()>(&mut conn).await.map_err(map_err) })
    }

    fn set_nx(&self, key: &str, value: &str, ttl: Option<Duration>) -> StoreFuture<'_, bool> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.kv(key)).arg(value).arg("NX");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_ms(ttl));
        }
        let mut conn = self.conn.clone();
        Box::pin(async move {
            // SET NX answers OK when it set the key and nil when it did not.
            let reply: Option<String> = cmd.query_async(&mut conn).await.map_err(map_err)?;
            Ok(reply.is_some())
        })
    }

    fn incr(&self, key: &str, by: i64) -> StoreFuture<'_, i64> {
        let full = self.kv(key);
        let key = key.to_owned();
        let mut conn = self.conn.clone();
        Box::pin(async move {
            ::redis::cmd("INCRBY")
                .arg(&full)
                .arg(by)
                .query_async(&mut conn)
                .await
                .map_err(|e| {
                    let detail = e.detail().unwrap_or_default();
                    if detail.contains("not an integer") {
                        StoreError::NotAnInteger { key }
                    } else if detail.contains("overflow") {
                        StoreError::Overflow { key }
                    } else {
                        map_err(e)
                    }
                })
        })
    }

    fn del(&self, key: &str) -> StoreFuture<'_, bool> {
        let key = self.kv(key);
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let n: i64 = ::redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(n > 0)
        })
    }

    fn del_if_eq(&self, key: &str, expected: &str) -> StoreFuture<'_, bool> {
        let key = self.kv(key);
        let expected = expected.to_owned();
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let n: i64 = self
                .del_if_eq
                .key(&key)
                .arg(&expected)
                .invoke_async(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(n > 0)
        })
    }

    fn set_if_eq(
        &self,
        key: &str,
        expected: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> StoreFuture<'_, bool> {
        let key = self.kv(key);
        let (expected, value) = (expected.to_owned(), value.to_owned());
        let ttl = ttl.map_or(0, ttl_ms);
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let n: i64 = self
                .set_if_eq
                .key(&key)
                .arg(&expected)
                .arg(&value)
                .arg(ttl)
                .invoke_async(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(n > 0)
        })
    }

    fn outbox_push(&self, item: &OutboxItem) -> StoreFuture<'_, ()> {
        let stored = StoredItem {
            payload: item.payload.clone(),
            attempts: item.attempts,
            created_at_unix_ms: item.created_at_unix_ms,
            last_error: item.last_error.clone(),
        };
        let id = item.id.clone();
        let next_at = item.next_at_unix_ms;
        let (due, items) = (self.due_key(), self.items_key());
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let body = serde_json::to_string(&stored)
                .map_err(|e| StoreError::Backend(format!("encode outbox item: {e}")))?;
            ::redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&items)
                .arg(&id)
                .arg(&body)
                .ignore()
                .cmd("ZADD")
                .arg(&due)
                .arg(next_at)
                .arg(&id)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(map_err)
        })
    }

    fn outbox_take_due(
        &self,
        now_unix_ms: i64,
        limit: usize,
        lease: Duration,
    ) -> StoreFuture<'_, Vec<OutboxItem>> {
        let (due, items) = (self.due_key(), self.items_key());
        let lease_end =
            now_unix_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let mut conn = self.conn.clone();
        Box::pin(async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            let flat: Vec<String> = self
                .take_due
                .key(&due)
                .key(&items)
                .arg(now_unix_ms)
                .arg(limit)
                .arg(lease_end)
                .invoke_async(&mut conn)
                .await
                .map_err(map_err)?;
            flat.chunks_exact(2)
                .map(|pair| {
                    let stored: StoredItem = serde_json::from_str(&pair[1]).map_err(|e| {
                        StoreError::Backend(format!("corrupt outbox item {:?}: {e}", pair[0]))
                    })?;
                    Ok(OutboxItem {
                        id: pair[0].clone(),
                        payload: stored.payload,
                        attempts: stored.attempts,
                        next_at_unix_ms: lease_end,
                        created_at_unix_ms: stored.created_at_unix_ms,
                        last_error: stored.last_error,
                    })
                })
                .collect()
        })
    }

    fn outbox_done(&self, id: &str) -> StoreFuture<'_, ()> {
        let id = id.to_owned();
        let (due, items) = (self.due_key(), self.items_key());
        let mut conn = self.conn.clone();
        Box::pin(async move {
            ::redis::pipe()
                .atomic()
                .cmd("ZREM")
                .arg(&due)
                .arg(&id)
                .ignore()
                .cmd("HDEL")
                .arg(&items)
                .arg(&id)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(map_err)
        })
    }

    fn outbox_retry(
        &self,
        id: &str,
        next_at_unix_ms: i64,
        attempts: u32,
        last_error: &str,
    ) -> StoreFuture<'_, ()> {
        let id = id.to_owned();
        let last_error = last_error.to_owned();
        let (due, items) = (self.due_key(), self.items_key());
        let mut conn = self.conn.clone();
        Box::pin(async move {
            // The caller holds the lease on this item, so reading the body here and
            // rewriting it in the script races with nobody but `outbox_done`, which the
            // script's existence check covers.
            let body: Option<String> = ::redis::cmd("HGET")
                .arg(&items)
                .arg(&id)
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
            let Some(body) = body else {
                return Ok(());
            };
            let mut stored: StoredItem = serde_json::from_str(&body)
                .map_err(|e| StoreError::Backend(format!("corrupt outbox item {id:?}: {e}")))?;
            stored.attempts = attempts;
            stored.last_error = Some(last_error);
            let body = serde_json::to_string(&stored)
                .map_err(|e| StoreError::Backend(format!("encode outbox item: {e}")))?;
            self.retry
                .key(&due)
                .key(&items)
                .arg(&id)
                .arg(&body)
                .arg(next_at_unix_ms)
                .invoke_async::<i64>(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(())
        })
    }

    fn outbox_len(&self) -> StoreFuture<'_, usize> {
        let items = self.items_key();
        let mut conn = self.conn.clone();
        Box::pin(async move {
            ::redis::cmd("HLEN")
                .arg(&items)
                .query_async(&mut conn)
                .await
                .map_err(map_err)
        })
    }

    fn outbox_oldest(&self) -> StoreFuture<'_, Option<i64>> {
        let items = self.items_key();
        let mut conn = self.conn.clone();
        Box::pin(async move {
            // Lua `false` comes back as nil; Lua numbers as integers.
            self.oldest
                .key(&items)
                .invoke_async::<Option<i64>>(&mut conn)
                .await
                .map_err(map_err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_prefix_defaults_and_strips_param() {
        let (url, prefix) = split_prefix("redis://127.0.0.1:6379/2").unwrap();
        assert_eq!(
            (url.as_str(), prefix.as_str()),
            ("redis://127.0.0.1:6379/2", DEFAULT_PREFIX)
        );
        let (url, prefix) = split_prefix("redis://h:1/0?prefix=bot1:&protocol=resp3").unwrap();
        assert_eq!(url, "redis://h:1/0?protocol=resp3");
        assert_eq!(prefix, "bot1:");
        let (url, prefix) = split_prefix("redis://h:1/0?prefix=x:").unwrap();
        assert_eq!((url.as_str(), prefix.as_str()), ("redis://h:1/0", "x:"));
        assert!(split_prefix("redis://h:1/0?prefix=").is_err());
    }

    #[tokio::test]
    async fn connect_to_closed_port_is_unavailable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = RedisStore::connect(&format!("redis://127.0.0.1:{port}/0"), DEFAULT_PREFIX)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
}
