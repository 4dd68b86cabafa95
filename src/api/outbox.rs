//! The outbox: sends that failed for a transient reason (-1 busy, timeouts, connection errors)
//! — late replies, `wx.kf.send`, template and mass sends — are kept in the store and retried
//! with backoff until they succeed or fail for good, surviving restarts. Nothing is dropped
//! silently: a send that fails for good is logged with its errcode.
//!
//! A send goes out again only when that cannot deliver it twice ([`QueuedCall::may_send_again`]):
//! after a definite failure always; after an ambiguous one (the request went out, no answer
//! came) only when WeChat deduplicates it by an idempotency key (`client_msg_id` of template
//! sends, `clientmsgid` of mass sends) and the key is still within the time WeChat keeps it.
//! A customer-service message has no key, so it is sent at most once. Every attempt is
//! recorded as begun in the store before its request leaves, so an item found begun but not
//! finished (its host was killed mid-attempt) gets the same rule.

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
/// Added to the longest one call can take to make the lease on a taken item, so the lease
/// never ends while its attempt may still be running.
const LEASE_MARGIN: Duration = Duration::from_secs(2);
/// How often the worker looks for due items when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);
/// How long WeChat keeps a template send's `client_msg_id` ("10分钟有效"), less a minute for
/// the time between an attempt's start and the moment it is recorded.
const TEMPLATE_KEY_WINDOW: Duration = Duration::from_secs(9 * 60);
/// How long WeChat checks a mass send's `clientmsgid` (24 hours), less an hour.
const MASS_KEY_WINDOW: Duration = Duration::from_secs(23 * 3600);

/// One queued call: a POST to `path` with `body`, and what is known of its attempts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueuedCall {
    /// API path, e.g. `/cgi-bin/message/custom/send`.
    pub path: String,
    /// The JSON body.
    pub body: Value,
    /// What this send is, for log lines (e.g. `late reply to <openid hash>`).
    pub purpose: String,
    /// Attempts begun, written to the store before each request leaves. More begun than
    /// finished ([`OutboxItem::attempts`]) means the host stopped in the middle of one.
    #[serde(default)]
    pub begun: u32,
    /// When the latest attempt began (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begun_at_unix_ms: Option<i64>,
    /// When the first attempt that may have reached WeChat began (Unix ms): from then on only
    /// the idempotency key keeps a retry from delivering twice, for as long as WeChat keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_since_unix_ms: Option<i64>,
    /// The appid of the account the call is for, stamped when it is queued: the accounts of
    /// one host share one queue, and each item goes out with its own account's token. Items
    /// queued before accounts existed have none and go out with the queue's first account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
}

impl QueuedCall {
    /// A call not tried yet.
    pub fn new(path: impl Into<String>, body: Value, purpose: impl Into<String>) -> QueuedCall {
        QueuedCall {
            path: path.into(),
            body,
            purpose: purpose.into(),
            begun: 0,
            begun_at_unix_ms: None,
            unknown_since_unix_ms: None,
            appid: None,
        }
    }

    /// The key WeChat deduplicates this call by, and for how long (less a margin), when it
    /// has one: `client_msg_id` of a template send (per openid), `clientmsgid` of a mass send.
    pub fn idempotency_key(&self) -> Option<(&str, Duration)> {
        let (field, window) = match self.path.as_str() {
            super::template::SEND_PATH => ("client_msg_id", TEMPLATE_KEY_WINDOW),
            super::mass::SENDALL_PATH | super::mass::SEND_PATH => ("clientmsgid", MASS_KEY_WINDOW),
            _ => return None,
        };
        let key = self.body.get(field)?.as_str().filter(|k| !k.is_empty())?;
        Some((key, window))
    }

    /// Whether this call may be sent again after failing with `error`: the failure is
    /// transient, and either certainly did nothing or is deduplicated by WeChat.
    pub fn may_send_again(&self, error: &ApiError) -> bool {
        error.is_transient() && (!error.outcome_unknown() || self.idempotency_key().is_some())
    }

    /// Whether the key no longer protects a retry at `now`: an attempt may have reached
    /// WeChat longer ago than WeChat keeps the key.
    fn key_expired(&self, now_unix_ms: i64) -> bool {
        match (self.unknown_since_unix_ms, self.idempotency_key()) {
            (Some(since), Some((_, window))) => {
                now_unix_ms.saturating_sub(since) > window.as_millis() as i64
            }
            _ => false,
        }
    }
}

/// Delay before retry number `attempts` (1-based).
pub fn backoff(attempts: u32) -> Duration {
    super::transport::backoff(FIRST_DELAY, MAX_DELAY, attempts.saturating_sub(1))
}

/// Why a send whose outcome is unknown was not sent again (the `reason` of
/// `wechat_lua_sends_unknown_outcome_total`).
pub mod unknown_reason {
    /// The request went out and no answer came; the call has no idempotency key.
    pub const ANSWER_LOST: &str = "answer_lost";
    /// The host stopped (killed, crashed) while the attempt was in flight.
    pub const IN_FLIGHT_AT_STOP: &str = "in_flight_at_stop";
    /// The idempotency key outlived the time WeChat keeps it.
    pub const KEY_EXPIRED: &str = "key_expired";
}

/// The durable queue of sends to retry, and its worker.
pub struct Outbox {
    store: Arc<dyn Store>,
    /// The account this handle queues for (its appid is stamped on what it queues).
    api: WechatClient,
    /// Every account's client by appid, shared by the handles of one queue, so the one worker
    /// sends each item with its own account's token.
    senders: Arc<std::sync::Mutex<std::collections::HashMap<String, WechatClient>>>,
    /// How long a taken item is reserved for this instance before another may try it: longer
    /// than one attempt can take, so two attempts of one item never overlap.
    lease: Duration,
    /// Wakes the worker when something is queued.
    wake: Arc<Notify>,
}

impl Outbox {
    /// An outbox over `store`, sending through `api`.
    pub fn new(store: Arc<dyn Store>, api: WechatClient) -> Arc<Outbox> {
        let lease = api.longest_call() + LEASE_MARGIN;
        let senders = [(api.appid().to_string(), api.clone())]
            .into_iter()
            .collect();
        Arc::new(Outbox {
            store,
            api,
            senders: Arc::new(std::sync::Mutex::new(senders)),
            lease,
            wake: Arc::new(Notify::new()),
        })
    }

    /// A handle on the same queue for another account, whose calls go out with `api`: it
    /// queues into the same store and wakes the same worker (run one worker per queue).
    pub fn for_account(&self, api: WechatClient) -> Arc<Outbox> {
        crate::sync::lock(&self.senders).insert(api.appid().to_string(), api.clone());
        Arc::new(Outbox {
            store: self.store.clone(),
            lease: self.lease.max(api.longest_call() + LEASE_MARGIN),
            api,
            senders: self.senders.clone(),
            wake: self.wake.clone(),
        })
    }

    /// The client `call` goes out with: its account's, or this handle's for an item queued
    /// without an appid; `None` for an account no longer configured.
    fn sender(&self, call: &QueuedCall) -> Option<WechatClient> {
        match call.appid.as_deref() {
            None => Some(self.api.clone()),
            Some(appid) if appid == self.api.appid() => Some(self.api.clone()),
            Some(appid) => crate::sync::lock(&self.senders).get(appid).cloned(),
        }
    }

    /// Queues a call that just failed with `error`, to be retried after the first backoff.
    /// Callers check [`QueuedCall::may_send_again`] first.
    pub async fn enqueue(&self, call: &QueuedCall, error: &ApiError) -> Result<String, StoreError> {
        use rand::distr::{Alphanumeric, SampleString};
        let id = Alphanumeric.sample_string(&mut rand::rng(), 20);
        let now = crate::clock::unix_millis();
        let mut call = call.clone();
        call.appid
            .get_or_insert_with(|| self.api.appid().to_string());
        call.begun = 1;
        call.begun_at_unix_ms.get_or_insert(now);
        if error.outcome_unknown() {
            call.unknown_since_unix_ms.get_or_insert(now);
        }
        let item = OutboxItem {
            id: id.clone(),
            payload: serde_json::to_string(&call)
                .map_err(|e| StoreError::Backend(e.to_string()))?,
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
            .outbox_take_due(crate::clock::unix_millis(), 32, self.lease)
            .await?;
        let count = items.len();
        for item in items {
            self.attempt(item).await?;
        }
        Ok(count)
    }

    async fn attempt(&self, mut item: OutboxItem) -> Result<(), StoreError> {
        let mut call: QueuedCall = match serde_json::from_str(&item.payload) {
            Ok(call) => call,
            Err(e) => {
                tracing::error!(id = %item.id, "dropping an unreadable outbox item: {e}");
                return self.store.outbox_done(&item.id).await;
            }
        };
        let now = crate::clock::unix_millis();
        if call.begun > item.attempts {
            // The host stopped while this attempt was in flight: it may have been delivered.
            if call.idempotency_key().is_none() {
                return self
                    .give_up_unknown(&item, &call, unknown_reason::IN_FLIGHT_AT_STOP)
                    .await;
            }
            let began = call.begun_at_unix_ms.unwrap_or(item.created_at_unix_ms);
            call.unknown_since_unix_ms.get_or_insert(began);
            tracing::info!(purpose = %call.purpose, "a queued send was in flight when the host stopped; sending it again with the same idempotency key");
        }
        if call.key_expired(now) {
            return self
                .give_up_unknown(&item, &call, unknown_reason::KEY_EXPIRED)
                .await;
        }
        // Recorded before the request leaves, so a crash mid-attempt is seen by the next taker.
        call.begun = item.attempts + 1;
        call.begun_at_unix_ms = Some(now);
        item.payload = encode(&call)?;
        let Some(api) = self.sender(&call) else {
            tracing::error!(
                purpose = %call.purpose,
                appid = call.appid.as_deref().unwrap_or_default(),
                "queued send dropped: its account is no longer configured"
            );
            return self.store.outbox_done(&item.id).await;
        };
        self.store.outbox_push(&item).await?;
        match api.post(&call.path, &call.body).await {
            Ok(_) => {
                tracing::info!(purpose = %call.purpose, attempts = item.attempts + 1, "queued send delivered");
                self.store.outbox_done(&item.id).await
            }
            Err(e) if e.outcome_unknown() && !call.may_send_again(&e) => {
                self.give_up_unknown(&item, &call, unknown_reason::ANSWER_LOST)
                    .await
            }
            Err(e) if call.may_send_again(&e) && item.attempts + 1 < MAX_ATTEMPTS => {
                let attempts = item.attempts + 1;
                let delay = match &e {
                    ApiError::RetryLater { retry_after, .. } => {
                        (*retry_after).max(backoff(attempts))
                    }
                    _ => backoff(attempts),
                };
                tracing::warn!(purpose = %call.purpose, attempts, errcode = e.errcode(), "queued send failed again; retrying later");
                if e.outcome_unknown() {
                    call.unknown_since_unix_ms.get_or_insert(now);
                }
                // A push rather than `outbox_retry`, which keeps the payload: the payload
                // records that the outcome became unknown. This instance holds the lease.
                item.payload = encode(&call)?;
                item.attempts = attempts;
                item.next_at_unix_ms = crate::clock::unix_millis() + delay.as_millis() as i64;
                item.last_error = Some(e.to_string());
                self.store.outbox_push(&item).await
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

    /// Drops an item that may have been delivered and cannot safely be sent again: logged at
    /// WARN and counted, never sent twice.
    async fn give_up_unknown(
        &self,
        item: &OutboxItem,
        call: &QueuedCall,
        reason: &'static str,
    ) -> Result<(), StoreError> {
        let why = match reason {
            unknown_reason::IN_FLIGHT_AT_STOP => "it was in flight when the host stopped",
            unknown_reason::KEY_EXPIRED => {
                "its idempotency key is older than WeChat keeps it, so a retry could duplicate it"
            }
            _ => "its request went out and no answer came back",
        };
        tracing::warn!(
            purpose = %call.purpose,
            path = %call.path,
            reason,
            "queued send not sent again: {why}; it may or may not have been delivered (at most once)"
        );
        crate::metrics::metrics().send_unknown_outcome(&call.path, reason);
        self.store.outbox_done(&item.id).await
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

/// The payload of a queued call.
fn encode(call: &QueuedCall) -> Result<String, StoreError> {
    serde_json::to_string(call).map_err(|e| StoreError::Backend(format!("encode outbox item: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_calls_with_a_key_are_sent_again_after_an_unknown_outcome() {
        let kf = QueuedCall::new(
            super::super::kf::SEND_PATH,
            serde_json::json!({"touser": "o", "msgtype": "text", "text": {"content": "x"}}),
            "kf",
        );
        let template = QueuedCall::new(
            super::super::template::SEND_PATH,
            serde_json::json!({"touser": "o", "template_id": "T", "client_msg_id": "k", "data": {}}),
            "template",
        );
        let keyless_template = QueuedCall::new(
            super::super::template::SEND_PATH,
            serde_json::json!({"touser": "o", "template_id": "T", "data": {}}),
            "template",
        );
        let mass = QueuedCall::new(
            super::super::mass::SENDALL_PATH,
            serde_json::json!({"filter": {"is_to_all": true}, "clientmsgid": "c"}),
            "mass",
        );
        assert_eq!(kf.idempotency_key(), None);
        assert_eq!(template.idempotency_key(), Some(("k", TEMPLATE_KEY_WINDOW)));
        assert_eq!(keyless_template.idempotency_key(), None);
        assert_eq!(mass.idempotency_key(), Some(("c", MASS_KEY_WINDOW)));

        let busy = ApiError::from_errcode(-1, "system error".into());
        let lost = ApiError::Timeout.after_sending();
        let refused = ApiError::from_errcode(45015, "window".into());
        for call in [&kf, &template, &keyless_template, &mass] {
            assert!(call.may_send_again(&busy), "{}", call.purpose);
            assert!(!call.may_send_again(&refused), "{}", call.purpose);
        }
        assert!(!kf.may_send_again(&lost));
        assert!(!keyless_template.may_send_again(&lost));
        assert!(template.may_send_again(&lost));
        assert!(mass.may_send_again(&lost));
    }

    #[test]
    fn a_key_expires_only_after_an_unknown_outcome_and_its_window() {
        let mut call = QueuedCall::new(
            super::super::template::SEND_PATH,
            serde_json::json!({"touser": "o", "client_msg_id": "k"}),
            "template",
        );
        let now = 10_000_000_000;
        assert!(!call.key_expired(now), "nothing may have arrived yet");
        call.unknown_since_unix_ms = Some(now - TEMPLATE_KEY_WINDOW.as_millis() as i64);
        assert!(!call.key_expired(now));
        assert!(call.key_expired(now + 1));
    }

    #[test]
    fn items_queued_by_an_older_host_read_as_never_begun() {
        let old =
            r#"{"path":"/cgi-bin/message/custom/send","body":{},"purpose":"late text reply"}"#;
        let call: QueuedCall = serde_json::from_str(old).unwrap();
        assert_eq!(call.begun, 0);
        assert_eq!(call.unknown_since_unix_ms, None);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(40), MAX_DELAY);
    }
}
