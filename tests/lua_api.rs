//! The WeChat API from Lua: scripts in a `LuaPool` call `wx.kf`, `wx.template`, `wx.mass`
//! and the other families through a real reqwest client against the fake WeChat API on
//! loopback, and the fake records what was sent.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::fake::{last, setup as fake_client};
use support::text_xml;
use tempfile::TempDir;
use wechat_lua::api::WechatClient;
use wechat_lua::fake_wechat::FakeWechat;
use wechat_lua::protocol::message::InboundMessage;
use wechat_lua::protocol::reply::Reply;
use wechat_lua::script::runtime::Handled;
use wechat_lua::script::{LuaPool, RuntimeOptions, ScriptError, Services};

/// A fresh MsgId per message, since the host may de-duplicate retries.
static MSG_ID: AtomicU64 = AtomicU64::new(1);

struct Setup {
    fake: FakeWechat,
    client: WechatClient,
    services: Services,
    host: Arc<LuaPool>,
    _dir: TempDir,
}

fn start_host(main: &str, services: Services) -> (TempDir, Arc<LuaPool>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.lua"), main).unwrap();
    let host =
        LuaPool::start(dir.path(), RuntimeOptions::default(), 1, services).expect("scripts load");
    (dir, host)
}

async fn setup(main: &str) -> Setup {
    let (fake, client) = fake_client().await;
    let services = Services::in_memory().unwrap().with_api(client.clone());
    let (dir, host) = start_host(main, services.clone());
    Setup {
        fake,
        client,
        services,
        host,
        _dir: dir,
    }
}

async fn handle(host: &LuaPool, from: &str, content: &str) -> Result<Handled, ScriptError> {
    let xml = text_xml(from, content, MSG_ID.fetch_add(1, Ordering::Relaxed));
    host.handle(InboundMessage::parse(xml.as_bytes()).unwrap())
        .await
}

/// The text a handler answered `content` with.
async fn ask(host: &LuaPool, from: &str, content: &str) -> String {
    match handle(host, from, content).await {
        Ok(Handled {
            reply: Some(Reply::Text { content }),
            ..
        }) => content,
        other => panic!("{content}: unexpected {other:?}"),
    }
}

fn body(fake: &FakeWechat, path: &str) -> serde_json::Value {
    last(fake, path).body.expect("a JSON body")
}

/// Lua helper: the value, or an error naming the errcode (so a failing call fails the test
/// with WeChat's reason).
const OK: &str = r#"
local function ok(v, err)
    if v == nil then error("API error " .. tostring(err and err.errcode) .. ": " .. tostring(err and err.errmsg)) end
    return v
end
"#;

#[tokio::test]
async fn a_text_handler_sends_customer_service_template_and_mass_messages() {
    let (fake, client) = fake_client().await;
    let template_id = client
        .template()
        .add_template("TM00015", &[])
        .await
        .unwrap();
    let main = format!(
        r##"{OK}
wx.on("text", function(msg)
    ok(wx.kf.send(msg.from, "echo: " .. msg.content))
    local msgid = ok(wx.template.send{{
        to = msg.from, template_id = "{template_id}", url = "https://example.com/order/1",
        data = {{first = {{value = "Order paid", color = "#173177"}}, amount = 12.5, remark = "thanks"}},
    }})
    local all = ok(wx.mass.send{{to = {{tag_id = 2}}, message = "tagged news", clientmsgid = "cid-42"}})
    local list = ok(wx.mass.send{{to = {{msg.from, "oOTHER"}}, message = {{type = "mpnews", media_id = "MEDIA1"}},
        send_ignore_reprint = true}})
    return table.concat({{math.type(msgid), math.type(all.msg_id), all.clientmsgid,
        math.type(list.msg_id), tostring(#list.sends), tostring(list.msg_data_id ~= nil)}}, "|")
end)
"##
    );
    let services = Services::in_memory().unwrap().with_api(client);
    let (_dir, host) = start_host(&main, services);

    assert_eq!(
        ask(&host, "oUSER", "hello").await,
        "integer|integer|cid-42|integer|1|true"
    );
    assert_eq!(
        body(&fake, "/cgi-bin/message/custom/send"),
        json!({"touser": "oUSER", "msgtype": "text", "text": {"content": "echo: hello"}})
    );
    let t = body(&fake, "/cgi-bin/message/template/send");
    assert_eq!(t["touser"], "oUSER");
    assert_eq!(t["template_id"], template_id.as_str());
    assert_eq!(t["url"], "https://example.com/order/1");
    assert_eq!(
        t["data"]["first"],
        json!({"value": "Order paid", "color": "#173177"})
    );
    assert_eq!(t["data"]["amount"], json!({"value": "12.5"}));
    assert_eq!(t["data"]["remark"]["value"], "thanks");
    let all = body(&fake, "/cgi-bin/message/mass/sendall");
    assert_eq!(all["filter"], json!({"is_to_all": false, "tag_id": 2}));
    assert_eq!(all["msgtype"], "text");
    assert_eq!(all["text"]["content"], "tagged news");
    assert_eq!(all["clientmsgid"], "cid-42");
    assert_eq!(all["send_ignore_reprint"], 0);
    let list = body(&fake, "/cgi-bin/message/mass/send");
    assert_eq!(list["touser"], json!(["oUSER", "oOTHER"]));
    assert_eq!(list["msgtype"], "mpnews");
    assert_eq!(list["mpnews"]["media_id"], "MEDIA1");
    assert_eq!(list["send_ignore_reprint"], 1);
    assert!(list["clientmsgid"].as_str().is_some_and(|c| !c.is_empty()));
}

#[tokio::test]
async fn wechat_errors_are_nil_err_and_not_retried() {
    let s = setup(
        r#"
wx.on("text", "^kf$", function(msg)
    local ok, err = wx.kf.send(msg.from, "late reply")
    if ok then return "sent" end
    return table.concat({tostring(ok), err.errcode, tostring(err.retry_after), err.errmsg}, "|")
end)
wx.on("text", "^mass$", function(msg)
    local r, err = wx.mass.send{to = {all = true}, message = "x", clientmsgid = "c1"}
    if r then return "sent" end
    return err.errcode .. "|" .. tostring(err.queued)
end)
"#,
    )
    .await;
    s.fake.fail_next("/cgi-bin/message/custom/send", 45015, 1);
    let answer = ask(&s.host, "oUSER", "kf").await;
    assert!(
        answer.starts_with("nil|45015|nil|response out of time limit or subscription is canceled"),
        "{answer}"
    );
    assert_eq!(
        s.fake.calls_to("/cgi-bin/message/custom/send").len(),
        1,
        "45015 is final, not retried"
    );
    // "Retry in a minute" is not retried at once; the outbox sends it later with the same
    // clientmsgid, which WeChat deduplicates.
    s.fake.fail_next("/cgi-bin/message/mass/sendall", 45066, 1);
    assert_eq!(ask(&s.host, "oUSER", "mass").await, "45066|true");
    assert_eq!(s.fake.calls_to("/cgi-bin/message/mass/sendall").len(), 1);
    assert_eq!(s.services.outbox.as_ref().unwrap().len().await.unwrap(), 1);
}

const FAMILIES: &str = r#"
local cases = {}

cases["kf.typing"] = function(msg)
    return tostring(ok(wx.kf.typing(msg.from, true)))
end
cases["kf.news"] = function(msg)
    local news = wx.reply.news({{title = "T", description = "D", pic_url = "http://p", url = "http://u"}})
    return tostring(ok(wx.kf.send(msg.from, news, "kf1@test")))
end
cases["kf.menu"] = function(msg)
    return tostring(ok(wx.kf.send(msg.from, {type = "msgmenu", head_content = "Rate us",
        list = {{id = 101, content = "good"}, {id = "102", content = "bad"}}, tail_content = "thanks"})))
end
cases["mass.preview"] = function(msg)
    local r = ok(wx.mass.preview(msg.from, {type = "image", media_id = "IMG"}))
    return math.type(r.msg_id)
end
cases["mass.delete"] = function(msg) return tostring(ok(wx.mass.delete(5, 1))) end
cases["mass.status"] = function(msg) return ok(wx.mass.status(5)).msg_status end
cases["template.list"] = function(msg)
    local list = ok(wx.template.list())
    return #list .. ":" .. list[1].template_id
end
cases["user.info"] = function(msg)
    local u = ok(wx.user.info(msg.from))
    return u.subscribe .. ":" .. u.openid .. ":" .. u.subscribe_scene
end
cases["user.list"] = function(msg)
    local page = ok(wx.user.list())
    local rest = ok(wx.user.list(page.openids[2]))
    return page.total .. ":" .. #page.openids .. ":" .. page.next_openid .. ":" .. #rest.openids
end
cases["tags"] = function(msg)
    local id = ok(wx.tags.create("vip"))
    ok(wx.tags.update(id, "VIP"))
    ok(wx.tags.tag(id, {msg.from}))
    local list = ok(wx.tags.list())
    local of = ok(wx.tags.of(msg.from))
    ok(wx.tags.untag(id, {msg.from}))
    local after = ok(wx.tags.of(msg.from))
    ok(wx.tags.delete(id))
    return table.concat({math.type(id), list[1].name, list[1].count, of[1] == id and "tagged" or "?", #after,
        #ok(wx.tags.list())}, ":")
end
cases["menu"] = function(msg)
    ok(wx.menu.create{button = {{type = "click", name = "Today", key = "V1001_TODAY"},
        {name = "More", sub_button = {{type = "view", name = "Site", url = "http://example.com/"}}}}})
    local m = ok(wx.menu.get())
    ok(wx.menu.delete())
    local gone, err = wx.menu.get()
    return m.menu.button[1].key .. ":" .. m.menu.button[2].sub_button[1].url .. ":" .. tostring(gone) .. ":" .. err.errcode
end
cases["media"] = function(msg)
    local r = ok(wx.media.upload("image", "\137PNG\0\1\2\0", "cat.png"))
    return r.type .. ":" .. r.media_id .. ":" .. math.type(r.created_at)
end
cases["qrcode"] = function(msg)
    local t = ok(wx.qrcode.create{scene = "promo", expire_seconds = 600})
    local p = ok(wx.qrcode.create{scene = 42})
    return t.ticket .. ":" .. t.expire_seconds .. ":" .. tostring(t.image_url:find("ticket=", 1, true) ~= nil)
        .. ":" .. tostring(p.expire_seconds) .. ":" .. p.url
end
cases["api"] = function(msg)
    local industry = ok(wx.api.get("/cgi-bin/template/get_industry", {lang = "zh_CN", n = 3}))
    local set = ok(wx.api.post("/cgi-bin/message/mass/speed/set", {speed = 2}))
    local speed = ok(wx.api.post("/cgi-bin/message/mass/speed/get"))
    return industry.primary_industry.first_class .. ":" .. set.errcode .. ":" .. speed.speed
end

wx.on("text", function(msg)
    local case = cases[msg.content]
    if not case then return "no case " .. msg.content end
    return case(msg)
end)
"#;

#[tokio::test]
async fn every_family_round_trips() {
    let s = setup(&format!("{OK}{FAMILIES}")).await;
    let followers = s.fake.add_followers(3);
    let user = followers[0].as_str();
    let fake = &s.fake;

    assert_eq!(ask(&s.host, user, "kf.typing").await, "true");
    assert_eq!(
        body(fake, "/cgi-bin/message/custom/typing"),
        json!({"touser": user, "command": "Typing"})
    );

    assert_eq!(ask(&s.host, user, "kf.news").await, "true");
    let news = body(fake, "/cgi-bin/message/custom/send");
    assert_eq!(news["msgtype"], "news");
    assert_eq!(
        news["news"]["articles"],
        json!([{"title": "T", "description": "D", "picurl": "http://p", "url": "http://u"}])
    );
    assert_eq!(news["customservice"], json!({"kf_account": "kf1@test"}));

    assert_eq!(ask(&s.host, user, "kf.menu").await, "true");
    let menu = body(fake, "/cgi-bin/message/custom/send");
    assert_eq!(menu["msgtype"], "msgmenu");
    assert_eq!(
        menu["msgmenu"]["list"],
        json!([{"id": "101", "content": "good"}, {"id": "102", "content": "bad"}])
    );

    assert_eq!(ask(&s.host, user, "mass.preview").await, "integer");
    let preview = body(fake, "/cgi-bin/message/mass/preview");
    assert_eq!(preview["touser"], user);
    assert_eq!(preview["msgtype"], "image");
    assert_eq!(preview["images"]["media_ids"], json!(["IMG"]));

    assert_eq!(ask(&s.host, user, "mass.delete").await, "true");
    assert_eq!(
        body(fake, "/cgi-bin/message/mass/delete"),
        json!({"msg_id": 5, "article_idx": 1})
    );
    assert_eq!(ask(&s.host, user, "mass.status").await, "SEND_SUCCESS");
    assert_eq!(
        body(fake, "/cgi-bin/message/mass/get"),
        json!({"msg_id": 5})
    );

    let tid = s.client.template().add_template("TM1", &[]).await.unwrap();
    assert_eq!(
        ask(&s.host, user, "template.list").await,
        format!("1:{tid}")
    );

    assert_eq!(
        ask(&s.host, user, "user.info").await,
        format!("1:{user}:ADD_SCENE_QR_CODE")
    );
    let info = last(fake, "/cgi-bin/user/info");
    assert_eq!(info.query_param("openid"), Some(user));
    assert_eq!(info.query_param("lang"), Some("zh_CN"));
    assert_eq!(
        ask(&s.host, user, "user.list").await,
        format!("3:3:{}:1", followers[2])
    );
    assert_eq!(
        last(fake, "/cgi-bin/user/get").query_param("next_openid"),
        Some(followers[1].as_str())
    );

    assert_eq!(ask(&s.host, user, "tags").await, "integer:VIP:1:tagged:0:0");
    assert_eq!(
        body(fake, "/cgi-bin/tags/create"),
        json!({"tag": {"name": "vip"}})
    );
    let tagging = body(fake, "/cgi-bin/tags/members/batchtagging");
    assert_eq!(tagging["openid_list"], json!([user]));
    assert_eq!(
        fake.calls_to("/cgi-bin/tags/members/batchuntagging").len(),
        1
    );
    assert_eq!(fake.calls_to("/cgi-bin/tags/delete").len(), 1);

    assert_eq!(
        ask(&s.host, user, "menu").await,
        "V1001_TODAY:http://example.com/:nil:46003"
    );
    let created = body(fake, "/cgi-bin/menu/create");
    assert_eq!(created["button"][0]["type"], "click");
    assert_eq!(created["button"][1]["sub_button"][0]["name"], "Site");
    assert_eq!(fake.calls_to("/cgi-bin/menu/delete").len(), 1);

    let media = ask(&s.host, user, "media").await;
    assert!(media.starts_with("image:FAKE_MEDIA_image_"), "{media}");
    assert!(media.ends_with(":integer"), "{media}");
    let upload = last(fake, "/cgi-bin/media/upload");
    assert_eq!(upload.query_param("type"), Some("image"));
    let part = upload.parts.iter().find(|p| p.name == "media").unwrap();
    assert_eq!(part.data, b"\x89PNG\0\x01\x02\0");
    assert_eq!(part.filename.as_deref(), Some("cat.png"));
    assert_eq!(part.content_type.as_deref(), Some("image/png"));

    let qr = ask(&s.host, user, "qrcode").await;
    let parts: Vec<&str> = qr.split(':').collect();
    assert!(parts[0].starts_with("gQFAKE"), "{qr}");
    assert_eq!(&parts[1..4], ["600", "true", "nil"], "{qr}");
    let qr_calls = fake.calls_to("/cgi-bin/qrcode/create");
    assert_eq!(
        qr_calls[0].body.as_ref().unwrap(),
        &json!({"action_name": "QR_STR_SCENE", "expire_seconds": 600,
                "action_info": {"scene": {"scene_str": "promo"}}})
    );
    assert_eq!(
        qr_calls[1].body.as_ref().unwrap()["action_name"],
        "QR_LIMIT_SCENE"
    );

    assert_eq!(ask(&s.host, user, "api").await, "IT科技:0:2");
    let get = last(fake, "/cgi-bin/template/get_industry");
    assert_eq!(get.method, "GET");
    assert_eq!(get.query_param("lang"), Some("zh_CN"));
    assert_eq!(get.query_param("n"), Some("3"));
    assert_eq!(
        body(fake, "/cgi-bin/message/mass/speed/set"),
        json!({"speed": 2})
    );
}

#[tokio::test]
async fn api_post_sends_an_empty_table_as_an_object_and_refuses_nan() {
    let s = setup(&format!(
        r#"{OK}
wx.on("text", "^empty$", function(msg)
    ok(wx.api.post("/cgi-bin/message/mass/speed/get", {{}}))
    ok(wx.api.post("/cgi-bin/message/mass/speed/get", {{filter = {{}}, tag_ids = {{1, 2}}, mixed = wx.json.object{{1, x = 2}}}}))
    return "sent"
end)
wx.on("text", "^nan$", function(msg)
    local ok_call, err = pcall(wx.api.post, "/cgi-bin/message/mass/speed/get", {{speed = 0/0}})
    local ok_inf, err_inf = pcall(wx.api.post, "/cgi-bin/message/mass/speed/get", {{list = {{1, -1/0}}}})
    local ok_mixed, err_mixed = pcall(wx.api.post, "/cgi-bin/message/mass/speed/get", {{mixed = {{1, x = 2}}}})
    return tostring(ok_call) .. "|" .. tostring(err) .. "|" .. tostring(ok_inf) .. "|" .. tostring(err_inf)
        .. "|" .. tostring(ok_mixed) .. "|" .. tostring(err_mixed)
end)
"#
    ))
    .await;
    let path = "/cgi-bin/message/mass/speed/get";
    assert_eq!(ask(&s.host, "u", "empty").await, "sent");
    let bodies: Vec<_> = s
        .fake
        .calls_to(path)
        .into_iter()
        .map(|c| c.body.expect("a JSON body"))
        .collect();
    assert_eq!(
        bodies,
        [
            json!({}),
            json!({"filter": {}, "tag_ids": [1, 2], "mixed": {"1": 1, "x": 2}})
        ]
    );

    s.fake.clear_calls();
    let answer = ask(&s.host, "u", "nan").await;
    let parts: Vec<&str> = answer.split('|').collect();
    assert_eq!(parts[0], "false", "{answer}");
    assert!(
        parts[1].contains("main.lua:")
            && parts[1].contains("wx.api.post")
            && parts[1].contains("NaN"),
        "{answer}"
    );
    assert_eq!(parts[2], "false", "{answer}");
    assert!(
        parts[3].contains("-inf") && parts[3].contains("[2]"),
        "{answer}"
    );
    // A table mixing items and names is refused rather than guessed (wx.json.object says
    // "an object" explicitly, as the "empty" case above does).
    assert_eq!(parts[4], "false", "{answer}");
    assert!(
        parts[5].contains("mixes array items with the key \"x\"")
            && parts[5].contains("(at .mixed)"),
        "{answer}"
    );
    assert!(s.fake.calls_to(path).is_empty(), "nothing was sent");
}

#[tokio::test]
async fn argument_mistakes_raise_at_the_script_line() {
    let s = setup(
        r#"wx.on('text', 'url', function(msg)
  local r = wx.api.get('https://evil.example/cgi-bin/user/get', {})
  return r
end)
wx.on('text', 'rel', function(msg)
  local r = wx.api.post('cgi-bin/menu/create', {})
  return r
end)
wx.on('text', 'openid', function(msg)
  local r = wx.kf.send(nil, 'hi')
  return r
end)
wx.on('text', 'type', function(msg)
  local r = wx.kf.send(msg.from, {type = 'image'})
  return r
end)
wx.on('text', 'tpl', function(msg)
  local r = wx.template.send{to = msg.from, data = {}}
  return r
end)
"#,
    )
    .await;
    for (content, line, needle) in [
        ("url", 2, "absolute URLs are refused"),
        ("rel", 6, "must start with /"),
        ("openid", 10, "wx.kf.send: openid is required"),
        ("type", 14, "media_id"),
        ("tpl", 18, "template_id is required"),
    ] {
        let err = handle(&s.host, "oUSER", content).await.unwrap_err();
        let ScriptError::Handler { message, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(
            message.contains(&format!("main.lua:{line}: ")),
            "{content}: {message}"
        );
        assert!(message.contains(needle), "{content}: {message}");
    }
    assert!(
        s.fake.calls().is_empty(),
        "nothing reached WeChat (not even a token fetch): {:?}",
        s.fake.calls()
    );
}

#[tokio::test]
async fn without_appid_every_call_is_errcode_minus_5() {
    let (_dir, host) = start_host(
        r#"
wx.on("text", function(msg)
    local out = {}
    for _, call in ipairs{
        function() return wx.kf.send(msg.from, "x") end,
        function() return wx.template.list() end,
        function() return wx.mass.send{to = {all = true}, message = "x"} end,
        function() return wx.api.get("/cgi-bin/user/get") end,
        function() return wx.media.upload("image", "abc") end,
    } do
        local v, err = call()
        out[#out + 1] = tostring(v) .. " " .. err.errcode
    end
    local w = wx.kf.window(msg.from)
    return table.concat(out, ",") .. "|" .. tostring(w.open) .. "|" .. select(2, wx.menu.get()).errmsg
end)
"#,
        Services::in_memory().unwrap(),
    );
    let answer = ask(&host, "oUSER", "x").await;
    let (codes, rest) = answer.split_once('|').unwrap();
    assert_eq!(codes, ["nil -5"; 5].join(","));
    assert!(
        rest.starts_with("false|no appid/appsecret configured: wx.menu.get"),
        "{rest}"
    );
}

#[tokio::test]
async fn kf_window_reflects_messages_and_sends() {
    let s = setup(
        r#"
local function show(w) return tostring(w.open) .. ":" .. w.remaining .. ":" .. tostring(w.closes_at) end
wx.on("text", function(msg)
    local before = show(wx.kf.window(msg.from))
    local sent, err = wx.kf.send(msg.from, "hello")
    return before .. "|" .. show(wx.kf.window(msg.from)) .. "|" .. tostring(sent)
end)
"#,
    )
    .await;
    assert_eq!(
        ask(&s.host, "oNEW", "x").await,
        "false:0:nil|false:0:nil|true",
        "an unknown user has no window; the send itself is up to WeChat"
    );
    let at = support::now();
    s.services.kf_window.note_message("oUSER", at);
    let closes = at + 48 * 3600;
    assert_eq!(
        ask(&s.host, "oUSER", "x").await,
        format!("true:5:{closes}|true:4:{closes}|true")
    );
    s.services.kf_window.note_sent("oUSER", at);
    assert_eq!(
        ask(&s.host, "oUSER", "x").await,
        format!("true:3:{closes}|true:2:{closes}|true")
    );
}

#[tokio::test]
async fn a_slow_api_call_does_not_block_other_messages_on_the_worker() {
    let s = setup(
        r#"
wx.on("text", "^slow$", function(msg)
    local u = wx.user.info(msg.from)
    return "slow " .. u.openid
end)
wx.on("text", function(msg) return "fast" end)
"#,
    )
    .await;
    s.fake
        .delay("/cgi-bin/user/info", Duration::from_millis(1500));
    let slow = {
        let host = s.host.clone();
        tokio::spawn(async move { ask(&host, "oUSER", "slow").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ask(&s.host, "oUSER", "quick").await, "fast");
    assert!(
        !slow.is_finished(),
        "the fast reply came while the slow call still waited"
    );
    assert_eq!(slow.await.unwrap(), "slow oUSER");
}
