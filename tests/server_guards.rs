//! What a request cannot make the host do: reuse a signed query (replay), pass URL
//! verification outside the timestamp window, grow `/metrics` with labels of its choosing,
//! or read script source through `/healthz`.

mod support;

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use support::host::{test_config, test_state};
use support::{element, fresh_nonce, now, signed_query, signed_query_at, text_xml, TOKEN};
use tower::ServiceExt;
use wechat_lua::script::{LuaPool, RuntimeOptions};
use wechat_lua::server::app;

struct Host {
    router: axum::Router,
    scripts: Arc<LuaPool>,
    _data: tempfile::TempDir,
}

fn host_for(scripts: &Path) -> Host {
    let data = tempfile::tempdir().unwrap();
    let (state, host) = test_state(
        &test_config(data.path(), &[]),
        scripts,
        RuntimeOptions::default(),
        1,
    );
    Host {
        router: app(Arc::new(state)),
        scripts: host,
        _data: data,
    }
}

/// A bot that counts its runs, so a second run shows.
fn counting_bot(dir: &Path) -> Host {
    std::fs::write(
        dir.join("main.lua"),
        "wx.on('text', function(msg) return msg.content .. ' #' .. wx.store.incr('runs') end)\n",
    )
    .unwrap();
    host_for(dir)
}

async fn send(
    router: &axum::Router,
    method: &str,
    uri: &str,
    body: String,
) -> (StatusCode, String) {
    let resp = router
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
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn a_signed_query_is_used_once_but_a_retry_with_a_new_nonce_gets_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let host = counting_bot(dir.path());
    let query = signed_query();
    let uri = format!("/wechat?{query}");
    let (status, first) = send(&host.router, "POST", &uri, text_xml("u1", "hi", 7001)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(element(&first, "Content").as_deref(), Some("hi #1"));

    // The same signed query again, with any body: refused.
    for body in [text_xml("u1", "hi", 7001), text_xml("u2", "forged", 7002)] {
        let (status, text) = send(&host.router, "POST", &uri, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
        assert!(text.contains("already used"), "{text}");
    }
    // WeChat's retry: same message, new nonce (so new signature): answered from the retry cache.
    let (status, retry) = send(
        &host.router,
        "POST",
        &format!("/wechat?{}", signed_query()),
        text_xml("u1", "hi", 7001),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        retry, first,
        "the first answer again, the handler not run twice"
    );
}

#[tokio::test]
async fn url_verification_checks_the_timestamp_window_and_replays() {
    let host = host_for(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/echo.lua"));
    for skew in [-660, 660] {
        let q = signed_query_at(TOKEN, now() + skew, &fresh_nonce());
        let (status, body) = send(
            &host.router,
            "GET",
            &format!("/wechat?{q}&echostr=e1"),
            String::new(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{skew}: {body}");
    }
    let q = signed_query_at(TOKEN, now() - 300, &fresh_nonce());
    let uri = format!("/wechat?{q}&echostr=e2");
    let (status, body) = send(&host.router, "GET", &uri, String::new()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "e2"));
    let (status, _) = send(&host.router, "GET", &uri, String::new()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a verification query is single-use too"
    );
}

#[tokio::test]
async fn metrics_labels_stay_a_closed_set_whatever_messages_say() {
    let host = host_for(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/echo.lua"));
    let message = |msg_type: &str, event: Option<&str>, id: u64| {
        let event = event
            .map(|e| format!("<Event><![CDATA[{e}]]></Event>"))
            .unwrap_or_default();
        format!(
            "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[u]]></FromUserName>\
             <CreateTime>{id}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{event}\
             <MsgId>{id}</MsgId></xml>"
        )
    };
    let post = |body: String| {
        let router = host.router.clone();
        async move {
            send(
                &router,
                "POST",
                &format!("/wechat?{}", signed_query()),
                body,
            )
            .await
        }
    };
    // A message of each kind once, so every label the host can make is already there.
    post(message("x-warm-up", None, 1)).await;
    post(message("event", Some("x-warm-up"), 2)).await;
    let (_, before) = send(&host.router, "GET", "/metrics", String::new()).await;

    let mut sent = Vec::new();
    for i in 0..20u64 {
        let unique = format!("zz{i}{}", "q".repeat(20_000));
        let (status, _) = post(message(&unique, None, 100 + i)).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = post(message("event", Some(&unique), 200 + i)).await;
        assert_eq!(status, StatusCode::OK);
        sent.push(unique);
    }
    let (_, after) = send(&host.router, "GET", "/metrics", String::new()).await;
    assert!(
        after.contains("wechat_lua_messages_total{type=\"other\"}")
            && after.contains("wechat_lua_messages_total{type=\"event.other\"}"),
        "{after}"
    );
    assert!(
        sent.iter().all(|s| !after.contains(&s[..8])),
        "a message's value became a label"
    );
    // The message series are the same set as before: counts grow, the labels do not. (Only
    // these are compared: on a loaded machine an unrelated series, say a store operation that
    // timed out, may appear during the run, which is not what this test is about.)
    let series = |text: &str| -> Vec<String> {
        let mut series: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("wechat_lua_messages_total{"))
            .map(|l| {
                l.rsplit_once(' ')
                    .map_or(l, |(series, _)| series)
                    .to_string()
            })
            .collect();
        series.sort();
        series
    };
    assert_eq!(series(&before), series(&after), "message labels grew");
    assert!(
        after.len() < before.len() + 20_000,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
}

#[tokio::test]
async fn healthz_after_a_broken_edit_names_file_and_line_not_the_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.lua"),
        "wx.on('text', function() return 'ok' end)\n",
    )
    .unwrap();
    let host = host_for(dir.path());
    std::fs::write(
        dir.path().join("main.lua"),
        "wx.on('text', function() return 'ok' end)\nlocal key = \"MY-HARDCODED-SECRET\n",
    )
    .unwrap();
    assert!(host.scripts.reload().is_err());
    let (status, body) = send(&host.router, "GET", "/healthz", String::new()).await;
    assert_eq!(status, StatusCode::OK);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    let last_error = health["scripts"]["last_error"].as_str().unwrap();
    assert!(last_error.starts_with("main.lua:2:"), "{last_error}");
    assert!(!body.contains("MY-HARDCODED-SECRET"), "{body}");
    let root = dir.path().display().to_string();
    assert!(!body.contains(&root), "absolute path in {body}");
    assert!(!body.contains("/tmp"), "absolute path in {body}");
}
