//! Faults injected into running hosts: a Redis the test freezes (SIGSTOP: connections stay
//! open and commands queue unanswered), and SIGTERM with a handler still running. Each test
//! reproduces a failure of the host before these were handled: answers late by the store's
//! timeouts, a message run on two instances, a late reply dropped at shutdown, a write
//! reported failed that took effect, and health checks that said "ok" with the store away.
//! Redis is started by the tests (never skipped).

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use redis_support::RedisServer;
use support::host::test_config;
use support::{element, env_refs, signed_query, text_xml, FakeApi, Server};
use tower::ServiceExt;
use wechat_lua::host::Host;
use wechat_lua::script::{LuaPool, RuntimeOptions, Services};
use wechat_lua::store::redis::DEFAULT_PREFIX;
use wechat_lua::store::{OutboxItem, RedisStore, Store};

/// A fresh MsgId for every message: the same one twice is a retry.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(70_000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The reply deadline of these hosts, short so that a late answer shows quickly.
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// How much later than the deadline an answer may come (scheduling on a busy machine).
const SLACK: Duration = Duration::from_millis(400);

/// A host on `redis` serving `main` (`NAME` in it replaced by `name`), answering within 1 s,
/// each message-path store operation bounded to 0.2 s, with the extra settings `env`.
struct RedisHost {
    router: axum::Router,
    _host: Host,
    _dir: tempfile::TempDir,
}

async fn host_on(redis: &RedisServer, name: &str, main: &str, env: &[(&str, &str)]) -> RedisHost {
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(scripts.join("main.lua"), main.replace("NAME", name)).unwrap();
    let url = redis.url(0);
    let scripts_text = scripts.display().to_string();
    let mut settings = vec![
        ("WECHAT_STORE", url.as_str()),
        ("WECHAT_SCRIPTS", scripts_text.as_str()),
        ("WECHAT_REPLY_TIMEOUT", "1"),
        ("WECHAT_CLAIM_TIMEOUT", "0.2"),
    ];
    settings.extend_from_slice(env);
    let config = test_config(&dir.path().join("data"), &settings);
    let host = Host::builder(&config).build().await.expect("host builds");
    RedisHost {
        router: wechat_lua::server::app(host.state.clone()),
        _host: host,
        _dir: dir,
    }
}

/// Sends a request through the router; returns status, body and how long the answer took.
async fn send(
    router: &axum::Router,
    method: &str,
    uri: &str,
    body: String,
) -> (u16, String, Duration) {
    let started = Instant::now();
    let response = router
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8_lossy(&bytes).into_owned(),
        started.elapsed(),
    )
}

/// POSTs `xml` as WeChat would, with a fresh signed query.
async fn post(router: &axum::Router, xml: &str) -> (u16, String, Duration) {
    send(
        router,
        "POST",
        &format!("/wechat?{}", signed_query()),
        xml.to_string(),
    )
    .await
}

const SLOW_AND_FAST: &str = r#"
wx.on("text", "^slow$", function() wx.sleep(5) return "slow done" end)
wx.on("text", "^fast$", function() return "fast from NAME" end)
"#;

/// Item 1: the deadline counts from the request's arrival and covers the replay check and the
/// claim, each bounded on its own: before, a frozen Redis held the replay check and the claim
/// for its 5 s response timeout each, and only then did the reply timer start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_store_does_not_make_the_answer_late() {
    let redis = RedisServer::start();
    let host = host_on(
        &redis,
        "A",
        SLOW_AND_FAST,
        &[("WECHAT_UNCONFIRMED_CLAIM", "run")],
    )
    .await;
    let (_, body, _) = post(&host.router, &text_xml("u", "fast", next_id())).await;
    assert_eq!(element(&body, "Content").as_deref(), Some("fast from A"));

    redis.freeze();
    let (status, body, took) = post(&host.router, &text_xml("u", "slow", next_id())).await;
    assert_eq!((status, body.as_str()), (200, "success"));
    assert!(
        took < REPLY_TIMEOUT + SLACK,
        "a handler past the deadline is answered at the deadline, store stalls included: took {took:?}"
    );
    let (status, body, took) = post(&host.router, &text_xml("u", "fast", next_id())).await;
    assert_eq!(status, 200);
    assert_eq!(
        element(&body, "Content").as_deref(),
        Some("fast from A"),
        "a quick handler still answers itself: {body}"
    );
    assert!(took < REPLY_TIMEOUT + SLACK, "took {took:?}");
    redis.thaw();
}

const RUN_TAGGED: &str = r#"
-- Each run answers with a tag of its own, so equal answers are one run repeated.
wx.on("text", function() return "ran on NAME " .. math.random(1, 1000000000) end)
"#;

/// Item 2, the default: with the store frozen, neither instance can confirm its claim, so
/// neither runs the handler (both answer `success` in time); once the store is back, WeChat's
/// retry runs it once and every later retry gets that answer. Before, both instances ran it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_a_frozen_store_skip_and_a_retry_runs_the_message_once() {
    let redis = RedisServer::start();
    let a = host_on(&redis, "A", RUN_TAGGED, &[]).await;
    let b = host_on(&redis, "B", RUN_TAGGED, &[]).await;
    let message = text_xml("u", "hello", next_id());

    redis.freeze();
    let (on_a, on_b) = tokio::join!(post(&a.router, &message), post(&b.router, &message));
    for (status, body, took) in [&on_a, &on_b] {
        assert_eq!(
            (*status, body.as_str()),
            (200, "success"),
            "{on_a:?} {on_b:?}"
        );
        assert!(*took < REPLY_TIMEOUT + SLACK, "took {took:?}");
    }
    redis.thaw();

    // WeChat's retries: the claims sent into the frozen store are withdrawn once it answers,
    // so a retry can take the message.
    let mut ran = None;
    for _ in 0..20 {
        let (_, body, _) = post(&b.router, &message).await;
        if let Some(content) = element(&body, "Content") {
            ran = Some(content);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ran = ran.expect("a retry after the store came back ran the handler");
    assert!(ran.starts_with("ran on B "), "{ran}");
    for router in [&a.router, &b.router] {
        let (_, body, _) = post(router, &message).await;
        assert_eq!(
            element(&body, "Content").as_deref(),
            Some(ran.as_str()),
            "later retries get the one run's answer"
        );
    }
}

/// Item 2, `unconfirmed_claim = "run"`: availability first: both instances run the message
/// while the store is frozen, each answering in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_a_frozen_store_both_run_when_configured_to() {
    let redis = RedisServer::start();
    let run = [("WECHAT_UNCONFIRMED_CLAIM", "run")];
    let a = host_on(&redis, "A", RUN_TAGGED, &run).await;
    let b = host_on(&redis, "B", RUN_TAGGED, &run).await;
    let message = text_xml("u", "hello", next_id());

    redis.freeze();
    let (on_a, on_b) = tokio::join!(post(&a.router, &message), post(&b.router, &message));
    redis.thaw();
    let content =
        |answer: &(u16, String, Duration)| element(&answer.1, "Content").unwrap_or_default();
    assert!(content(&on_a).starts_with("ran on A "), "{on_a:?}");
    assert!(content(&on_b).starts_with("ran on B "), "{on_b:?}");
    for (_, _, took) in [&on_a, &on_b] {
        assert!(*took < REPLY_TIMEOUT + SLACK, "took {took:?}");
    }
}

/// Item 5: a write the store did not answer may still be applied (a frozen Redis runs it when
/// it resumes), so the script is told `unknown_outcome`, not a plain failure it would retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_an_answer_is_an_unknown_outcome_and_may_have_happened() {
    let redis = RedisServer::start();
    let store =
        RedisStore::connect_with_timeout(&redis.url(0), DEFAULT_PREFIX, Duration::from_millis(300))
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.lua"),
        r#"
wx.on("text", "^incr$", function()
    local n, err = wx.store.incr("n")
    if n then return "n=" .. n end
    return err.kind
end)
wx.on("text", "^get$", function()
    local n, err = wx.store.get("n")
    if err then return err.kind end
    return "n=" .. tostring(n)
end)
"#,
    )
    .unwrap();
    let pool = LuaPool::start(
        dir.path(),
        RuntimeOptions::default(),
        1,
        Services::new(Arc::new(store)),
    )
    .unwrap();
    let text = |s: &str| support::pool::text(s);

    redis.freeze();
    let incr = support::pool::reply(&pool, &text_xml("u", "incr", 1)).await;
    let get = support::pool::reply(&pool, &text_xml("u", "get", 2)).await;
    redis.thaw();
    assert_eq!(incr, text("unknown_outcome"));
    assert_eq!(get, text("unavailable"), "a read changes nothing");
    assert_eq!(
        support::pool::reply(&pool, &text_xml("u", "get", 3)).await,
        text("n=1"),
        "the write reported without an answer was applied when Redis resumed"
    );
}

/// Item 6: `/healthz` reports the store's state and the outbox's age, `/readyz` answers 503
/// while the store does not answer, and the failures are counted per operation. Before,
/// `/healthz` said "ok" whatever the store did, and there was no `/readyz`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_a_frozen_store_and_readiness_fails_until_it_is_back() {
    let redis = RedisServer::start();
    let host = host_on(&redis, "A", SLOW_AND_FAST, &[]).await;
    let get = |path: &'static str| send(&host.router, "GET", path, String::new());

    let (status, body, _) = get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = get("/healthz").await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["store"]["state"], "ok", "{health}");
    assert_eq!(health["outbox"]["depth"], 0, "{health}");

    // A send queued 30 s ago and still waiting.
    let other = RedisStore::connect(&redis.url(0), DEFAULT_PREFIX)
        .await
        .unwrap();
    let now = wechat_lua::clock::unix_millis();
    other
        .outbox_push(&OutboxItem {
            id: "waiting".into(),
            payload: "{}".into(),
            attempts: 1,
            next_at_unix_ms: now + 3_600_000,
            created_at_unix_ms: now - 30_000,
            last_error: Some("system busy".into()),
        })
        .await
        .unwrap();
    let (_, body, _) = get("/healthz").await;
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["outbox"]["depth"], 1, "{health}");
    let age = health["outbox"]["oldest_age_s"].as_f64().unwrap();
    assert!((30.0..60.0).contains(&age), "{health}");

    redis.freeze();
    let (status, body, took) = get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        took < Duration::from_secs(1),
        "the probe is bounded: {took:?}"
    );
    let (status, body, _) = get("/healthz").await;
    assert_eq!(status, 200, "liveness holds while the store is away");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["store"]["state"], "unreachable", "{health}");
    let (_, metrics, _) = get("/metrics").await;
    assert!(
        metrics.contains(r#"wechat_lua_store_errors_total{op="set"}"#),
        "{metrics}"
    );
    redis.thaw();

    let mut ready = false;
    for _ in 0..20 {
        if get("/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready again once the store answers");
}

/// Item 3: SIGTERM waits for handlers still running past their deadline, up to
/// `shutdown_grace`: a late reply produced meanwhile reaches customer service, and what is
/// still running at the end is logged at WARN with a count. Before, the process exited at
/// once and the late reply was dropped silently.
#[test]
fn sigterm_lets_a_late_reply_go_out_and_counts_what_it_cuts_off() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    std::fs::write(
        dir.path().join("scripts/main.lua"),
        r#"
wx.on("text", "^late$", function() wx.sleep(1.5) return "late hello" end)
wx.on("text", "^stuck$", function() wx.sleep(60) return "never" end)
"#,
    )
    .unwrap();
    let mut env = api.env();
    env.push(("WECHAT_REPLY_TIMEOUT", "0.5".into()));
    env.push(("WECHAT_SHUTDOWN_GRACE", "3".into()));
    let mut server = Server::start(dir.path(), &[], &env_refs(&env));

    let stuck = {
        let url = format!("{}/wechat?{}", server.base, signed_query());
        std::thread::spawn(move || support::http("POST", &url, &text_xml("u2", "stuck", next_id())))
    };
    let (status, body) = server.post(&text_xml("u1", "late", next_id()));
    assert_eq!((status, body.as_str()), (200, "success"));
    assert_eq!(stuck.join().unwrap().1, "success");

    let signalled = Instant::now();
    let status = server
        .terminate_within(Duration::from_secs(10))
        .expect("exits within the grace period");
    assert!(status.success(), "{status:?}");
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(5),
        "waited for the grace period (3 s), not longer: {took:?}"
    );
    let sends = api.fake.calls_to(support::fake::SEND);
    assert!(
        sends.iter().any(|call| call
            .body
            .as_ref()
            .is_some_and(|b| b.to_string().contains("late hello"))),
        "the late reply reached customer service during the grace period: {sends:?}"
    );
    let log = server.log.lock().unwrap().join("\n");
    let warning = log
        .lines()
        .find(|l| l.contains("still running"))
        .unwrap_or_else(|| panic!("a warning about the cut-off handler: {log}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("count=1"), "{warning}");
}
