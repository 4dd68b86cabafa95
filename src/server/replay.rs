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

use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::prehashed::{process_hasher, PreHashed};
use crate::store::keys::{claim_once, replay_key};
use crate::store::{within, Store, StoreError};

/// Most signatures the in-process memory holds: ten minutes at about 1,600 messages a
/// second, in 9 to 19 MiB (a hash of 8 bytes and its table's control byte a signature, times
/// the table's spare room).
pub const LOCAL_CAPACITY: usize = 1_000_000;

/// Where used signatures are remembered.
pub struct ReplayMemory {
    /// The shared store, when instances share one.
    shared: Option<Arc<dyn Store>>,
    /// The most the shared check may wait for the store.
    timeout: Duration,
    /// Signatures by their hash with the process's random key
    /// ([`crate::prehashed::process_hasher`]), so nobody can aim collisions at the memory.
    local: Mutex<Local>,
    capacity: usize,
}

/// The in-process memory, which is most of what a busy host keeps resident (600,000
/// signatures in ten minutes is 1,000 messages a second). Signatures are grouped by the second
/// they expire: a signature signs its timestamp, so a repeated one always falls in the group
/// of its first use, and a group leaves whole. Nothing is kept per signature but its hash
/// (no queue for expiry order, which once cost as much again as the hashes).
#[derive(Default)]
struct Local {
    /// Hashes of the signatures remembered, by the Unix second after which they are forgotten.
    by_expiry: BTreeMap<i64, HashSet<u64, PreHashed>>,
    /// How many hashes `by_expiry` holds in all.
    len: usize,
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
        let key = process_hasher().hash_one(signature);
        let mut local = crate::sync::lock(&self.local);
        Ok(local.claim(key, now, until, self.capacity))
    }
}

impl Local {
    fn claim(&mut self, key: u64, now: i64, until: i64, capacity: usize) -> bool {
        // Forget what has left the window, and past the capacity the soonest to leave it
        // (whole seconds at a time: the oldest messages, since WeChat's timestamps are close
        // to now).
        while let Some(entry) = self.by_expiry.first_entry() {
            if *entry.key() > now && self.len < capacity {
                break;
            }
            self.len -= entry.remove().len();
        }
        if !self.by_expiry.entry(until).or_default().insert(key) {
            return false;
        }
        self.len += 1;
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
    async fn the_memory_is_bounded_and_forgets_the_oldest_second_first() {
        let memory = ReplayMemory::with_capacity(None, Duration::from_secs(1), 3);
        assert!(memory.claim_once("a", 1000, 1600).await.unwrap());
        assert!(memory.claim_once("b", 1000, 1600).await.unwrap());
        assert!(memory.claim_once("c", 1001, 1601).await.unwrap());
        // Full: the second that leaves the window first goes whole to make room.
        assert!(memory.claim_once("d", 1002, 1602).await.unwrap());
        {
            let local = crate::sync::lock(&memory.local);
            assert_eq!(local.len, 2);
            assert_eq!(
                local.by_expiry.keys().copied().collect::<Vec<_>>(),
                [1601, 1602]
            );
        }
        // The newer ones are still refused; "a" was forgotten.
        assert!(!memory.claim_once("c", 1002, 1601).await.unwrap());
        assert!(!memory.claim_once("d", 1002, 1602).await.unwrap());
        assert!(memory.claim_once("a", 1002, 1600).await.unwrap());
    }

    #[tokio::test]
    async fn signatures_leave_with_their_second_whatever_order_they_came_in() {
        let memory = ReplayMemory::new(None, Duration::from_secs(1));
        for sig in ["a", "b", "c"] {
            assert!(memory.claim_once(sig, 1000, 1600).await.unwrap());
        }
        // Out of order: an earlier timestamp after later ones.
        assert!(memory.claim_once("early", 1000, 1500).await.unwrap());
        assert!(memory.claim_once("d", 1001, 1601).await.unwrap());
        {
            let local = crate::sync::lock(&memory.local);
            let sizes: Vec<_> = local
                .by_expiry
                .iter()
                .map(|(s, set)| (*s, set.len()))
                .collect();
            assert_eq!(sizes, [(1500, 1), (1600, 3), (1601, 1)]);
            assert_eq!(local.len, 5);
        }
        assert!(!memory.claim_once("early", 1499, 1500).await.unwrap());
        // At 1500 the early one goes, before the others.
        assert!(memory.claim_once("early", 1500, 1500).await.unwrap());
        // At 1600 the first second and the early one go; "d" stays.
        assert!(memory.claim_once("e", 1600, 2200).await.unwrap());
        {
            let local = crate::sync::lock(&memory.local);
            assert_eq!(local.len, 2);
        }
        assert!(!memory.claim_once("d", 1600, 1601).await.unwrap());
        assert!(memory.claim_once("a", 1600, 2200).await.unwrap());
    }
}
