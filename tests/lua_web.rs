//! The web-page side of the API from Lua: `wx.oauth`, `wx.jssdk`, `wx.subscribe` and
//! `wx.template.add` in a pool of Lua states, through the real client against the fake on
//! loopback; and the subscription events as handlers see them.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};

use support::fake::{last, setup};
use support::pool::{host, host_on, reply, text};
use support::text_xml;
use wechat_lua::api::jssdk::signature;
use wechat_lua::api::oauth::Scope;
use wechat_lua::protocol::reply::Reply;
use wechat_lua::script::{LuaPool, Services};

/// A fresh MsgId per message, since the host may de-duplicate retries.
static MSG_ID: AtomicU64 = AtomicU64::new(1);

/// The text a handler answered `content` from `from` with.
async fn ask(host: &LuaPool, from: &str, content: &str) -> String {
    let xml = text_xml(from, content, MSG_ID.fetch_add(1, Ordering::Relaxed));
    match reply(host, &xml).await {
        Some(Reply::Text { content }) => content,
        other => panic!("{content}: unexpected {other:?}"),
    }
}

const WEB: &str = r#"
-- Builds a URL and waits for nothing: fine while the script loads.
local LOGIN = wx.oauth.url{redirect_uri = "https://shop.example/cb?next=/orders",
    scope = "snsapi_userinfo", state = "abc123"}

wx.on("text", "^login$", function() return LOGIN end)

wx.on("text", "^code (%S+)$", function(msg, code)
    local t, err = wx.oauth.exchange(code)
    if not t then return "err " .. err.errcode end
    local info = assert(wx.oauth.userinfo(t.access_token, t.openid))
    return table.concat({t.openid, t.scope, tostring(t.unionid), math.type(t.expires_in),
        type(t.refresh_token), info.nickname}, "|")
end)

wx.on("text", "^config$", function()
    local c = assert(wx.jssdk.config("https://shop.example/orders?id=1#top",
        {apis = {"scanQRCode"}, open_tags = {"wx-open-subscribe"}}))
    local bare = assert(wx.jssdk.config("https://shop.example/"))
    return table.concat({c.appId, c.timestamp, c.nonceStr, c.signature, c.jsApiList[1],
        c.openTagList[1], tostring(c.debug), wx.json.encode(bare.jsApiList)}, "|")
end)

wx.on("text", "^bad (%S+)$", function(msg, what)
    local ok, err
    if what == "redirect" then
        ok, err = pcall(wx.oauth.url, {redirect_uri = "/cb"})
    elseif what == "scope" then
        ok, err = pcall(wx.oauth.url, {redirect_uri = "https://a.example/", scope = "snsapi_login"})
    elseif what == "state" then
        ok, err = pcall(wx.oauth.url, {redirect_uri = "https://a.example/", state = "a&b"})
    else
        ok, err = pcall(wx.jssdk.config, "/orders")
    end
    return tostring(ok) .. " " .. tostring(err)
end)
"#;

#[tokio::test]
async fn pages_sign_in_and_sign_jssdk_configs_from_lua() {
    let (fake, client) = setup().await;
    let services = Services::in_memory().unwrap().with_api(client.clone());
    let (_dir, host) = host_on(WEB, services);

    assert_eq!(
        ask(&host, "oX", "login").await,
        client.oauth().authorize_url(
            "https://shop.example/cb?next=/orders",
            Scope::UserInfo,
            "abc123"
        )
    );

    let code = fake.issue_oauth_code("oCAROL", "snsapi_userinfo");
    assert_eq!(
        ask(&host, "oX", &format!("code {code}")).await,
        "oCAROL|snsapi_userinfo|nil|integer|string|Fake oCAROL"
    );
    assert_eq!(ask(&host, "oX", &format!("code {code}")).await, "err 40163");
    assert_eq!(ask(&host, "oX", "code NOPE").await, "err 40029");

    let shown = ask(&host, "oX", "config").await;
    let parts: Vec<&str> = shown.split('|').collect();
    assert_eq!(parts.len(), 8, "{shown}");
    let ticket = fake.current_jsapi_ticket().unwrap();
    assert_eq!(parts[0], fake.appid());
    assert_eq!(
        parts[3],
        signature(
            &ticket,
            parts[2],
            parts[1].parse().unwrap(),
            "https://shop.example/orders?id=1"
        )
    );
    assert_eq!(
        parts[4..],
        ["scanQRCode", "wx-open-subscribe", "false", "[]"]
    );
    assert_eq!(fake.ticket_fetches(), 1);

    for (what, needle) in [
        ("redirect", "redirect_uri"),
        ("scope", "snsapi_login"),
        ("state", "letters"),
        ("config", "absolute URL"),
    ] {
        let answer = ask(&host, "oX", &format!("bad {what}")).await;
        assert!(
            answer.starts_with("false ") && answer.contains("main.lua:"),
            "{what}: {answer}"
        );
        assert!(answer.contains(needle), "{what}: {answer}");
    }
}

#[tokio::test]
async fn without_credentials_the_web_helpers_answer_nil_err() {
    let (_dir, host) = host(
        r#"
        wx.on("text", function()
            local url, e1 = wx.oauth.url{redirect_uri = "https://a.example/"}
            local cfg, e2 = wx.jssdk.config("https://a.example/")
            local ok, e3 = wx.subscribe.send{to = "o", template_id = "T", data = {}}
            return table.concat({tostring(url), e1.errcode, tostring(cfg), e2.errcode,
                tostring(ok), e3.errcode}, "|")
        end)
        "#,
    );
    assert_eq!(
        reply(&host, &text_xml("o", "x", 1)).await,
        text("nil|-5|nil|-5|nil|-5")
    );
}

#[tokio::test]
async fn subscription_notifications_from_lua_and_transient_failures_queued() {
    let (fake, client) = setup().await;
    let services = Services::in_memory().unwrap().with_api(client);
    let (_dir, host) = host_on(
        r#"
        wx.on("text", "^sub$", function(msg)
            local id = assert(wx.subscribe.add("502", {3, 5, 4}, "发货提醒"))
            local list = assert(wx.subscribe.templates())
            local cats = assert(wx.subscribe.categories())
            wx.store.set("tid", id)
            local sent = assert(wx.subscribe.send{to = msg.from, template_id = id,
                page = "https://shop.example/orders/42", data = {thing3 = "已发货", number5 = 42}})
            return table.concat({#list, list[1].priTmplId == id and "listed" or "missing",
                tostring(#cats > 0), tostring(sent)}, "|")
        end)
        wx.on("text", "^again$", function(msg)
            local ok, err = wx.subscribe.send{to = msg.from, template_id = wx.store.get("tid"),
                data = {thing3 = {value = "x"}}}
            return tostring(ok) .. "|" .. err.errcode .. "|" .. tostring(err.queued)
        end)
        wx.on("text", "^delete$", function()
            return tostring(assert(wx.subscribe.delete(wx.store.get("tid"))))
        end)
        wx.on("text", "^tpl$", function()
            return assert(wx.template.add("TM00015", {"金额", "时间"}))
        end)
        "#,
        services.clone(),
    );
    assert_eq!(ask(&host, "oBUYER", "sub").await, "1|listed|true|true");
    let sent = last(&fake, "/cgi-bin/message/subscribe/bizsend")
        .body
        .unwrap();
    assert_eq!(sent["touser"], "oBUYER");
    assert_eq!(sent["page"], "https://shop.example/orders/42");
    assert_eq!(
        sent["data"],
        serde_json::json!({"thing3": {"value": "已发货"}, "number5": {"value": "42"}})
    );

    // Refused by the user: reported, not queued.
    fake.refuse_subscribe("oBUYER");
    assert_eq!(ask(&host, "oBUYER", "again").await, "nil|43101|nil");
    // WeChat busy through every try: kept in the outbox for the host to retry.
    fake.fail_next("/cgi-bin/message/subscribe/bizsend", -1, 10);
    assert_eq!(ask(&host, "oNEW", "again").await, "nil|-1|true");
    let outbox = services.outbox.as_ref().unwrap();
    assert_eq!(outbox.len().await.unwrap(), 1);

    assert_eq!(ask(&host, "o", "delete").await, "true");
    let id = ask(&host, "o", "tpl").await;
    assert!(id.starts_with("tplTM00015"), "{id}");
    assert_eq!(
        last(&fake, "/cgi-bin/template/api_add_template")
            .body
            .unwrap(),
        serde_json::json!({"template_id_short": "TM00015", "keyword_name_list": ["金额", "时间"]})
    );
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/messages")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn subscription_events_reach_handlers_with_their_lists_as_arrays_of_tables() {
    let (_dir, host) = host(
        r#"
        local function each(list, fields)
            local out = {}
            for i, item in ipairs(list) do
                local values = {}
                for _, f in ipairs(fields) do values[#values + 1] = tostring(item[f]) end
                out[i] = table.concat(values, ",")
            end
            return #list .. ":" .. table.concat(out, ";")
        end
        wx.on("event.subscribe_msg_popup_event", function(msg)
            return each(msg.subscribe_msg_popup_event.list,
                {"template_id", "subscribe_status_string", "popup_scene"})
        end)
        wx.on("event.subscribe_msg_change_event", function(msg)
            return each(msg.subscribe_msg_change_event.list, {"template_id", "subscribe_status_string"})
        end)
        wx.on("event.subscribe_msg_sent_event", function(msg)
            return each(msg.subscribe_msg_sent_event.list,
                {"template_id", "msg_id", "error_code", "error_status"})
        end)
        "#,
    );
    assert_eq!(
        reply(&host, &fixture("event_subscribe_msg_popup_event.xml")).await,
        text(
            "2:VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc,accept,2;\
             9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI,reject,2"
        )
    );
    assert_eq!(
        reply(&host, &fixture("event_subscribe_msg_change_event.xml")).await,
        text("1:VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc,reject")
    );
    assert_eq!(
        reply(&host, &fixture("event_subscribe_msg_sent_event.xml")).await,
        text("1:VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc,1700827132819554304,0,success")
    );
}
