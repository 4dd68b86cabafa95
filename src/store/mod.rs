//! Persistent state shared by the host: one [`Store`] interface with an embedded
//! SQLite backend (the default, one file in the data directory) and a Redis backend
//! (several host instances behind a load balancer).
//!
//! It holds the access_token and its refresh lock (written by `api::token_store`), de-duplication records of
//! WeChat's retries, Lua scripts' data (`wx.store.*`) and an outbox of sends to retry.
//! Key namespaces live in [`keys`]; script values are encoded by [`script_data`]; every store
//! opened by [`open`] counts its failures per operation ([`watched`]).
//!
//! A failure says whether the operation may have taken effect: [`StoreError::Unavailable`]
//! and [`StoreError::Backend`] are definite (nothing was written), while
//! [`StoreError::UnknownOutcome`] means the store did not answer in time, or the connection
//! broke, after the command was sent: a write may have been applied, or may still be.

pub mod keys;
pub mod redis;
pub mod script_data;
pub mod sqlite;
pub mod watched;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use self::redis::RedisStore;
pub use self::sqlite::SqliteStore;

/// File name of the embedded store inside the data directory.
pub const SQLITE_FILE_NAME: &str = "wechat-lua.db";

/// Spec that opens a private in-memory SQLite store (tests, throwaway runs).
pub const SQLITE_MEMORY_SPEC: &str = "sqlite::memory:";

/// Errors of the store, whichever backend is behind it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend reported a failure (SQL error, Redis error reply, corrupt row).
    #[error("store backend error: {0}")]
    Backend(String),
    /// `incr` met a value that is not a base-10 i64.
    #[error("value at key {key:?} is not an integer")]
    NotAnInteger {
        /// The key holding the non-integer value.
        key: String,
    },
    /// `incr` would leave the i64 range.
    #[error("increment of key {key:?} would overflow")]
    Overflow {
        /// The key whose value would overflow.
        key: String,
    },
    /// The backend cannot be reached (Redis down, SQLite worker gone): the operation was not
    /// carried out.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// No answer in time, or the connection broke while the command was on its way: a write
    /// may have been applied (or may still be, once a stalled store resumes).
    #[error("no answer from the store, the outcome is unknown: {0}")]
    UnknownOutcome(String),
    /// The spec given to [`open`] names no known backend or is malformed.
    #[error("invalid store spec {spec:?}: {reason}")]
    InvalidSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// One queued send. `payload` is JSON the caller interprets (e.g. `{"kind":"kf","body":{...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Unique id chosen by the caller; pushing an existing id replaces that item.
    pub id: String,
    /// Opaque JSON describing the send.
    pub payload: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the item is due; for items returned by `outbox_take_due`, the end of the lease.
    pub next_at_unix_ms: i64,
    /// When the item was first queued.
    pub created_at_unix_ms: i64,
    /// Error of the last failed attempt, for operators.
    pub last_error: Option<String>,
}

/// Result of a store operation, boxed so that [`Store`] stays dyn-compatible.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// The host's persistent state: a string key/value space with TTLs plus an outbox.
///
/// Every operation is atomic on its own, also across host instances sharing one backend.
pub trait Store: Send + Sync + 'static {
    /// Reads a key; expired keys read as absent.
    fn get(&self, key: &str) -> StoreFuture<'_, Option<String>>;
    /// Writes a key, replacing any value and TTL; `ttl: None` keeps it forever.
    fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> StoreFuture<'_, ()>;
    /// Sets only when absent (locks, dedup claims); true when this call set it.
    fn set_nx(&self, key: &str, value: &str, ttl: Option<Duration>) -> StoreFuture<'_, bool>;
    /// Atomic across instances; a missing key counts from 0; a non-integer value is an error.
    /// An existing key keeps its TTL.
    fn incr(&self, key: &str, by: i64) -> StoreFuture<'_, i64>;
    /// Deletes a key; true when a live value was there.
    fn del(&self, key: &str) -> StoreFuture<'_, bool>;
    /// Deletes only when the value is still `expected` (lock release, "drop the token
    /// only if it is still the one that failed"); true when it deleted.
    fn del_if_eq(&self, key: &str, expected: &str) -> StoreFuture<'_, bool>;
    /// Replaces the value only while it is still `expected` (compare-and-set: a rotated
    /// credential is stored only over the one it replaces, never over a newer one another
    /// instance stored meanwhile); true when it wrote. An absent key never matches.
    fn set_if_eq(
        &self,
        key: &str,
        expected: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> StoreFuture<'_, bool>;
    /// Queues a send durably (survives restarts); an existing id is replaced.
    fn outbox_push(&self, item: &OutboxItem) -> StoreFuture<'_, ()>;
    /// Claims up to `limit` items due at `now` for `lease` (so two instances never take
    /// the same item), oldest due first, and returns them. An item neither done nor
    /// retried becomes due again when the lease ends.
    fn outbox_take_due(
        &self,
        now_unix_ms: i64,
        limit: usize,
        lease: Duration,
    ) -> StoreFuture<'_, Vec<OutboxItem>>;
    /// Removes a sent item; removing an unknown id is not an error.
    fn outbox_done(&self, id: &str) -> StoreFuture<'_, ()>;
    /// Records a failed attempt and when to try again; an unknown id is left absent.
    fn outbox_retry(
        &self,
        id: &str,
        next_at_unix_ms: i64,
        attempts: u32,
        last_error: &str,
    ) -> StoreFuture<'_, ()>;
    /// Number of queued items, leased or not.
    fn outbox_len(&self) -> StoreFuture<'_, usize>;
    /// When the oldest queued item was first queued (Unix ms), `None` when the outbox is
    /// empty: how far behind the sends are, for `/healthz`.
    fn outbox_oldest(&self) -> StoreFuture<'_, Option<i64>>;
}

/// Default of how long a store command may wait for its answer (`store_timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the store operation `op` (named `name` in metrics) for at most `limit`: past it the
/// operation is abandoned and reported as [`StoreError::UnknownOutcome`], since a command
/// already sent may still be applied. The message path bounds its store calls with this, so
/// a stalled store cannot use up the reply deadline.
pub async fn within<T>(
    name: &'static str,
    limit: Duration,
    op: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, op).await {
        Ok(result) => result,
        Err(_) => {
            crate::metrics::metrics().store_error(name);
            Err(StoreError::UnknownOutcome(format!(
                "{name} got no answer within {} ms",
                limit.as_millis()
            )))
        }
    }
}

/// Opens the store named by `spec` with the default command timeout; see [`open_with`].
pub async fn open(spec: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    open_with(spec, data_dir, DEFAULT_TIMEOUT).await
}

/// Opens the store named by `spec`, its failures counted per operation ([`watched`]):
/// - `None` or `""`: embedded SQLite at `<data_dir>/wechat-lua.db` (directory created);
/// - `"sqlite::memory:"`: a private in-memory SQLite store;
/// - `"sqlite://PATH"` or `"sqlite:PATH"`: SQLite at PATH;
/// - `"redis://HOST:PORT/DB"` (or `rediss://`), optionally `?prefix=NAME:` for the key
///   prefix (default [`self::redis::DEFAULT_PREFIX`]); each command waits at most `timeout`
///   for its answer.
pub async fn open_with(
    spec: Option<&str>,
    data_dir: &Path,
    timeout: Duration,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(watched::Watched::wrap(
        open_backend(spec, data_dir, timeout).await?,
    ))
}

async fn open_backend(
    spec: Option<&str>,
    data_dir: &Path,
    timeout: Duration,
) -> Result<Arc<dyn Store>, StoreError> {
    let spec = spec.map(str::trim).unwrap_or("");
    if spec.is_empty() {
        let dir = data_dir.to_path_buf();
        let store = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create data dir {}: {e}", dir.display()))
            })?;
            SqliteStore::open(&dir.join(SQLITE_FILE_NAME))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("sqlite open task failed: {e}")))??;
        return Ok(Arc::new(store));
    }
    if spec == SQLITE_MEMORY_SPEC {
        return Ok(Arc::new(SqliteStore::open_in_memory()?));
    }
    if let Some(path) = spec
        .strip_prefix("sqlite://")
        .or_else(|| spec.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(StoreError::InvalidSpec {
                spec: spec.to_owned(),
                reason: "missing SQLite file path".to_owned(),
            });
        }
        let path = std::path::PathBuf::from(path);
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
            .await
            .map_err(|e| StoreError::Backend(format!("sqlite open task failed: {e}")))??;
        return Ok(Arc::new(store));
    }
    if spec.starts_with("redis://") || spec.starts_with("rediss://") {
        let (url, prefix) = self::redis::split_prefix(spec)?;
        return Ok(Arc::new(
            RedisStore::connect_with_timeout(&url, &prefix, timeout).await?,
        ));
    }
    Err(StoreError::InvalidSpec {
        spec: spec.to_owned(),
        reason: "expected empty, sqlite::memory:, sqlite://PATH or redis://HOST:PORT/DB".to_owned(),
    })
}

/// Milliseconds since the Unix epoch on this host's clock (TTL bookkeeping).
pub(crate) fn now_unix_ms() -> i64 {
    crate::clock::unix_millis()
}

/// A TTL in whole milliseconds, at least 1 so that a zero TTL means "already gone"
/// rather than "forever" or a backend error.
pub(crate) fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_rejects_unknown_spec() {
        let dir = tempfile::tempdir().unwrap();
        let err = open(Some("mysql://x"), dir.path()).await.err().unwrap();
        assert!(matches!(err, StoreError::InvalidSpec { .. }), "{err:?}");
        let err = open(Some("sqlite:"), dir.path()).await.err().unwrap();
        assert!(matches!(err, StoreError::InvalidSpec { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn open_default_creates_db_in_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested").join("data");
        let store = open(None, &data).await.unwrap();
        store.set("k", "v", None).await.unwrap();
        assert!(data.join(SQLITE_FILE_NAME).exists());
        let store = open(Some(""), &data).await.unwrap();
        assert_eq!(store.get("k").await.unwrap().as_deref(), Some("v"));
    }

    #[tokio::test]
    async fn open_memory_and_explicit_path() {
        let dir = tempfile::tempdir().unwrap();
        let mem = open(Some(SQLITE_MEMORY_SPEC), dir.path()).await.unwrap();
        mem.set("a", "1", None).await.unwrap();
        assert_eq!(mem.get("a").await.unwrap().as_deref(), Some("1"));
        let file = dir.path().join("x.db");
        let spec = format!("sqlite://{}", file.display());
        let s = open(Some(&spec), dir.path()).await.unwrap();
        s.set("b", "2", None).await.unwrap();
        assert!(file.exists());
    }

    #[test]
    fn ttl_ms_is_never_zero() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_millis(1500)), 1500);
    }
}
