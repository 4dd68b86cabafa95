//! Media bytes and the rest of the API families from Lua: `wx.media.get/uploadimg`,
//! `wx.material.*`, the template library and industries, mass speed and `wx.user.batch_info`,
//! run by scripts in a `LuaPool` through a real reqwest client against the fake WeChat API on
//! loopback, which answers with WeChat's documented formats, sizes and errcodes.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::json;
use sha2::{Digest, Sha256};
use support::fake::{last, setup as fake_client};
use support::text_xml;
use tempfile::TempDir;
use wechat_lua::fake_wechat::FakeWechat;
use wechat_lua::protocol::message::InboundMessage;
use wechat_lua::protocol::reply::Reply;
use wechat_lua::script::runtime::Handled;
use wechat_lua::script::{LuaPool, RuntimeOptions, ScriptError, Services};

static MSG_ID: AtomicU64 = AtomicU64::new(1);

/// Cases chosen by the message's first word; the rest are its arguments. `ok` turns `nil, err`
/// into an error naming the errcode; `code` returns `"errcode"` of a call that must fail.
const MAIN: &str = r##"
local function ok(v, err)
    if v == nil then error("API error " .. tostring(err and err.errcode) .. ": " .. tostring(err and err.errmsg)) end
    return v
end
local function code(v, err)
    if v ~= nil then return "succeeded" end
    return tostring(err.errcode)
end
local cases = {}

-- The picture a user sent, byte for byte.
cases.get = function(media_id)
    local f = ok(wx.media.get(media_id))
    return table.concat({#f.bytes, f.content_type, f.filename, wx.crypto.sha256(f.bytes)}, "|")
end
cases.getvideo = function()
    local up = ok(wx.media.upload("video", "\0\0\0\24ftypmp42", "clip.mp4"))
    local v = ok(wx.media.get(up.media_id))
    return tostring(v.bytes) .. "|" .. v.video_url
end
cases.getmissing = function(media_id) return code(wx.media.get(media_id)) end

cases.uploadimg = function()
    local url = ok(wx.media.uploadimg("\255\216\255\224\0jpeg", "inline.jpg"))
    local gif = code(wx.media.uploadimg("GIF89a", "anim.gif"))
    local big = code(wx.media.uploadimg(string.rep("\0", 1024 * 1024), "big.png"))
    return url .. "|" .. gif .. "|" .. big
end

cases.limits = function()
    return table.concat({
        code(wx.media.upload("thumb", string.rep("t", 64 * 1024 + 1), "t.jpg")),
        code(wx.media.upload("thumb", "t", "t.png")),
        code(wx.media.upload("voice", string.rep("v", 2 * 1024 * 1024 + 1), "v.mp3")),
        code(wx.media.upload("voice", "RIFFwav", "v.wav")),
        code(wx.material.add("voice", "RIFFwav", {filename = "v.wav"})),
        code(wx.material.add("image", "BMbmp", {filename = "p.bmp"})),
        code(wx.media.upload("image", "BMbmp", "p.bmp")),
    }, "|")
end

cases.material = function()
    local img = ok(wx.material.add("image", "\137PNG\0\r\n", {filename = "logo.png"}))
    local vid = ok(wx.material.add("video", "\0\0\0\24ftypmp42", {title = "Tour", introduction = "Our shop"}))
    local voice = ok(wx.material.add("voice", "#!AMR\n\0", {filename = "hi.amr"}))
    local file = ok(wx.material.get(img.media_id))
    local video = ok(wx.material.get(vid.media_id))
    local count = ok(wx.material.count())
    local page = ok(wx.material.list("image", 0, 1))
    local none = ok(wx.material.list("news"))
    local deleted = ok(wx.material.delete(voice.media_id))
    local again = code(wx.material.get(voice.media_id))
    local temp = ok(wx.media.upload("image", "GIF89a", "a.gif"))
    return table.concat({
        img.url:sub(1, 7), tostring(file.bytes == "\137PNG\0\r\n"), file.content_type, file.filename,
        video.title, video.description, video.down_url:sub(1, 7),
        count.image_count, count.video_count, count.voice_count, count.news_count, tostring(count.errcode),
        page.total_count, page.item_count, page.item[1].media_id == img.media_id and "newest" or "?",
        page.item[1].name, none.total_count, #none.item,
        tostring(deleted), again, code(wx.material.delete(voice.media_id)),
        code(wx.material.get(temp.media_id)), code(wx.media.get(img.media_id)),
        ok(wx.material.count()).voice_count,
    }, "|")
end

cases.template = function(_, msg)
    local id = ok(wx.template.add("OPENTM200565259", {"订单号", "发货时间"}))
    local listed = ok(wx.template.list())
    local deleted = ok(wx.template.delete(id))
    local again = code(wx.template.delete(id))
    local set = ok(wx.template.set_industry("1", "4"))
    local industry = ok(wx.template.get_industry())
    return table.concat({id:sub(1, 3), #listed, tostring(deleted), again, tostring(set),
        industry.primary_industry.second_class, industry.secondary_industry.second_class}, "|")
end

cases.templimit = function()
    local n = 0
    while true do
        local id, err = wx.template.add("TM" .. n)
        if not id then return n .. "|" .. err.errcode end
        n = n + 1
    end
end

cases.speed = function()
    local before = ok(wx.mass.speed())
    local set = ok(wx.mass.set_speed(3))
    local after = ok(wx.mass.speed())
    return table.concat({before.speed, before.realspeed, tostring(set), after.speed, after.realspeed}, "|")
end

cases.users = function(_, msg, openids)
    local list = {}
    for id in openids:gmatch("[^,]+") do list[#list + 1] = id end
    local infos = ok(wx.user.batch_info(list, "en"))
    local out = {#infos}
    for _, u in ipairs(infos) do out[#out + 1] = u.openid .. ":" .. u.subscribe .. ":" .. tostring(u.language) end
    return table.concat(out, "|")
end

cases.mistake = function(which)
    -- Not tail calls, which would drop the calling line from the error.
    local mistakes = {
        count = function() local r = wx.material.list("image", 0, 21) return r end,
        kind = function() local r = wx.material.list("thumb") return r end,
        title = function() local r = wx.material.add("video", "mp4") return r end,
        option = function() local r = wx.material.add("image", "x", {name = "a.png"}) return r end,
        speed = function() local r = wx.mass.set_speed(5) return r end,
        bytes = function() local r = wx.media.uploadimg(42) return r end,
        id = function() local r = wx.media.get(nil) return r end,
        users = function() local r = wx.user.batch_info({}) return r end,
        keywords = function() local r = wx.template.add("TM1", "x") return r end,
    }
    return mistakes[which]()
end

wx.on("text", function(msg)
    local name, arg, extra = msg.content:match("^(%S+) ?(%S*) ?(%S*)$")
    return cases[name](arg, msg, extra)
end)
"##;

struct Setup {
    fake: FakeWechat,
    host: Arc<LuaPool>,
    _dir: TempDir,
}

async fn setup() -> Setup {
    let (fake, client) = fake_client().await;
    let services = Services::in_memory().unwrap().with_api(client);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.lua"), MAIN).unwrap();
    let host =
        LuaPool::start(dir.path(), RuntimeOptions::default(), 1, services).expect("scripts load");
    Setup {
        fake,
        host,
        _dir: dir,
    }
}

async fn handle(host: &LuaPool, content: &str) -> Result<Handled, ScriptError> {
    let xml = text_xml("oUSER", content, MSG_ID.fetch_add(1, Ordering::Relaxed));
    host.handle(InboundMessage::parse(xml.as_bytes()).unwrap())
        .await
}

async fn ask(host: &LuaPool, content: &str) -> String {
    match handle(host, content).await {
        Ok(Handled {
            reply: Some(Reply::Text { content }),
            ..
        }) => content,
        other => panic!("{content}: unexpected {other:?}"),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn media_get_hands_back_the_exact_bytes_a_user_sent() {
    let s = setup().await;
    // Every byte value, NULs and invalid UTF-8 included, as a JPEG a user sent.
    let photo: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let media_id = s.fake.add_media("image", "photo.jpg", "image/jpeg", &photo);
    assert_eq!(
        ask(&s.host, &format!("get {media_id}")).await,
        format!("70000|image/jpeg|photo.jpg|{}", sha256_hex(&photo))
    );
    assert_eq!(
        last(&s.fake, "/cgi-bin/media/get").query_param("media_id"),
        Some(media_id.as_str())
    );
    // A video answers with its URL instead of bytes.
    let video = ask(&s.host, "getvideo").await;
    assert!(
        video.starts_with("nil|http://mmbiz.qpic.cn/fake/video/FAKE_MEDIA_video_"),
        "{video}"
    );
    assert_eq!(ask(&s.host, "getmissing NOPE").await, "40007");
}

#[tokio::test]
async fn uploadimg_returns_a_url_for_a_small_jpg_or_png_only() {
    let s = setup().await;
    let answer = ask(&s.host, "uploadimg").await;
    let parts: Vec<&str> = answer.split('|').collect();
    assert!(
        parts[0].starts_with("http://mmbiz.qpic.cn/"),
        "the image's URL: {answer}"
    );
    assert_eq!(&parts[1..], ["40005", "40009"], "gif refused, 1 MB refused");
    let calls = s.fake.calls_to("/cgi-bin/media/uploadimg");
    let part = &calls[0].parts[0];
    assert_eq!(part.name, "media");
    assert_eq!(part.filename.as_deref(), Some("inline.jpg"));
    assert_eq!(part.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(part.data, b"\xff\xd8\xff\xe0\0jpeg");
}

#[tokio::test]
async fn uploads_over_a_types_size_or_in_a_format_it_does_not_take_get_wechats_errcode() {
    let s = setup().await;
    assert_eq!(
        ask(&s.host, "limits").await,
        // thumb > 64 KB, thumb not jpg, voice > 2 MB, wav only in the library (both
        // ways), bmp only in the library (both ways)
        "40012|40005|40010|40005|succeeded|succeeded|40005"
    );
}

#[tokio::test]
async fn permanent_material_is_added_read_counted_listed_and_deleted() {
    let s = setup().await;
    let answer = ask(&s.host, "material").await;
    let parts: Vec<&str> = answer.split('|').collect();
    assert_eq!(
        parts,
        [
            "http://",
            "true",
            "image/png",
            "logo.png",
            "Tour",
            "Our shop",
            "http://",
            "1",
            "1",
            "1",
            "0",
            "nil",
            "1",
            "1",
            "newest",
            "logo.png",
            "0",
            "0",
            "true",
            "40007",
            "40007",
            "40007",
            "40007",
            "0",
        ],
        "{answer}"
    );
    let add = s.fake.calls_to("/cgi-bin/material/add_material");
    assert_eq!(add[1].query_param("type"), Some("video"));
    let description = add[1]
        .parts
        .iter()
        .find(|p| p.name == "description")
        .expect("a video is sent with its description");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&description.data).unwrap(),
        json!({"title": "Tour", "introduction": "Our shop"})
    );
    assert_eq!(
        last(&s.fake, "/cgi-bin/material/batchget_material").body,
        Some(json!({"type": "news", "offset": 0, "count": 20}))
    );
    assert_eq!(
        last(&s.fake, "/cgi-bin/material/get_materialcount").method,
        "GET"
    );
}

#[tokio::test]
async fn templates_are_added_deleted_and_industries_set() {
    let s = setup().await;
    assert_eq!(
        ask(&s.host, "template").await,
        "tpl|1|true|40037|true|industry 1|industry 4"
    );
    assert_eq!(
        last(&s.fake, "/cgi-bin/template/api_add_template").body,
        Some(
            json!({"template_id_short": "OPENTM200565259", "keyword_name_list": ["订单号", "发货时间"]})
        )
    );
    assert_eq!(
        last(&s.fake, "/cgi-bin/template/api_set_industry").body,
        Some(json!({"industry_id1": "1", "industry_id2": "4"}))
    );
}

#[tokio::test]
async fn an_account_holds_at_most_25_templates() {
    let s = setup().await;
    assert_eq!(ask(&s.host, "templimit").await, "25|45026");
}

#[tokio::test]
async fn mass_speed_is_read_and_set() {
    let s = setup().await;
    assert_eq!(ask(&s.host, "speed").await, "0|80|true|3|30");
    assert_eq!(
        last(&s.fake, "/cgi-bin/message/mass/speed/set").body,
        Some(json!({"speed": 3}))
    );
}

#[tokio::test]
async fn batch_info_asks_for_at_most_100_followers_a_call() {
    let s = setup().await;
    let followers = s.fake.add_followers(150);
    let list = followers.join(",") + ",oSTRANGER";
    let answer = ask(&s.host, &format!("users x {list}")).await;
    let parts: Vec<&str> = answer.split('|').collect();
    assert_eq!(parts[0], "151");
    assert_eq!(parts[1], format!("{}:1:en", followers[0]));
    assert_eq!(parts[151], "oSTRANGER:0:nil");
    let calls = s.fake.calls_to("/cgi-bin/user/info/batchget");
    let sizes: Vec<usize> = calls
        .iter()
        .map(|c| {
            c.body.as_ref().unwrap()["user_list"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(sizes, [100, 51]);
    assert_eq!(
        calls[0].body.as_ref().unwrap()["user_list"][0],
        json!({"openid": followers[0], "lang": "en"})
    );
}

#[tokio::test]
async fn argument_mistakes_raise_at_the_scripts_line() {
    let s = setup().await;
    for (which, needle) in [
        ("count", "wx.material.list: count must be 1 to 20, not 21"),
        (
            "kind",
            "wx.material.list: type must be image, video, voice or news",
        ),
        ("title", "wx.material.add: a video needs a title"),
        ("option", "wx.material.add: unknown option \"name\""),
        (
            "speed",
            "wx.mass.set_speed: speed must be 0 (fastest) to 4 (slowest), not 5",
        ),
        (
            "bytes",
            "wx.media.uploadimg: the content must be a string of bytes",
        ),
        ("id", "wx.media.get: media_id is required"),
        ("users", "wx.user.batch_info: openids must not be empty"),
        (
            "keywords",
            "wx.template.add: keyword_name_list must be a table",
        ),
    ] {
        let err = handle(&s.host, &format!("mistake {which}"))
            .await
            .unwrap_err();
        let ScriptError::Handler { message, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(message.contains("main.lua:"), "{which}: {message}");
        assert!(message.contains(needle), "{which}: {message}");
    }
    assert!(
        s.fake.calls().is_empty(),
        "nothing reached WeChat: {:?}",
        s.fake.calls()
    );
}
