//! What `/healthz` and `/readyz` report about the store: a write probe, bounded by the message
//! path's store timeout, and the outbox's depth and age. The probe writes (a key with a short
//! TTL) because a store that reads but cannot write (a full or read-only disk) fails messages
//! just the same.

use std::time::Duration;

use serde::Serialize;

use crate::store::keys::health_key;
use crate::store::{within, Store, StoreError};

/// How long the probe key lives: long enough to see, short enough to leave nothing behind.
const PROBE_TTL: Duration = Duration::from_secs(60);

/// The store as a probe found it.
#[derive(Debug, Clone, Serialize)]
pub struct StoreHealth {
    /// `ok`, `unreachable` (no connection, or no answer in time) or `failing` (the store
    /// answered with an error: SQL error, full disk, Redis error reply).
    pub state: &'static str,
    /// What failed, when something did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StoreHealth {
    /// Whether the store took the probe.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The outbox as `/healthz` shows it; `None` fields could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxHealth {
    /// Sends waiting for a retry.
    pub depth: Option<usize>,
    /// Seconds since the oldest waiting send was first queued (0 when none waits).
    pub oldest_age_s: Option<f64>,
}

/// Writes the probe key within `timeout`.
pub async fn probe_store(store: &dyn Store, timeout: Duration) -> StoreHealth {
    let now = crate::clock::unix_millis().to_string();
    match within(
        "set",
        timeout,
        store.set(&health_key("probe"), &now, Some(PROBE_TTL)),
    )
    .await
    {
        Ok(()) => StoreHealth {
            state: "ok",
            error: None,
        },
        Err(e) => {
            let state = match e {
                StoreError::Unavailable(_) | StoreError::UnknownOutcome(_) => "unreachable",
                _ => "failing",
            };
            StoreHealth {
                state,
                error: Some(e.to_string()),
            }
        }
    }
}

/// The outbox's depth and the age of its oldest send, each read within `timeout`.
pub async fn outbox(store: &dyn Store, timeout: Duration) -> OutboxHealth {
    let (depth, oldest) = tokio::join!(
        within("outbox_len", timeout, store.outbox_len()),
        within("outbox_oldest", timeout, store.outbox_oldest()),
    );
    let depth = depth.ok();
    let oldest_age_s = oldest.ok().map(|oldest| {
        oldest.map_or(0.0, |created| {
            (crate::clock::unix_millis() - created).max(0) as f64 / 1000.0
        })
    });
    OutboxHealth {
        depth,
        oldest_age_s,
    }
}
