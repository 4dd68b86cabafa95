//! The playground's endpoints against a real host and fake, in-process: messages and their
//! replies, refusals of bad input, what an API call shows to a user, media served safely,
//! and the event stream resuming or starting over.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::commands::chat::{chat_config, ChatOptions, Simulator};
use crate::fake_wechat::{RecordedAnswer, RecordedCall};

const BOT: &str = r#"
wx.on("text", function(msg) return "echo: " .. msg.content end)
wx.on("event.subscribe", function(msg) return "welcome " .. msg.event_key end)
wx.on("image", function(msg) return msg.pic_url end)
"#;

struct Setup {
    pg: Arc<Playground>,
    sim: Simulator,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    setup_with("").await
}

/// A playground whose settings file says `toml`.
async fn setup_with(toml: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.lua"), BOT).unwrap();
    let config_file = dir.path().join("wechat-lua.toml");
    std::fs::write(&config_file, toml).unwrap();
    let options = ChatOptions {
        config: Some(config_file),
        scripts: Some(dir.path().to_path_buf()),
        user: FIRST_USER.into(),
        ..ChatOptions::default()
    };
    let config = chat_config(&options, &Default::default()).unwrap();
    let sim = Simulator::start(config, &options, |_| None).await.unwrap();
    let pg = Arc::new(Playground::new(
        Arc::new(Feed::new(42)),
        &sim,
        "127.0.0.1:9".parse().unwrap(),
        "bot".into(),
        FIRST_USER,
    ));
    Setup { pg, sim, _dir: dir }
}

async fn post(
    pg: &Arc<Playground>,
    path: &str,
    content_type: &str,
    body: impl Into<Body>,
) -> (StatusCode, Value) {
    let response = pg
        .clone()
        .router()
        .oneshot(
            Request::post(path)
                .header(header::CONTENT_TYPE, content_type)
                .body(body.into())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn send(pg: &Arc<Playground>, body: Value) -> (StatusCode, Value) {
    post(pg, "/play/send", "application/json", body.to_string()).await
}

#[tokio::test]
async fn a_message_gets_its_reply_with_the_xml_exchanged() {
    let s = setup().await;
    let (status, answer) = send(
        &s.pg,
        json!({"user": FIRST_USER, "kind": "text", "content": "<script>x</script>"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["sent"]["kind"], "user");
    assert_eq!(answer["sent"]["message"]["content"], "<script>x</script>");
    assert_eq!(answer["reply"]["kind"], "reply");
    assert_eq!(
        answer["reply"]["reply"],
        json!({"type": "text", "content": "echo: <script>x</script>"})
    );
    let raw = &answer["reply"]["raw"];
    assert!(
        raw["query"].as_str().unwrap().starts_with("signature="),
        "{raw}"
    );
    assert!(raw["message"]
        .as_str()
        .unwrap()
        .contains("<FromUserName><![CDATA[o_play_user_1]]></FromUserName>"));
    assert_eq!(answer["sent"]["exchange"], answer["reply"]["exchange"]);
    let kinds: Vec<Value> =
        s.pg.feed
            .latest(100)
            .iter()
            .map(|e| serde_json::to_value(&**e).unwrap()["kind"].clone())
            .collect();
    assert!(kinds.contains(&json!("user")) && kinds.contains(&json!("reply")));

    // Following from a QR code: the fake counts the user in before the bot hears of it.
    s.pg.set_following(FIRST_USER, false);
    let (status, answer) = send(
        &s.pg,
        json!({"user": FIRST_USER, "kind": "subscribe", "scene": "promo"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["reply"]["reply"]["content"], "welcome qrscene_promo");
    assert!(s.sim.fake.is_follower(FIRST_USER));

    // A picture: kept in the fake under the message's MediaId, PicUrl pointing back here.
    let (status, answer) = post(
        &s.pg,
        &format!("/play/picture?user={FIRST_USER}&name=cat.png"),
        "image/png",
        b"\x89PNG fake".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let media_id = answer["sent"]["message"]["media_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        answer["reply"]["reply"]["content"],
        format!("http://127.0.0.1:9/play/media/{media_id}")
    );
    let (content_type, bytes) = s.sim.fake.media_file(&media_id).unwrap();
    assert_eq!(content_type.as_deref(), Some("image/png"));
    assert_eq!(bytes, b"\x89PNG fake");
    s.sim.stop().await.unwrap();
}

#[tokio::test]
async fn encrypted_messages_show_their_envelope_and_plaintext() {
    let key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    let s = setup_with(&format!("encoding_aes_key = \"{key}\"\nmode = \"safe\"\n")).await;
    let (status, answer) = send(
        &s.pg,
        json!({"user": FIRST_USER, "kind": "text", "content": "secret hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["reply"]["reply"]["content"], "echo: secret hi");
    let raw = &answer["reply"]["raw"];
    let query = raw["query"].as_str().unwrap();
    assert!(
        query.contains("encrypt_type=aes") && query.contains("msg_signature="),
        "{query}"
    );
    let sent = raw["request_body"].as_str().unwrap();
    assert!(
        sent.contains("<Encrypt>") && !sent.contains("secret hi"),
        "{sent}"
    );
    assert!(raw["message"].as_str().unwrap().contains("secret hi"));
    let answered = raw["response_body"].as_str().unwrap();
    assert!(
        answered.contains("<Encrypt>") && !answered.contains("echo"),
        "{answered}"
    );
    assert!(raw["reply"].as_str().unwrap().contains("echo: secret hi"));
    s.sim.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx() {
    let s = setup().await;
    let cases = [
        (
            json!({"user": "nobody", "kind": "text", "content": "hi"}),
            StatusCode::NOT_FOUND,
            "no simulated user",
        ),
        (
            json!({"user": "<b>", "kind": "text", "content": "hi"}),
            StatusCode::BAD_REQUEST,
            "OpenID",
        ),
        (
            json!({"user": FIRST_USER, "kind": "text", "content": "  "}),
            StatusCode::BAD_REQUEST,
            "empty",
        ),
        (
            json!({"user": FIRST_USER, "kind": "text", "content": "x".repeat(MAX_TEXT_CHARS + 1)}),
            StatusCode::BAD_REQUEST,
            "at most",
        ),
        (
            json!({"user": FIRST_USER, "kind": "view", "url": "javascript:alert(1)"}),
            StatusCode::BAD_REQUEST,
            "http(s)",
        ),
        (
            json!({"user": FIRST_USER, "kind": "location", "lat": 91.0, "lng": 0.0}),
            StatusCode::BAD_REQUEST,
            "latitude",
        ),
        (
            json!({"user": FIRST_USER, "kind": "pics", "event": "pic_weixin", "key": "K", "count": 10}),
            StatusCode::BAD_REQUEST,
            "pictures",
        ),
        (
            json!({"user": FIRST_USER, "kind": "click", "key": "k".repeat(300)}),
            StatusCode::BAD_REQUEST,
            "longer",
        ),
        (
            json!({"user": FIRST_USER, "kind": "nonsense"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown variant",
        ),
    ];
    for (body, status, says) in cases {
        let (got, answer) = send(&s.pg, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{body}: {answer}"
        );
    }
    let (status, _) = post(&s.pg, "/play/send", "application/json", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(&s.pg, "/play/send", "text/plain", "hi").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = json!({"user": FIRST_USER, "kind": "text", "content": "x".repeat(MAX_SEND_BODY)});
    let (status, _) = send(&s.pg, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = post(
        &s.pg,
        &format!("/play/picture?user={FIRST_USER}"),
        "text/html",
        "<script>",
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, answer) = post(
        &s.pg,
        "/play/users",
        "application/json",
        r#"{"openid": "a b"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, user) = post(&s.pg, "/play/users", "application/json", "{}").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user, json!({"openid": "o_play_user_2", "following": true}));
    let (status, answer) = post(
        &s.pg,
        "/play/select",
        "application/json",
        r#"{"user": "nobody"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, _) = post(
        &s.pg,
        "/play/select",
        "application/json",
        r#"{"user": "o_play_user_2"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    s.sim.stop().await.unwrap();
}

fn call(path: &str, body: Value, answer: Value) -> RecordedCall {
    RecordedCall {
        method: "POST".into(),
        path: path.into(),
        query: Vec::new(),
        body: Some(body),
        parts: Vec::new(),
        appid: None,
        answer: Some(RecordedAnswer {
            status: 200,
            json: Some(answer),
        }),
    }
}

fn newest(pg: &Playground, n: usize) -> Vec<Value> {
    pg.feed
        .latest(n)
        .iter()
        .map(|e| serde_json::to_value(&**e).unwrap())
        .collect()
}

#[tokio::test]
async fn api_calls_show_as_a_user_sees_them() {
    let s = setup().await;
    let pg = &s.pg;
    pg.add_user(Some("o_other".into())).unwrap();
    let ok = json!({"errcode": 0, "errmsg": "ok"});

    pg.on_call(call(
        crate::api::kf::SEND_PATH,
        json!({"touser": "o_other", "msgtype": "text", "text": {"content": "later"}}),
        ok.clone(),
    ));
    let events = newest(pg, 2);
    assert_eq!(events[0]["kind"], "api");
    assert_eq!(events[1]["kind"], "reply");
    assert_eq!(events[1]["via"], "kf");
    assert_eq!(events[1]["user"], "o_other");

    // Refused: the call shows, the message does not.
    pg.on_call(call(
        crate::api::kf::SEND_PATH,
        json!({"touser": "o_other", "msgtype": "text", "text": {"content": "never"}}),
        json!({"errcode": 45015, "errmsg": "response out of time limit"}),
    ));
    assert_eq!(newest(pg, 1)[0]["kind"], "api");

    pg.on_call(call(
        crate::api::kf::TYPING_PATH,
        json!({"touser": "o_other", "command": "Typing"}),
        ok.clone(),
    ));
    assert_eq!(
        newest(pg, 1)[0],
        json!({"seq": newest(pg, 1)[0]["seq"], "at_ms": newest(pg, 1)[0]["at_ms"], "kind": "typing", "user": "o_other", "on": true})
    );

    s.sim.fake.add_template("TPL1", "Order shipped");
    pg.on_call(call(
        crate::api::template::SEND_PATH,
        json!({"touser": FIRST_USER, "template_id": "TPL1", "url": "https://example.com/o/1",
               "data": {"first": {"value": "Hi"}, "keyword1": {"value": "A-1"}}}),
        ok.clone(),
    ));
    let notice = &newest(pg, 1)[0];
    assert_eq!(notice["kind"], "notice");
    assert_eq!(notice["title"], "Order shipped");
    assert_eq!(
        notice["fields"],
        json!([["first", "Hi"], ["keyword1", "A-1"]])
    );

    pg.on_call(call(
        crate::api::subscribe::SEND_PATH,
        json!({"touser": FIRST_USER, "template_id": "SUB1", "page": "pages/index",
               "data": {"thing1": {"value": "Ready"}}}),
        ok.clone(),
    ));
    let notice = &newest(pg, 1)[0];
    assert_eq!(notice["notice"], "subscribe");
    assert_eq!(notice["url"], "pages/index");
    assert_eq!(notice["fields"], json!([["thing1", "Ready"]]));

    // A preview reaches the one user it names.
    pg.on_call(call(
        "/cgi-bin/message/mass/preview",
        json!({"touser": "o_other", "msgtype": "text", "text": {"content": "draft"}}),
        ok.clone(),
    ));
    let preview = &newest(pg, 1)[0];
    assert_eq!(preview["kind"], "broadcast");
    assert_eq!(preview["user"], "o_other");

    // A mass send to everyone reaches each simulated user who follows.
    pg.set_following("o_other", false);
    pg.on_call(call(
        crate::api::mass::SENDALL_PATH,
        json!({"filter": {"is_to_all": true}, "msgtype": "text", "text": {"content": "sale"}}),
        ok.clone(),
    ));
    let events = newest(pg, 2);
    assert_eq!(events[1]["kind"], "broadcast");
    assert_eq!(events[1]["user"], FIRST_USER);
    assert_eq!(events[0]["kind"], "api", "o_other no longer follows");

    // Tokens never reach the page.
    pg.on_call(RecordedCall {
        method: "GET".into(),
        path: "/cgi-bin/token".into(),
        query: vec![("secret".into(), "<secret>".into())],
        body: None,
        parts: Vec::new(),
        appid: None,
        answer: Some(RecordedAnswer {
            status: 200,
            json: Some(json!({"access_token": "REALTOKEN", "expires_in": 7200})),
        }),
    });
    let shown = newest(pg, 1)[0].to_string();
    assert!(!shown.contains("REALTOKEN"), "{shown}");
    assert!(shown.contains("<hidden>"), "{shown}");

    pg.on_call(call("/cgi-bin/menu/create", json!({"button": []}), ok));
    assert_eq!(newest(pg, 1)[0]["kind"], "menu");
    s.sim.stop().await.unwrap();
}

#[tokio::test]
async fn media_is_served_as_media_only() {
    let s = setup().await;
    let picture = s.sim.fake.add_media("image", "a.png", "image/png", b"png");
    let page = s
        .sim
        .fake
        .add_media("image", "a.html", "text/html", b"<script>");
    let get = |id: String| {
        s.pg.clone().router().oneshot(
            Request::get(format!("/play/media/{id}"))
                .body(Body::empty())
                .unwrap(),
        )
    };
    let response = get(picture).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/png");
    let response = get(page).await.unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    assert_eq!(
        response.headers()[header::CONTENT_SECURITY_POLICY],
        "sandbox"
    );
    assert_eq!(
        response.headers()[header::X_CONTENT_TYPE_OPTIONS],
        "nosniff"
    );
    assert_eq!(
        get("nope".into()).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    let response =
        s.pg.clone()
            .router()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    s.sim.stop().await.unwrap();
}

/// The first `n` server-sent events of a stream, as (event name, id, data).
async fn first_events(
    pg: &Arc<Playground>,
    last_event_id: Option<&str>,
    n: usize,
) -> Vec<(String, String, String)> {
    let mut request = Request::get("/play/events");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = pg
        .clone()
        .router()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < n {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut name, mut id, mut data) =
                (String::from("message"), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v.into();
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = v.into();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if !data.is_empty() {
                events.push((name, id, data));
            }
        }
    }
    events
}

#[tokio::test]
async fn the_stream_resumes_in_its_session_and_starts_over_otherwise() {
    let s = setup().await;
    let pg = &s.pg;
    for n in 1..=3 {
        pg.feed.push(EventBody::Generation { generation: n });
    }
    let last = pg.feed.last_seq();

    let fresh = first_events(pg, None, 2).await;
    assert_eq!(fresh[0].0, "reset");
    let snapshot: Value = serde_json::from_str(&fresh[0].2).unwrap();
    assert_eq!(snapshot["users"][0]["openid"], FIRST_USER);
    assert_eq!(
        fresh[1].1, "42:1",
        "then the newest events, from the oldest kept"
    );

    let resumed = first_events(pg, Some(&format!("42:{}", last - 1)), 1).await;
    assert_eq!(resumed[0].0, "message", "no reset when resuming");
    assert_eq!(resumed[0].1, format!("42:{last}"));

    // Live events arrive after the backlog.
    let pg2 = pg.clone();
    let pusher = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        pg2.feed.push(EventBody::Generation { generation: 9 });
    });
    let live = first_events(pg, Some(&format!("42:{last}")), 1).await;
    assert!(live[0].2.contains("\"generation\":9"), "{live:?}");
    pusher.await.unwrap();

    let other_session = first_events(pg, Some("7:1"), 1).await;
    assert_eq!(
        other_session[0].0, "reset",
        "a page from before a restart starts over"
    );
    s.sim.stop().await.unwrap();
}
