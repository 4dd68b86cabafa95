//! Replay memory: a signed callback query is good once. Each verified signature is remembered
//! until its timestamp leaves the replay window, after which the window alone refuses it.
//!
//! Where the store is shared between instances (Redis) the memory is in the store, so a query
//! used on one instance is refused on every other. With the embedded store there is one
//! instance, and the memory is kept in process: a store write per message would cost more
//! than the rest of the message path (the retry cache makes the same choice). It is bounded;
//! past [`LOCAL_CAPACITY`] signatures the oldest are forgotten first. Only WeChat's own
//! traffic can fill it, since every entry needs a token-signed query, and a process restart
//! forgets it (a replay then still needs a query captured in the last 10 minutes).
//!
//! The shared check is on every message's path, inside its reply deadline, so it waits at most
//! its own short timeout (`claim_timeout`); a store that does not answer by then fails the
//! check, and the caller lets the message through (see [`super::verify`]).

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::keys::{claim_once, replay_key};
use crate::store::{within, Store, StoreError};

/// Most signatures the in-process memory holds: ten minutes at about 1,600 messages a
/// second, in about 27 MiB at most (17 bytes a signature, plus the tables' spare room).
pub const LOCAL_CAPACITY: usize = 1_000_000;

/// Where used signatures are remembered.
pub struct ReplayMemory {
    /// The shared store, when instances share one.
    shared: Option<Arc<dyn Store>>,
    /// The most the shared check may wait for the store.
    timeout: Duration,
    local: Mutex<Local>,
    /// Keyed hashing, so nobody can aim collisions at the memory.
    hasher: RandomState,
    capacity: usize,
}

/// The in-process memory: about 17 bytes a signature (a hash in the set, the same hash in the
/// queue), which is most of what a busy host keeps resident — 600,000 signatures in ten
/// minutes is 1,000 messages a second.
#[derive(Default)]
struct Local {
    /// Hashes of the signatures remembered. No expiry beside each: a signature signs its
    /// timestamp, so a repeated one always has the expiry of its first use.
    seen: HashSet<u64>,
    /// The same hashes in insertion order, for expiry and the capacity bound.
    order: VecDeque<u64>,
    /// The expiries of `order`, front to back, as runs of (Unix second after which they are
    /// forgotten, how many in a row): messages arrive in time order, so a second's messages
    /// share one run instead of each carrying its own.
    expiries: VecDeque<(i64, usize)>,
}

impl ReplayMemory {
    /// Remembers in `shared` when given (waiting at most `timeout` for it), else in process.
    pub fn new(shared: Option<Arc<dyn Store>>, timeout: Duration) -> ReplayMemory {
        ReplayMemory::with_capacity(shared, timeout, LOCAL_CAPACITY)
    }

    fn with_capacity(
        shared: Option<Arc<dyn Store>>,
        timeout: Duration,
        capacity: usize,
    ) -> ReplayMemory {
        ReplayMemory {
            shared,
            timeout,
            local: Mutex::default(),
            hasher: RandomState::new(),
            capacity,
        }
    }

    /// Records `signature` as used until Unix second `until` (seen at `now`); true the first
    /// time, false while an earlier use is remembered.
    pub async fn claim_once(
        &self,
        signature: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        if let Some(store) = &self.shared {
            let ttl = Duration::from_secs(until.saturating_sub(now).max(1) as u64);
            let key = replay_key(signature);
            return within(
                "set_nx",
                self.timeout,
                claim_once(store.as_ref(), &key, ttl),
            )
            .await;
        }
        let key = self.hasher.hash_one(signature);
        let mut local = crate::sync::lock(&self.local);
        Ok(local.claim(key, now, until, self.capacity))
    }
}

impl Local {
    fn claim(&mut self, key: u64, now: i64, until: i64, capacity: usize) -> bool {
        // Forget what has left the window (in insertion order, which is close to expiry
        // order: WeChat's timestamps are close to now). One that expired behind a later one
        // stays a little longer; the timestamp window refuses its replays meanwhile anyway.
        while let Some(run) = self.expiries.front_mut() {
            if run.0 > now && self.order.len() < capacity {
                break;
            }
            run.1 -= 1;
            if run.1 == 0 {
                self.expiries.pop_front();
            }
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        match self.expiries.back_mut() {
            Some(run) if run.0 == until => run.1 += 1,
            _ => self.expiries.push_back((until, 1)),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signature_is_good_once_until_it_leaves_the_window() {
        let memory = ReplayMemory::new(None, Duration::from_secs(1));
        assert!(memory.claim_once("sig-a", 1000, 1600).await.unwrap());
        assert!(!memory.claim_once("sig-a", 1001, 1600).await.unwrap());
        assert!(memory.claim_once("sig-b", 1001, 1601).await.unwrap());
        // Past its window the timestamp check refuses it; the memory has let it go.
        assert!(memory.claim_once("sig-a", 1600, 2200).await.unwrap());
    }

    #[tokio::test]
    async fn the_memory_is_bounded_and_forgets_the_oldest_first() {
        let memory = ReplayMemory::with_capacity(None, Duration::from_secs(1), 3);
        for sig in ["a", "b", "c", "d"] {
            assert!(memory.claim_once(sig, 1000, 1600).await.unwrap());
        }
        {
            let local = crate::sync::lock(&memory.local);
            assert_eq!((local.order.len(), local.seen.len()), (3, 3));
        }
        // "a" was forgotten to make room; the newer ones are still refused.
        assert!(!memory.claim_once("d", 1000, 1600).await.unwrap());
        assert!(memory.claim_once("a", 1000, 1600).await.unwrap());
    }

    #[tokio::test]
    async fn signatures_of_one_second_share_an_expiry_and_leave_together() {
        let memory = ReplayMemory::new(None, Duration::from_secs(1));
        for sig in ["a", "b", "c"] {
            assert!(memory.claim_once(sig, 1000, 1600).await.unwrap());
        }
        // Out of order: an earlier timestamp after later ones waits behind them.
        assert!(memory.claim_once("early", 1000, 1500).await.unwrap());
        assert!(memory.claim_once("d", 1001, 1601).await.unwrap());
        {
            let local = crate::sync::lock(&memory.local);
            assert_eq!(
                local.expiries.iter().copied().collect::<Vec<_>>(),
                vec![(1600, 3), (1500, 1), (1601, 1)]
            );
        }
        assert!(!memory.claim_once("early", 1550, 1500).await.unwrap());
        // At 1600 the first run and the early one behind it go; "d" stays.
        assert!(memory.claim_once("e", 1600, 2200).await.unwrap());
        {
            let local = crate::sync::lock(&memory.local);
            assert_eq!(local.order.len(), 2);
            assert_eq!(local.seen.len(), 2);
        }
        assert!(!memory.claim_once("d", 1600, 1601).await.unwrap());
        assert!(memory.claim_once("a", 1600, 2200).await.unwrap());
    }
}
