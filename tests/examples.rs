//! Every example bot in `examples/`, driven through the script workers with the API pointed
//! at the fake WeChat API (and the bots that call HTTP services through the real binary,
//! against local upstreams started by the test), so the examples stay runnable as the host
//! changes.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use support::{event_xml, text_xml};
use wechat_lua::api::{ClientConfig, WechatClient};
use wechat_lua::fake_wechat::FakeWechat;
use wechat_lua::protocol::message::InboundMessage;
use wechat_lua::protocol::reply::Reply;
use wechat_lua::script::{LuaPool, RuntimeOptions, Services};

static MSG_ID: AtomicU64 = AtomicU64::new(1);

struct Bot {
    fake: FakeWechat,
    host: Arc<LuaPool>,
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

async fn bot(name: &str) -> Bot {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let client =
        WechatClient::new(ClientConfig::new(fake.appid(), fake.secret()).with_base_url(base))
            .unwrap();
    let services = Services::in_memory().unwrap().with_api(client);
    let host = LuaPool::start(&example(name), RuntimeOptions::default(), 1, services).unwrap();
    Bot { fake, host }
}

impl Bot {
    async fn send(&self, xml: String) -> Option<Reply> {
        self.host
            .handle(InboundMessage::parse(xml.as_bytes()).unwrap())
            .await
            .unwrap()
            .reply
    }

    async fn text(&self, from: &str, content: &str) -> String {
        match self
            .send(text_xml(
                from,
                content,
                MSG_ID.fetch_add(1, Ordering::Relaxed),
            ))
            .await
        {
            Some(Reply::Text { content }) => content,
            other => panic!("expected a text reply to {content:?}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn keywords_answer_from_the_table() {
    let b = bot("keywords").await;
    assert!(b.text("u", "HOURS").await.contains("9:00"));
    assert!(b.text("u", "营业时间").await.contains("周一"));
    assert_eq!(
        b.text("u", "price tea").await,
        "Ask us about the price of tea!"
    );
    assert!(b.text("u", "what?").await.starts_with("Sorry"));
}

#[tokio::test]
async fn the_menu_bot_answers_its_buttons_and_its_menu_file_is_valid() {
    let b = bot("menu").await;
    assert!(
        matches!(b.send(event_xml("u", "CLICK", Some("MENU_TODAY"))).await, Some(Reply::Text { content }) if content.starts_with("Today's special"))
    );
    assert!(matches!(
        b.send(event_xml("u", "CLICK", Some("MENU_CONTACT"))).await,
        Some(Reply::News { .. })
    ));
    let menu = wechat_lua::commands::account::read_menu(&example("menu/menu.json")).unwrap();
    let keys: Vec<_> = menu["button"][1]["sub_button"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["key"].as_str())
        .collect();
    assert_eq!(keys, ["MENU_CONTACT"]);
    // The TOML copy (docs/chat.md's example) is the same menu.
    let toml = wechat_lua::commands::account::read_menu(&example("menu/menu.toml")).unwrap();
    assert_eq!(toml, menu);
}

#[tokio::test]
async fn the_quiz_keeps_each_users_place() {
    let b = bot("quiz").await;
    assert!(b.text("alice", "quiz").await.contains("2 + 3"));
    assert!(b.text("bob", "quiz").await.contains("2 + 3"));
    assert!(b.text("alice", "5").await.starts_with("Right!"));
    assert!(b.text("bob", "4").await.starts_with("No"));
    assert!(b.text("alice", "Paris").await.contains("days in a week"));
    assert_eq!(b.text("alice", "7").await, "Right! Final score: 3/3");
    assert!(b.text("alice", "again?").await.contains("quiz"));
}

#[tokio::test]
async fn the_welcome_flow_follows_the_qr_scene() {
    let b = bot("welcome").await;
    let reply = b
        .send(event_xml("u1", "subscribe", Some("qrscene_store_42")))
        .await;
    assert!(matches!(reply, Some(Reply::Text { content }) if content.contains("Nanshan")));
    let reply = b.send(event_xml("u2", "SCAN", Some("poster"))).await;
    assert!(matches!(reply, Some(Reply::Text { content }) if content.contains("poster")));
    assert_eq!(
        b.text("u1", "stats store_42").await,
        "store_42: 1 followers"
    );
}

#[tokio::test]
async fn the_notify_bot_sends_an_order_shipped_template() {
    let b = bot("notify").await;
    assert_eq!(
        b.text("buyer", "ship A1001").await,
        "Order A1001 marked shipped; notice sent."
    );
    let sent = b.fake.calls_to("/cgi-bin/message/template/send");
    assert_eq!(sent.len(), 1);
    let body = sent[0].body.clone().unwrap();
    assert_eq!(body["touser"], "buyer");
    assert_eq!(body["data"]["keyword1"]["value"], "A1001");
    assert_eq!(body["url"], "https://example.com/orders/A1001");
    // Modern templates: keywords only, no first/remark lines or colours.
    let data = body["data"].as_object().unwrap();
    assert!(data.keys().all(|k| k.starts_with("keyword")), "{data:?}");
    assert!(data.values().all(|v| v.get("color").is_none()), "{data:?}");
    assert_eq!(
        b.fake.calls_to("/cgi-bin/template/api_add_template")[0]
            .body
            .clone()
            .unwrap()["keyword_name_list"],
        serde_json::json!(["订单编号", "发货时间"])
    );
    // The template is added from the library once, then remembered.
    assert_eq!(
        b.text("buyer", "ship A1002").await,
        "Order A1002 marked shipped; notice sent."
    );
    assert_eq!(
        b.fake.calls_to("/cgi-bin/template/api_add_template").len(),
        1
    );
}

#[tokio::test]
async fn only_admins_broadcast_and_only_after_a_preview() {
    let b = bot("broadcast").await;
    assert_eq!(
        b.text("stranger", "broadcast hi all").await,
        "Only admins can broadcast."
    );
    assert_eq!(b.text("o_admin_1", "confirm").await, "Nothing to confirm.");
    assert!(b
        .text("o_admin_1", "broadcast hi all")
        .await
        .contains("Preview sent"));
    assert_eq!(b.fake.calls_to("/cgi-bin/message/mass/preview").len(), 1);
    assert!(b.fake.calls_to("/cgi-bin/message/mass/sendall").is_empty());
    assert!(b
        .text("o_admin_1", "confirm")
        .await
        .starts_with("Broadcast sent"));
    let sendall = b.fake.calls_to("/cgi-bin/message/mass/sendall");
    assert_eq!(sendall.len(), 1);
    let body = sendall[0].body.clone().unwrap();
    assert_eq!(body["filter"]["is_to_all"], true);
    assert_eq!(body["text"]["content"], "hi all");
}

/// An upstream on loopback served by its own runtime (the binary tests are synchronous);
/// its base URL. The runtime must outlive the test's requests.
fn serve_upstream(runtime: &tokio::runtime::Runtime, app: Router) -> String {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    })
}

fn upstream_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A bot directory for the real binary: the example's scripts with `config.lua` replaced,
/// and a `wechat-lua.toml` that lets scripts reach loopback and answers within `reply_timeout`.
fn bot_dir(example_name: &str, config_lua: &str, reply_timeout: f64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    for entry in std::fs::read_dir(example(example_name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, scripts.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(scripts.join("config.lua"), config_lua).unwrap();
    std::fs::write(
        dir.path().join("wechat-lua.toml"),
        format!("reply_timeout = {reply_timeout:?}\n[http]\nallow = [\"127.0.0.1\"]\n"),
    )
    .unwrap();
    dir
}

const KF_SEND: &str = "/cgi-bin/message/custom/send";

/// The slow task waits on a real upstream slower than the reply deadline: WeChat gets
/// `success` in time and the reply goes out through customer service.
#[test]
fn the_slow_task_waits_on_its_upstream_and_replies_through_customer_service() {
    let runtime = upstream_runtime();
    let asked = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen = asked.clone();
    let base = serve_upstream(
        &runtime,
        Router::new().route(
            "/build",
            post(move |Json(body): Json<Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(body);
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    Json(json!({"ok": true}))
                }
            }),
        ),
    );
    let dir = bot_dir(
        "slow_task",
        &format!("return {{ report_url = \"{base}/build\" }}\n"),
        0.5,
    );
    let api = support::FakeApi::start();
    let server = support::Server::start(dir.path(), &[], &support::env_refs(&api.env()));
    let started = Instant::now();
    let (status, body) = server.post(&text_xml("u", "report", 99));
    assert_eq!((status, body.as_str()), (200, "success"));
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "answered in time"
    );
    assert!(
        api.wait_for_calls(KF_SEND, 1, Duration::from_secs(15)),
        "late reply delivered: {:?}",
        server.log.lock().unwrap()
    );
    let sent = api.fake.calls_to(KF_SEND)[0].body.clone().unwrap();
    assert_eq!(sent["touser"], "u");
    assert_eq!(
        sent["text"]["content"],
        "Your report is ready: https://example.com/reports/u"
    );
    assert_eq!(*asked.lock().unwrap(), [json!({"user": "u"})]);
}

/// What the ask bot's model saw: each request's JSON and its authorization header.
type Asked = Arc<Mutex<Vec<(Value, String)>>>;

/// An OpenAI-compatible chat-completions stub. The last user message picks the answer:
/// `slow ...` answers after 2.5 s, `fail` is an HTTP 500, `garbage` is HTML; any other is
/// echoed with the number of messages before it (so history shows).
fn chat_completions(runtime: &tokio::runtime::Runtime) -> (String, Asked) {
    let asked: Asked = Arc::default();
    let seen = asked.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let seen = seen.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                seen.lock().unwrap().push((body.clone(), auth));
                let messages = body["messages"].as_array().unwrap();
                let question = messages.last().unwrap()["content"].as_str().unwrap().to_string();
                match question.as_str() {
                    "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "upstream broke").into_response(),
                    "garbage" => "<html>not a completion</html>".into_response(),
                    q => {
                        if q.starts_with("slow") {
                            tokio::time::sleep(Duration::from_millis(2500)).await;
                        }
                        let answer = format!("echo: {q} (after {})", messages.len() - 1);
                        Json(json!({"id": "c1", "object": "chat.completion",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                         "finish_reason": "stop"}]}))
                        .into_response()
                    }
                }
            }
        }),
    );
    (serve_upstream(runtime, app), asked)
}

#[test]
fn the_ask_bot_answers_fast_late_and_sorry_and_keeps_each_users_history() {
    let runtime = upstream_runtime();
    let (base, asked) = chat_completions(&runtime);
    let config = format!(
        "return {{ url = \"{base}/v1/chat/completions\", key = \"sk-test\", model = \"m1\",\n\
         system = \"Be brief.\", history = 2, history_ttl = 600, timeout = 10 }}\n"
    );
    let dir = bot_dir("ask", &config, 1.0);
    let api = support::FakeApi::start();
    let server = support::Server::start(dir.path(), &[], &support::env_refs(&api.env()));
    let msg_id = AtomicU64::new(500);
    let reply = |from: &str, text: &str| {
        let (status, xml) = server.post(&text_xml(
            from,
            text,
            msg_id.fetch_add(1, Ordering::Relaxed),
        ));
        assert_eq!(status, 200, "{xml}");
        support::element(&xml, "Content").unwrap_or(xml)
    };

    assert_eq!(reply("alice", "hello"), "echo: hello (after 1)");
    let (first, auth) = asked.lock().unwrap()[0].clone();
    assert_eq!(auth, "Bearer sk-test");
    assert_eq!(first["model"], "m1");
    assert_eq!(
        first["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}])
    );
    assert_eq!(reply("alice", "and then?"), "echo: and then? (after 3)");
    assert_eq!(
        asked.lock().unwrap()[1].0["messages"][2],
        json!({"role": "assistant", "content": "echo: hello (after 1)"})
    );
    // Another user has a history of their own.
    assert_eq!(reply("bob", "hi"), "echo: hi (after 1)");

    // An upstream failure or an answer that is not a completion is told, and not remembered.
    assert!(reply("alice", "fail").contains("HTTP 500"));
    assert!(reply("alice", "garbage").contains("could not be read"));

    // Slower than the deadline: `success` now, the answer through customer service later.
    let started = Instant::now();
    assert_eq!(reply("alice", "slow one"), "success");
    assert!(
        started.elapsed() < Duration::from_millis(2400),
        "answered in time"
    );
    assert!(
        api.wait_for_calls(KF_SEND, 1, Duration::from_secs(15)),
        "late answer delivered: {:?}",
        server.log.lock().unwrap()
    );
    let late = api.fake.calls_to(KF_SEND)[0].body.clone().unwrap();
    assert_eq!(late["touser"], "alice");
    assert_eq!(late["text"]["content"], "echo: slow one (after 5)");

    // Two pairs are kept: the oldest ("hello") is gone from the next question's context.
    assert_eq!(reply("alice", "more"), "echo: more (after 5)");
    let last = asked.lock().unwrap().last().unwrap().0.clone();
    assert_eq!(last["messages"][1]["content"], "and then?");

    assert_eq!(reply("alice", "reset"), "Conversation cleared.");
    assert_eq!(reply("alice", "again"), "echo: again (after 1)");
}

#[tokio::test]
async fn shop_takes_orders_and_notifies_the_buyer_when_one_ships() {
    let b = bot("shop").await;
    assert_eq!(
        b.text("o_buyer", "buy tea").await,
        "Order 42 placed: tea. See it under My orders."
    );
    assert_eq!(
        b.text("o_buyer", "order 42 shipped").await,
        "Only staff can mark orders shipped."
    );
    assert!(b
        .fake
        .calls_to(wechat_lua::api::subscribe::SEND_PATH)
        .is_empty());
    assert_eq!(
        b.text("o_shop_staff", "order 42 shipped").await,
        "Order 42 shipped; o_buyer notified."
    );
    let sends = b.fake.calls_to(wechat_lua::api::subscribe::SEND_PATH);
    assert_eq!(sends.len(), 1);
    let body = sends[0].body.as_ref().unwrap();
    assert_eq!(body["touser"], "o_buyer");
    assert!(body["template_id"]
        .as_str()
        .unwrap()
        .starts_with("FAKE_SUB_1001_"));
    assert_eq!(body["data"]["thing2"]["value"], "已发货");
    // The template was added from the library once and kept.
    assert_eq!(
        b.text("o_shop_staff", "buy more").await,
        "Order 43 placed: more. See it under My orders."
    );
    b.text("o_shop_staff", "order 43 shipped").await;
    assert_eq!(
        b.fake.calls_to(wechat_lua::api::subscribe::ADD_PATH).len(),
        1
    );
    assert_eq!(
        b.text("o_shop_staff", "order 99 shipped").await,
        "No order 99."
    );
}
