//! A store that counts its failures: every operation that fails is counted under its name in
//! `wechat_lua_store_errors_total{op}`, so an operator sees a failing or unreachable store in
//! the metrics before users notice. [`super::open_with`] wraps every store it opens.

use std::sync::Arc;
use std::time::Duration;

use super::{OutboxItem, Store, StoreError, StoreFuture};

/// The store underneath, its failures counted.
pub struct Watched {
    inner: Arc<dyn Store>,
}

impl Watched {
    /// `inner`, its failures counted.
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(Watched { inner })
    }
}

/// `op`'s result, a failure counted under `name`.
fn counted<'a, T: Send + 'a>(name: &'static str, op: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
    Box::pin(async move {
        let result = op.await;
        if result.is_err() {
            crate::metrics::metrics().store_error(name);
        }
        result
    })
}

impl Store for Watched {
    fn get(&self, key: &str) -> StoreFuture<'_, Option<String>> {
        counted("get", self.inner.get(key))
    }

    fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> StoreFuture<'_, ()> {
        counted("set", self.inner.set(key, value, ttl))
    }

    fn set_nx(&self, key: &str, value: &str, ttl: Option<Duration>) -> StoreFuture<'_, bool> {
        counted("set_nx", self.inner.set_nx(key, value, ttl))
    }

    fn incr(&self, key: &str, by: i64) -> StoreFuture<'_, i64> {
        let op = self.inner.incr(key, by);
        Box::pin(async move {
            let result = op.await;
            // A value that is not a counter is the script's mistake, not the store's.
            if let Err(e) = &result {
                if !matches!(
                    e,
                    StoreError::NotAnInteger { .. } | StoreError::Overflow { .. }
                ) {
                    crate::metrics::metrics().store_error("incr");
                }
            }
            result
        })
    }

    fn del(&self, key: &str) -> StoreFuture<'_, bool> {
        counted("del", self.inner.del(key))
    }

    fn del_if_eq(&self, key: &str, expected: &str) -> StoreFuture<'_, bool> {
        counted("del_if_eq", self.inner.del_if_eq(key, expected))
    }

    fn set_if_eq(
        &self,
        key: &str,
        expected: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> StoreFuture<'_, bool> {
        counted("set_if_eq", self.inner.set_if_eq(key, expected, value, ttl))
    }

    fn outbox_push(&self, item: &OutboxItem) -> StoreFuture<'_, ()> {
        counted("outbox_push", self.inner.outbox_push(item))
    }

    fn outbox_take_due(
        &self,
        now_unix_ms: i64,
        limit: usize,
        lease: Duration,
    ) -> StoreFuture<'_, Vec<OutboxItem>> {
        counted(
            "outbox_take_due",
            self.inner.outbox_take_due(now_unix_ms, limit, lease),
        )
    }

    fn outbox_done(&self, id: &str) -> StoreFuture<'_, ()> {
        counted("outbox_done", self.inner.outbox_done(id))
    }

    fn outbox_retry(
        &self,
        id: &str,
        next_at_unix_ms: i64,
        attempts: u32,
        last_error: &str,
    ) -> StoreFuture<'_, ()> {
        counted(
            "outbox_retry",
            self.inner
                .outbox_retry(id, next_at_unix_ms, attempts, last_error),
        )
    }

    fn outbox_len(&self) -> StoreFuture<'_, usize> {
        counted("outbox_len", self.inner.outbox_len())
    }

    fn outbox_oldest(&self) -> StoreFuture<'_, Option<i64>> {
        counted("outbox_oldest", self.inner.outbox_oldest())
    }
}
