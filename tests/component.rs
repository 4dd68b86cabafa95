//! The open platform (第三方平台) against the fake WeChat: the component_access_token from the
//! pushed ticket, authorization, authorizer tokens from rotating refresh tokens (also with two
//! hosts on one Redis), and the HTTP side: ticket pushes, the authorization redirect, an
//! authorized account's messages through the scripts, refusals and the release test.

#[path = "support/redis.rs"]
mod redis_support;

use std::sync::Arc;

use wechat_lua::api::component::{ComponentClient, ComponentSettings};
use wechat_lua::api::KfMessage;
use wechat_lua::fake_wechat::FakeWechat;
use wechat_lua::store::{keys, Store};

const COMPONENT: &str = "wxcomponent0000001";
const COMPONENT_SECRET: &str = "componentsecret0000000000000000";
const COMPONENT_TOKEN: &str = "componenttoken1";
const COMPONENT_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const AUTHORIZER: &str = "wxauthorizer000001";

async fn fake() -> (FakeWechat, String) {
    let (fake, base) = FakeWechat::start().await.unwrap();
    fake.component_setup(COMPONENT, COMPONENT_SECRET, COMPONENT_TOKEN, COMPONENT_KEY);
    (fake, base)
}

fn memory_store() -> Arc<dyn Store> {
    Arc::new(wechat_lua::store::SqliteStore::open_in_memory().unwrap())
}

fn client(base: &str, store: &Arc<dyn Store>) -> ComponentClient {
    ComponentClient::new(
        ComponentSettings::new(COMPONENT, COMPONENT_SECRET, base),
        store.clone(),
    )
    .unwrap()
}

#[tokio::test]
async fn before_the_first_ticket_calls_fail_clearly_without_calling_wechat() {
    let (fake, base) = fake().await;
    let store = memory_store();
    let component = client(&base, &store);
    for _ in 0..3 {
        let err = component.pre_auth_code().await.unwrap_err().to_string();
        assert!(err.contains("component_verify_ticket"), "{err}");
    }
    assert!(fake.calls().is_empty(), "nothing sent: {:?}", fake.calls());
    component
        .save_ticket(&fake.component_issue_ticket())
        .await
        .unwrap();
    assert!(component
        .pre_auth_code()
        .await
        .unwrap()
        .starts_with("preauthcode@@@"));
    assert_eq!(fake.component_token_fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_component_token_is_fetched_once_under_contention_and_again_after_a_rejection() {
    let (fake, base) = fake().await;
    let store = memory_store();
    let component = client(&base, &store);
    component
        .save_ticket(&fake.component_issue_ticket())
        .await
        .unwrap();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let component = component.clone();
            tokio::spawn(async move { component.pre_auth_code().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        fake.component_token_fetches(),
        1,
        "one fetch for 20 callers"
    );
    // WeChat rejects it (42001): dropped, fetched again once, the call goes through.
    fake.component_expire_tokens();
    component.pre_auth_code().await.unwrap();
    assert_eq!(fake.component_token_fetches(), 2);
    // A second client on the same store (a restart) reuses the stored token.
    let restarted = client(&base, &store);
    restarted.pre_auth_code().await.unwrap();
    assert_eq!(fake.component_token_fetches(), 2);
    // The recorded calls (what `chat` shows) carry no secret.
    let recorded = format!("{:?}", fake.calls());
    assert!(!recorded.contains(COMPONENT_SECRET), "{recorded}");
}

#[tokio::test]
async fn an_authorizer_acts_through_its_token_and_its_refresh_token_rotates() {
    let (fake, base) = fake().await;
    let store = memory_store();
    let component = client(&base, &store);
    component
        .save_ticket(&fake.component_issue_ticket())
        .await
        .unwrap();
    let code = fake.component_authorize(AUTHORIZER);
    let auth = component.complete_authorization(&code).await.unwrap();
    assert_eq!(auth.authorizer_appid, AUTHORIZER);
    assert_eq!(auth.func_info, vec![1, 2]);
    let refresh_key = keys::authorizer_refresh_key(COMPONENT, AUTHORIZER);
    assert_eq!(
        store.get(&refresh_key).await.unwrap(),
        fake.authorizer_refresh_token(AUTHORIZER)
    );

    let api = component.authorizer(AUTHORIZER).unwrap();
    let hello = KfMessage::Text {
        content: "hi".into(),
    };
    api.kf().send("o_user", &hello).await.unwrap();
    assert_eq!(
        fake.authorizer_token_fetches(),
        1,
        "api_query_auth's token is used as it is"
    );
    let sent = fake.calls_to("/cgi-bin/message/custom/send");
    assert_eq!(
        sent[0].appid.as_deref(),
        Some(AUTHORIZER),
        "as the authorizer"
    );

    // Its token expires: a new one from the refresh token, which rotates; the new one is kept.
    let before = store.get(&refresh_key).await.unwrap();
    fake.expire_tokens_of(AUTHORIZER);
    api.kf().send("o_user", &hello).await.unwrap();
    assert_eq!(fake.authorizer_token_fetches(), 2);
    let after = store.get(&refresh_key).await.unwrap();
    assert_ne!(before, after, "rotated");
    assert_eq!(
        after,
        fake.authorizer_refresh_token(AUTHORIZER),
        "the one that works"
    );

    // Withdrawn: tokens deleted here, later calls fail saying why.
    component.forget_authorizer(AUTHORIZER).await.unwrap();
    assert_eq!(store.get(&refresh_key).await.unwrap(), None);
    assert_eq!(store.get(&keys::token_key(AUTHORIZER)).await.unwrap(), None);
    let err = api
        .kf()
        .send("o_user", &hello)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not authorized") || err.contains("withdrew"),
        "{err}"
    );
    let status = component.authorizer_status(AUTHORIZER).await.unwrap();
    assert!(!status.authorized);
}

#[tokio::test]
async fn wechats_errors_reach_the_caller() {
    let (fake, base) = fake().await;
    let store = memory_store();
    let component = client(&base, &store);
    // A ticket WeChat never issued.
    component.save_ticket("ticket@@@forged").await.unwrap();
    let err = component.pre_auth_code().await.unwrap_err();
    assert_eq!(err.errcode(), 61006, "{err}");
    // An older ticket than the latest.
    let old = fake.component_issue_ticket();
    fake.component_issue_ticket();
    component.save_ticket(&old).await.unwrap();
    assert_eq!(
        component.pre_auth_code().await.unwrap_err().errcode(),
        61005
    );
    component
        .save_ticket(&fake.component_issue_ticket())
        .await
        .unwrap();
    // An unknown authorization code.
    let err = component.complete_authorization("nope").await.unwrap_err();
    assert_eq!(err.errcode(), 61009, "{err}");
    // A refresh token WeChat no longer takes (the account authorized again elsewhere).
    let code = fake.component_authorize(AUTHORIZER);
    component.complete_authorization(&code).await.unwrap();
    fake.component_authorize(AUTHORIZER);
    fake.expire_tokens_of(AUTHORIZER);
    let err = component
        .authorizer(AUTHORIZER)
        .unwrap()
        .kf()
        .send(
            "o_user",
            &KfMessage::Text {
                content: "x".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.errcode(), 61023, "{err}");
    assert!(err.to_string().contains("authorize"), "{err}");
}

/// Two hosts on one Redis refresh the same authorizer's token at once, round after round:
/// one fetch per round, and the refresh token kept at the end is the one WeChat takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_on_redis_never_lose_a_refresh_token_rotation() {
    let server = redis_support::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (fake, base) = fake().await;
    let url = server.url(0);
    let store_a = wechat_lua::store::open(Some(&url), dir.path())
        .await
        .unwrap();
    let store_b = wechat_lua::store::open(Some(&url), dir.path())
        .await
        .unwrap();
    let (a, b) = (client(&base, &store_a), client(&base, &store_b));
    a.save_ticket(&fake.component_issue_ticket()).await.unwrap();
    let code = fake.component_authorize(AUTHORIZER);
    a.complete_authorization(&code).await.unwrap();
    let hello = KfMessage::Text {
        content: "hi".into(),
    };
    const ROUNDS: u64 = 5;
    for round in 1..=ROUNDS {
        fake.expire_tokens_of(AUTHORIZER);
        let sends: Vec<_> = (0..16)
            .map(|i| {
                let host = if i % 2 == 0 { a.clone() } else { b.clone() };
                let hello = hello.clone();
                tokio::spawn(async move {
                    host.authorizer(AUTHORIZER)
                        .unwrap()
                        .kf()
                        .send("o_user", &hello)
                        .await
                })
            })
            .collect();
        for send in sends {
            send.await.unwrap().unwrap();
        }
        assert_eq!(
            fake.authorizer_token_fetches(),
            1 + round,
            "one fetch in round {round} for both hosts"
        );
    }
    let kept = store_b
        .get(&keys::authorizer_refresh_key(COMPONENT, AUTHORIZER))
        .await
        .unwrap();
    assert_eq!(kept, fake.authorizer_refresh_token(AUTHORIZER));
    assert_eq!(
        a.component_token_status().fetches + b.component_token_status().fetches,
        1
    );
}
