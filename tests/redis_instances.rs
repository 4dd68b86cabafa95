//! Two host instances on one Redis, as behind a load balancer: a retry that lands on the other
//! instance runs nothing, the access_token is fetched once for both, and `wx.store.incr` from
//! both loses no update. Redis is started by the test (never skipped).

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis_support::RedisServer;
use support::{element, env_refs, signed_query, text_xml, FakeApi, Server};

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(50_000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

const BOT: &str = r#"
wx.on("text", "^total$", function() return tostring(wx.store.get("hits")) end)
wx.on("text", "^slow$", function() wx.sleep(1.2) return "slow done" end)
wx.on("text", function(msg)
    local n = wx.store.incr("hits")
    wx.sleep(0.3)
    return "hit " .. n
end)
"#;

struct Pair {
    a: Arc<Server>,
    b: Arc<Server>,
    api: FakeApi,
    _redis: RedisServer,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn two_instances() -> Pair {
    let redis = RedisServer::start();
    let api = FakeApi::start();
    let mut env = api.env();
    env.push(("WECHAT_REPLY_TIMEOUT", "0.6".into()));
    let start = |dir: &tempfile::TempDir| {
        std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
        std::fs::write(dir.path().join("scripts/main.lua"), BOT).unwrap();
        Arc::new(Server::start(
            dir.path(),
            &["--store", &redis.url(0)],
            &env_refs(&env),
        ))
    };
    // Separate working directories: the instances share nothing but Redis.
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(&dirs.0);
    let b = start(&dirs.1);
    Pair {
        a,
        b,
        api,
        _redis: redis,
        _dirs: dirs,
    }
}

#[test]
fn a_retry_on_the_other_instance_runs_nothing() {
    let pair = two_instances();
    let message = text_xml("user1", "hello", next_id());
    let (_, first) = pair.a.post(&message);
    assert_eq!(element(&first, "Content").as_deref(), Some("hit 1"));
    let (_, retry) = pair.b.post(&message);
    assert_eq!(element(&retry, "Content").as_deref(), Some("hit 1"));

    // Both at once: one runs, the other waits for its answer.
    let message = text_xml("user1", "again", next_id());
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let (m1, m2) = (message.clone(), message.clone());
    let t1 = std::thread::spawn(move || a.post(&m1));
    let t2 = std::thread::spawn(move || b.post(&m2));
    let (r1, r2) = (t1.join().unwrap(), t2.join().unwrap());
    assert_eq!(
        element(&r1.1, "Content").as_deref(),
        Some("hit 2"),
        "{r1:?} {r2:?}"
    );
    assert_eq!(
        element(&r2.1, "Content").as_deref(),
        Some("hit 2"),
        "{r1:?} {r2:?}"
    );
    let (_, total) = pair.b.post(&text_xml("user1", "total", next_id()));
    assert_eq!(element(&total, "Content").as_deref(), Some("2"));

    // A signed query used on one instance is a replay on the other.
    let query = signed_query();
    let (status, _) = pair
        .a
        .post_with_query(&query, &text_xml("user1", "once", next_id()));
    assert_eq!(status, 200);
    let (status, _) = pair
        .b
        .post_with_query(&query, &text_xml("user1", "replayed", next_id()));
    assert_eq!(status, 403, "replayed on the other instance");
}

#[test]
fn increments_from_both_instances_lose_no_update() {
    let pair = two_instances();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let server = if i % 2 == 0 {
                pair.a.clone()
            } else {
                pair.b.clone()
            };
            std::thread::spawn(move || {
                for _ in 0..10 {
                    let (status, _) = server.post(&text_xml("u", "count me", next_id()));
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (_, total) = pair.a.post(&text_xml("u", "total", next_id()));
    assert_eq!(element(&total, "Content").as_deref(), Some("40"));
}

#[test]
fn both_instances_share_one_access_token_fetch() {
    let pair = two_instances();
    // Slow replies go out through customer service, which needs the access_token.
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let t1 = std::thread::spawn(move || a.post(&text_xml("ua", "slow", next_id())));
    let t2 = std::thread::spawn(move || b.post(&text_xml("ub", "slow", next_id())));
    assert_eq!(t1.join().unwrap().1, "success");
    assert_eq!(t2.join().unwrap().1, "success");
    assert!(pair
        .api
        .wait_for_calls("/cgi-bin/message/custom/send", 2, Duration::from_secs(15)));
    assert_eq!(
        pair.api.fake.token_fetches(),
        1,
        "one fetch for both instances"
    );
}
