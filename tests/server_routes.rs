//! The `/wechat` routes driven through the Router with `oneshot`: verification, refusals with
//! the right status, and the echo bot's replies for every message kind.

mod support;

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use support::host::{echo_bot, test_config, test_router, test_state};
use support::{element, event_xml, now, signed_query, signed_query_at, text_xml, TOKEN};
use tower::ServiceExt;
use wechat_lua::script::RuntimeOptions;
use wechat_lua::server::app;

fn router_for(scripts: &Path) -> axum::Router {
    let data = tempfile::tempdir().unwrap();
    test_router(&test_config(data.path(), &[]), scripts)
}

fn echo_router() -> axum::Router {
    router_for(&echo_bot())
}

async fn send(
    router: &axum::Router,
    method: &str,
    uri: &str,
    body: impl Into<Body>,
) -> (StatusCode, String) {
    let resp = router
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(body.into())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn post(router: &axum::Router, body: &str) -> (StatusCode, String) {
    send(
        router,
        "POST",
        &format!("/wechat?{}", signed_query()),
        body.to_string(),
    )
    .await
}

/// A sample message with a MsgId of its own: the samples share one, and the same
/// FromUserName + MsgId twice is a retry that gets the first answer.
fn fixture(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let xml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/messages")
            .join(name),
    )
    .unwrap();
    match (xml.find("<MsgId>"), xml.find("</MsgId>")) {
        (Some(start), Some(end)) => {
            let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("{}<MsgId>{id}{}", &xml[..start], &xml[end..])
        }
        _ => xml,
    }
}

#[tokio::test]
async fn url_verification_echoes_only_when_signed() {
    let router = echo_router();
    let (status, body) = send(
        &router,
        "GET",
        &format!("/wechat?{}&echostr=abc123", signed_query()),
        Body::empty(),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "abc123"));

    let forged = signed_query_at("wrongtoken", now(), "n");
    let (status, _) = send(
        &router,
        "GET",
        &format!("/wechat?{forged}&echostr=abc"),
        Body::empty(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    for missing in [
        "timestamp=1&nonce=2&echostr=e",
        "signature=x&nonce=2&echostr=e",
        "signature=x&timestamp=1&echostr=e",
    ] {
        let (status, _) = send(&router, "GET", &format!("/wechat?{missing}"), Body::empty()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{missing}");
    }
    let (status, body) = send(
        &router,
        "GET",
        &format!("/wechat?{}", signed_query()),
        Body::empty(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("echostr"), "{body}");
}

#[tokio::test]
async fn refusals_carry_the_right_status() {
    let router = echo_router();
    // A bad signature is refused before the body is looked at.
    let forged = signed_query_at("wrongtoken", now(), "n");
    let (status, _) = send(
        &router,
        "POST",
        &format!("/wechat?{forged}"),
        "not xml at all",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Replay guard: 11 minutes away either side.
    for skew in [-660, 660] {
        let q = signed_query_at(TOKEN, now() + skew, "n");
        let (status, body) = send(
            &router,
            "POST",
            &format!("/wechat?{q}"),
            text_xml("u", "hi", 1),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (status, _) = post(&router, "<xml><unclosed></xml>").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(&router, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let doctype = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol;</Content></xml>";
    let (status, _) = post(&router, doctype).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(&router, "<xml><ToUserName>a</ToUserName></xml>").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let big = format!(
        "<xml><Content>{}</Content></xml>",
        "x".repeat(1024 * 1024 + 10)
    );
    let (status, _) = post(&router, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = send(
        &router,
        "POST",
        "/wechat?signature=x&timestamp=notanumber&nonce=n",
        "x",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn echo_bot_answers_every_kind_as_specified() {
    let router = echo_router();
    let (_, xml) = post(&router, &text_xml("user1", "hi ]]> <b>&amp; 😀 你好", 1)).await;
    assert_eq!(element(&xml, "MsgType").as_deref(), Some("text"));
    assert_eq!(
        element(&xml, "Content").as_deref(),
        Some("hi ]]> <b>&amp; 😀 你好")
    );
    assert_eq!(element(&xml, "ToUserName").as_deref(), Some("user1"));
    assert_eq!(element(&xml, "FromUserName").as_deref(), Some("gh_account"));
    let created: i64 = element(&xml, "CreateTime").unwrap().parse().unwrap();
    assert!((created - now()).abs() < 5);

    let (_, xml) = post(&router, &fixture("image.xml")).await;
    assert_eq!(element(&xml, "MsgType").as_deref(), Some("image"));
    let media =
        wechat_lua::protocol::message::InboundMessage::parse(fixture("image.xml").as_bytes())
            .unwrap();
    assert_eq!(
        element(&xml, "MediaId"),
        media.fields.text("MediaId").map(String::from)
    );

    for kind in ["voice", "video"] {
        let input = fixture(&format!("{kind}.xml"));
        let parsed =
            wechat_lua::protocol::message::InboundMessage::parse(input.as_bytes()).unwrap();
        let (_, xml) = post(&router, &input).await;
        assert_eq!(element(&xml, "MsgType").as_deref(), Some(kind));
        assert_eq!(
            element(&xml, "MediaId"),
            parsed.fields.text("MediaId").map(String::from),
            "{kind}"
        );
    }

    let (_, xml) = post(&router, &fixture("location.xml")).await;
    assert_eq!(
        element(&xml, "Content").as_deref(),
        Some("23.134521,113.358803")
    );

    let (_, xml) = post(&router, &fixture("link.xml")).await;
    assert_eq!(element(&xml, "MsgType").as_deref(), Some("news"));
    assert_eq!(element(&xml, "ArticleCount").as_deref(), Some("1"));
    assert_eq!(element(&xml, "Title").as_deref(), Some("公众平台官网链接"));
    assert_eq!(
        element(&xml, "Description").as_deref(),
        Some("公众平台官网链接")
    );
    assert_eq!(element(&xml, "Url").as_deref(), Some("url"));

    let (_, xml) = post(&router, &event_xml("u", "subscribe", None)).await;
    assert_eq!(element(&xml, "Content").as_deref(), Some("welcome"));
    let (_, xml) = post(&router, &event_xml("u", "CLICK", Some("MENU_1"))).await;
    assert_eq!(element(&xml, "Content").as_deref(), Some("click:MENU_1"));
    let (_, xml) = post(&router, &event_xml("u", "SCAN", Some("123"))).await;
    assert_eq!(element(&xml, "Content").as_deref(), Some("scan:123"));

    for other in [
        "shortvideo.xml",
        "event_unsubscribe.xml",
        "event_view.xml",
        "unknown_type.xml",
        "event_unknown.xml",
    ] {
        let (status, body) = post(&router, &fixture(other)).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "success"),
            "{other}"
        );
    }
}

#[tokio::test]
async fn a_script_error_answers_success_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.lua"),
        "wx.on('text', 'boom', function() error('kaput') end)\nwx.on('text', function() return 'fine' end)\n",
    )
    .unwrap();
    let router = router_for(dir.path());
    let (status, body) = post(&router, &text_xml("u", "boom", 1)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "success"));
    let (_, xml) = post(&router, &text_xml("u", "after", 2)).await;
    assert_eq!(element(&xml, "Content").as_deref(), Some("fine"));
}

#[tokio::test]
async fn healthz_reports_the_script_generation() {
    let router = echo_router();
    let (status, body) = send(&router, "GET", "/healthz", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["scripts"]["generation"], 1);
}

#[tokio::test]
async fn metrics_name_what_happened() {
    let data = tempfile::tempdir().unwrap();
    let (state, host) = test_state(
        &test_config(data.path(), &[]),
        &echo_bot(),
        RuntimeOptions::default(),
        1,
    );
    let router = app(Arc::new(state));
    let message = text_xml("metrics-user", "count me", 424242);
    post(&router, &message).await;
    post(&router, &message).await;
    post(&router, &event_xml("metrics-user", "CLICK", Some("K"))).await;
    host.reload().unwrap();
    let (status, text) = send(&router, "GET", "/metrics", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "wechat_lua_messages_total{type=\"text\"}",
        "wechat_lua_messages_total{type=\"event.click\"}",
        "wechat_lua_handler_duration_seconds_bucket",
        "wechat_lua_replies_total{kind=\"text\"}",
        "wechat_lua_retries_deduplicated_total",
        "wechat_lua_reloads_total{outcome=\"ok\"}",
        "wechat_lua_deadline_fallbacks_total",
        "wechat_lua_token_fetches_total",
        "wechat_lua_outbox_depth 0",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

/// The callback reads its body itself (not through axum's `Bytes` extractor): a body that
/// comes in several chunks is joined, and one without a Content-Length that grows past the
/// 1 MiB limit is refused with 413 as one that announces its size is.
#[tokio::test]
async fn a_chunked_body_is_joined_and_an_unannounced_oversized_one_refused() {
    let router = echo_router();
    let xml = text_xml("u_chunks", "in three chunks", 424_242);
    let (head, rest) = xml.split_at(20);
    let (middle, tail) = rest.split_at(30);
    let chunks: Vec<Result<String, std::io::Error>> =
        vec![Ok(head.into()), Ok(middle.into()), Ok(tail.into())];
    let (status, body) = send(
        &router,
        "POST",
        &format!("/wechat?{}", signed_query()),
        Body::from_stream(futures::stream::iter(chunks)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        element(&body, "Content").as_deref(),
        Some("in three chunks")
    );

    let chunk = "x".repeat(64 * 1024);
    let chunks: Vec<Result<String, std::io::Error>> = (0..17).map(|_| Ok(chunk.clone())).collect();
    let (status, _) = send(
        &router,
        "POST",
        &format!("/wechat?{}", signed_query()),
        Body::from_stream(futures::stream::iter(chunks)),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}
