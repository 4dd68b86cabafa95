//! Many accounts on two host instances sharing one Redis, as behind a load balancer: every
//! message to each of 20 accounts is delivered to both instances at once (WeChat's retry
//! landing on the other instance), all accounts concurrently. Each account's access_token is
//! fetched once for both instances, no handler runs twice for a retry, and every API call
//! goes out with its own account's token. Redis is started by the test (never skipped).

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use std::collections::HashMap;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;
use wechat_lua::config::{Config, Overrides};
use wechat_lua::fake_wechat::FakeWechat;
use wechat_lua::host::Host;

use support::{fresh_nonce, now, signed_query_at, text_xml};

const ACCOUNTS: usize = 20;
const MESSAGES_PER_ACCOUNT: u64 = 3;

/// Counts its runs per message in the shared space, and sends a customer-service message
/// (which needs the account's access_token).
const BOT: &str = r#"
wx.on("text", function(msg)
  local runs = wx.store.global.incr("runs:" .. msg.account .. ":" .. msg.id)
  local ok, err = wx.kf.send(msg.from, "from " .. msg.account)
  return msg.account .. " runs=" .. runs .. " sent=" .. tostring(ok or err.errmsg)
end)
"#;

fn name(i: usize) -> String {
    format!("acc{i:02}")
}

fn appid(i: usize) -> String {
    format!("wxacc{i:02}")
}

fn token(i: usize) -> String {
    format!("token{i:02}x")
}

/// One message to `/wechat/<account>` on `router`: the reply's content, or `success`.
async fn deliver(router: axum::Router, i: usize, msg_id: u64) -> String {
    let query = signed_query_at(&token(i), now(), &fresh_nonce());
    let response = router
        .oneshot(
            Request::post(format!("/wechat/{}?{query}", name(i)))
                .body(Body::from(text_xml("oUSER", "hi", msg_id)))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", name(i));
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&body).into_owned();
    support::element(&body, "Content").unwrap_or(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_accounts_on_two_instances_share_tokens_and_run_each_message_once() {
    let redis = redis_support::RedisServer::start();
    let (fake, base) = FakeWechat::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    std::fs::write(dir.path().join("scripts/main.lua"), BOT).unwrap();
    let mut toml = format!(
        "token = \"defaulttoken\"\napi_base = \"{base}\"\nstore = \"{}\"\nscripts = \"scripts\"\ndata = \"data\"\n",
        redis.url(0)
    );
    for i in 0..ACCOUNTS {
        let secret = format!("secret{i:02}0000000000000000000000");
        fake.add_app(&appid(i), &secret);
        toml.push_str(&format!(
            "\n[[accounts]]\nname = \"{}\"\nappid = \"{}\"\nappsecret = \"{secret}\"\ntoken = \"{}\"\n",
            name(i),
            appid(i),
            token(i)
        ));
    }
    let file = dir.path().join("wechat-lua.toml");
    std::fs::write(&file, toml).unwrap();
    let config = Config::load_with_env(
        &Overrides {
            config: Some(file),
            ..Default::default()
        },
        &Default::default(),
    )
    .unwrap();
    // Two instances: each opens its own connection to Redis, its own token caches, its own
    // pool of Lua states; they share nothing else.
    let first = Host::builder(&config).build().await.unwrap();
    let second = Host::builder(&config).build().await.unwrap();
    let routers = [
        wechat_lua::server::app(first.state.clone()),
        wechat_lua::server::app(second.state.clone()),
    ];

    let deliveries = (0..ACCOUNTS)
        .flat_map(|i| (0..MESSAGES_PER_ACCOUNT).map(move |m| (i, 7_000 + i as u64 * 100 + m)));
    let answers = futures::future::join_all(deliveries.map(|(i, msg_id)| {
        let (a, b) = (routers[0].clone(), routers[1].clone());
        async move {
            let (on_first, on_second) = tokio::join!(deliver(a, i, msg_id), deliver(b, i, msg_id));
            (i, on_first, on_second)
        }
    }))
    .await;

    for (i, on_first, on_second) in &answers {
        let expected = format!("{} runs=1 sent=true", name(*i));
        // The instance that ran it answers; the other gets the same answer, or `success` if
        // it asked while the first was still running.
        let replies: Vec<&String> = [on_first, on_second]
            .into_iter()
            .filter(|a| a.as_str() != "success")
            .collect();
        assert!(!replies.is_empty(), "{}: no reply", name(*i));
        for reply in replies {
            assert_eq!(reply, &expected);
        }
    }

    // One customer-service send per message (no handler ran twice), each with the token of
    // the account it was for.
    let sends = fake.calls_to(support::fake::SEND);
    assert_eq!(sends.len(), ACCOUNTS * MESSAGES_PER_ACCOUNT as usize);
    let mut per_account: HashMap<String, usize> = HashMap::new();
    for send in &sends {
        let text = send.body.as_ref().unwrap()["text"]["content"]
            .as_str()
            .unwrap()
            .to_string();
        let account = text.strip_prefix("from ").unwrap().to_string();
        let i: usize = account[3..].parse().unwrap();
        assert_eq!(send.appid.as_deref(), Some(appid(i).as_str()), "{text}");
        *per_account.entry(account).or_default() += 1;
    }
    assert_eq!(per_account.len(), ACCOUNTS);
    assert!(per_account
        .values()
        .all(|&n| n == MESSAGES_PER_ACCOUNT as usize));

    // One access_token fetch per account, for both instances together.
    assert_eq!(
        fake.token_fetches(),
        ACCOUNTS as u64,
        "one fetch per account"
    );
    let mut fetched: Vec<String> = fake
        .calls_to("/cgi-bin/stable_token")
        .into_iter()
        .filter_map(|call| call.body?["appid"].as_str().map(str::to_string))
        .collect();
    fetched.sort();
    assert_eq!(fetched, (0..ACCOUNTS).map(appid).collect::<Vec<_>>());

    first.shutdown().await;
    second.shutdown().await;
}
