//! The web-page side of the WeChat API through the real reqwest client against the fake on
//! loopback: 网页授权 (the sign-in redirect, the single-use code exchange, the visitor's
//! profile), the JS-SDK's jsapi_ticket (one fetch under contention, kept in the store and
//! shared, refreshed ahead, fetched again after the access_token is rejected) and its
//! signature, and 订阅通知's endpoints.

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::fake::{config, last, setup, setup_with};
use wechat_lua::api::jssdk::signature;
use wechat_lua::api::oauth::Scope;
use wechat_lua::api::subscribe::SubscribeMessage;
use wechat_lua::api::ticket::GETTICKET_PATH;
use wechat_lua::api::token::ManualClock;
use wechat_lua::api::token_store::StoreTokenPersistence;
use wechat_lua::api::{ApiError, WechatClient};
use wechat_lua::fake_wechat::FakeWechat;
use wechat_lua::store::{SqliteStore, Store};

/// Follows the sign-in URL like a browser that stops at the first redirect; returns where
/// it points.
async fn sign_in(url: &str) -> url::Url {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    // Browsers never send the fragment.
    let url = url.split('#').next().unwrap();
    let resp = browser.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302, "{:?}", resp.text().await);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    url::Url::parse(&location).unwrap()
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn sign_in_redirects_with_a_code_that_works_once() {
    let (fake, client) = setup().await;
    fake.set_oauth_user("oALICE");
    let url = client.oauth().authorize_url(
        "https://shop.example/oauth/callback?next=/orders",
        Scope::UserInfo,
        "st8te",
    );
    assert!(
        url.starts_with(&format!(
            "{}/connect/oauth2/authorize?appid={}&redirect_uri=https%3A%2F%2Fshop.example",
            client.authorize_base(),
            fake.appid()
        )),
        "{url}"
    );
    assert!(url.ends_with("&response_type=code&scope=snsapi_userinfo&state=st8te#wechat_redirect"));

    let back = sign_in(&url).await;
    assert_eq!(back.host_str(), Some("shop.example"));
    assert_eq!(back.path(), "/oauth/callback");
    assert_eq!(query(&back, "next").as_deref(), Some("/orders"));
    assert_eq!(query(&back, "state").as_deref(), Some("st8te"));
    let code = query(&back, "code").unwrap();

    let token = client.oauth().exchange(&code).await.unwrap();
    assert_eq!(token.openid, "oALICE");
    assert_eq!(token.scope, "snsapi_userinfo");
    assert_eq!(token.expires_in, 7200);
    assert_eq!(token.unionid, None);
    // The exchange is signed with the secret, which the fake records masked.
    let call = last(&fake, "/sns/oauth2/access_token");
    assert_eq!(call.query_param("appid"), Some(fake.appid().as_str()));
    assert_eq!(call.query_param("secret"), Some("<secret>"));
    assert_eq!(call.query_param("grant_type"), Some("authorization_code"));

    // Each code works once; an unknown one is 40029.
    let again = client.oauth().exchange(&code).await.unwrap_err();
    assert_eq!(again.errcode(), 40163, "{again}");
    let unknown = client.oauth().exchange("NOPE").await.unwrap_err();
    assert_eq!(unknown.errcode(), 40029, "{unknown}");

    let info = client
        .oauth()
        .userinfo(&token.access_token, "oALICE", "zh_CN")
        .await
        .unwrap();
    assert_eq!(info["openid"], "oALICE");
    assert_eq!(info["nickname"], "Fake oALICE");
    // None of it needed the account's access_token.
    assert_eq!(fake.token_fetches(), 0);
}

#[tokio::test]
async fn the_sign_in_page_refuses_what_wechat_refuses() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let appid = fake.appid();
    for (query, code) in [
        (
            "appid=wxOTHER&redirect_uri=https%3A%2F%2Fa.example%2F&response_type=code&scope=snsapi_base&state=s".to_string(),
            "40013",
        ),
        (
            format!("appid={appid}&redirect_uri=https%3A%2F%2Fa.example%2F&response_type=code&scope=snsapi_login&state=s"),
            "10005",
        ),
        (
            format!("appid={appid}&redirect_uri=&response_type=code&scope=snsapi_base&state=s"),
            "10011",
        ),
        (
            format!("appid={appid}&redirect_uri=javascript%3Aalert(1)&response_type=code&scope=snsapi_base&state=s"),
            "10003",
        ),
    ] {
        let resp = browser
            .get(format!("{base}/connect/oauth2/authorize?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        assert!(resp.text().await.unwrap().contains(code), "{query}");
    }
}

#[tokio::test]
async fn a_visitors_token_is_theirs_not_the_accounts() {
    let (fake, client) = setup().await;
    let follower = fake.add_followers(1).remove(0);
    client.user().info(&follower, "zh_CN").await.unwrap();
    assert_eq!(fake.token_fetches(), 1);

    // A base-scope visitor may not read a profile (48001); a made-up token is 40001 —
    // WeChat rejecting the visitor's token must not throw away the account's.
    let code = fake.issue_oauth_code("oBOB", "snsapi_base");
    let token = client.oauth().exchange(&code).await.unwrap();
    let denied = client
        .oauth()
        .userinfo(&token.access_token, "oBOB", "zh_CN")
        .await
        .unwrap_err();
    assert_eq!(denied.errcode(), 48001);
    let rejected = client
        .oauth()
        .userinfo("FORGED", "oBOB", "zh_CN")
        .await
        .unwrap_err();
    assert_eq!(rejected.errcode(), 40001);
    client.user().info(&follower, "zh_CN").await.unwrap();
    assert_eq!(fake.token_fetches(), 1, "the account's token was kept");
    assert_eq!(client.jsapi_ticket_status().fetches, 0);
}

#[tokio::test]
async fn a_jssdk_config_is_signed_with_the_current_ticket_without_the_fragment() {
    let (fake, client) = setup().await;
    let page = "https://shop.example/orders?id=42#/detail";
    let cfg = client
        .jssdk()
        .config(
            page,
            vec!["scanQRCode".into()],
            vec!["wx-open-subscribe".into()],
            false,
        )
        .await
        .unwrap();
    let ticket = fake.current_jsapi_ticket().unwrap();
    assert_eq!(cfg.app_id, fake.appid());
    assert_eq!(cfg.nonce_str.len(), 16);
    assert!((cfg.timestamp - support::now()).abs() < 5);
    assert_eq!(
        cfg.signature,
        signature(
            &ticket,
            &cfg.nonce_str,
            cfg.timestamp,
            "https://shop.example/orders?id=42"
        )
    );
    assert_eq!(cfg.js_api_list, ["scanQRCode"]);
    assert_eq!(cfg.open_tag_list, ["wx-open-subscribe"]);
    assert_eq!(
        last(&fake, GETTICKET_PATH).query_param("type"),
        Some("jsapi")
    );

    // The next page view reuses the ticket, with a new nonce.
    let again = client
        .jssdk()
        .config(page, vec![], vec![], false)
        .await
        .unwrap();
    assert_ne!(again.nonce_str, cfg.nonce_str);
    assert_eq!(fake.ticket_fetches(), 1);
    let status = client.jsapi_ticket_status();
    assert!(status.cached);
    assert_eq!(status.fetches, 1);
    assert!(status.expires_in_secs.unwrap() > 7000);
    assert!(!format!("{status:?}").contains(&ticket));
}

#[tokio::test]
async fn many_pages_at_once_cause_one_ticket_fetch() {
    let (fake, client) = setup().await;
    // Warm the access_token, so the contention is on the ticket alone.
    client.access_token().await.unwrap();
    fake.delay(GETTICKET_PATH, Duration::from_millis(200));
    let waiters: Vec<_> = (0..64)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.jsapi_ticket().await })
        })
        .collect();
    let mut tickets = Vec::new();
    for w in waiters {
        tickets.push(w.await.unwrap().unwrap());
    }
    tickets.dedup();
    assert_eq!(tickets.len(), 1);
    assert_eq!(fake.calls_to(GETTICKET_PATH).len(), 1);
    assert_eq!(client.jsapi_ticket_status().fetches, 1);
}

#[tokio::test]
async fn callers_that_queued_behind_a_failed_fetch_share_its_error() {
    let (fake, client) = setup().await;
    client.access_token().await.unwrap();
    fake.delay(GETTICKET_PATH, Duration::from_millis(100));
    fake.fail_next(GETTICKET_PATH, 40097, 1);
    let waiters: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.jsapi_ticket().await })
        })
        .collect();
    for w in waiters {
        assert_eq!(w.await.unwrap().unwrap_err().errcode(), 40097);
    }
    assert_eq!(fake.calls_to(GETTICKET_PATH).len(), 1);
    // The next caller tries again.
    client.jsapi_ticket().await.unwrap();
    assert_eq!(fake.calls_to(GETTICKET_PATH).len(), 2);
}

#[tokio::test]
async fn the_ticket_is_fetched_again_after_the_access_token_is_rejected() {
    let (fake, client) = setup().await;
    let follower = fake.add_followers(1).remove(0);
    let first = client.jsapi_ticket().await.unwrap();
    assert_eq!(client.jsapi_ticket().await.unwrap(), first);
    assert_eq!(fake.ticket_fetches(), 1);

    // WeChat rejects the access_token (40001) on some call; the client replaces it, and the
    // ticket fetched with the old one is fetched again.
    fake.invalidate_token();
    client.user().info(&follower, "zh_CN").await.unwrap();
    assert_eq!(fake.token_fetches(), 2);
    let second = client.jsapi_ticket().await.unwrap();
    assert_ne!(second, first);
    assert_eq!(fake.ticket_fetches(), 2);
    assert_eq!(client.jsapi_ticket().await.unwrap(), second);
    assert_eq!(fake.ticket_fetches(), 2);
}

#[tokio::test]
async fn a_ticket_fetch_that_meets_a_rejected_token_retries_once_and_keeps_its_ticket() {
    let (fake, client) = setup().await;
    client.access_token().await.unwrap();
    fake.invalidate_token();
    let ticket = client.jsapi_ticket().await.unwrap();
    // getticket answered 40001 once, then succeeded with the new token.
    assert_eq!(fake.calls_to(GETTICKET_PATH).len(), 2);
    assert_eq!(fake.ticket_fetches(), 1);
    assert_eq!(client.jsapi_ticket().await.unwrap(), ticket);
    assert_eq!(fake.calls_to(GETTICKET_PATH).len(), 2, "no stale refetch");
}

#[tokio::test]
async fn a_busy_getticket_is_retried_by_the_client_policy_alone() {
    let (fake, client) = setup().await;
    client.access_token().await.unwrap();
    // Busy on every try: the client's policy makes its 3 tries and gives up; the ticket's
    // manager does not wrap a backoff of its own around it (3 × 3 calls).
    fake.fail_next(GETTICKET_PATH, -1, 100);
    assert_eq!(client.jsapi_ticket().await.unwrap_err().errcode(), -1);
    assert_eq!(fake.calls_to(GETTICKET_PATH).len(), 3);
    assert_eq!(client.jsapi_ticket_status().fetches, 1);
    // Busy once: retried, and the ticket is kept.
    fake.fail_next(GETTICKET_PATH, -1, 1);
    let ticket = client.jsapi_ticket().await.unwrap();
    assert_eq!(fake.calls_to(GETTICKET_PATH).len(), 5);
    assert_eq!(client.jsapi_ticket().await.unwrap(), ticket);
    assert_eq!(fake.ticket_fetches(), 1);
}

/// A client of `fake` at `base` keeping its token and ticket in `store`.
fn client_on_store(
    fake: &FakeWechat,
    base: &str,
    store: &Arc<dyn Store>,
    clock: Option<Arc<ManualClock>>,
) -> WechatClient {
    let mut cfg = config(fake, base);
    cfg.persistence = Arc::new(StoreTokenPersistence::new(store.clone(), &fake.appid()));
    cfg.ticket_persistence = Arc::new(StoreTokenPersistence::jsapi_ticket(
        store.clone(),
        &fake.appid(),
    ));
    if let Some(clock) = clock {
        cfg.clock = clock;
    }
    WechatClient::new(cfg).unwrap()
}

/// A client of `fake` at `base` keeping its token and ticket in `redis`, as one instance of
/// several does.
async fn client_on_redis(
    fake: &FakeWechat,
    base: &str,
    redis: &redis_support::RedisServer,
    clock: Option<Arc<ManualClock>>,
) -> WechatClient {
    let store: Arc<dyn Store> = Arc::new(
        wechat_lua::store::RedisStore::connect(
            &redis.url(0),
            wechat_lua::store::redis::DEFAULT_PREFIX,
        )
        .await
        .unwrap(),
    );
    client_on_store(fake, base, &store, clock)
}

#[tokio::test]
async fn instances_on_one_store_share_the_ticket_and_a_restart_reuses_it() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let a = client_on_store(&fake, &base, &store, None);
    let b = client_on_store(&fake, &base, &store, None);
    let (ta, tb) = tokio::join!(a.jsapi_ticket(), b.jsapi_ticket());
    assert_eq!(ta.unwrap(), tb.unwrap());
    assert_eq!(fake.calls_to(GETTICKET_PATH).len(), 1);
    // A restarted instance reads it from the store too.
    let c = client_on_store(&fake, &base, &store, None);
    c.jssdk()
        .config("https://a.example/", vec![], vec![], false)
        .await
        .unwrap();
    assert_eq!(fake.calls_to(GETTICKET_PATH).len(), 1);
    assert_eq!(fake.token_fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_redis_fetch_one_ticket_between_them() {
    let redis = redis_support::RedisServer::start();
    let (fake, base) = FakeWechat::start().await.unwrap();
    let on_redis = || client_on_redis(&fake, &base, &redis, None);
    let (a, b) = (on_redis().await, on_redis().await);
    // Slow enough that the second instance finds the first one's fetch under way.
    fake.delay(GETTICKET_PATH, Duration::from_millis(300));
    let (ta, tb) = tokio::join!(
        tokio::spawn(async move { a.jsapi_ticket().await }),
        tokio::spawn(async move { b.jsapi_ticket().await })
    );
    assert_eq!(ta.unwrap().unwrap(), tb.unwrap().unwrap());
    assert_eq!(fake.calls_to(GETTICKET_PATH).len(), 1);
    assert_eq!(fake.token_fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_redis_fetch_one_ticket_a_round_as_tickets_expire() {
    let redis = redis_support::RedisServer::start();
    let (fake, base) = FakeWechat::start().await.unwrap();
    let clock = Arc::new(ManualClock::default());
    let on_redis = || client_on_redis(&fake, &base, &redis, Some(clock.clone()));
    let (a, b) = (on_redis().await, on_redis().await);
    // Slow enough that the second instance finds the first one's fetch under way.
    fake.delay(GETTICKET_PATH, Duration::from_millis(300));
    let mut seen = Vec::new();
    for round in 1..=3 {
        let (a2, b2) = (a.clone(), b.clone());
        let (ta, tb) = tokio::join!(
            tokio::spawn(async move { a2.jsapi_ticket().await }),
            tokio::spawn(async move { b2.jsapi_ticket().await })
        );
        let (ta, tb) = (ta.unwrap().unwrap(), tb.unwrap().unwrap());
        assert_eq!(ta, tb, "round {round}");
        assert!(!seen.contains(&ta), "round {round} got a new ticket");
        seen.push(ta);
        assert_eq!(
            fake.calls_to(GETTICKET_PATH).len(),
            round,
            "one fetch a round"
        );
        assert_eq!(fake.token_fetches() as usize, round);
        // Both the ticket and the access_token expire before the next round.
        clock.advance(Duration::from_secs(7200));
    }
}

#[tokio::test]
async fn the_ticket_is_refreshed_ahead_of_its_expiry() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let clock = Arc::new(ManualClock::default());
    let client = client_on_store(&fake, &base, &store, Some(clock.clone()));
    let first = client.jsapi_ticket().await.unwrap();
    client.refresh_jsapi_ticket_if_due().await;
    assert_eq!(fake.ticket_fetches(), 1, "not due yet");

    // 7000 s on: under the 300 s refresh-ahead window, the cached ticket is still served
    // while the next one is fetched.
    clock.advance(Duration::from_secs(7000));
    client.refresh_jsapi_ticket_if_due().await;
    assert_eq!(fake.ticket_fetches(), 2);
    let second = client.jsapi_ticket().await.unwrap();
    assert_ne!(second, first);
    // And it is what the store holds for the other instances.
    let other = client_on_store(&fake, &base, &store, Some(clock));
    assert_eq!(other.jsapi_ticket().await.unwrap(), second);
    assert_eq!(fake.ticket_fetches(), 2);
}

#[tokio::test]
async fn token_shows_the_stored_ticket_without_the_ticket() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let appid = fake.appid();
    let cfg = support::host::test_config(
        data.path(),
        &[("WECHAT_APPID", appid.as_str()), ("WECHAT_APPSECRET", "x")],
    );
    let shown = wechat_lua::commands::account::token_status(&cfg, false)
        .await
        .unwrap();
    assert!(shown.contains("no jsapi_ticket cached"), "{shown}");
    {
        let store = wechat_lua::store::open(None, data.path()).await.unwrap();
        let client = client_on_store(&fake, &base, &store, None);
        client.jsapi_ticket().await.unwrap();
    }
    let ticket = fake.current_jsapi_ticket().unwrap();
    let shown = wechat_lua::commands::account::token_status(&cfg, false)
        .await
        .unwrap();
    assert!(shown.contains("jsapi_ticket cached for"), "{shown}");
    assert!(!shown.contains(&ticket), "{shown}");
    let shown = wechat_lua::commands::account::token_status(&cfg, true)
        .await
        .unwrap();
    assert!(shown.contains(&ticket), "{shown}");
}

#[tokio::test]
async fn subscription_notification_templates_and_sends() {
    let (fake, client) = setup().await;
    let s = client.subscribe();
    let id = s.add("502", &[3, 5, 4], "发货提醒").await.unwrap();
    assert_eq!(
        last(&fake, "/wxaapi/newtmpl/addtemplate").body.unwrap(),
        json!({"tid": "502", "kidList": [3, 5, 4], "sceneDesc": "发货提醒"})
    );
    let templates = s.templates().await.unwrap();
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0]["priTmplId"], id.as_str());
    assert!(!s.categories().await.unwrap().is_empty());

    let msg = SubscribeMessage::new("oBUYER", &id)
        .with("thing3", "已发货")
        .with("thing5", "A1001");
    s.send(&msg).await.unwrap();
    assert_eq!(
        last(&fake, "/cgi-bin/message/subscribe/bizsend")
            .body
            .unwrap(),
        json!({"touser": "oBUYER", "template_id": id,
               "data": {"thing3": {"value": "已发货"}, "thing5": {"value": "A1001"}}})
    );
    fake.refuse_subscribe("oBUYER");
    assert_eq!(s.send(&msg).await.unwrap_err().errcode(), 43101);
    let unknown = SubscribeMessage::new("oBUYER", "NOPE").with("thing3", "x");
    assert_eq!(s.send(&unknown).await.unwrap_err().errcode(), 40037);

    s.delete(&id).await.unwrap();
    assert!(s.templates().await.unwrap().is_empty());
    assert_eq!(s.delete(&id).await.unwrap_err().errcode(), 40037);
}

#[tokio::test]
async fn template_add_takes_keyword_names_and_templates_have_no_first_or_remark() {
    let (fake, client) = setup_with(|_| {}).await;
    let t = client.template();
    let id = t.add_template("TM00015", &["金额", "时间"]).await.unwrap();
    let list = t.get_all_private_template().await.unwrap();
    let content = list
        .iter()
        .find(|x| x["template_id"] == id.as_str())
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(content.contains("金额:{{keyword1.DATA}}"), "{content}");
    assert!(!content.contains("first") && !content.contains("remark"));
    let id2 = t.add_template("TM00016", &[]).await.unwrap();
    assert_ne!(id, id2);
    assert!(matches!(
        client
            .post(
                "/cgi-bin/template/api_add_template",
                &json!({"template_id_short": "T", "keyword_name_list": "金额"})
            )
            .await,
        Err(ApiError::Api { errcode: 47001, .. })
    ));
    drop(fake);
}
