//! One behaviour suite run against every store backend: SQLite in memory, SQLite on
//! disk (the default) and Redis on a private `redis-server`.

#[path = "support/redis.rs"]
mod redis_support;

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use wechat_lua::store::{self, OutboxItem, Store, StoreError};

use redis_support::RedisServer;

/// A store under test plus whatever must outlive it (temp dir, redis-server).
struct Backend {
    store: Arc<dyn Store>,
    _guard: Box<dyn Any + Send>,
}

async fn sqlite_memory() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(Some(store::SQLITE_MEMORY_SPEC), dir.path())
        .await
        .unwrap();
    Backend {
        store,
        _guard: Box::new(dir),
    }
}

async fn sqlite_file() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(None, dir.path()).await.unwrap();
    Backend {
        store,
        _guard: Box::new(dir),
    }
}

async fn redis() -> Backend {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(Some(&server.url(0)), dir.path()).await.unwrap();
    Backend {
        store,
        _guard: Box::new((server, dir)),
    }
}

fn item(id: &str, next_at: i64) -> OutboxItem {
    OutboxItem {
        id: id.to_owned(),
        payload: format!(r#"{{"kind":"kf","body":{{"touser":"{id}"}}}}"#),
        attempts: 0,
        next_at_unix_ms: next_at,
        created_at_unix_ms: 1_700_000_000_000,
        last_error: None,
    }
}

async fn get_set_del(s: &Arc<dyn Store>) {
    assert_eq!(s.get("k").await.unwrap(), None);
    s.set("k", "v1", None).await.unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some("v1"));
    s.set("k", "值 2 ✓", None).await.unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some("值 2 ✓"));
    s.set("empty", "", None).await.unwrap();
    assert_eq!(s.get("empty").await.unwrap().as_deref(), Some(""));
    assert!(s.del("k").await.unwrap());
    assert!(!s.del("k").await.unwrap());
    assert_eq!(s.get("k").await.unwrap(), None);
    assert_eq!(s.get("empty").await.unwrap().as_deref(), Some(""));
}

async fn ttl_expiry(s: &Arc<dyn Store>) {
    let ttl = Some(Duration::from_millis(400));
    s.set("t", "x", ttl).await.unwrap();
    s.set("kept", "y", ttl).await.unwrap();
    // A plain set drops the TTL.
    s.set("kept", "y2", None).await.unwrap();
    assert!(s.set_nx("lock", "a", ttl).await.unwrap());
    assert_eq!(s.get("t").await.unwrap().as_deref(), Some("x"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(s.get("t").await.unwrap(), None);
    assert_eq!(s.get("kept").await.unwrap().as_deref(), Some("y2"));
    // An expired key is absent for every operation, not only for reads.
    assert!(!s.del("t").await.unwrap());
    assert!(!s.del_if_eq("lock", "a").await.unwrap());
    assert!(s.set_nx("lock", "b", ttl).await.unwrap());
    assert_eq!(s.get("lock").await.unwrap().as_deref(), Some("b"));
    s.set("n", "41", ttl).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(s.incr("n", 1).await.unwrap(), 1);
}

async fn set_nx_one_winner(s: &Arc<dyn Store>) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let won = s
                    .set_nx(
                        "dedup:msg",
                        &format!("claimant-{i}"),
                        Some(Duration::from_secs(30)),
                    )
                    .await
                    .unwrap();
                (i, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.unwrap();
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        s.get("dedup:msg").await.unwrap(),
        Some(format!("claimant-{}", winners[0]))
    );
    assert!(!s.set_nx("dedup:msg", "late", None).await.unwrap());
}

async fn incr_atomic(s: &Arc<dyn Store>) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut seen = Vec::with_capacity(100);
                for _ in 0..100 {
                    seen.push(s.incr("counter", 1).await.unwrap());
                }
                seen
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    // Every increment saw a distinct value: no two read the same old value.
    assert_eq!(all, (1..=800).collect::<Vec<i64>>());
    assert_eq!(s.get("counter").await.unwrap().as_deref(), Some("800"));
}

async fn incr_semantics(s: &Arc<dyn Store>) {
    assert_eq!(s.incr("fresh", 5).await.unwrap(), 5);
    assert_eq!(s.incr("fresh", -7).await.unwrap(), -2);
    s.set("word", "abc", None).await.unwrap();
    assert_eq!(
        s.incr("word", 1).await.unwrap_err(),
        StoreError::NotAnInteger { key: "word".into() }
    );
    assert_eq!(s.get("word").await.unwrap().as_deref(), Some("abc"));
    // Both backends accept only Redis's canonical integer spelling.
    for (i, bad) in ["1.5", " 5", "+5", "05", "1e3", ""].into_iter().enumerate() {
        let key = format!("bad{i}");
        s.set(&key, bad, None).await.unwrap();
        assert_eq!(
            s.incr(&key, 1).await.unwrap_err(),
            StoreError::NotAnInteger { key },
            "{bad:?}"
        );
    }
    s.set("neg", "-10", None).await.unwrap();
    assert_eq!(s.incr("neg", 3).await.unwrap(), -7);
    s.set("big", &i64::MAX.to_string(), None).await.unwrap();
    assert_eq!(
        s.incr("big", 1).await.unwrap_err(),
        StoreError::Overflow { key: "big".into() }
    );
}

async fn del_if_eq(s: &Arc<dyn Store>) {
    assert!(!s.del_if_eq("tok", "old").await.unwrap());
    s.set("tok", "new", None).await.unwrap();
    assert!(!s.del_if_eq("tok", "old").await.unwrap());
    assert_eq!(s.get("tok").await.unwrap().as_deref(), Some("new"));
    assert!(s.del_if_eq("tok", "new").await.unwrap());
    assert_eq!(s.get("tok").await.unwrap(), None);
}

/// Compare-and-set: written only over the expected value, never over an absent key, and of
/// many concurrent writers expecting the same value exactly one wins (a rotated refresh
/// token replaces only the one it was fetched with).
async fn set_if_eq(s: &Arc<dyn Store>) {
    assert!(!s.set_if_eq("rt", "r0", "r1", None).await.unwrap());
    assert_eq!(s.get("rt").await.unwrap(), None, "absent stays absent");
    s.set("rt", "r1", None).await.unwrap();
    assert!(!s.set_if_eq("rt", "r0", "r2", None).await.unwrap());
    assert_eq!(s.get("rt").await.unwrap().as_deref(), Some("r1"));
    assert!(s
        .set_if_eq("rt", "r1", "r2", Some(Duration::from_secs(60)))
        .await
        .unwrap());
    assert_eq!(s.get("rt").await.unwrap().as_deref(), Some("r2"));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.set_if_eq("rt", "r2", &format!("w{i}"), None).await })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap().unwrap());
    }
    assert_eq!(winners, 1, "one writer replaced r2");
    assert!(s.get("rt").await.unwrap().unwrap().starts_with('w'));
}

async fn outbox_lifecycle(s: &Arc<dyn Store>) {
    let lease = Duration::from_secs(30);
    assert_eq!(s.outbox_len().await.unwrap(), 0);
    assert!(s
        .outbox_take_due(i64::MAX / 2, 10, lease)
        .await
        .unwrap()
        .is_empty());
    s.outbox_push(&item("c", 5_000)).await.unwrap();
    s.outbox_push(&item("a", 1_000)).await.unwrap();
    s.outbox_push(&item("b", 2_000)).await.unwrap();
    assert_eq!(s.outbox_len().await.unwrap(), 3);

    // Due at 2500: a and b, oldest first; the limit holds.
    let first = s.outbox_take_due(2_500, 1, lease).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, "a");
    assert_eq!(first[0].payload, item("a", 0).payload);
    assert_eq!(first[0].created_at_unix_ms, 1_700_000_000_000);
    assert_eq!(first[0].next_at_unix_ms, 2_500 + 30_000);
    let second = s.outbox_take_due(2_500, 10, lease).await.unwrap();
    assert_eq!(ids(&second), ["b"]);
    // Both are leased now: nothing more is due until the lease ends.
    assert!(s
        .outbox_take_due(2_500, 10, lease)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.outbox_len().await.unwrap(), 3, "leased items still count");
    // c (due 5 000) is due; a and b stay leased until 32 500.
    assert_eq!(
        ids(&s.outbox_take_due(32_499, 10, lease).await.unwrap()),
        ["c"]
    );
    assert!(s
        .outbox_take_due(32_499, 10, lease)
        .await
        .unwrap()
        .is_empty());
    let again = s.outbox_take_due(32_500, 10, lease).await.unwrap();
    assert_eq!(ids(&again), ["a", "b"]);

    s.outbox_retry("a", 70_000, 1, "45015: response out of time limit")
        .await
        .unwrap();
    s.outbox_done("b").await.unwrap();
    s.outbox_done("b").await.unwrap();
    s.outbox_done("never-pushed").await.unwrap();
    s.outbox_retry("never-pushed", 1, 1, "x").await.unwrap();
    assert_eq!(s.outbox_len().await.unwrap(), 2);

    // c's lease (taken at 32 499) ends at 62 499; a waits for its retry time.
    assert!(s
        .outbox_take_due(62_498, 10, lease)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        ids(&s.outbox_take_due(62_499, 10, lease).await.unwrap()),
        ["c"]
    );
    assert!(s
        .outbox_take_due(69_999, 10, lease)
        .await
        .unwrap()
        .is_empty());
    let retried = s.outbox_take_due(70_000, 10, lease).await.unwrap();
    assert_eq!(ids(&retried), ["a"]);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(
        retried[0].last_error.as_deref(),
        Some("45015: response out of time limit")
    );
    assert_eq!(retried[0].payload, item("a", 0).payload);
    s.outbox_done("a").await.unwrap();
    s.outbox_done("c").await.unwrap();
    assert_eq!(s.outbox_len().await.unwrap(), 0);
    assert!(s
        .outbox_take_due(i64::MAX / 2, 10, lease)
        .await
        .unwrap()
        .is_empty());
}

async fn outbox_concurrent_takers(s: &Arc<dyn Store>) {
    for i in 0..60 {
        s.outbox_push(&item(&format!("m{i:02}"), 1_000 + i))
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = s
                        .outbox_take_due(10_000, 7, Duration::from_secs(60))
                        .await
                        .unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|i| i.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 60, "every item taken exactly once");
    assert_eq!(unique.len(), 60);
}

fn ids(items: &[OutboxItem]) -> Vec<&str> {
    items.iter().map(|i| i.id.as_str()).collect()
}

macro_rules! backend_suite {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let backend = super::$backend().await;
                    super::$case(&backend.store).await;
                }
            )*
        }
    };
    ($($backend:ident),* $(,)?) => {
        $(
            backend_suite!($backend: get_set_del, ttl_expiry, set_nx_one_winner, incr_atomic,
                incr_semantics, del_if_eq, set_if_eq, outbox_lifecycle, outbox_concurrent_takers);
        )*
    };
}

backend_suite!(sqlite_memory, sqlite_file, redis);
