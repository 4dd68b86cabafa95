//! The outbox: sends that failed for a transient reason (-1 busy, timeouts, connection errors)
//! — late replies, `wx.kf.send`, template sends — are kept in the store and retried with
//! backoff until they succeed or fail for good, surviving restarts. Nothing is dropped
//! silently: a send that fails for good is logged with its errcode.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{watch, Notify};

use super::{ApiError, WechatClient};
use crate::store::{OutboxItem, Store, StoreError};

/// Attempts after which a send is given up (about a day of backoff).
const MAX_ATTEMPTS: u32 = 16;
/// First retry delay; doubles each attempt up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(2);
const MAX_DELAY: Duration = Duration::from_secs(3600);
/// How long a taken item is reserved for this instance before another may try it.
const LEASE: Duration = Duration::from_secs(60);
/// How often the worker looks for due items when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);

/// One queued call: a POST to `path` with `body`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueuedCall {
    /// API path, e.g. `/cgi-bin/message/custom/send`.
    pub path: String,
    /// The JSON body.
    pub body: Value,
    /// What this send is, for log lines (e.g. `late reply to <openid hash>`).
    pub purpose: String,
}

/// Delay before retry number `attempts` (1-based).
pub fn backoff(attempts: u32) -> Duration {
    super::transport::backoff(FIRST_DELAY, MAX_DELAY, attempts.saturating_sub(1))
}

/// The durable queue of sends to retry, and its worker.
pub struct Outbox {
    store: Arc<dyn Store>,
    api: WechatClient,
    /// Wakes the worker when something is queued.
    wake: Notify,
}

impl Outbox {
    /// An outbox over `store`, sending through `api`.
    pub fn new(store: Arc<dyn Store>, api: WechatClient) -> Arc<Outbox> {
        Arc::new(Outbox {
            store,
            api,
            wake: Notify::new(),
        })
    }

    /// Queues a call that just failed with `error`, to be retried after the first backoff.
    pub async fn enqueue(&self, call: &QueuedCall, error: &ApiError) -> Result<String, StoreError> {
        use rand::distr::{Alphanumeric, SampleString};
        let id = Alphanumeric.sample_string(&mut rand::rng(), 20);
        let now = crate::clock::unix_millis();
        let item = OutboxItem {
            id: id.clone(),
            payload: serde_json::to_string(call).map_err(|e| StoreError::Backend(e.to_string()))?,
            attempts: 1,
            next_at_unix_ms: now + backoff(1).as_millis() as i64,
            created_at_unix_ms: now,
            last_error: Some(error.to_string()),
        };
        self.store.outbox_push(&item).await?;
        tracing::warn!(
            purpose = %call.purpose,
            errcode = error.errcode(),
            "send failed for a transient reason; queued in the outbox for retry"
        );
        self.wake.notify_one();
        Ok(id)
    }

    /// Sends what is due now; returns how many items it handled.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let items = self
            .store
            .outbox_take_due(crate::clock::unix_millis(), 32, LEASE)
            .await?;
        let count = items.len();
        for item in items {
            self.attempt(item).await?;
        }
        Ok(count)
    }

    async fn attempt(&self, item: OutboxItem) -> Result<(), StoreError> {
        let call: QueuedCall = match serde_json::from_str(&item.payload) {
            Ok(call) => call,
            Err(e) => {
                tracing::error!(id = %item.id, "dropping an unreadable outbox item: {e}");
                return self.store.outbox_done(&item.id).await;
            }
        };
        match self.api.post(&call.path, &call.body).await {
            Ok(_) => {
                tracing::info!(purpose = %call.purpose, attempts = item.attempts + 1, "queued send delivered");
                self.store.outbox_done(&item.id).await
            }
            Err(e) if e.is_transient() && item.attempts + 1 < MAX_ATTEMPTS => {
                let attempts = item.attempts + 1;
                let delay = match &e {
                    ApiError::RetryLater { retry_after, .. } => {
                        (*retry_after).max(backoff(attempts))
                    }
                    _ => backoff(attempts),
                };
                tracing::warn!(purpose = %call.purpose, attempts, errcode = e.errcode(), "queued send failed again; retrying later");
                self.store
                    .outbox_retry(
                        &item.id,
                        crate::clock::unix_millis() + delay.as_millis() as i64,
                        attempts,
                        &e.to_string(),
                    )
                    .await
            }
            Err(e) => {
                tracing::error!(
                    purpose = %call.purpose,
                    attempts = item.attempts + 1,
                    errcode = e.errcode(),
                    errmsg = %e.errmsg(),
                    "queued send failed for good; dropped from the outbox"
                );
                self.store.outbox_done(&item.id).await
            }
        }
    }

    /// Items waiting, for metrics and status.
    pub async fn len(&self) -> Result<usize, StoreError> {
        self.store.outbox_len().await
    }

    /// Whether nothing waits.
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len().await? == 0)
    }

    /// Runs the worker until `stop` turns true: sends due items, sleeps until something is
    /// queued or a second passes. Items stay in the store across a stop.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            match self.run_once().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!("outbox: store unavailable: {e}"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::debug!("outbox worker stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(40), MAX_DELAY);
    }
}
