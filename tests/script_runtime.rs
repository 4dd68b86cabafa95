//! The Lua side through the script workers: handler matching, replies, errors with file:line,
//! the sandbox, limits, reload and concurrency.

mod support;

use std::time::Duration;

use support::pool::{handle, host, host_with, reply, text, write};
use support::{event_xml, text_xml};
use wechat_lua::protocol::reply::{Article, Reply};
use wechat_lua::script::{LuaPool, RuntimeOptions, ScriptError, Services};

fn load_error(files: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, files);
    match LuaPool::start(
        dir.path(),
        RuntimeOptions::default(),
        1,
        Services::in_memory().unwrap(),
    ) {
        Ok(_) => panic!("scripts loaded but should not"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn first_matching_handler_answers_with_pattern_captures() {
    let (_d, host) = host(
        r#"
        wx.on("text", "^weather (%S+) (%d+)$", function(msg, city, days)
            return city .. "/" .. days .. "/" .. math.type(tonumber(days))
        end)
        wx.on("text", "^hi", function(msg) return "hello " .. msg.from end)
        wx.on("text", function(msg) return "fallback:" .. msg.content end)
        wx.on("event.click", "MENU_A", function(msg) return "A" end)
        wx.on("event.click", function(msg) return "click " .. msg.key end)
        wx.on("event", function(msg) return "event " .. msg.event end)
        wx.on("*", function(msg) return "any " .. msg.type end)
        "#,
    );
    assert_eq!(
        reply(&host, &text_xml("u1", "weather 北京 3", 1)).await,
        text("北京/3/integer")
    );
    assert_eq!(
        reply(&host, &text_xml("u1", "hi there", 2)).await,
        text("hello u1")
    );
    assert_eq!(
        reply(&host, &text_xml("u1", "other", 3)).await,
        text("fallback:other")
    );
    assert_eq!(
        reply(&host, &event_xml("u1", "CLICK", Some("MENU_A"))).await,
        text("A")
    );
    assert_eq!(
        reply(&host, &event_xml("u1", "CLICK", Some("MENU_B"))).await,
        text("click MENU_B")
    );
    assert_eq!(
        reply(&host, &event_xml("u1", "SCAN", Some("7"))).await,
        text("event scan")
    );
    let image = "<xml><ToUserName>a</ToUserName><FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>image</MsgType><MediaId>m1</MediaId><MsgId>9</MsgId></xml>";
    assert_eq!(reply(&host, image).await, text("any image"));
}

#[tokio::test]
async fn message_table_has_short_and_snake_case_names() {
    let (_d, host) = host(
        r#"
        wx.on("text", function(msg)
            return table.concat({msg.type, msg.from, msg.to, tostring(msg.time), math.type(msg.time),
              type(msg.id), msg.id, msg.content, msg.msg_id, msg.to_user_name, msg.from_user_name, msg.msg_type}, "|")
        end)
        wx.on("event.subscribe", function(msg) return (msg.key or "nokey") .. "|" .. msg.event .. "|" .. msg.event_key end)
        "#,
    );
    assert_eq!(
        reply(&host, &text_xml("u1", "hey", 18446744073709551615)).await,
        text("text|u1|gh_account|1700000000|integer|string|18446744073709551615|hey|18446744073709551615|gh_account|u1|text")
    );
    assert_eq!(
        reply(&host, &event_xml("u1", "subscribe", Some("qrscene_42"))).await,
        text("qrscene_42|subscribe|qrscene_42")
    );
}

#[tokio::test]
async fn every_reply_shape_converts() {
    let (_d, host) = host(
        r#"
        local n = 0
        local shapes = {
          function() return wx.reply.text("t") end,
          function() return wx.reply.image("img") end,
          function() return wx.reply.voice("v") end,
          function() return wx.reply.video{media_id = "vid", title = "T", description = "D"} end,
          function() return wx.reply.music{title = "m", music_url = "u", hq_music_url = "h", thumb_media_id = "th"} end,
          function() return wx.reply.news{{title = "a", description = "b", pic_url = "c", url = "d"}} end,
          function() return wx.reply.transfer("kf@x") end,
          function() return {type = "image", media_id = "literal"} end,
          function() return nil end,
          function() return 42 end,
        }
        wx.on("text", function(msg) return shapes[tonumber(msg.content)]() end)
        "#,
    );
    let expected = [
        text("t"),
        Some(Reply::Image {
            media_id: "img".into(),
        }),
        Some(Reply::Voice {
            media_id: "v".into(),
        }),
        Some(Reply::Video {
            media_id: "vid".into(),
            title: Some("T".into()),
            description: Some("D".into()),
        }),
        Some(Reply::Music {
            title: Some("m".into()),
            description: None,
            music_url: Some("u".into()),
            hq_music_url: Some("h".into()),
            thumb_media_id: "th".into(),
        }),
        Some(Reply::News {
            articles: vec![Article {
                title: "a".into(),
                description: "b".into(),
                pic_url: "c".into(),
                url: "d".into(),
            }],
        }),
        Some(Reply::TransferCustomerService {
            kf_account: Some("kf@x".into()),
        }),
        Some(Reply::Image {
            media_id: "literal".into(),
        }),
        None,
        text("42"),
    ];
    for (i, want) in expected.into_iter().enumerate() {
        let got = reply(&host, &text_xml("u", &(i + 1).to_string(), i as u64)).await;
        assert_eq!(got, want, "shape {}", i + 1);
    }
}

#[tokio::test]
async fn handler_errors_name_file_line_and_traceback() {
    let (_d, host) = host(
        "local function inner()\n  error(\"boom\")\nend\nwx.on(\"text\", function(msg)\n  inner()\nend)\n",
    );
    let err = handle(&host, &text_xml("u", "x", 1)).await.unwrap_err();
    let ScriptError::Handler { handler, message } = &err else {
        panic!("{err:?}")
    };
    assert!(handler.ends_with("main.lua:4"), "{handler}");
    assert!(message.contains("main.lua:2: boom"), "{message}");
    assert!(message.contains("stack traceback"), "{message}");
    assert!(
        message.contains("main.lua:5"),
        "traceback shows the calling line: {message}"
    );
}

#[tokio::test]
async fn malformed_replies_are_errors_at_the_script_line() {
    let (_d, host) = host(
        "wx.on(\"text\", \"^many\", function()\n  local a = {}\n  for i = 1, 9 do a[i] = {title = 't'} end\n  return wx.reply.news(a)\nend)\n\
         wx.on(\"text\", \"^bool\", function()\n  return true\nend)\n\
         wx.on(\"text\", \"^nomedia\", function()\n  return {type = 'image'}\nend)\n",
    );
    let err = handle(&host, &text_xml("u", "many", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("main.lua:4") && err.contains("9"), "{err}");
    let err = handle(&host, &text_xml("u", "bool", 2))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("main.lua:6") && err.contains("boolean"),
        "{err}"
    );
    let err = handle(&host, &text_xml("u", "nomedia", 3))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("main.lua:9") && err.contains("media_id"),
        "{err}"
    );
}

#[tokio::test]
async fn sandbox_has_no_io_os_execute_debug_or_outside_files() {
    let (_d, host) = host_with(
        &[
            (
                "main.lua",
                r#"
                local lib = require("lib.util")
                wx.on("text", function(msg)
                  local checks = {
                    io == nil, debug == nil, package == nil, os.execute == nil, os.exit == nil,
                    os.remove == nil, os.getenv == nil, type(os.time()) == "number", type(os.date()) == "string",
                    type(os.clock()) == "number", utf8.len("你好") == 2, lib.answer == 42,
                    select(1, pcall(dofile, "../secret.lua")) == false,
                    loadfile("/etc/passwd") == nil,
                    load(string.dump(function() end)) == nil,
                    load("return 1 + 1")() == 2,
                    dofile("lib/util.lua").answer == 42,
                  }
                  for i, ok in ipairs(checks) do if not ok then return "check " .. i .. " failed" end end
                  return "ok"
                end)
                "#,
            ),
            ("lib/util.lua", "return { answer = 42 }"),
        ],
        RuntimeOptions::default(),
        1,
    );
    assert_eq!(reply(&host, &text_xml("u", "x", 1)).await, text("ok"));
}

#[tokio::test]
async fn a_spinning_handler_is_stopped_and_the_worker_recovers() {
    let options = RuntimeOptions {
        run_limit: Duration::from_millis(200),
        ..Default::default()
    };
    let (_d, host) = host_with(
        &[(
            "main.lua",
            "wx.on(\"text\", \"^spin\", function()\n  while true do end\nend)\n\
             wx.on(\"text\", \"^grow\", function()\n  local t = {}\n  for i = 1, 1e9 do t[i] = string.rep('x', 1024) .. i end\nend)\n\
             wx.on(\"text\", \"^deep\", function()\n  local function f(n) return f(n + 1) + 1 end\n  return f(1)\nend)\n\
             wx.on(\"text\", function() return 'alive' end)\n",
        )],
        RuntimeOptions { memory_limit: 16 * 1024 * 1024, ..options },
        1,
    );
    let err = handle(&host, &text_xml("u", "spin", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("main.lua:2") && err.contains("stopped"),
        "{err}"
    );
    assert_eq!(reply(&host, &text_xml("u", "next", 2)).await, text("alive"));
    let err = handle(&host, &text_xml("u", "deep", 5))
        .await
        .unwrap_err()
        .to_string();
    // Whichever limit comes first: on a loaded machine the run limit may stop the recursion
    // before the stack overflows.
    assert!(
        err.contains("stack overflow") || err.contains("memory") || err.contains("stopped"),
        "{err}"
    );
    assert_eq!(reply(&host, &text_xml("u", "next", 6)).await, text("alive"));
    let err = handle(&host, &text_xml("u", "grow", 3))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("memory") || err.contains("stopped"), "{err}");
    assert_eq!(reply(&host, &text_xml("u", "next", 4)).await, text("alive"));
}

#[test]
fn load_errors_name_the_file_and_line() {
    let err = load_error(&[(
        "main.lua",
        "wx.on(\"text\", function()\n  return 1 +\nend)\n",
    )]);
    assert!(err.contains("main.lua:3"), "{err}");
    let err = load_error(&[
        ("main.lua", "local x = require('helper')\n"),
        ("helper.lua", "\n\nerror('bad helper')\n"),
    ]);
    assert!(err.contains("helper.lua:3: bad helper"), "{err}");
    let err = load_error(&[("main.lua", "require('missing.mod')\n")]);
    assert!(
        err.contains("main.lua:1") && err.contains("missing/mod.lua"),
        "{err}"
    );
    let err = load_error(&[("main.lua", "wx.on(\"text\", \"x\")\n")]);
    assert!(
        err.contains("main.lua:1") && err.contains("function"),
        "{err}"
    );
    let err = load_error(&[("other.lua", "")]);
    assert!(err.contains("main.lua"), "{err}");
}

#[tokio::test]
async fn wx_on_is_refused_after_loading() {
    let (_d, host) = host("wx.on('text', function() wx.on('image', function() end) end)\n");
    let err = handle(&host, &text_xml("u", "x", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("main.lua:1") && err.contains("while the scripts load"),
        "{err}"
    );
}

#[tokio::test]
async fn reload_swaps_sets_and_keeps_the_last_good_one() {
    let (dir, host) = host("wx.on('text', function() return 'v1' end)\n");
    assert_eq!(reply(&host, &text_xml("u", "x", 1)).await, text("v1"));
    write(
        &dir,
        &[
            (
                "main.lua",
                "wx.on('text', function() return require('part').text end)\n",
            ),
            ("part.lua", "return {text = 'v2'}"),
        ],
    );
    assert_eq!(host.reload().unwrap(), 2);
    assert_eq!(reply(&host, &text_xml("u", "x", 2)).await, text("v2"));

    write(&dir, &[("part.lua", "return {text = \n")]);
    let err = host.reload().unwrap_err().to_string();
    assert!(err.contains("part.lua:2"), "{err}");
    assert_eq!(reply(&host, &text_xml("u", "x", 3)).await, text("v2"));
    let status = host.status();
    assert_eq!(
        (status.generation, status.reloads_ok, status.reloads_failed),
        (2, 1, 1)
    );
    assert!(status.last_error.unwrap().contains("part.lua:2"));
}

#[tokio::test]
async fn a_message_in_flight_finishes_on_the_set_it_started_with() {
    let (dir, host) = host("wx.on('text', function() wx.sleep(0.4) return 'old' end)\n");
    let in_flight = {
        let host = host.clone();
        tokio::spawn(async move { reply(&host, &text_xml("u", "x", 1)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    write(
        &dir,
        &[("main.lua", "wx.on('text', function() return 'new' end)\n")],
    );
    host.reload().unwrap();
    assert_eq!(reply(&host, &text_xml("u", "x", 2)).await, text("new"));
    assert_eq!(in_flight.await.unwrap(), text("old"));
}

#[tokio::test]
async fn a_waiting_handler_does_not_block_other_messages_on_its_worker() {
    let (_d, host) = host_with(
        &[("main.lua", "wx.on('text', 'slow', function() wx.sleep(1) return 'slow' end)\nwx.on('text', function() return 'fast' end)\n")],
        RuntimeOptions::default(),
        1,
    );
    let slow = {
        let host = host.clone();
        tokio::spawn(async move { reply(&host, &text_xml("u", "slow", 1)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(reply(&host, &text_xml("u", "quick", 2)).await, text("fast"));
    assert!(
        !slow.is_finished(),
        "the fast reply came while the slow handler still waited"
    );
    assert_eq!(slow.await.unwrap(), text("slow"));
}

fn fixture(name: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/messages");
    std::fs::read_to_string(dir.join(name)).unwrap()
}

#[tokio::test]
async fn nested_elements_reach_lua_as_tables_and_arrays() {
    let (_d, host) = host(
        r#"
        wx.on("event.scancode_waitmsg", function(msg)
            return msg.scan_code_info.scan_type .. ":" .. msg.scan_code_info.scan_result
        end)
        wx.on("event.pic_weixin", function(msg)
            local info = msg.send_pics_info
            return info.count .. ":" .. #info.pic_list .. ":" .. info.pic_list[1].pic_md5_sum
        end)
        wx.on("event.masssendjobfinish", function(msg)
            local r = msg.copyright_check_result
            return msg.msg_id .. ":" .. msg.id .. ":" .. msg.status .. ":" .. type(r.result_list) .. ":" .. #r.result_list
        end)
        wx.on("voice", function(msg) return (msg.recognition or "") .. "|" .. (msg.media_id16k or "nil") end)
        wx.on("*", function(msg) return "other:" .. msg.type .. ":" .. (msg.event or "") end)
        "#,
    );
    assert_eq!(
        reply(&host, &fixture("event_scancode_waitmsg.xml")).await,
        text("qrcode:2")
    );
    assert_eq!(
        reply(&host, &fixture("event_pic_weixin.xml")).await,
        text("1:1:5a75aaca956d97be686719218f275c6b")
    );
    let Some(Reply::Text { content }) = reply(&host, &fixture("event_masssendjobfinish.xml")).await
    else {
        panic!()
    };
    let parts: Vec<&str> = content.split(':').collect();
    assert_eq!(parts[0], parts[1], "msg.id is the MsgID: {content}");
    assert_eq!(parts[3], "table", "{content}");
    assert!(parts[4].parse::<usize>().unwrap() >= 1, "{content}");
    assert_eq!(
        reply(&host, &fixture("voice.xml")).await,
        text("腾讯微信团队|media_id_16k")
    );
    assert_eq!(
        reply(&host, &fixture("unknown_type.xml"))
            .await
            .map(|r| r.kind()),
        Some("text")
    );
    let Some(Reply::Text { content }) = reply(&host, &fixture("event_unknown.xml")).await else {
        panic!()
    };
    assert!(content.starts_with("other:event:"), "{content}");
}

#[tokio::test]
async fn documented_lists_reach_lua_as_arrays_whatever_their_count() {
    // The handler follows a dotted path (sent in EventKey) and reports the value's shape: a
    // sequence with no other keys, and how long it is.
    let (_d, host) = host(
        r#"
        local function shape(v)
            if type(v) ~= "table" then return type(v) .. ":" .. tostring(v) end
            local n = 0
            for _ in pairs(v) do n = n + 1 end
            if n ~= #v then return "table with keys" end
            return "array:" .. #v
        end
        wx.on("event", function(msg)
            local v = msg
            for name in msg.key:gmatch("[^.]+") do v = v[name] end
            return shape(v)
        end)
        wx.on("text", function(msg)
            return msg.from .. "|" .. msg.to .. "|" .. msg.from_user_name .. "|" .. msg.content .. "|" .. msg.id
        end)
        "#,
    );
    // (event, path in Lua, the XML around the items, one item)
    let cases = [
        (
            "pic_photo_or_album",
            "send_pics_info.pic_list",
            "<SendPicsInfo><Count>N</Count><PicList>ITEMS</PicList></SendPicsInfo>",
            "<item><PicMd5Sum><![CDATA[m]]></PicMd5Sum></item>",
        ),
        (
            "MASSSENDJOBFINISH",
            "copyright_check_result.result_list",
            "<CopyrightCheckResult><Count>N</Count><ResultList>ITEMS</ResultList></CopyrightCheckResult>",
            "<item><ArticleIdx>1</ArticleIdx></item>",
        ),
        (
            "MASSSENDJOBFINISH",
            "article_url_result.result_list",
            "<ArticleUrlResult><Count>N</Count><ResultList>ITEMS</ResultList></ArticleUrlResult>",
            "<item><ArticleIdx>1</ArticleIdx><ArticleUrl>u</ArticleUrl></item>",
        ),
        (
            "PUBLISHJOBFINISH",
            "publish_event_info.fail_idx",
            "<PublishEventInfo><publish_status>2</publish_status>ITEMS</PublishEventInfo>",
            "<fail_idx>1</fail_idx>",
        ),
        (
            "PUBLISHJOBFINISH",
            "publish_event_info.article_detail.item",
            "<PublishEventInfo><article_detail><count>N</count>ITEMS</article_detail></PublishEventInfo>",
            "<item><idx>1</idx><article_url>u</article_url></item>",
        ),
        (
            "ShakearoundUserShake",
            "around_beacons.around_beacon",
            "<AroundBeacons>ITEMS</AroundBeacons>",
            "<AroundBeacon><Uuid>u</Uuid><Distance>1.5</Distance></AroundBeacon>",
        ),
        (
            "subscribe_msg_change_event",
            "subscribe_msg_change_event.list",
            "<SubscribeMsgChangeEvent>ITEMS</SubscribeMsgChangeEvent>",
            "<List><TemplateId>t</TemplateId></List>",
        ),
    ];
    for (event, path, wrapper, item) in cases {
        for n in 0..=2 {
            let body = wrapper
                .replace("ITEMS", &item.repeat(n))
                .replace('N', &n.to_string());
            let xml = format!(
                "<xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName>\
                 <CreateTime>1</CreateTime><MsgType>event</MsgType><Event>{event}</Event>\
                 <EventKey>{path}</EventKey>{body}</xml>"
            );
            assert_eq!(
                reply(&host, &xml).await,
                text(&format!("array:{n}")),
                "{path} with {n}"
            );
        }
    }
    // The documentation's samples, as WeChat sends them.
    for (file, path, n) in [
        (
            "event_shakearound_user_shake.xml",
            "around_beacons.around_beacon",
            2,
        ),
        (
            "event_publishjobfinish_failed.xml",
            "publish_event_info.fail_idx",
            2,
        ),
        (
            "event_publishjobfinish.xml",
            "publish_event_info.fail_idx",
            0,
        ),
    ] {
        let xml = fixture(file).replace(
            "<CreateTime>",
            &format!("<EventKey>{path}</EventKey><CreateTime>"),
        );
        assert_eq!(
            reply(&host, &xml).await,
            text(&format!("array:{n}")),
            "{file}"
        );
    }
    // Stray text is ignored, whitespace outside CDATA trimmed, CDATA kept byte for byte.
    assert_eq!(
        reply(&host, &fixture("text_stray_text.xml")).await,
        text("oMgHVjngRipVsoxg6TuX3vz6glDg|gh_e136c6e50636|oMgHVjngRipVsoxg6TuX3vz6glDg|  two spaces either side  |6046355574112289314")
    );
}

#[tokio::test]
async fn wx_store_refuses_nan_and_infinity_at_the_script_line() {
    let (_d, host) = host(
        r#"
        wx.on("text", function(msg)
            local ok1, err1 = pcall(wx.store.set, "n", 0/0)
            local ok2, err2 = pcall(wx.store.set, "t", {score = {1, 1/0}})
            assert(wx.store.set("empty", {}))
            local empty = wx.store.get("empty")
            return tostring(ok1) .. "|" .. tostring(err1) .. "|" .. tostring(ok2) .. "|" .. tostring(err2)
                .. "|" .. tostring(wx.store.get("n")) .. "|" .. tostring(wx.store.get("t"))
                .. "|" .. type(empty) .. ":" .. tostring(next(empty))
        end)
        "#,
    );
    let Some(Reply::Text { content }) = reply(&host, &text_xml("u", "x", 1)).await else {
        panic!()
    };
    let parts: Vec<&str> = content.split('|').collect();
    assert_eq!(parts[0], "false", "{content}");
    assert!(
        parts[1].contains("main.lua:3: wx.store.set") && parts[1].contains("NaN"),
        "{content}"
    );
    assert_eq!(parts[2], "false", "{content}");
    assert!(
        parts[3].contains("inf") && parts[3].contains(".score[2]"),
        "{content}"
    );
    assert_eq!(&parts[4..], ["nil", "nil", "table:nil"], "nothing stored");
}

#[tokio::test]
async fn wx_store_keeps_values_across_workers_and_reloads() {
    let (dir, host) = host_with(
        &[(
            "main.lua",
            r#"
            wx.on("text", "^count$", function(msg)
                local n = wx.store.incr("count:" .. msg.from)
                return tostring(n)
            end)
            wx.on("text", "^put$", function()
                assert(wx.store.set("profile", {name = "张三", tags = {"a", "b"}, vip = true, score = 1.5}))
                assert(wx.store.set("short", "x", 0.2))
                return "ok"
            end)
            wx.on("text", "^get$", function()
                local p = wx.store.get("profile")
                return p.name .. "|" .. p.tags[2] .. "|" .. tostring(p.vip) .. "|" .. p.score .. "|" .. tostring(wx.store.get("short"))
            end)
            wx.on("text", "^del$", function()
                return tostring(wx.store.del("profile")) .. "|" .. tostring(wx.store.get("profile"))
            end)
            wx.on("text", "^bad$", function() wx.store.set("f", function() end) end)
            "#,
        )],
        RuntimeOptions::default(),
        2,
    );
    for expected in 1..=4 {
        assert_eq!(
            reply(&host, &text_xml("u1", "count", expected)).await,
            text(&expected.to_string())
        );
    }
    assert_eq!(reply(&host, &text_xml("u2", "count", 9)).await, text("1"));
    assert_eq!(reply(&host, &text_xml("u", "put", 10)).await, text("ok"));
    assert_eq!(
        reply(&host, &text_xml("u", "get", 11)).await,
        text("张三|b|true|1.5|x")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let Some(Reply::Text { content }) = reply(&host, &text_xml("u", "get", 12)).await else {
        panic!()
    };
    assert!(content.ends_with("|nil"), "the ttl expired: {content}");
    std::fs::write(
        dir.path().join("main.lua"),
        std::fs::read_to_string(dir.path().join("main.lua")).unwrap() + "\n-- edited\n",
    )
    .unwrap();
    host.reload().unwrap();
    assert_eq!(
        reply(&host, &text_xml("u1", "count", 13)).await,
        text("5"),
        "data outlives a reload"
    );
    assert_eq!(
        reply(&host, &text_xml("u", "del", 14)).await,
        text("true|nil")
    );
    let err = handle(&host, &text_xml("u", "bad", 15))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("main.lua:18: wx.store.set") && err.contains("function"),
        "{err}"
    );
}

#[test]
fn a_single_file_bot_ignores_broken_scripts_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        &[
            ("bot.lua", "wx.on('text', function() return 'ok' end)\n"),
            ("other.lua", "this is not lua (\n"),
        ],
    );
    let host = LuaPool::start(
        &dir.path().join("bot.lua"),
        RuntimeOptions::default(),
        1,
        Services::in_memory().unwrap(),
    );
    assert!(host.is_ok(), "{:?}", host.err());
    // A directory's scripts are all the bot's, so there the broken one is reported.
    let err = load_error(&[
        ("main.lua", "wx.on('text', function() return 'ok' end)\n"),
        ("other.lua", "this is not lua (\n"),
    ]);
    assert!(err.contains("other.lua:1"), "{err}");
}

/// Handlers that catch the run-limit error (with `pcall`, `xpcall`, an error handler that
/// loops, a coroutine or a bare `coroutine.yield()` loop) are still stopped, and their state
/// is discarded rather than lent again.
#[tokio::test]
async fn a_handler_cannot_catch_or_outlast_the_run_limit() {
    let options = RuntimeOptions {
        run_limit: Duration::from_millis(200),
        ..Default::default()
    };
    let (_d, host) = host_with(
        &[(
            "main.lua",
            r#"
wx.on("text", "^pcall", function()
  while true do pcall(function() while true do end end) end
end)
wx.on("text", "^xpcall", function()
  while true do
    xpcall(function() while true do end end, function() while true do end end)
  end
end)
wx.on("text", "^nested", function()
  while true do
    pcall(pcall, pcall, function() while true do pcall(error) end end)
  end
end)
wx.on("text", "^wrap", function()
  while true do
    pcall(coroutine.wrap(function() while true do end end))
  end
end)
wx.on("text", "^yield", function()
  while true do coroutine.yield() end
end)
wx.on("text", "^sort", function()
  local t = {}
  for i = 1, 100 do t[i] = i end
  while true do
    pcall(table.sort, t, function(a, b) while true do end end)
  end
end)
wx.on("text", function() return "alive" end)
"#,
        )],
        options,
        1,
    );
    for (i, kind) in ["pcall", "xpcall", "nested", "wrap", "yield", "sort"]
        .into_iter()
        .enumerate()
    {
        let xml = text_xml("u", kind, 10 + i as u64);
        let run = handle(&host, &xml);
        let err = tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .unwrap_or_else(|_| panic!("the `{kind}` handler was never stopped"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("stopped"), "{kind}: {err}");
        // The stopped state was dropped; the next message runs on a fresh one.
        assert_eq!(
            host.states(),
            0,
            "{kind}: a stopped state went back to the pool"
        );
        assert_eq!(
            reply(&host, &text_xml("u", "next", 100 + i as u64)).await,
            text("alive")
        );
        assert_eq!(host.states(), 1);
    }
}

/// The scripts' top level cannot catch its limit either: loading stops instead of hanging.
#[test]
fn a_top_level_that_catches_the_run_limit_still_fails_to_load() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        &[(
            "main.lua",
            "while true do pcall(function() while true do end end) end\n",
        )],
    );
    let options = RuntimeOptions {
        run_limit: Duration::from_millis(200),
        ..Default::default()
    };
    let (done, result) = std::sync::mpsc::channel();
    let path = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let loaded = LuaPool::start(&path, options, 1, Services::in_memory().unwrap());
        let _ = done.send(loaded.err().map(|e| e.to_string()));
    });
    let err = result
        .recv_timeout(Duration::from_secs(20))
        .expect("loading never stopped")
        .expect("the script loaded");
    assert!(
        err.contains("top level") && err.contains("stopped"),
        "{err}"
    );
}

/// A handler that waits for ever is cancelled at its total time budget (paused time), and
/// its state is not reused.
#[tokio::test(start_paused = true)]
async fn a_handler_over_its_total_time_budget_is_cancelled() {
    let options = RuntimeOptions {
        time_budget: Duration::from_secs(30),
        ..Default::default()
    };
    let (_d, host) = host_with(
        &[(
            "main.lua",
            r#"
wx.on("text", "^wait", function()
  while true do pcall(wx.sleep, 20) end
end)
wx.on("text", function() return "alive" end)
"#,
        )],
        options,
        1,
    );
    let err = handle(&host, &text_xml("u", "wait", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("total time budget"), "{err}");
    assert_eq!(host.states(), 0);
    assert_eq!(reply(&host, &text_xml("u", "next", 2)).await, text("alive"));
}

/// A spinning handler yields its worker every time slice: on a single-threaded runtime a
/// timer task still runs while the handler spins, long before the handler is stopped.
#[tokio::test(flavor = "current_thread")]
async fn a_spinning_handler_does_not_hold_the_worker() {
    let options = RuntimeOptions {
        run_limit: Duration::from_secs(3),
        ..Default::default()
    };
    let (_d, host) = host_with(
        &[(
            "main.lua",
            "wx.on(\"text\", function() while true do end end)\n",
        )],
        options,
        1,
    );
    let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
    let spin = {
        let order_tx = order_tx.clone();
        async move {
            let result = handle(&host, &text_xml("u", "spin", 1)).await;
            let _ = order_tx.send("handler stopped");
            result
        }
    };
    let timer = async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = order_tx.send("timer ran");
    };
    let (result, ()) = tokio::join!(spin, timer);
    assert!(result.unwrap_err().to_string().contains("stopped"));
    assert_eq!(order.recv().await, Some("timer ran"));
    assert_eq!(order.recv().await, Some("handler stopped"));
}

/// `__gc` finalizers run with hooks off, out of every limit: scripts cannot register one.
#[tokio::test]
async fn scripts_cannot_register_gc_finalizers() {
    let (_d, host) = host(
        "wx.on(\"text\", function()\n  setmetatable({}, {__gc = function() while true do end end})\nend)\n",
    );
    let err = handle(&host, &text_xml("u", "x", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("main.lua:2") && err.contains("__gc"), "{err}");
}

/// Calls that wait (store, API, `wx.http`, `wx.sleep`) at a script's top level fail every
/// time with a located error, in every run (they used to fail only when they had to wait, so
/// a script loaded 1 run in 4); so do they at the top level of a module a handler requires
/// (a C call no coroutine yields across); inside a handler, and in functions a module
/// returns, they work.
#[tokio::test]
async fn waiting_calls_at_the_top_level_are_refused_every_time() {
    for (call, name) in [
        ("local v = wx.store.get('x')", "wx.store.get"),
        ("wx.store.set('x', 1)", "wx.store.set"),
        ("wx.sleep(0)", "wx.sleep"),
        ("wx.menu.create{button = {}}", "wx.menu.create"),
    ] {
        for run in 0..20 {
            let err = load_error(&[("main.lua", &format!("\n{call}\n"))]);
            assert!(
                err.contains("main.lua:2")
                    && err.contains(name)
                    && err.contains("inside a handler"),
                "run {run}: {err}"
            );
        }
    }
    let (_d, host) = host_with(
        &[
            (
                "main.lua",
                "wx.on('text', function()\n  wx.store.set('n', 41)\n  return require('later').answer()\nend)\n",
            ),
            (
                "later.lua",
                "return { answer = function() return 'n=' .. (wx.store.get('n') + 1) end }\n",
            ),
        ],
        RuntimeOptions::default(),
        1,
    );
    assert_eq!(reply(&host, &text_xml("u", "x", 1)).await, text("n=42"));
    let (_d2, eager) = host_with(
        &[
            (
                "main.lua",
                "wx.on('text', function() return require('eager').n end)\n",
            ),
            (
                "eager.lua",
                "local n = wx.store.get('n')\nreturn { n = n }\n",
            ),
        ],
        RuntimeOptions::default(),
        1,
    );
    let err = handle(&eager, &text_xml("u", "x", 2))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("required module"), "{err}");
}
