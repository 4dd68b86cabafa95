//! De-duplication of WeChat's retries. WeChat retries a callback it got no answer to within
//! 5 s, up to three times, with the same message. The handler runs once per message: a retry
//! that arrives while the first run is going waits for its result, and a retry after it
//! finished gets the same answer (kept [`KEEP_RESULT`]).
//!
//! Messages are keyed by FromUserName + MsgId, events by FromUserName + CreateTime + Event +
//! EventKey ([`InboundMessage::dedup_key`](crate::protocol::message::InboundMessage::dedup_key)).
//! Retries on this instance are matched in memory; when the store is shared by several
//! instances (Redis), claims and results also go through it, so a retry that lands on another
//! instance runs nothing either. With the embedded store only one instance exists, and the
//! in-memory map alone keeps the hot path free of disk writes.
//!
//! Every claim ends by the message's reply deadline, and each store operation in it takes at
//! most [`SharedClaims::op_timeout`], so a stalled store cannot make an answer late. A claim
//! the store does not confirm in time is handled as [`UnconfirmedClaim`] says: skipped
//! (`success`, and the claim, which may still land once the store resumes, is withdrawn so
//! that WeChat's retry can take it) or run anyway.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::UnconfirmedClaim;
use crate::prehashed::{process_hasher, PreHashed};
use crate::store::keys::dedup_key;
use crate::store::{within, Store, StoreError};

/// How long a finished message's answer is kept for late retries (WeChat's last retry comes
/// about 15 s after the first attempt; a minute leaves room for clock and queue delays).
pub const KEEP_RESULT: Duration = Duration::from_secs(60);
/// Most answers remembered here. A minute of answers at a benchmark's rate (tens of thousands
/// of messages a second) would take hundreds of MiB; past this many, the oldest go first,
/// so "at least a minute" holds up to 500 messages a second per instance, far above a real
/// account's rate, and the table stays near 15 MiB.
pub const MAX_REMEMBERED: usize = 30_000;
/// Default cap on the bytes of answers remembered here: 150 replies of 1 MiB would otherwise
/// hold 150 MiB for a minute. Past it, the oldest go first.
pub const DEFAULT_MAX_BYTES: usize = 32 * 1024 * 1024;
/// How long a claim in the shared store lives if its instance dies mid-message.
const CLAIM_TTL: Duration = Duration::from_secs(30);
/// Poll interval while waiting on another instance's result.
const SHARED_POLL: Duration = Duration::from_millis(50);
/// Prefix of a shared claim whose result is not known yet; a random tag follows, so an
/// instance withdraws only its own claim.
const PENDING: &str = "pending:";
/// Prefix of a shared result: `done:` then the reply XML, or nothing for `success`.
const DONE: &str = "done:";
/// Pause between attempts to withdraw a claim the store did not confirm.
const WITHDRAW_RETRY: Duration = Duration::from_millis(500);

/// The answer to one message: the plaintext reply XML, or `None` for `success`.
pub type Answer = Option<Arc<str>>;

enum Entry {
    /// Being handled here. The channel to retries waiting for the answer is made by the
    /// first such retry: most messages never get one, and need no channel.
    Running(Option<watch::Sender<Option<Answer>>>),
    /// Answered at the given time.
    Done(Answer, Instant),
}

/// Outcome of [`Dedup::claim`].
pub enum Claim {
    /// This is the first delivery: handle it and report through the guard.
    First(ClaimGuard),
    /// A retry of a message already handled (or being handled): send this answer.
    Duplicate(Answer),
    /// A retry whose first run has not finished by the deadline: answer `success`
    /// (the first run replies later through customer service).
    StillRunning,
    /// The shared store did not confirm the claim in time and the policy is
    /// [`UnconfirmedClaim::Skip`]: answer `success` without running the handler; WeChat's
    /// retry claims it again.
    Unconfirmed(StoreError),
}

/// How claims go through the store shared by several instances.
pub struct SharedClaims {
    /// The store the instances share.
    pub store: Arc<dyn Store>,
    /// The most one store operation of a claim may take (each is also bounded by the
    /// message's deadline).
    pub op_timeout: Duration,
    /// What a message gets when the store does not confirm its claim.
    pub unconfirmed: UnconfirmedClaim,
}

/// The in-flight record of a message this request handles; finishing it publishes the answer.
/// Dropped without finishing (the request was cancelled), the claim is released so a retry
/// runs the message again rather than waiting for nothing.
pub struct ClaimGuard {
    dedup: Arc<Dedup>,
    key: String,
    /// `key` hashed, as the table holds it.
    slot: u64,
    /// Not finished yet: dropped now, the claim is released.
    pending: bool,
    /// The value of this instance's claim in the shared store, when it holds one (confirmed,
    /// or sent unconfirmed and run anyway): it must answer there, or withdraw it.
    shared_claim: Option<String>,
}

impl ClaimGuard {
    /// Publishes the answer to retries here at once, and to other instances in the background
    /// (a stalled store must not hold the reply back).
    pub async fn finish(mut self, answer: Answer) {
        self.pending = false;
        // Retries waiting here get the answer first; remembering it replaces the entry that
        // holds their channel (a retry in between waits on a new one, finds the channel
        // closed when it is replaced, and claims again to find the answer remembered).
        let waiting = match self.dedup.lock().entries.get_mut(&self.slot) {
            Some(Entry::Running(sender)) => sender.take(),
            _ => None,
        };
        if let Some(sender) = waiting {
            let _ = sender.send(Some(answer.clone()));
        }
        self.dedup.remember(self.slot, answer.clone());
        if let (Some(_), Some(shared)) = (self.shared_claim.take(), &self.dedup.shared) {
            let store = shared.store.clone();
            let key = dedup_key(&self.key);
            let value = format!("{DONE}{}", answer.as_deref().unwrap_or(""));
            tokio::spawn(async move {
                if let Err(e) = store.set(&key, &value, Some(KEEP_RESULT)).await {
                    tracing::warn!("dedup: cannot record the answer in the shared store: {e}");
                }
            });
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if self.pending {
            self.dedup.lock().entries.remove(&self.slot);
            if let (Some(claim), Some(shared)) = (self.shared_claim.take(), &self.dedup.shared) {
                withdraw(shared.store.clone(), dedup_key(&self.key), claim);
            }
        }
    }
}

/// Withdraws this instance's claim `value` at `key` in the background, once the store answers:
/// a claim sent to a stalled store may land when it resumes, and would then make WeChat's
/// retries wait for an answer nobody is preparing. The withdrawal goes down the same
/// connection after the claim, so the store applies them in that order; a store that never
/// answers lets the claim expire after [`CLAIM_TTL`].
fn withdraw(store: Arc<dyn Store>, key: String, value: String) {
    tokio::spawn(async move {
        let give_up = tokio::time::Instant::now() + CLAIM_TTL;
        while tokio::time::Instant::now() < give_up {
            match store.del_if_eq(&key, &value).await {
                Ok(_) => return,
                Err(e) => tracing::debug!("dedup: claim not withdrawn yet: {e}"),
            }
            tokio::time::sleep(WITHDRAW_RETRY).await;
        }
    });
}

/// Messages by the hash of their key (64 bits: a collision among a minute's messages is
/// vanishingly unlikely, and keys need not be kept), with answers in the order they came so
/// old ones are dropped in O(1).
#[derive(Default)]
struct Table {
    entries: HashMap<u64, Entry, PreHashed>,
    /// When each answer came, its slot and its size in bytes.
    answered: VecDeque<(Instant, u64, usize)>,
    /// Sum of the sizes in `answered`. An answer replaced before its turn to go stays counted
    /// until then, so this may overstate what is held, never understate it.
    answered_bytes: usize,
}

/// The de-duplication table.
pub struct Dedup {
    table: Mutex<Table>,
    /// The store shared with other instances, if any.
    shared: Option<SharedClaims>,
    /// Most bytes of answers remembered.
    max_bytes: usize,
}

/// The process's hasher ([`process_hasher`]), so a key hashes the same way for the life of
/// the process. The key is hashed as it is written out, never built: the same value as
/// hashing the `str` it displays as (its bytes, then `str`'s terminator), since the hasher
/// takes bytes as a stream.
fn slot(key: &(impl std::fmt::Display + ?Sized)) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    struct Feed<H>(H);
    impl<H: Hasher> std::fmt::Write for Feed<H> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    let mut feed = Feed(process_hasher().build_hasher());
    let _ = std::fmt::write(&mut feed, format_args!("{key}"));
    feed.0.write_u8(0xff);
    feed.0.finish()
}

impl Dedup {
    /// A table; `shared` is the store when several instances share it. Answers beyond
    /// `max_bytes` in total are forgotten, oldest first.
    pub fn new(shared: Option<SharedClaims>, max_bytes: usize) -> Arc<Dedup> {
        Arc::new(Dedup {
            table: Mutex::new(Table::default()),
            shared,
            max_bytes,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an answer, and forgets answers older than [`KEEP_RESULT`], beyond
    /// [`MAX_REMEMBERED`] or beyond the byte cap, oldest first (an answer larger than the
    /// whole cap is not kept at all).
    fn remember(&self, slot: u64, answer: Answer) {
        let now = Instant::now();
        let size = answer.as_deref().map_or(0, str::len);
        let mut table = self.lock();
        table.entries.insert(slot, Entry::Done(answer, now));
        table.answered.push_back((now, slot, size));
        table.answered_bytes += size;
        while let Some(&(at, old, old_size)) = table.answered.front() {
            if now.duration_since(at) < KEEP_RESULT
                && table.answered.len() <= MAX_REMEMBERED
                && table.answered_bytes <= self.max_bytes
            {
                break;
            }
            table.answered.pop_front();
            table.answered_bytes -= old_size;
            // Only the answer recorded then: the key may have been claimed again since.
            if matches!(table.entries.get(&old), Some(Entry::Done(_, when)) if *when == at) {
                table.entries.remove(&old);
            }
        }
    }

    /// Claims a message by its key, or returns the answer of the run that claimed it first.
    /// Returns by `deadline` (the message's reply deadline) whatever the store does.
    /// `key` is only written out (into the shared store's key) when a store is shared.
    pub async fn claim(
        self: &Arc<Self>,
        key: &(impl std::fmt::Display + Sync + ?Sized),
        deadline: tokio::time::Instant,
    ) -> Claim {
        let slot = slot(key);
        enum Found {
            Answer(Answer),
            Running(watch::Receiver<Option<Answer>>),
            Claimed,
        }
        let found = {
            let mut table = self.lock();
            match table.entries.get_mut(&slot) {
                Some(Entry::Done(answer, at)) if at.elapsed() < KEEP_RESULT => {
                    Found::Answer(answer.clone())
                }
                Some(Entry::Running(Some(sender))) => Found::Running(sender.subscribe()),
                Some(Entry::Running(waiting)) => {
                    let (sender, receiver) = watch::channel(None);
                    *waiting = Some(sender);
                    Found::Running(receiver)
                }
                _ => {
                    table.entries.insert(slot, Entry::Running(None));
                    Found::Claimed
                }
            }
        };
        let receiver = match found {
            Found::Answer(answer) => return Claim::Duplicate(answer),
            Found::Claimed => {
                let guard = ClaimGuard {
                    dedup: self.clone(),
                    // Only the shared store needs the key itself.
                    key: if self.shared.is_some() {
                        key.to_string()
                    } else {
                        String::new()
                    },
                    slot,
                    pending: true,
                    shared_claim: None,
                };
                if self.shared.is_none() {
                    return Claim::First(guard);
                }
                // The rarer paths are boxed: this future is part of every message's, and
                // inline they made it 760 bytes where the in-process claim needs few.
                return Box::pin(self.claim_shared(guard, deadline)).await;
            }
            Found::Running(receiver) => receiver,
        };
        Box::pin(self.wait_for_first(key, receiver, deadline)).await
    }

    /// A retry of a message whose first delivery still runs here: that run's answer, waited
    /// for until `deadline`.
    async fn wait_for_first(
        self: &Arc<Self>,
        key: &(impl std::fmt::Display + Sync + ?Sized),
        mut receiver: watch::Receiver<Option<Answer>>,
        deadline: tokio::time::Instant,
    ) -> Claim {
        // The watch guard borrows the channel: copy the answer out before any other await.
        let answer = tokio::time::timeout_at(deadline, receiver.wait_for(Option::is_some))
            .await
            .map(|waited| waited.map(|answer| answer.clone().flatten()));
        match answer {
            Ok(Ok(answer)) => Claim::Duplicate(answer),
            // The first run's request went away without an answer: handle this one.
            Ok(Err(_)) => Box::pin(self.claim(key, deadline)).await,
            Err(_) => Claim::StillRunning,
        }
    }

    /// The claim in the shared store, if there is one: taken, or the other instance's answer
    /// waited for until `deadline`.
    async fn claim_shared(
        self: &Arc<Self>,
        mut guard: ClaimGuard,
        deadline: tokio::time::Instant,
    ) -> Claim {
        let Some(shared) = &self.shared else {
            return Claim::First(guard);
        };
        let shared_key = dedup_key(&guard.key);
        // Each attempt sends a new tag, so a withdrawal never removes another attempt's claim.
        let tag = || {
            use rand::distr::{Alphanumeric, SampleString};
            format!(
                "{PENDING}{}",
                Alphanumeric.sample_string(&mut rand::rng(), 16)
            )
        };
        let mut claim = tag();
        let mut outcome = self
            .try_set_claim(shared, &shared_key, &claim, deadline)
            .await;
        loop {
            match outcome {
                Ok(true) => {
                    guard.shared_claim = Some(claim);
                    return Claim::First(guard);
                }
                Ok(false) => {}
                Err(e) => return self.unconfirmed(shared, guard, shared_key, claim, e),
            }
            // Another instance has it: wait for its answer, until the deadline.
            if tokio::time::Instant::now() >= deadline {
                drop(guard);
                return Claim::StillRunning;
            }
            let limit = self.op_limit(shared, deadline);
            match within("get", limit, shared.store.get(&shared_key)).await {
                Ok(Some(value)) => {
                    if let Some(xml) = value.strip_prefix(DONE) {
                        let answer: Answer = (!xml.is_empty()).then(|| Arc::from(xml));
                        guard.finish(answer.clone()).await;
                        return Claim::Duplicate(answer);
                    }
                }
                // The other instance gave up (or its claim expired): take it over.
                Ok(None) => {
                    claim = tag();
                    outcome = self
                        .try_set_claim(shared, &shared_key, &claim, deadline)
                        .await;
                    continue;
                }
                Err(_) => {}
            }
            if tokio::time::Instant::now() + SHARED_POLL >= deadline {
                drop(guard);
                return Claim::StillRunning;
            }
            tokio::time::sleep(SHARED_POLL).await;
            outcome = Ok(false);
        }
    }

    /// `SET NX` of the claim, bounded by the per-operation timeout and the deadline.
    async fn try_set_claim(
        &self,
        shared: &SharedClaims,
        key: &str,
        claim: &str,
        deadline: tokio::time::Instant,
    ) -> Result<bool, StoreError> {
        let limit = self.op_limit(shared, deadline);
        within(
            "set_nx",
            limit,
            shared.store.set_nx(key, claim, Some(CLAIM_TTL)),
        )
        .await
    }

    /// The time one store operation may take now: its own bound, cut at the deadline.
    fn op_limit(&self, shared: &SharedClaims, deadline: tokio::time::Instant) -> Duration {
        shared
            .op_timeout
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()))
    }

    /// The store did not confirm the claim `claim` (`error`): run anyway, keeping the claim
    /// (it answers there when done), or skip and withdraw it once the store answers.
    fn unconfirmed(
        &self,
        shared: &SharedClaims,
        mut guard: ClaimGuard,
        key: String,
        claim: String,
        error: StoreError,
    ) -> Claim {
        match shared.unconfirmed {
            UnconfirmedClaim::Run => {
                tracing::warn!(
                    "dedup: the shared store did not confirm the claim ({error}); running the handler anyway (unconfirmed_claim = run)"
                );
                guard.shared_claim = Some(claim);
                Claim::First(guard)
            }
            UnconfirmedClaim::Skip => {
                // Not remembered here either: the retry must be free to run it.
                drop(guard);
                withdraw(shared.store.clone(), key, claim);
                Claim::Unconfirmed(error)
            }
        }
    }

    /// Number of messages remembered (running or answered).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_hashes_the_same_written_out_in_pieces_or_as_one_string() {
        use std::hash::BuildHasher;
        let whole = process_hasher().hash_one("acct/oUser|123");
        assert_eq!(slot("acct/oUser|123"), whole);
        assert_eq!(slot(&format_args!("{}/{}|{}", "acct", "oUser", 123)), whole);
        assert_ne!(slot("acct/oUser|124"), whole);
    }

    /// A deadline far enough away for any of these tests.
    fn soon() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(2)
    }

    async fn first(dedup: &Arc<Dedup>, key: &str) -> ClaimGuard {
        match dedup.claim(key, soon()).await {
            Claim::First(guard) => guard,
            _ => panic!("{key} should be new"),
        }
    }

    /// A retry of `key` on a task of its own, which waits while the first run goes on.
    fn retry(dedup: &Arc<Dedup>, key: &'static str) -> tokio::task::JoinHandle<Claim> {
        let dedup = dedup.clone();
        tokio::spawn(async move { dedup.claim(key, soon()).await })
    }

    #[tokio::test]
    async fn a_retry_gets_the_first_answer_and_a_waiting_retry_gets_it_when_ready() {
        let dedup = Dedup::new(None, DEFAULT_MAX_BYTES);
        let guard = first(&dedup, "u|1").await;
        let waiting = retry(&dedup, "u|1");
        tokio::task::yield_now().await;
        guard.finish(Some(Arc::from("<xml>a</xml>"))).await;
        assert!(
            matches!(waiting.await.unwrap(), Claim::Duplicate(Some(a)) if &*a == "<xml>a</xml>")
        );
        assert!(matches!(
            dedup.claim("u|1", soon()).await,
            Claim::Duplicate(Some(_))
        ));
        assert!(matches!(dedup.claim("v|1", soon()).await, Claim::First(_)));
    }

    #[tokio::test]
    async fn every_waiting_retry_gets_the_answer_even_one_too_large_to_remember() {
        let dedup = Dedup::new(None, 8);
        let guard = first(&dedup, "u|3").await;
        // The first retry makes the channel, the second subscribes to it.
        let (one, two) = (retry(&dedup, "u|3"), retry(&dedup, "u|3"));
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        guard
            .finish(Some(Arc::from("<xml>longer than 8 bytes</xml>")))
            .await;
        for waiting in [one, two] {
            assert!(matches!(
                waiting.await.unwrap(),
                Claim::Duplicate(Some(a)) if &*a == "<xml>longer than 8 bytes</xml>"
            ));
        }
        // Not remembered (over the byte cap): a later retry runs it.
        assert!(matches!(dedup.claim("u|3", soon()).await, Claim::First(_)));
    }

    #[tokio::test]
    async fn a_waiting_retry_runs_the_message_when_the_first_run_is_dropped() {
        let dedup = Dedup::new(None, DEFAULT_MAX_BYTES);
        let guard = first(&dedup, "u|4").await;
        let waiting = retry(&dedup, "u|4");
        tokio::task::yield_now().await;
        drop(guard);
        assert!(matches!(waiting.await.unwrap(), Claim::First(_)));
    }

    #[tokio::test]
    async fn a_dropped_claim_lets_the_retry_run() {
        let dedup = Dedup::new(None, DEFAULT_MAX_BYTES);
        drop(first(&dedup, "u|2").await);
        assert!(matches!(dedup.claim("u|2", soon()).await, Claim::First(_)));
    }

    #[tokio::test]
    async fn memory_is_bounded_oldest_answers_first() {
        let dedup = Dedup::new(None, DEFAULT_MAX_BYTES);
        for i in 0..MAX_REMEMBERED + 100 {
            first(&dedup, &format!("u|{i}")).await.finish(None).await;
        }
        assert!(dedup.len() <= MAX_REMEMBERED + 1, "{}", dedup.len());
        assert!(
            matches!(dedup.claim("u|0", soon()).await, Claim::First(_)),
            "the oldest is forgotten"
        );
        let newest = format!("u|{}", MAX_REMEMBERED + 99);
        assert!(matches!(
            dedup.claim(&newest, soon()).await,
            Claim::Duplicate(None)
        ));
    }

    #[tokio::test]
    async fn answers_are_bounded_by_bytes_oldest_first() {
        let max_bytes = 10 * 1024;
        let dedup = Dedup::new(None, max_bytes);
        let answer: Answer = Some(Arc::from("x".repeat(1024)));
        for i in 0..25 {
            first(&dedup, &format!("u|{i}"))
                .await
                .finish(answer.clone())
                .await;
        }
        assert_eq!(dedup.len(), 10, "ten answers of 1 KiB fit in 10 KiB");
        assert!(dedup.lock().answered_bytes <= max_bytes);
        assert!(
            matches!(dedup.claim("u|14", soon()).await, Claim::First(_)),
            "older ones are forgotten"
        );
        for i in 15..25 {
            assert!(
                matches!(
                    dedup.claim(&format!("u|{i}"), soon()).await,
                    Claim::Duplicate(Some(_))
                ),
                "u|{i} is among the newest"
            );
        }
        // One answer larger than the whole cap is not kept.
        first(&dedup, "big")
            .await
            .finish(Some(Arc::from("y".repeat(max_bytes + 1))))
            .await;
        assert!(matches!(dedup.claim("big", soon()).await, Claim::First(_)));
        assert!(dedup.lock().answered_bytes <= max_bytes);
    }
}
