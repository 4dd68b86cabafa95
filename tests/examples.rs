//! Every example bot in `examples/`, driven through the script workers with the API pointed
//! at the fake WeChat API, so the examples stay runnable as the host changes.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

#[tokio::test]
async fn the_slow_task_takes_longer_than_the_deadline() {
    let b = bot("slow_task").await;
    let started = std::time::Instant::now();
    let reply = b.send(text_xml("u", "report", 99)).await;
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(5),
        "slow enough to need customer service"
    );
    assert!(matches!(reply, Some(Reply::Text { content }) if content.contains("reports/u")));
}
