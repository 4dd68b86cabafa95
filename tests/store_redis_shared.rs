//! Two `RedisStore`s on one Redis, as two host instances behind a load balancer would
//! have: their atomic operations must hold across instances.

#[path = "support/redis.rs"]
mod redis_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use wechat_lua::store::redis::DEFAULT_PREFIX;
use wechat_lua::store::{self, OutboxItem, RedisStore, Store, StoreError};

use redis_support::RedisServer;

async fn two_hosts(server: &RedisServer) -> [Arc<dyn Store>; 2] {
    let a = RedisStore::connect(&server.url(0), DEFAULT_PREFIX)
        .await
        .unwrap();
    let b = RedisStore::connect(&server.url(0), DEFAULT_PREFIX)
        .await
        .unwrap();
    [Arc::new(a), Arc::new(b)]
}

fn item(id: &str, next_at: i64) -> OutboxItem {
    OutboxItem {
        id: id.to_owned(),
        payload: r#"{"kind":"kf"}"#.to_owned(),
        attempts: 0,
        next_at_unix_ms: next_at,
        created_at_unix_ms: 0,
        last_error: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn incr_from_two_hosts_loses_no_update() {
    let server = RedisServer::start();
    let hosts = two_hosts(&server).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = hosts[i % 2].clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..100 {
                    seen.push(s.incr("hits", 1).await.unwrap());
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
    assert_eq!(all, (1..=800).collect::<Vec<i64>>());
    assert_eq!(hosts[1].get("hits").await.unwrap().as_deref(), Some("800"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_nx_from_two_hosts_has_one_winner() {
    let server = RedisServer::start();
    let hosts = two_hosts(&server).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = hosts[i % 2].clone();
            tokio::spawn(async move {
                s.set_nx(
                    "lock:token",
                    &format!("host-{i}"),
                    Some(Duration::from_secs(10)),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    // Only the holder's value releases it, from either host.
    let holder = hosts[0].get("lock:token").await.unwrap().unwrap();
    assert!(!hosts[1]
        .del_if_eq("lock:token", "someone-else")
        .await
        .unwrap());
    assert!(hosts[1].del_if_eq("lock:token", &holder).await.unwrap());
    assert_eq!(hosts[0].get("lock:token").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_query_used_on_one_host_is_refused_on_the_other_until_its_ttl() {
    use wechat_lua::store::keys::{claim_once, replay_key};
    let server = RedisServer::start();
    let hosts = two_hosts(&server).await;
    let key = replay_key("0123456789abcdef0123456789abcdef01234567");
    let ttl = Duration::from_millis(300);
    assert!(claim_once(hosts[0].as_ref(), &key, ttl).await.unwrap());
    assert!(!claim_once(hosts[1].as_ref(), &key, ttl).await.unwrap());
    assert!(!claim_once(hosts[0].as_ref(), &key, ttl).await.unwrap());
    // Redis expires it (SET NX PX): memory stays bounded by the window.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(claim_once(hosts[1].as_ref(), &key, ttl).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outbox_item_taken_by_one_host_is_not_taken_by_the_other() {
    let server = RedisServer::start();
    let [a, b] = two_hosts(&server).await;
    let lease = Duration::from_secs(30);
    a.outbox_push(&item("x", 1_000)).await.unwrap();
    let taken = a.outbox_take_due(2_000, 10, lease).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(b
        .outbox_take_due(2_000, 10, lease)
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .outbox_take_due(31_999, 10, lease)
        .await
        .unwrap()
        .is_empty());
    // Host a died without finishing: after the lease, b picks the item up.
    let retaken = b.outbox_take_due(32_000, 10, lease).await.unwrap();
    assert_eq!(retaken.len(), 1);
    assert_eq!(retaken[0].id, "x");
    b.outbox_done("x").await.unwrap();
    assert_eq!(a.outbox_len().await.unwrap(), 0);

    // Both hosts draining one queue concurrently take every item exactly once.
    for i in 0..60 {
        a.outbox_push(&item(&format!("m{i}"), i)).await.unwrap();
    }
    let tasks: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .map(|s| {
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = s.outbox_take_due(100, 3, lease).await.unwrap();
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
    assert_eq!(all.len(), 60);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 60);
}

#[tokio::test]
async fn keys_live_under_the_prefix_with_native_expiry() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("{}?prefix=bot1:", server.url(3));
    let bot1 = store::open(Some(&spec), dir.path()).await.unwrap();
    let bot2 = store::open(Some(&server.url(3)), dir.path()).await.unwrap();
    bot1.set("token:wx1", "abc", Some(Duration::from_secs(100)))
        .await
        .unwrap();
    bot1.outbox_push(&item("o", 0)).await.unwrap();
    // Another prefix on the same database sees none of it.
    assert_eq!(bot2.get("token:wx1").await.unwrap(), None);
    assert_eq!(bot2.outbox_len().await.unwrap(), 0);

    let client = redis::Client::open(server.url(3)).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let value: Option<String> = redis::cmd("GET")
        .arg("bot1:kv:token:wx1")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("abc"));
    let pttl: i64 = redis::cmd("PTTL")
        .arg("bot1:kv:token:wx1")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(pttl > 90_000 && pttl <= 100_000, "pttl {pttl}");
    let queued: i64 = redis::cmd("ZCARD")
        .arg("bot1:outbox:due")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(queued, 1);
}

#[tokio::test]
async fn redis_going_away_is_an_error_not_a_hang() {
    let server = RedisServer::start();
    let s = RedisStore::connect(&server.url(0), DEFAULT_PREFIX)
        .await
        .unwrap();
    s.set("k", "v", None).await.unwrap();
    drop(server);
    let res = tokio::time::timeout(Duration::from_secs(20), s.get("k"))
        .await
        .expect("a dead redis must fail within the response/connection timeouts");
    // A command cut off with the connection may have reached Redis before it died: either
    // "unavailable" or "unknown outcome" is honest, a hang or a success is not.
    assert!(
        matches!(
            res,
            Err(StoreError::Unavailable(_) | StoreError::UnknownOutcome(_))
        ),
        "expected Unavailable or UnknownOutcome, got {res:?}"
    );
}
