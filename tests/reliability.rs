//! Never lose, never repeat, never hang: the reply deadline with late delivery through
//! customer service, retries run once, runaway scripts stopped, and the outbox across restarts.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{element, env_refs, event_xml, text_xml, FakeApi, Server};

const KF_SEND: &str = "/cgi-bin/message/custom/send";

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn bot(dir: &Path, main: &str) {
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(dir.join("scripts/main.lua"), main).unwrap();
}

#[test]
fn a_slow_handler_is_answered_success_in_time_and_its_reply_arrives_through_customer_service_once()
{
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    bot(
        dir.path(),
        "wx.on('text', function(msg) wx.sleep(7) return 'late: ' .. msg.content end)\n",
    );
    let env = api.env();
    let server = Server::start(dir.path(), &[], &env_refs(&env));
    let started = Instant::now();
    let (status, body) = server.post(&text_xml("slowuser", "hello", next_id()));
    let elapsed = started.elapsed();
    assert_eq!((status, body.as_str()), (200, "success"));
    assert!(
        elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}"
    );
    assert!(api.wait_for_calls("/cgi-bin/message/custom/typing", 1, Duration::from_secs(5)));
    assert!(
        api.wait_for_calls(KF_SEND, 1, Duration::from_secs(15)),
        "late reply delivered"
    );
    std::thread::sleep(Duration::from_millis(500));
    let sends = api.fake.calls_to(KF_SEND);
    assert_eq!(sends.len(), 1, "delivered once: {sends:?}");
    let body = sends[0].body.clone().unwrap();
    assert_eq!(body["touser"], "slowuser");
    assert_eq!(body["msgtype"], "text");
    assert_eq!(body["text"]["content"], "late: hello");
    let (_, metrics) = support::http("GET", &format!("{}/metrics", server.base), "");
    for name in [
        "wechat_lua_deadline_fallbacks_total 1",
        "wechat_lua_api_calls_total{endpoint=\"/cgi-bin/message/custom/send\",errcode=\"0\"} 1",
        "wechat_lua_token_fetches_total 1",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
}

#[test]
fn a_spinning_handler_is_cut_off_and_the_next_message_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    bot(
        dir.path(),
        "wx.on('text', 'spin', function() while true do end end)\nwx.on('text', function() return 'ok' end)\n",
    );
    let server = Server::start(
        dir.path(),
        &[],
        &[
            ("WECHAT_TOKEN", support::TOKEN),
            ("WECHAT_REPLY_TIMEOUT", "1"),
        ],
    );
    let started = Instant::now();
    let (status, body) = server.post(&text_xml("u", "spin", next_id()));
    assert_eq!((status, body.as_str()), (200, "success"));
    assert!(started.elapsed() < Duration::from_secs(3));
    for _ in 0..4 {
        let (_, xml) = server.post(&text_xml("u", "next", next_id()));
        assert_eq!(element(&xml, "Content").as_deref(), Some("ok"));
    }
    assert!(server.wait_for_log("stopped", Duration::from_secs(5)));
}

#[test]
fn retries_run_the_handler_once_concurrently_and_in_a_row() {
    let dir = tempfile::tempdir().unwrap();
    bot(
        dir.path(),
        r#"
        wx.on("text", "^count$", function() return "runs " .. tostring(wx.store.get("runs") or 0) end)
        wx.on("text", function(msg)
            local n = wx.store.incr("runs")
            wx.sleep(0.5)
            return "run " .. n
        end)
        wx.on("event", function(msg)
            return "event run " .. wx.store.incr("event_runs")
        end)
        "#,
    );
    let server = Arc::new(Server::start(
        dir.path(),
        &[],
        &[("WECHAT_TOKEN", support::TOKEN)],
    ));
    let message = text_xml("user1", "hi", 777);
    let concurrent: Vec<_> = (0..3)
        .map(|_| {
            let server = server.clone();
            let message = message.clone();
            std::thread::spawn(move || server.post(&message))
        })
        .collect();
    let answers: Vec<_> = concurrent.into_iter().map(|t| t.join().unwrap()).collect();
    for (status, xml) in &answers {
        assert_eq!(*status, 200);
        assert_eq!(
            element(xml, "Content").as_deref(),
            Some("run 1"),
            "{answers:?}"
        );
    }
    let (_, again) = server.post(&message);
    assert_eq!(element(&again, "Content").as_deref(), Some("run 1"));
    // The same MsgId from another user is another message.
    let (_, other) = server.post(&text_xml("user2", "hi", 777));
    assert_eq!(element(&other, "Content").as_deref(), Some("run 2"));
    let (_, count) = server.post(&text_xml("user1", "count", next_id()));
    assert_eq!(element(&count, "Content").as_deref(), Some("runs 2"));

    let event = event_xml("user1", "CLICK", Some("MENU"));
    for _ in 0..3 {
        let (_, xml) = server.post(&event);
        assert_eq!(element(&xml, "Content").as_deref(), Some("event run 1"));
    }
    let (_, other_key) = server.post(&event_xml("user1", "CLICK", Some("OTHER")));
    assert_eq!(
        element(&other_key, "Content").as_deref(),
        Some("event run 2")
    );
}

#[test]
fn script_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    bot(
        dir.path(),
        "wx.on('text', function() return tostring(wx.store.incr('visits')) end)\n",
    );
    for expected in ["1", "2"] {
        let server = Server::start(dir.path(), &[], &[("WECHAT_TOKEN", support::TOKEN)]);
        let (_, xml) = server.post(&text_xml("u", "x", next_id()));
        assert_eq!(element(&xml, "Content").as_deref(), Some(expected));
        assert_eq!(server.terminate().code(), Some(0));
    }
}

#[test]
fn a_late_reply_refused_for_good_reaches_late_reply_failed() {
    let api = FakeApi::start();
    api.fake.fail_next(KF_SEND, 45015, 1);
    let dir = tempfile::tempdir().unwrap();
    bot(
        dir.path(),
        r#"
        wx.on("late_reply_failed", function(ev, reply, err)
            wx.store.set("fallback", ev.openid .. "|" .. reply.type .. "|" .. reply.content .. "|" .. err.errcode)
        end)
        wx.on("text", "^check$", function() return wx.store.get("fallback") or "none" end)
        wx.on("text", function() wx.sleep(1.5) return "too late" end)
        "#,
    );
    let mut env = api.env();
    env.push(("WECHAT_REPLY_TIMEOUT", "0.5".into()));
    let server = Server::start(dir.path(), &[], &env_refs(&env));
    let (_, body) = server.post(&text_xml("gone", "hi", next_id()));
    assert_eq!(body, "success");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, xml) = server.post(&text_xml("gone", "check", next_id()));
        if element(&xml, "Content").as_deref() == Some("gone|text|too late|45015") {
            break;
        }
        assert!(Instant::now() < deadline, "fallback never ran: {xml}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(api.fake.calls_to(KF_SEND).len(), 1, "45015 is not retried");
}

#[test]
fn a_send_queued_while_the_api_fails_is_delivered_after_a_restart() {
    let api = FakeApi::start();
    api.fake.fail_next(KF_SEND, -1, 1000);
    let dir = tempfile::tempdir().unwrap();
    bot(
        dir.path(),
        "wx.on('text', function() wx.sleep(1) return 'queued reply' end)\n",
    );
    let mut env = api.env();
    env.push(("WECHAT_REPLY_TIMEOUT", "0.3".into()));
    let server = Server::start(dir.path(), &[], &env_refs(&env));
    let (_, body) = server.post(&text_xml("patient", "hi", next_id()));
    assert_eq!(body, "success");
    assert!(
        server.wait_for_log("queued in the outbox", Duration::from_secs(15)),
        "{:?}",
        server.log.lock().unwrap()
    );
    assert_eq!(server.terminate().code(), Some(0));

    api.fake.fail_next(KF_SEND, -1, 0);
    api.fake.clear_calls();
    let server = Server::start(dir.path(), &[], &env_refs(&env));
    assert!(
        api.wait_for_calls(KF_SEND, 1, Duration::from_secs(15)),
        "delivered after restart"
    );
    let body = api.fake.calls_to(KF_SEND)[0].body.clone().unwrap();
    assert_eq!(body["text"]["content"], "queued reply");
    assert!(server.wait_for_log("queued send delivered", Duration::from_secs(5)));
}

#[test]
fn a_kf_send_failing_for_a_transient_reason_is_queued_and_delivered_later() {
    let api = FakeApi::start();
    // The client's own bounded backoff takes three tries; all fail, so the send is queued.
    api.fake.fail_next(KF_SEND, -1, 3);
    let dir = tempfile::tempdir().unwrap();
    bot(
        dir.path(),
        r#"
        wx.on("text", function(msg)
            local ok, err = wx.kf.send(msg.from, "sent later")
            return tostring(ok) .. "|" .. tostring(err and err.errcode) .. "|" .. tostring(err and err.queued)
        end)
        "#,
    );
    let env = api.env();
    let server = Server::start(dir.path(), &[], &env_refs(&env));
    let (_, xml) = server.post(&text_xml("busyuser", "go", next_id()));
    assert_eq!(element(&xml, "Content").as_deref(), Some("nil|-1|true"));
    assert!(
        api.wait_for_calls(KF_SEND, 4, Duration::from_secs(15)),
        "retried from the outbox"
    );
    let last = api.fake.calls_to(KF_SEND).pop().unwrap().body.unwrap();
    assert_eq!(last["text"]["content"], "sent later");
    assert!(server.wait_for_log("queued send delivered", Duration::from_secs(5)));
}
