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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::store::keys::dedup_key;
use crate::store::Store;

/// How long a finished message's answer is kept for late retries (WeChat's last retry comes
/// about 15 s after the first attempt; a minute leaves room for clock and queue delays).
pub const KEEP_RESULT: Duration = Duration::from_secs(60);
/// How long a claim in the shared store lives if its instance dies mid-message.
const CLAIM_TTL: Duration = Duration::from_secs(30);
/// Poll interval while waiting on another instance's result.
const SHARED_POLL: Duration = Duration::from_millis(50);
/// Marker of a shared claim whose result is not known yet.
const PENDING: &str = "pending";
/// Prefix of a shared result: `done:` then the reply XML, or nothing for `success`.
const DONE: &str = "done:";

/// The answer to one message: the plaintext reply XML, or `None` for `success`.
pub type Answer = Option<Arc<str>>;

enum Entry {
    /// Being handled here; the channel gets the answer.
    Running(watch::Receiver<Option<Answer>>),
    /// Answered at the given time.
    Done(Answer, Instant),
}

/// Outcome of [`Dedup::claim`].
pub enum Claim {
    /// This is the first delivery: handle it and report through the guard.
    First(ClaimGuard),
    /// A retry of a message already handled (or being handled): send this answer.
    Duplicate(Answer),
    /// A retry whose first run has not finished within the wait: answer `success`
    /// (the first run replies later through customer service).
    StillRunning,
}

/// The in-flight record of a message this request handles; finishing it publishes the answer.
/// Dropped without finishing (the request was cancelled), the claim is released so a retry
/// runs the message again rather than waiting for nothing.
pub struct ClaimGuard {
    dedup: Arc<Dedup>,
    key: String,
    sender: Option<watch::Sender<Option<Answer>>>,
    /// Whether this instance holds the claim in the shared store (and so must answer there).
    owns_shared: bool,
}

impl ClaimGuard {
    /// Publishes the answer to retries here and on other instances.
    pub async fn finish(mut self, answer: Answer) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(Some(answer.clone()));
        }
        self.dedup.lock().insert(
            self.key.clone(),
            Entry::Done(answer.clone(), Instant::now()),
        );
        if let (true, Some(store)) = (self.owns_shared, &self.dedup.shared) {
            let value = format!("{DONE}{}", answer.as_deref().unwrap_or(""));
            if let Err(e) = store
                .set(&dedup_key(&self.key), &value, Some(KEEP_RESULT))
                .await
            {
                tracing::warn!("dedup: cannot record the answer in the shared store: {e}");
            }
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if self.sender.is_some() {
            self.dedup.lock().remove(&self.key);
            if let (true, Some(store)) = (self.owns_shared, self.dedup.shared.clone()) {
                let key = dedup_key(&self.key);
                tokio::spawn(async move {
                    let _ = store.del_if_eq(&key, PENDING).await;
                });
            }
        }
    }
}

/// The de-duplication table.
pub struct Dedup {
    entries: Mutex<HashMap<String, Entry>>,
    /// The store shared with other instances, if any.
    shared: Option<Arc<dyn Store>>,
    /// How long a retry waits for a first run still going.
    wait: Duration,
    /// When expired entries were last swept.
    last_sweep: Mutex<Instant>,
}

impl Dedup {
    /// A table; `shared` is the store when several instances share it. A retry waits at most
    /// `wait` for a first run that is still going.
    pub fn new(shared: Option<Arc<dyn Store>>, wait: Duration) -> Arc<Dedup> {
        Arc::new(Dedup {
            entries: Mutex::new(HashMap::new()),
            shared,
            wait,
            last_sweep: Mutex::new(Instant::now()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims a message by its key, or returns the answer of the run that claimed it first.
    pub async fn claim(self: &Arc<Self>, key: &str) -> Claim {
        self.sweep();
        enum Found {
            Answer(Answer),
            Running(watch::Receiver<Option<Answer>>),
            Claimed(watch::Sender<Option<Answer>>),
        }
        let found = {
            let mut entries = self.lock();
            match entries.get(key) {
                Some(Entry::Done(answer, at)) if at.elapsed() < KEEP_RESULT => {
                    Found::Answer(answer.clone())
                }
                Some(Entry::Running(receiver)) => Found::Running(receiver.clone()),
                _ => {
                    let (sender, receiver) = watch::channel(None);
                    entries.insert(key.to_string(), Entry::Running(receiver));
                    Found::Claimed(sender)
                }
            }
        };
        let waiting = match found {
            Found::Answer(answer) => return Claim::Duplicate(answer),
            Found::Claimed(sender) => return self.claim_shared(key, sender).await,
            Found::Running(receiver) => Some(receiver),
        };
        let Some(mut receiver) = waiting else {
            return Claim::StillRunning;
        };
        // The watch guard borrows the channel: copy the answer out before any other await.
        let answer = tokio::time::timeout(self.wait, receiver.wait_for(Option::is_some))
            .await
            .map(|waited| waited.map(|answer| answer.clone().flatten()));
        match answer {
            Ok(Ok(answer)) => Claim::Duplicate(answer),
            // The first run's request went away without an answer: handle this one.
            Ok(Err(_)) => Box::pin(self.claim(key)).await,
            Err(_) => Claim::StillRunning,
        }
    }

    async fn claim_shared(
        self: &Arc<Self>,
        key: &str,
        sender: watch::Sender<Option<Answer>>,
    ) -> Claim {
        let mut guard = ClaimGuard {
            dedup: self.clone(),
            key: key.to_string(),
            sender: Some(sender),
            owns_shared: false,
        };
        let Some(store) = &self.shared else {
            return Claim::First(guard);
        };
        let shared_key = dedup_key(key);
        match store.set_nx(&shared_key, PENDING, Some(CLAIM_TTL)).await {
            Ok(true) => {
                guard.owns_shared = true;
                return Claim::First(guard);
            }
            Ok(false) => {}
            Err(e) => {
                // Better to risk a double answer than to drop the message.
                tracing::warn!("dedup: shared store unavailable, handling locally: {e}");
                return Claim::First(guard);
            }
        }
        // Another instance has it: wait for its answer.
        let started = Instant::now();
        loop {
            match store.get(&shared_key).await {
                Ok(Some(value)) => {
                    if let Some(xml) = value.strip_prefix(DONE) {
                        let answer: Answer = (!xml.is_empty()).then(|| Arc::from(xml));
                        guard.finish(answer.clone()).await;
                        return Claim::Duplicate(answer);
                    }
                }
                // The other instance gave up (or its claim expired): take it over.
                Ok(None) => {
                    if let Ok(true) = store.set_nx(&shared_key, PENDING, Some(CLAIM_TTL)).await {
                        guard.owns_shared = true;
                        return Claim::First(guard);
                    }
                }
                Err(_) => {}
            }
            if started.elapsed() >= self.wait {
                drop(guard);
                return Claim::StillRunning;
            }
            tokio::time::sleep(SHARED_POLL).await;
        }
    }

    /// Drops answers older than [`KEEP_RESULT`], at most once a second.
    fn sweep(&self) {
        {
            let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() < Duration::from_secs(1) {
                return;
            }
            *last = Instant::now();
        }
        self.lock().retain(|_, entry| match entry {
            Entry::Done(_, at) => at.elapsed() < KEEP_RESULT,
            Entry::Running(_) => true,
        });
    }

    /// Number of messages remembered (running or answered).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
