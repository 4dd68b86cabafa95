//! access_token lifecycle against the fake WeChat API over loopback: single flight,
//! refresh ahead, invalidation after 40001, stale failures, force_refresh, persistence.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use support::fake::{send, setup_with, SEND};
use wechat_lua::api::token::{ManualClock, MemoryPersistence};
use wechat_lua::api::{ClientConfig, TokenEndpoint, WechatClient};
use wechat_lua::fake_wechat::FakeWechat;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_callers_cause_one_fetch() {
    let (fake, client) = setup_with(|_| {}).await;
    // A slow token endpoint widens the window in which callers pile up.
    fake.delay("/cgi-bin/stable_token", Duration::from_millis(200));
    let results = join_all((0..50).map(|_| {
        let c = client.clone();
        tokio::spawn(async move { send(&c).await })
    }))
    .await;
    for r in results {
        r.unwrap().unwrap();
    }
    assert_eq!(fake.token_fetches(), 1);
    assert_eq!(fake.calls_to("/cgi-bin/stable_token").len(), 1);
    assert_eq!(fake.calls_to(SEND).len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_sends_with_a_token_wechat_expired_fetch_once() {
    let (fake, client) = setup_with(|_| {}).await;
    send(&client).await.unwrap();
    assert_eq!(fake.token_fetches(), 1);
    fake.expire_tokens();
    let results = join_all((0..1000).map(|_| {
        let c = client.clone();
        tokio::spawn(async move { send(&c).await })
    }))
    .await;
    for r in results {
        r.unwrap().unwrap();
    }
    assert_eq!(fake.token_fetches(), 2, "exactly one refetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_sends_with_a_locally_expired_token_fetch_once() {
    let clock = Arc::new(ManualClock::default());
    let c2 = clock.clone();
    let (fake, client) = setup_with(move |cfg| cfg.clock = c2).await;
    send(&client).await.unwrap();
    clock.advance(Duration::from_secs(7200));
    let results = join_all((0..1000).map(|_| {
        let c = client.clone();
        tokio::spawn(async move { send(&c).await })
    }))
    .await;
    for r in results {
        r.unwrap().unwrap();
    }
    assert_eq!(fake.token_fetches(), 2);
    assert!(client.token_status().expires_in_secs.unwrap() > 7000);
}

#[tokio::test]
async fn token_is_refreshed_ahead_of_expiry_without_making_callers_wait() {
    let clock = Arc::new(ManualClock::default());
    let c2 = clock.clone();
    let (fake, client) = setup_with(move |cfg| {
        cfg.clock = c2;
        cfg.token_endpoint = TokenEndpoint::Classic;
    })
    .await;
    send(&client).await.unwrap();
    let first = client.access_token().await.unwrap();
    // Plenty of time left: no refresh.
    clock.advance(Duration::from_secs(3600));
    send(&client).await.unwrap();
    client.refresh_token_if_due().await;
    assert_eq!(fake.token_fetches(), 1);

    // Under 5 minutes left: the caller still gets the old token at once...
    clock.advance(Duration::from_secs(7200 - 3600 - 200));
    fake.delay("/cgi-bin/token", Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_eq!(client.access_token().await.unwrap(), first);
    assert!(started.elapsed() < Duration::from_millis(250));
    // ...and the background task fetches the next one.
    for _ in 0..100 {
        if fake.token_fetches() == 2 && client.token_status().expires_in_secs > Some(7000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.token_fetches(), 2);
    let second = client.access_token().await.unwrap();
    assert_ne!(first, second);
    assert_eq!(Some(second), fake.current_token());
    send(&client).await.unwrap();
    assert_eq!(fake.token_fetches(), 2);
}

#[tokio::test]
async fn refresh_ahead_is_deterministic_through_refresh_token_if_due() {
    let clock = Arc::new(ManualClock::default());
    let c2 = clock.clone();
    let (fake, client) = setup_with(move |cfg| {
        cfg.clock = c2;
        cfg.token_endpoint = TokenEndpoint::Classic;
    })
    .await;
    client.refresh_token_if_due().await; // nothing cached: fetches
    assert_eq!(fake.token_fetches(), 1);
    client.refresh_token_if_due().await; // fresh: no fetch
    assert_eq!(fake.token_fetches(), 1);
    clock.advance(Duration::from_secs(7000));
    client.refresh_token_if_due().await;
    assert_eq!(fake.token_fetches(), 2);
    assert_eq!(client.access_token().await.ok(), fake.current_token());
}

#[tokio::test]
async fn rejected_token_causes_one_refetch_and_one_retry() {
    let (fake, client) = setup_with(|_| {}).await;
    send(&client).await.unwrap();
    fake.invalidate_token();
    send(&client).await.unwrap();
    assert_eq!(fake.token_fetches(), 2);
    assert_eq!(
        fake.calls_to(SEND).len(),
        3,
        "first send, rejected send, retry"
    );

    // A second rejection within the same call is not retried again.
    fake.fail_next(SEND, 40001, 2);
    let err = send(&client).await.unwrap_err();
    assert_eq!(err.errcode(), 40001);
    assert_eq!(fake.calls_to(SEND).len(), 5);
    // The fake still considered the token valid, so stable_token's normal mode handed the
    // rejected token back and the client had to force a refresh: two fetches.
    assert_eq!(fake.token_fetches(), 4);
    let last = fake.calls_to("/cgi-bin/stable_token").pop().unwrap();
    assert_eq!(last.body.unwrap()["force_refresh"], true);
}

/// On paused time (the fake's delays run on tokio's clock), so the slow call's wait costs
/// nothing and its arrival at the fake is awaited instead of guessed with a sleep.
#[tokio::test(start_paused = true)]
async fn stale_failure_never_drops_a_newer_token() {
    let (fake, client) = setup_with(|_| {}).await;
    send(&client).await.unwrap();
    // A slow call still carrying the old token...
    fake.delay("/cgi-bin/user/info", Duration::from_millis(600));
    let slow = {
        let c = client.clone();
        tokio::spawn(async move { c.user().info("oUSER", "zh_CN").await })
    };
    while fake.calls_to("/cgi-bin/user/info").is_empty() {
        tokio::task::yield_now().await;
    }
    // ...meanwhile the token is revoked and a fast call replaces it.
    fake.invalidate_token();
    send(&client).await.unwrap();
    assert_eq!(fake.token_fetches(), 2);
    let newer = fake.current_token().unwrap();
    // The slow call now fails with the old token, retries with the newer one, and does not
    // throw the newer one away.
    slow.await.unwrap().unwrap();
    assert_eq!(fake.token_fetches(), 2);
    assert_eq!(client.access_token().await.unwrap(), newer);
}

#[tokio::test]
async fn stable_token_handing_back_the_rejected_token_forces_a_refresh() {
    let (fake, client) = setup_with(|_| {}).await;
    send(&client).await.unwrap();
    let old = fake.current_token().unwrap();
    fake.invalidate_token_sticky();
    send(&client).await.unwrap();
    let bodies: Vec<_> = fake
        .calls_to("/cgi-bin/stable_token")
        .into_iter()
        .map(|c| c.body.unwrap())
        .collect();
    assert_eq!(bodies.len(), 3);
    assert_eq!(bodies[0]["force_refresh"], false);
    assert_eq!(bodies[1]["force_refresh"], false);
    assert_eq!(bodies[2]["force_refresh"], true);
    assert_eq!(bodies[2]["grant_type"], "client_credential");
    assert_eq!(
        bodies[2]["secret"], "<secret>",
        "the fake masks the secret it records"
    );
    assert_ne!(fake.current_token().unwrap(), old);
}

#[tokio::test]
async fn classic_endpoint_sends_the_documented_query() {
    let (fake, client) = setup_with(|cfg| cfg.token_endpoint = TokenEndpoint::Classic).await;
    send(&client).await.unwrap();
    let calls = fake.calls_to("/cgi-bin/token");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "GET");
    assert_eq!(
        calls[0].query_param("grant_type"),
        Some("client_credential")
    );
    assert_eq!(calls[0].query_param("appid"), Some(fake.appid().as_str()));
    assert!(fake.calls_to("/cgi-bin/stable_token").is_empty());
}

#[tokio::test]
async fn persisted_token_survives_a_restart_without_a_fetch() {
    let store = Arc::new(MemoryPersistence::default());
    let s1 = store.clone();
    let (fake, base) = FakeWechat::start().await.unwrap();
    let mk = |p: Arc<MemoryPersistence>| {
        let mut cfg = ClientConfig::new(fake.appid(), fake.secret()).with_base_url(base.clone());
        cfg.persistence = p;
        WechatClient::new(cfg).unwrap()
    };
    let first = mk(s1);
    send(&first).await.unwrap();
    drop(first);
    let restarted = mk(store);
    send(&restarted).await.unwrap();
    assert_eq!(fake.token_fetches(), 1);
}

#[tokio::test]
async fn token_status_and_debug_never_show_the_token_or_secret() {
    let (fake, client) = setup_with(|_| {}).await;
    let st = client.token_status();
    assert!(!st.cached);
    assert_eq!(st.expires_at_unix, None);
    send(&client).await.unwrap();
    let st = client.token_status();
    assert!(st.cached);
    assert!((7100..=7200).contains(&st.expires_in_secs.unwrap()));
    assert_eq!(st.fetches, 1);
    let token = fake.current_token().unwrap();
    let shown = format!("{st:?} {client:?}");
    assert!(!shown.contains(&token));
    assert!(!shown.contains(&fake.secret()));
    // The access_token query parameter never reaches the recording (nor, therefore, logs).
    assert!(fake.calls_to(SEND)[0].query.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_waiting_on_a_failed_fetch_share_its_error() {
    let (fake, client) = setup_with(|_| {}).await;
    fake.delay("/cgi-bin/stable_token", Duration::from_millis(300));
    fake.fail_next("/cgi-bin/stable_token", 40164, 100);
    let results = join_all((0..50).map(|_| {
        let c = client.clone();
        tokio::spawn(async move { send(&c).await })
    }))
    .await;
    for r in results {
        assert_eq!(r.unwrap().unwrap_err().errcode(), 40164);
    }
    assert_eq!(fake.calls_to("/cgi-bin/stable_token").len(), 1);
    assert!(fake.calls_to(SEND).is_empty());
}

#[tokio::test]
async fn busy_token_endpoint_is_retried_with_backoff() {
    let (fake, client) = setup_with(|_| {}).await;
    fake.fail_next("/cgi-bin/stable_token", -1, 2);
    send(&client).await.unwrap();
    assert_eq!(fake.calls_to("/cgi-bin/stable_token").len(), 3);
    assert_eq!(fake.token_fetches(), 1);
}
