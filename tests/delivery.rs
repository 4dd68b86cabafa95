//! How often a send can arrive when WeChat's answer is lost: customer-service messages at most
//! once (a timeout after the request went out is `err.kind = "unknown_outcome"`, never sent
//! again), template and mass sends exactly once through their idempotency keys, and the
//! outbox keeping both rules across a host killed mid-attempt.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::fake::config;
use support::{env_refs, text_xml, FakeApi, Server};
use tempfile::TempDir;
use wechat_lua::api::outbox::{Outbox, QueuedCall};
use wechat_lua::api::template::TemplateMessage;
use wechat_lua::api::{KfMessage, WechatClient};
use wechat_lua::dispatch::late::KfLateReplies;
use wechat_lua::dispatch::LateReplies;
use wechat_lua::fake_wechat::FakeWechat;
use wechat_lua::protocol::message::InboundMessage;
use wechat_lua::protocol::reply::Reply;
use wechat_lua::script::runtime::Handled;
use wechat_lua::script::{LuaPool, RuntimeOptions, Services};
use wechat_lua::store::{OutboxItem, Store};

const KF_SEND: &str = "/cgi-bin/message/custom/send";
const TEMPLATE_SEND: &str = "/cgi-bin/message/template/send";
const MASS_SENDALL: &str = "/cgi-bin/message/mass/sendall";

/// The client's timeout in these tests; the fake answers after [`LATE_ANSWER`].
const API_TIMEOUT: Duration = Duration::from_millis(300);
const LATE_ANSWER: Duration = Duration::from_millis(1200);

static MSG_ID: AtomicU64 = AtomicU64::new(1);

struct Setup {
    fake: FakeWechat,
    client: WechatClient,
    services: Services,
    host: Arc<LuaPool>,
    _dir: TempDir,
}

impl Setup {
    fn outbox(&self) -> &Arc<Outbox> {
        self.services
            .outbox
            .as_ref()
            .expect("an outbox with the API")
    }

    /// The text the handler answers `content` from `from` with.
    async fn ask(&self, from: &str, content: &str) -> String {
        let xml = text_xml(from, content, MSG_ID.fetch_add(1, Ordering::Relaxed));
        match self
            .host
            .handle(InboundMessage::parse(xml.as_bytes()).unwrap())
            .await
        {
            Ok(Handled {
                reply: Some(Reply::Text { content }),
                ..
            }) => content,
            other => panic!("{content}: unexpected {other:?}"),
        }
    }

    /// Makes every queued item due now (instead of after its backoff) and runs the outbox once.
    async fn run_outbox_now(&self) -> usize {
        let store = &self.services.store;
        for mut item in store
            .outbox_take_due(i64::MAX / 2, 100, Duration::ZERO)
            .await
            .unwrap()
        {
            item.next_at_unix_ms = 0;
            store.outbox_push(&item).await.unwrap();
        }
        self.outbox().run_once().await.unwrap()
    }
}

/// A fake on loopback with a template `TPL`, a client that gives up after [`API_TIMEOUT`],
/// and a pool running `main`.
async fn setup(main: &str) -> Setup {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let mut cfg = config(&fake, &base);
    cfg.timeout = API_TIMEOUT;
    let client = WechatClient::new(cfg).unwrap();
    let template_id = client
        .template()
        .add_template("TPL", &["keyword1"])
        .await
        .unwrap();
    let services = Services::in_memory().unwrap().with_api(client.clone());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.lua"),
        format!("TEMPLATE_ID = {template_id:?}\n{main}"),
    )
    .unwrap();
    let host = LuaPool::start(dir.path(), RuntimeOptions::default(), 1, services.clone())
        .expect("scripts load");
    Setup {
        fake,
        client,
        services,
        host,
        _dir: dir,
    }
}

/// Lua: the outcome of a call as `ok|errcode|kind|queued`.
const OUTCOME: &str = r#"
local function outcome(v, err)
    return tostring(v) .. "|" .. tostring(err and err.errcode) .. "|" .. tostring(err and err.kind)
        .. "|" .. tostring(err and err.queued)
end
"#;

#[tokio::test]
async fn a_kf_send_answered_after_the_timeout_is_delivered_once_and_reported_unknown() {
    let s = setup(&format!(
        "{OUTCOME}\nwx.on('text', function(msg) return outcome(wx.kf.send(msg.from, 'your order shipped')) end)\n"
    ))
    .await;
    s.fake.delay_answer(KF_SEND, LATE_ANSWER);
    let started = Instant::now();
    assert_eq!(s.ask("oSLOW", "go").await, "nil|-3|unknown_outcome|nil");
    assert!(
        started.elapsed() < LATE_ANSWER,
        "the script did not wait for the late answer"
    );
    // Delivered by WeChat, not queued for another try, not tried again.
    assert_eq!(s.fake.delivered(KF_SEND).len(), 1);
    assert_eq!(
        s.outbox().len().await.unwrap(),
        0,
        "nothing queued to send again"
    );
    assert_eq!(s.run_outbox_now().await, 0);
    assert_eq!(s.fake.calls_to(KF_SEND).len(), 1);
    let metrics = wechat_lua::metrics::metrics().render();
    assert!(
        metrics.contains(
            r#"wechat_lua_sends_unknown_outcome_total{endpoint="/cgi-bin/message/custom/send",reason="answer_lost"}"#
        ),
        "{metrics}"
    );

    // A definite failure (WeChat answered busy every time) is still queued and sent later.
    s.fake.delay_answer(KF_SEND, Duration::ZERO);
    s.fake.fail_next(KF_SEND, -1, 3);
    assert_eq!(s.ask("oBUSY", "go").await, "nil|-1|nil|true");
    assert_eq!(s.run_outbox_now().await, 1);
    let delivered = s.fake.delivered(KF_SEND);
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[1]["touser"], "oBUSY");
}

#[tokio::test]
async fn a_late_reply_whose_answer_is_lost_is_not_sent_again() {
    let s = setup("wx.on('text', function() return 'x' end)\n").await;
    s.fake.delay_answer(KF_SEND, LATE_ANSWER);
    let late = KfLateReplies::new(s.client.clone(), s.outbox().clone());
    let handled = Handled {
        reply: Some(Reply::Text {
            content: "took a while".into(),
        }),
        handler: None,
    };
    let failure = late.finished("oLATE", Ok(handled)).await;
    assert!(
        failure.is_none(),
        "not a refusal: late_reply_failed is not asked"
    );
    assert_eq!(s.fake.delivered(KF_SEND).len(), 1);
    assert_eq!(
        s.outbox().len().await.unwrap(),
        0,
        "nothing queued to send again"
    );
}

#[tokio::test]
async fn a_template_send_whose_answer_is_lost_is_retried_with_its_key_and_delivered_once() {
    let s = setup(&format!(
        "{OUTCOME}\nwx.on('text', function(msg) return outcome(wx.template.send{{to = msg.from, template_id = TEMPLATE_ID, data = {{keyword1 = 'shipped'}}}}) end)\n"
    ))
    .await;
    s.fake.delay_answer(TEMPLATE_SEND, LATE_ANSWER);
    assert_eq!(s.ask("oTPL", "go").await, "nil|-3|unknown_outcome|true");
    assert_eq!(s.fake.delivered(TEMPLATE_SEND).len(), 1);
    assert_eq!(
        s.outbox().len().await.unwrap(),
        1,
        "queued for a safe retry"
    );

    s.fake.delay_answer(TEMPLATE_SEND, Duration::ZERO);
    assert_eq!(s.run_outbox_now().await, 1);
    let calls = s.fake.calls_to(TEMPLATE_SEND);
    assert_eq!(calls.len(), 2, "sent again");
    let key = calls[0].body.as_ref().unwrap()["client_msg_id"].clone();
    assert!(
        key.as_str().is_some_and(|k| !k.is_empty()),
        "the host set a key: {key}"
    );
    assert_eq!(calls[1].body.as_ref().unwrap()["client_msg_id"], key);
    assert_eq!(
        s.fake.delivered(TEMPLATE_SEND).len(),
        1,
        "WeChat dropped the repeat"
    );
    assert_eq!(s.outbox().len().await.unwrap(), 0, "done");

    // A key the script gives is kept, and two sends with distinct keys are two messages.
    let mut msg = TemplateMessage::new(
        "oTPL",
        calls[0].body.as_ref().unwrap()["template_id"]
            .as_str()
            .unwrap(),
    )
    .with("keyword1", "again", None);
    msg.client_msg_id = Some("order-42".into());
    let first = s.client.template().send(&msg).await.unwrap();
    assert_eq!(s.client.template().send(&msg).await.unwrap(), first);
    assert_eq!(s.fake.delivered(TEMPLATE_SEND).len(), 2);
}

#[tokio::test]
async fn a_mass_send_whose_answer_is_lost_is_retried_with_its_clientmsgid_and_sent_once() {
    let s = setup(&format!(
        "{OUTCOME}\nwx.on('text', function() return outcome(wx.mass.send{{to = {{tag_id = 2}}, message = 'hello', clientmsgid = 'weekly-18'}}) end)\n"
    ))
    .await;
    s.fake.delay_answer(MASS_SENDALL, LATE_ANSWER);
    assert_eq!(s.ask("oADMIN", "go").await, "nil|-3|unknown_outcome|true");
    s.fake.delay_answer(MASS_SENDALL, Duration::ZERO);
    assert_eq!(s.run_outbox_now().await, 1);
    let calls = s.fake.calls_to(MASS_SENDALL);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].body.as_ref().unwrap()["clientmsgid"], "weekly-18");
    assert_eq!(
        s.fake.delivered(MASS_SENDALL).len(),
        1,
        "45065: already sent"
    );
    assert_eq!(s.outbox().len().await.unwrap(), 0);
}

/// An item as a host leaves it when killed mid-attempt: one attempt finished, a second begun.
fn in_flight(call: QueuedCall) -> OutboxItem {
    let now = wechat_lua::clock::unix_millis();
    let mut call = call;
    call.begun = 2;
    call.begun_at_unix_ms = Some(now - 1000);
    OutboxItem {
        id: "inflight".into(),
        payload: serde_json::to_string(&call).unwrap(),
        attempts: 1,
        next_at_unix_ms: 0,
        created_at_unix_ms: now - 5000,
        last_error: Some("system error".into()),
    }
}

#[tokio::test]
async fn an_outbox_item_in_flight_when_its_host_stopped_follows_the_same_rule() {
    let s = setup("wx.on('text', function() return 'x' end)\n").await;
    let store: &Arc<dyn Store> = &s.services.store;

    // Customer service: it may have arrived, so it is dropped, counted, never sent again.
    let kf = KfMessage::text("hi").queued_send("oKF", None, "wx.kf.send text");
    store.outbox_push(&in_flight(kf)).await.unwrap();
    assert_eq!(s.outbox().run_once().await.unwrap(), 1);
    assert!(s.fake.calls_to(KF_SEND).is_empty(), "not sent again");
    assert_eq!(s.outbox().len().await.unwrap(), 0);
    let metrics = wechat_lua::metrics::metrics().render();
    assert!(
        metrics.contains(
            r#"wechat_lua_sends_unknown_outcome_total{endpoint="/cgi-bin/message/custom/send",reason="in_flight_at_stop"}"#
        ),
        "{metrics}"
    );

    // A template send with its key: sent again, and WeChat keeps it to one message.
    let template_id = s
        .client
        .template()
        .get_all_private_template()
        .await
        .unwrap()[0]["template_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut msg = TemplateMessage::new("oTPL", template_id).with("keyword1", "x", None);
    msg.client_msg_id = Some("k-1".into());
    s.client.template().send(&msg).await.unwrap();
    store
        .outbox_push(&in_flight(msg.queued_send("wx.template.send")))
        .await
        .unwrap();
    assert_eq!(s.outbox().run_once().await.unwrap(), 1);
    assert_eq!(s.fake.calls_to(TEMPLATE_SEND).len(), 2, "sent again");
    assert_eq!(s.fake.delivered(TEMPLATE_SEND).len(), 1);
    assert_eq!(s.outbox().len().await.unwrap(), 0);

    // Past the time WeChat keeps the key, a retry could duplicate: dropped instead.
    let mut stale = msg.queued_send("wx.template.send");
    stale.unknown_since_unix_ms = Some(wechat_lua::clock::unix_millis() - 11 * 60 * 1000);
    let mut item = in_flight(stale);
    item.id = "stale".into();
    store.outbox_push(&item).await.unwrap();
    assert_eq!(s.outbox().run_once().await.unwrap(), 1);
    assert_eq!(s.fake.calls_to(TEMPLATE_SEND).len(), 2, "not sent again");
    assert_eq!(s.outbox().len().await.unwrap(), 0);
}

#[tokio::test]
async fn the_fake_keeps_template_keys_per_openid_and_mass_keys_with_45065() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let client = WechatClient::new(config(&fake, &base)).unwrap();
    let tpl = client.template().add_template("T", &[]).await.unwrap();
    let send = |to: &str, key: &str| {
        let mut m = TemplateMessage::new(to, tpl.as_str()).with("first", "x", None);
        m.client_msg_id = Some(key.into());
        m
    };
    let a = client.template().send(&send("oA", "k")).await.unwrap();
    assert_eq!(client.template().send(&send("oA", "k")).await.unwrap(), a);
    assert_ne!(client.template().send(&send("oB", "k")).await.unwrap(), a);
    assert_eq!(
        fake.delivered(TEMPLATE_SEND).len(),
        2,
        "one per openid and key"
    );

    let body = json!({"filter": {"is_to_all": true}, "msgtype": "text", "text": {"content": "x"}, "clientmsgid": "c1"});
    let first = client.post(MASS_SENDALL, &body).await.unwrap();
    let again = client.post(MASS_SENDALL, &body).await.unwrap();
    assert_eq!(again["msg_id"], first["msg_id"]);
    assert_eq!(again["duplicate"], true, "45065 with the first msg_id");
    assert_eq!(fake.delivered(MASS_SENDALL).len(), 1);
}

/// The real binary killed while the outbox's attempt of a customer-service message is in
/// flight (delivered, its answer stalled), then restarted: the message is not sent again.
#[test]
fn a_kf_send_in_flight_when_the_host_is_killed_is_not_sent_again_after_a_restart() {
    let api = FakeApi::start();
    // The script's send is refused as busy (three tries), so it is queued; the outbox's
    // attempt is then delivered and its answer held back past the host's timeout.
    api.fake.fail_next(KF_SEND, -1, 3);
    api.fake.delay_answer(KF_SEND, Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    std::fs::write(
        dir.path().join("scripts/main.lua"),
        "wx.on('text', function(msg) local ok, err = wx.kf.send(msg.from, 'once') return tostring(err and err.queued) end)\n",
    )
    .unwrap();
    let mut env = api.env();
    // Short enough that the lease after the kill ends within the test, long enough that the
    // kill lands while the attempt waits.
    env.push(("WECHAT_API_TIMEOUT", "2".into()));
    let server = Server::start(dir.path(), &[], &env_refs(&env));
    let (_, xml) = server.post(&text_xml("oKILL", "go", 4242));
    assert_eq!(support::element(&xml, "Content").as_deref(), Some("true"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.fake.delivered(KF_SEND).is_empty() {
        assert!(Instant::now() < deadline, "the outbox never tried");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    assert_eq!(api.fake.calls_to(KF_SEND).len(), 4);

    api.fake.delay_answer(KF_SEND, Duration::ZERO);
    let server = Server::start(dir.path(), &[], &env_refs(&env));
    assert!(
        server.wait_for_log("in flight when the host stopped", Duration::from_secs(45)),
        "{:?}",
        server.log.lock().unwrap()
    );
    assert_eq!(api.fake.delivered(KF_SEND).len(), 1, "delivered once");
    assert_eq!(api.fake.calls_to(KF_SEND).len(), 4, "never sent again");
    let (_, metrics) = support::http("GET", &format!("{}/metrics", server.base), "");
    assert!(
        metrics.contains(
            r#"wechat_lua_sends_unknown_outcome_total{endpoint="/cgi-bin/message/custom/send",reason="in_flight_at_stop"} 1"#
        ),
        "{metrics}"
    );
}
