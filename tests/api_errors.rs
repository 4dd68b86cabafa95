//! The errcode policy against the fake WeChat API over loopback: backoff for -1/45011,
//! no retry for the documented permanent errors, credentials errors, quota stop,
//! 45065 as success, 45066 as retry-later, timeouts.

mod support;

use std::time::Duration;

use serde_json::json;
use support::fake::{config, send, setup, SEND};
use wechat_lua::api::mass::{MassMessage, MassOptions};
use wechat_lua::api::{ApiError, ClientConfig, WechatClient};
use wechat_lua::fake_wechat::FakeWechat;

const MASS: &str = "/cgi-bin/message/mass/send";

#[tokio::test]
async fn system_busy_is_retried_then_succeeds() {
    let (fake, client) = setup().await;
    fake.fail_next(SEND, -1, 2);
    send(&client).await.unwrap();
    assert_eq!(fake.calls_to(SEND).len(), 3);
}

#[tokio::test]
async fn too_frequent_is_retried_but_bounded() {
    let (fake, client) = setup().await;
    fake.fail_next(SEND, 45011, 1);
    send(&client).await.unwrap();
    assert_eq!(fake.calls_to(SEND).len(), 2);

    fake.clear_calls();
    fake.fail_next(SEND, -1, 10);
    let started = std::time::Instant::now();
    let err = send(&client).await.unwrap_err();
    assert!(matches!(err, ApiError::Api { errcode: -1, .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(fake.calls_to(SEND).len(), 3, "three tries in all");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn permanent_errors_are_surfaced_without_retry() {
    let (fake, client) = setup().await;
    for code in [45015, 45047, 43004, 40003, 46004] {
        fake.clear_calls();
        fake.fail_next(SEND, code, 1);
        let err = send(&client).await.unwrap_err();
        match &err {
            ApiError::Api { errcode, errmsg } => {
                assert_eq!(*errcode, code);
                assert!(!errmsg.is_empty());
            }
            other => panic!("{code}: unexpected {other:?}"),
        }
        assert!(!err.is_transient());
        assert_eq!(fake.calls_to(SEND).len(), 1, "{code} must not be retried");
    }
}

#[tokio::test]
async fn ip_not_whitelisted_is_fatal_names_the_ip_and_is_not_retried() {
    let (fake, client) = setup().await;
    fake.set_caller_ip("198.51.100.23");
    fake.fail_next("/cgi-bin/stable_token", 40164, 1);
    let err = send(&client).await.unwrap_err();
    match &err {
        ApiError::Credentials { errcode, hint, .. } => {
            assert_eq!(*errcode, 40164);
            assert!(hint.contains("198.51.100.23"), "{hint}");
            assert!(hint.contains("IP白名单"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(fake.calls_to("/cgi-bin/stable_token").len(), 1);
    assert!(fake.calls_to(SEND).is_empty());

    // On an ordinary call too: one try.
    fake.fail_next(SEND, 40164, 1);
    let err = send(&client).await.unwrap_err();
    assert_eq!(err.errcode(), 40164);
    assert_eq!(fake.calls_to(SEND).len(), 1);
}

#[tokio::test]
async fn wrong_appid_or_secret_is_reported_with_a_hint() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let mut cfg = config(&fake, &base);
    cfg.appid = "wxWRONG".into();
    let err = send(&WechatClient::new(cfg).unwrap()).await.unwrap_err();
    assert!(
        matches!(err, ApiError::Credentials { errcode: 40013, .. }),
        "{err:?}"
    );

    let mut cfg = config(&fake, &base);
    cfg.secret = "wrong".into();
    let err = send(&WechatClient::new(cfg).unwrap()).await.unwrap_err();
    assert!(
        matches!(err, ApiError::Credentials { errcode: 40125, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("AppSecret"));
    assert_eq!(fake.token_fetches(), 0);

    let mut cfg = config(&fake, &base);
    cfg.secret = String::new();
    let err = send(&WechatClient::new(cfg).unwrap()).await.unwrap_err();
    assert!(matches!(err, ApiError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn daily_quota_stops_calls_to_that_api() {
    let (fake, client) = setup().await;
    fake.fail_next(SEND, 45009, 1);
    let err = send(&client).await.unwrap_err();
    assert!(matches!(err, ApiError::QuotaExhausted { .. }), "{err:?}");
    assert!(err.to_string().contains("quota"));
    // The next call is not even attempted...
    let err = send(&client).await.unwrap_err();
    assert_eq!(err.errcode(), 45009);
    assert_eq!(fake.calls_to(SEND).len(), 1);
    // ...while other APIs keep working.
    client.user().info("oUSER", "zh_CN").await.unwrap();
}

#[tokio::test]
async fn reused_clientmsgid_returns_the_original_msg_id() {
    let (fake, client) = setup().await;
    let to: Vec<String> = vec!["oA".into(), "oB".into()];
    let opts = MassOptions {
        clientmsgid: Some("campaign-42".into()),
        send_ignore_reprint: false,
    };
    let msg = MassMessage::Text {
        content: "hello".into(),
    };
    let first = client.mass().send(&to, &msg, &opts).await.unwrap();
    let again = client.mass().send(&to, &msg, &opts).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(!first[0].duplicate);
    assert!(again[0].duplicate);
    assert_eq!(first[0].msg_id, again[0].msg_id);
    assert_eq!(fake.calls_to(MASS).len(), 2, "45065 is not retried");
}

#[tokio::test]
async fn clientmsgid_retried_too_fast_says_when_to_retry() {
    let (fake, client) = setup().await;
    fake.fail_next(MASS, 45066, 1);
    let err = client
        .mass()
        .send(
            &["oA".to_string(), "oB".to_string()],
            &MassMessage::Text {
                content: "x".into(),
            },
            &MassOptions::default(),
        )
        .await
        .unwrap_err();
    match err {
        ApiError::RetryLater {
            errcode,
            retry_after,
            ..
        } => {
            assert_eq!(errcode, 45066);
            assert_eq!(retry_after, Duration::from_secs(60));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(fake.calls_to(MASS).len(), 1);
}

#[tokio::test]
async fn slow_answers_time_out() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let mut cfg = config(&fake, &base);
    cfg.timeout = Duration::from_millis(200);
    let client = WechatClient::new(cfg).unwrap();
    fake.delay(SEND, Duration::from_secs(2));
    let err = send(&client).await.unwrap_err();
    // The request went out: WeChat may have acted on it, so the outcome is unknown.
    match &err {
        ApiError::UnknownOutcome { cause } => assert!(matches!(**cause, ApiError::Timeout)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.outcome_unknown());
    assert!(err.is_transient());
}

#[tokio::test]
async fn unknown_paths_and_unreachable_hosts_are_typed() {
    let (_fake, client) = setup().await;
    let err = client.get("/cgi-bin/no/such/api", &[]).await.unwrap_err();
    assert_eq!(err.errcode(), 40066);

    let cfg = ClientConfig::new("wx", "s").with_base_url("http://127.0.0.1:9");
    let err = send(&WechatClient::new(cfg).unwrap()).await.unwrap_err();
    assert!(matches!(err, ApiError::Network(_)), "{err:?}");
    assert!(!err.outcome_unknown(), "a refused connection sent nothing");
    assert!(!err.to_string().contains("secret="));
}

#[tokio::test]
async fn generic_get_and_post_add_the_token_for_the_caller() {
    let (fake, client) = setup().await;
    let v = client
        .post(
            "cgi-bin/message/custom/typing",
            &json!({"touser": "oU", "command": "Typing"}),
        )
        .await
        .unwrap();
    assert_eq!(v["errcode"], 0);
    let v = client
        .get("/cgi-bin/user/info", &[("openid", "oU")])
        .await
        .unwrap();
    assert_eq!(v["subscribe"], 0);
    let calls = fake.calls_to("/cgi-bin/user/info");
    assert_eq!(
        calls[0].query,
        vec![("openid".to_string(), "oU".to_string())]
    );
}
