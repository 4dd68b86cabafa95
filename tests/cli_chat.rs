//! `wechat-lua chat` driven through a pipe, as `printf 'hi\n' | wechat-lua chat` would be:
//! each input line echoed (`> hi`) before its reply block, API calls marked by kind (from
//! handlers and from late replies) with WeChat's refusals inline, `wx.http` requests, every
//! event a menu can send, the fake account's followers, templates and menu (also pushed with
//! `wechat-lua menu push` from outside), `--data`, safe mode, raw XML, scripts that do not
//! load, script errors and reloads.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Settings a developer's environment might carry that would change what the chat does.
const WECHAT_VARS: &[&str] = &[
    "WECHAT_TOKEN",
    "WECHAT_APPID",
    "WECHAT_APPSECRET",
    "WECHAT_AES_KEY",
    "WECHAT_MODE",
    "WECHAT_API_BASE",
    "WECHAT_SCRIPTS",
    "WECHAT_STORE",
    "WECHAT_DATA",
    "WECHAT_REPLY_TIMEOUT",
    "WECHAT_TOKEN_ENDPOINT",
];

fn echo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/echo.lua")
}

fn command(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wechat-lua"));
    cmd.arg("chat").args(args).current_dir(dir);
    for var in WECHAT_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs a chat with `input` piped in; returns its output once it exits.
fn chat(dir: &Path, args: &[&str], envs: &[(&str, &str)], input: &str) -> Output {
    let mut child = command(dir, args, envs)
        .spawn()
        .expect("start wechat-lua chat");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Checks a transcript line by line; an expected line ending in `…` only has to start with
/// what comes before it (ids and timings vary).
#[track_caller]
fn assert_transcript(lines: &[String], expected: &[&str]) {
    let matches = lines.len() == expected.len()
        && lines
            .iter()
            .zip(expected)
            .all(|(line, want)| match want.strip_suffix('…') {
                Some(start) => line.starts_with(start),
                None => line == want,
            });
    assert!(matches, "got {lines:#?}\nwanted {expected:#?}");
}

fn write_script(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn the_echo_bot_answers_each_line_through_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let input = "hi\n/click MENU\n/scan 42\n/subscribe\n/location 23.1 113.3 Home\n\
                 /link T http://x\n/image\n/voice hello\n/as other\nagain 你好\n/nope\n";
    let output = chat(
        dir.path(),
        &["--scripts", echo().to_str().unwrap()],
        &[],
        input,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_transcript(
        &stdout_lines(&output),
        &[
            "> hi",
            "hi",
            "> /click MENU",
            "click:MENU",
            "> /scan 42",
            "scan:42",
            "> /subscribe",
            "welcome",
            "> /location 23.1 113.3 Home",
            "23.1,113.3",
            "> /link T http://x",
            "T",
            "   http://x",
            "> /image",
            "[image media_id=chat_media_…",
            "> /voice hello",
            "[voice media_id=chat_media_…",
            "> /as other",
            "(now chatting as other)",
            "> again 你好",
            "again 你好",
            "> /nope",
            "unknown command /nope…",
        ],
    );
    let err = stderr(&output);
    assert!(err.contains("wechat-lua chat"), "banner on stderr: {err}");
    assert!(
        err.contains("store: in memory, gone when the chat ends (--data DIR keeps it)"),
        "the banner says where the store is: {err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing written: no data dir"
    );
}

#[test]
fn every_reply_kind_and_message_field_reads_naturally() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "kinds.lua",
        r#"
wx.on("text", "^music$", function()
  return wx.reply.music{ title = "Song", music_url = "http://m", thumb_media_id = "T" }
end)
wx.on("text", "^transfer$", function() return wx.reply.transfer() end)
wx.on("text", "^news$", function()
  return wx.reply.news{
    { title = "A", description = "first", url = "http://a" },
    { title = "B", url = "http://b" },
  }
end)
wx.on("text", "^lines$", function() return "one\ntwo" end)
wx.on("event.subscribe", function(msg)
  return "sub " .. (msg.key or "-") .. " " .. (msg.ticket and "ticket" or "-")
end)
wx.on("event.view", function(msg) return "view " .. msg.key end)
wx.on("voice", function(msg) return "heard " .. msg.recognition end)
wx.on("image", function(msg) return msg.pic_url end)
wx.on("location", function(msg) return msg.label end)
"#,
    );
    let input = "music\ntransfer\nnews\nlines\n/subscribe 42\n/subscribe\n/view http://v\n\
                 /voice 你好 world\n/image http://pic\n/location 1 2 Canton Tower\n//slash\n";
    let output = chat(dir.path(), &["--scripts", &script], &[], input);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_transcript(
        &stdout_lines(&output),
        &[
            "> music",
            "♪ Song",
            "  url: http://m",
            "  thumb_media_id=T",
            "> transfer",
            "[transferred to customer service]",
            "> news",
            "A",
            "   first",
            "   http://a",
            "(WeChat shows only the first article of a news reply: 1 more not shown)",
            "> lines",
            "one",
            "two",
            "> /subscribe 42",
            "sub qrscene_42 ticket",
            "> /subscribe",
            "sub - -",
            "> /view http://v",
            "view http://v",
            "> /voice 你好 world",
            "heard 你好 world",
            "> /image http://pic",
            "http://pic",
            "> /location 1 2 Canton Tower",
            "Canton Tower",
            "> //slash",
            "(no reply)",
        ],
    );
}

#[test]
fn unsubscribe_and_unhandled_messages_show_no_reply() {
    let dir = tempfile::tempdir().unwrap();
    let output = chat(
        dir.path(),
        &["--scripts", echo().to_str().unwrap()],
        &[],
        "/unsubscribe\n/view http://v\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_transcript(
        &stdout_lines(&output),
        &[
            "> /unsubscribe",
            "(no reply)",
            "> /view http://v",
            "(no reply)",
        ],
    );
}

#[test]
fn a_late_reply_arrives_through_customer_service() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "slow.lua",
        "wx.on('text', function(msg)\n  wx.sleep(1)\n  return 'later: ' .. msg.content\nend)\n",
    );
    let output = chat(
        dir.path(),
        &["--scripts", &script],
        &[("WECHAT_REPLY_TIMEOUT", "0.5")],
        "hi\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = stdout_lines(&output);
    assert_eq!(lines[0], "> hi", "{lines:?}");
    // At the deadline the answer (`(no reply)`) and the typing indicator the host turns on
    // for the late reply happen together: either may print first.
    let no_reply = lines
        .iter()
        .position(|l| l == "(no reply)")
        .unwrap_or_else(|| panic!("no `(no reply)`: {lines:?}"));
    assert!(
        lines[1..no_reply].iter().all(|l| l == "[客服] (typing…)"),
        "{lines:?}"
    );
    let late = lines
        .iter()
        .position(|l| l == "[客服] text: later: hi")
        .unwrap_or_else(|| panic!("late reply printed before exit: {lines:?}"));
    assert!(late > no_reply, "{lines:?}");
    assert!(
        lines.iter().all(|l| !l.contains("token")),
        "token fetches are not shown: {lines:?}"
    );
    assert!(
        stderr(&output).contains("missed the reply deadline"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn api_calls_from_a_handler_are_marked_by_kind_above_its_reply() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "api.lua",
        r#"
wx.on("text", "^kf$", function(msg)
  local ok = wx.kf.send(msg.from, "from customer service")
  local other = wx.kf.send("o_someone", { type = "image", media_id = "MEDIA" })
  return tostring(ok)
end)
wx.on("text", "^tpl$", function(msg)
  -- The fake knows no template TPL1 (none was added), so WeChat's refusal comes back.
  local id, err = wx.template.send{ to = msg.from, template_id = "TPL1", data = { name = { value = "Ann" } } }
  return id and "sent" or ("refused " .. err.errcode)
end)
wx.on("text", "^mass$", function()
  local sent = wx.mass.send{ to = { all = true }, message = "hello all" }
  return "mass " .. tostring(sent ~= nil)
end)
wx.on("text", "^menu$", function()
  wx.menu.create{ button = { { type = "click", name = "Help", key = "HELP" } } }
end)
"#,
    );
    let output = chat(
        dir.path(),
        &["--scripts", &script],
        &[],
        "kf
tpl
mass
menu
",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_transcript(
        &stdout_lines(&output),
        &[
            "> kf",
            "[客服] text: from customer service",
            "[客服 → o_someone] image media_id=MEDIA",
            "true",
            "> tpl",
            "[模板] template_id=TPL1 data: name=Ann → 40037 invalid template_id",
            "refused 40037",
            "> mass",
            "[群发] sendall to all: text: hello all",
            "mass true",
            "> menu",
            "[api] POST /cgi-bin/menu/create \
             {\"button\":[{\"key\":\"HELP\",\"name\":\"Help\",\"type\":\"click\"}]}",
            "(no reply)",
        ],
    );
}

#[test]
fn raw_prints_the_reply_xml() {
    let dir = tempfile::tempdir().unwrap();
    let output = chat(
        dir.path(),
        &[
            "--raw",
            "--as",
            "o_raw",
            "--scripts",
            echo().to_str().unwrap(),
        ],
        &[],
        "hi\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("> hi\n<xml>"), "{text}");
    assert!(
        text.contains("<ToUserName><![CDATA[o_raw]]></ToUserName>"),
        "{text}"
    );
    assert!(text.contains("<Content><![CDATA[hi]]></Content>"), "{text}");
}

#[test]
fn safe_mode_encrypts_both_ways_and_still_chats() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        (
            "WECHAT_AES_KEY",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        ),
        ("WECHAT_APPID", "wxb11529c136998cb6"),
        ("WECHAT_MODE", "safe"),
    ];
    let echo = echo();
    let output = chat(
        dir.path(),
        &["--scripts", echo.to_str().unwrap()],
        &envs,
        "hi 安全\n/click K\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_transcript(
        &stdout_lines(&output),
        &["> hi 安全", "hi 安全", "> /click K", "click:K"],
    );
    assert!(stderr(&output).contains("encrypt"), "{}", stderr(&output));
    // --raw shows the decrypted reply, not the envelope.
    let output = chat(
        dir.path(),
        &["--raw", "--scripts", echo.to_str().unwrap()],
        &envs,
        "x\n",
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("<Content><![CDATA[x]]></Content>"), "{text}");
    assert!(!text.contains("<Encrypt>"), "{text}");
}

#[test]
fn scripts_that_do_not_load_exit_1_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "broken.lua",
        "wx.on('text', function()\n  return (\nend)\n",
    );
    let output = chat(dir.path(), &["--scripts", &script], &[], "hi\n");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("broken.lua:3"), "{err}");
    assert!(output.stdout.is_empty(), "nothing chatted");
}

#[test]
fn script_errors_and_reloads_show_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "bot.lua",
        "wx.on('text', function(msg)\n  if msg.content == 'boom' then error('kaboom') end\n  return 'one'\nend)\n",
    );
    let mut child = command(dir.path(), &["--scripts", &script], &[])
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (out_tx, out_rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send(line);
        }
    });
    let (err_tx, err_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let wait_err = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(line) = err_rx.recv_timeout(Duration::from_millis(100)) {
                if line.contains(needle) {
                    return line;
                }
                seen.push(line);
            }
        }
        panic!("no stderr line with {needle:?}: {seen:#?}");
    };
    let next_out = || out_rx.recv_timeout(Duration::from_secs(15)).unwrap();

    writeln!(stdin, "x").unwrap();
    assert_eq!(next_out(), "> x", "echoed first");
    assert_eq!(next_out(), "one");
    writeln!(stdin, "boom").unwrap();
    assert_eq!(next_out(), "> boom");
    assert_eq!(next_out(), "(no reply)");
    let line = wait_err("kaboom");
    assert!(
        line.starts_with("[error]") && line.contains("bot.lua:2"),
        "{line}"
    );

    std::fs::write(&script, "wx.on('text', function() return 'two' end)\n").unwrap();
    let line = wait_err("scripts reloaded");
    assert!(line.starts_with("[info]"), "{line}");
    writeln!(stdin, "x").unwrap();
    assert_eq!(next_out(), "> x");
    assert_eq!(next_out(), "two");

    std::fs::write(&script, "wx.on('text', function()\n  return (\nend)\n").unwrap();
    let line = wait_err("reload rejected");
    assert!(line.contains("bot.lua:3"), "{line}");
    writeln!(stdin, "x").unwrap();
    assert_eq!(next_out(), "> x");
    assert_eq!(next_out(), "two", "the last good scripts keep serving");

    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn refusals_show_inline_and_templates_are_seeded_by_flag_or_command() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "tpl.lua",
        r#"
wx.on("text", "^(%S+)$", function(msg, id)
  local sent, err = wx.template.send{ to = msg.from, template_id = id, data = { name = { value = "Ann" } } }
  return sent and "sent" or ("refused " .. err.errcode)
end)
"#,
    );
    let output = chat(
        dir.path(),
        &["--scripts", &script, "--template", "TPL2"],
        &[],
        "TPL1\n/templates\n/templates add TPL1 Order shipped\n/templates add TPL1\nTPL1\nTPL2\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_transcript(
        &stdout_lines(&output),
        &[
            "> TPL1",
            "[模板] template_id=TPL1 data: name=Ann → 40037 invalid template_id",
            "refused 40037",
            "> /templates",
            "(template TPL2: template TPL2)",
            "> /templates add TPL1 Order shipped",
            "(template TPL1 added: wx.template.send can use it)",
            "> /templates add TPL1",
            "(template TPL1 is there already)",
            "> TPL1",
            "[模板] template_id=TPL1 data: name=Ann",
            "sent",
            "> TPL2",
            "[模板] template_id=TPL2 data: name=Ann",
            "sent",
        ],
    );
}

#[test]
fn a_kf_news_message_shows_its_first_article_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "kfnews.lua",
        r#"
wx.on("text", function(msg)
  wx.kf.send(msg.from, wx.reply.news{ { title = "A", url = "http://a" }, { title = "B" } })
end)
"#,
    );
    let output = chat(dir.path(), &["--scripts", &script], &[], "x\n");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_transcript(
        &stdout_lines(&output),
        &[
            "> x",
            "[客服] news: A (http://a) \
             (WeChat shows only the first article of a news message: 1 more not shown)",
            "(no reply)",
        ],
    );
}

#[test]
fn user_info_follows_subscribe_and_unsubscribe() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "who.lua",
        r#"
local function status(openid)
  return "subscribe=" .. wx.user.info(openid).subscribe
end
wx.on("text", function(msg) return status(msg.from) end)
wx.on("event.subscribe", function(msg) return "hello, " .. status(msg.from) end)
"#,
    );
    let output = chat(
        dir.path(),
        &["--scripts", &script],
        &[],
        "who\n/unsubscribe\nwho\n/subscribe\nwho\n/as newbie\nwho\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<String> = stdout_lines(&output)
        .into_iter()
        .filter(|l| !l.starts_with("[api] GET /cgi-bin/user/info"))
        .collect();
    assert_transcript(
        &lines,
        &[
            "> who",
            "subscribe=1",
            "> /unsubscribe",
            "(no reply)",
            "> who",
            "subscribe=0",
            "> /subscribe",
            "hello, subscribe=1",
            "> who",
            "subscribe=1",
            "> /as newbie",
            "(now chatting as newbie)",
            "> who",
            "subscribe=1",
        ],
    );
}

/// On WeChat the MediaId of a picture, voice or video a user sent can be fetched for three
/// days; in chat `wx.media.get(msg.media_id)` must work too (docs/lua-api.md's image example).
#[test]
fn the_media_a_user_sends_can_be_fetched_with_its_media_id() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "media.lua",
        r#"
local function fetch(msg)
  local file, err = wx.media.get(msg.media_id)
  if not file then return "media.get failed: " .. err.errcode end
  if file.video_url then return msg.type .. ": video_url" end
  return msg.type .. ": " .. file.content_type .. ", " .. #file.bytes .. " bytes"
end
wx.on("image", fetch)
wx.on("voice", fetch)
wx.on("video", fetch)
wx.on("shortvideo", fetch)
"#,
    );
    let output = chat(
        dir.path(),
        &["--scripts", &script],
        &[],
        "/image\n/voice hello\n/video\n/shortvideo\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<String> = stdout_lines(&output)
        .into_iter()
        .filter(|l| !l.starts_with("[api] GET /cgi-bin/media/get"))
        .collect();
    assert_transcript(
        &lines,
        &[
            "> /image",
            "image: image/jpeg, …",
            "> /voice hello",
            "voice: audio/amr, …",
            "> /video",
            "video: video_url",
            "> /shortvideo",
            "shortvideo: video_url",
        ],
    );
}

#[test]
fn every_event_a_menu_sends_and_every_message_kind_reaches_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "menu_events.lua",
        r#"
for _, name in ipairs{ "scancode_push", "scancode_waitmsg" } do
  wx.on("event." .. name, function(msg)
    return name .. " " .. msg.key .. " " .. msg.scan_code_info.scan_type .. " " .. msg.scan_code_info.scan_result
  end)
end
for _, name in ipairs{ "pic_sysphoto", "pic_photo_or_album", "pic_weixin" } do
  wx.on("event." .. name, function(msg)
    local pics = msg.send_pics_info
    return name .. " " .. msg.key .. " " .. pics.count .. " " .. #pics.pic_list .. " " .. #pics.pic_list[1].pic_md5_sum
  end)
end
wx.on("event.location_select", function(msg)
  local at = msg.send_location_info
  return "location_select " .. msg.key .. " " .. at.location_x .. "," .. at.location_y .. " " .. at.label
end)
wx.on("event.view", function(msg) return "view " .. msg.key end)
for _, kind in ipairs{ "video", "shortvideo" } do
  wx.on(kind, function(msg)
    return kind .. " " .. msg.media_id:match("^chat_media_") .. " " .. msg.thumb_media_id:match("^chat_thumb_")
  end)
end
wx.on("file", function(msg) return "file " .. msg.title .. " " .. msg.file_total_len end)
"#,
    );
    let input = "/scancode_push SCAN hello\n/scancode_waitmsg WAIT\n/pic_sysphoto CAM 2\n\
                 /pic_photo_or_album ALBUM\n/pic_weixin WX 3\n/location_select LOC 23.1 113.3 Canton Tower\n\
                 /view https://example.com/\n/video\n/shortvideo\n/file notes.txt\n/pic_weixin\n";
    let output = chat(dir.path(), &["--scripts", &script], &[], input);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_transcript(
        &stdout_lines(&output),
        &[
            "> /scancode_push SCAN hello",
            "scancode_push SCAN qrcode hello",
            "> /scancode_waitmsg WAIT",
            "scancode_waitmsg WAIT qrcode https://example.com/scanned",
            "> /pic_sysphoto CAM 2",
            "pic_sysphoto CAM 2 2 32",
            "> /pic_photo_or_album ALBUM",
            "pic_photo_or_album ALBUM 1 1 32",
            "> /pic_weixin WX 3",
            "pic_weixin WX 3 3 32",
            "> /location_select LOC 23.1 113.3 Canton Tower",
            "location_select LOC 23.1,113.3 Canton Tower",
            "> /view https://example.com/",
            "view https://example.com/",
            "> /video",
            "video chat_media_ chat_thumb_",
            "> /shortvideo",
            "shortvideo chat_media_ chat_thumb_",
            "> /file notes.txt",
            "file notes.txt 122880",
            "> /pic_weixin",
            "usage: /pic_weixin KEY [N]…",
        ],
    );
}

#[test]
fn data_keeps_the_store_between_chats_and_memory_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "visits.lua",
        "wx.on('text', function(msg)\n  return 'visit ' .. wx.store.incr('visits:' .. msg.from)\nend)\n",
    );
    let kept = dir.path().join("kept");
    let args = [
        "--scripts",
        script.as_str(),
        "--data",
        kept.to_str().unwrap(),
    ];
    let first = chat(dir.path(), &args, &[], "x\nx\n");
    assert!(first.status.success(), "{}", stderr(&first));
    assert_transcript(&stdout_lines(&first), &["> x", "visit 1", "> x", "visit 2"]);
    assert!(
        stderr(&first).contains("(kept between chats)"),
        "{}",
        stderr(&first)
    );
    // The second chat's fake never issued the first one's access_token: no call is refused.
    let tpl = write_script(
        dir.path(),
        "visits_api.lua",
        "wx.on('text', function(msg)\n  wx.kf.send(msg.from, 'psst')\n  return 'visit ' .. wx.store.incr('visits:' .. msg.from)\nend)\n",
    );
    let args = ["--scripts", tpl.as_str(), "--data", kept.to_str().unwrap()];
    let second = chat(dir.path(), &args, &[], "x\n");
    assert!(second.status.success(), "{}", stderr(&second));
    assert_transcript(
        &stdout_lines(&second),
        &["> x", "[客服] text: psst", "visit 3"],
    );
    let third = chat(dir.path(), &args, &[], "x\n");
    assert_transcript(
        &stdout_lines(&third),
        &["> x", "[客服] text: psst", "visit 4"],
    );
    let memory = chat(dir.path(), &["--scripts", &script], &[], "x\n");
    assert_transcript(&stdout_lines(&memory), &["> x", "visit 1"]);
}

#[test]
fn a_menu_from_a_flag_or_pushed_from_outside_shows_with_its_commands() {
    let dir = tempfile::tempdir().unwrap();
    let menu = dir.path().join("menu.toml");
    std::fs::write(
        &menu,
        r#"
[[button]]
type = "click"
name = "Today"
key = "TODAY"

[[button]]
name = "More"

[[button.sub_button]]
type = "scancode_waitmsg"
name = "Scan"
key = "SCAN"
"#,
    )
    .unwrap();
    let output = chat(
        dir.path(),
        &[
            "--scripts",
            echo().to_str().unwrap(),
            "--menu",
            menu.to_str().unwrap(),
        ],
        &[],
        "/menu\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_transcript(
        &stdout_lines(&output),
        &[
            "> /menu",
            "(menu)",
            "  Today            /click TODAY",
            "  More",
            "    Scan             /scancode_waitmsg SCAN",
        ],
    );

    // Without --menu: the banner's address and credentials let `menu push` reach the fake.
    let mut child = command(dir.path(), &["--scripts", echo().to_str().unwrap()], &[])
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (err_tx, err_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    // Read to the end, so the chat never writes into a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let mut vars = Vec::new();
    while let Ok(line) = err_rx.recv_timeout(Duration::from_secs(15)) {
        if line.contains("WECHAT_API_BASE=") {
            vars = line
                .split_whitespace()
                .filter_map(|word| word.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            break;
        }
    }
    assert!(
        vars.iter().any(|(k, _)| k == "WECHAT_APPSECRET"),
        "banner names the credentials: {vars:?}"
    );
    let mut push = Command::new(env!("CARGO_BIN_EXE_wechat-lua"));
    push.args(["menu", "push", menu.to_str().unwrap()])
        .current_dir(dir.path());
    for var in WECHAT_VARS {
        push.env_remove(var);
    }
    let pushed = push.envs(vars).output().unwrap();
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    assert!(
        !dir.path().join("data").exists(),
        "the printed command keeps nothing on disk"
    );
    writeln!(stdin, "/menu").unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert_transcript(
        &stdout_lines(&output),
        &[
            "[api] POST /cgi-bin/menu/create {…",
            "> /menu",
            "(menu)",
            "  Today            /click TODAY",
            "  More",
            "    Scan             /scancode_waitmsg SCAN",
        ],
    );
}

/// A one-request-at-a-time HTTP server on loopback answering `200 hi`; returns its port.
fn tiny_http_server() -> u16 {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
        }
    });
    port
}

#[test]
fn wx_http_requests_show_like_api_calls_and_loopback_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let port = tiny_http_server();
    let script = write_script(
        dir.path(),
        "fetch.lua",
        &format!(
            r#"
wx.on("text", "^get$", function()
  local resp, err = wx.http.get("http://127.0.0.1:{port}/hello?key=secret")
  return resp and (resp.status .. " " .. resp.body) or err.kind
end)
wx.on("text", "^private$", function()
  local resp, err = wx.http.get("http://10.0.0.1/x")
  return resp and "reached" or err.kind
end)
"#
        ),
    );
    let output = chat(dir.path(), &["--scripts", &script], &[], "get\nprivate\n");
    assert!(output.status.success(), "{}", stderr(&output));
    let get_line = format!("[http] GET http://127.0.0.1:{port}/hello → 200, …");
    assert_transcript(
        &stdout_lines(&output),
        &[
            "> get",
            &get_line,
            "200 hi",
            "> private",
            "[http] GET http://10.0.0.1/x → denied, …",
            "denied",
        ],
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("secret"),
        "the query is not shown"
    );
    assert!(
        stderr(&output).contains("wx.http: loopback"),
        "{}",
        stderr(&output)
    );
}

/// Follows redirects from `url` as a browser would, keeping cookies (by name; every path);
/// returns the last URL and its body.
async fn browse(
    url: &str,
    jar: &mut std::collections::BTreeMap<String, String>,
) -> (String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let mut url = reqwest::Url::parse(url).unwrap();
    for _ in 0..10 {
        let cookie = jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = client
            .get(url.clone())
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
        match response.headers().get("location") {
            Some(to) => url = url.join(to.to_str().unwrap()).unwrap(),
            None => {
                let status = response.status();
                let body = response.text().await.unwrap();
                assert_eq!(status, 200, "{url}: {body}");
                return (url.to_string(), body);
            }
        }
    }
    panic!("too many redirects from {url}");
}

#[test]
fn web_serves_pages_signed_in_as_the_user_chatting() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    let mut child = command(
        dir.path(),
        &["--web", "--scripts", shop.to_str().unwrap()],
        &[],
    )
    .spawn()
    .expect("start wechat-lua chat --web");
    let mut stdin = child.stdin.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    for stream in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let tx = lines_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let wait_for = |needle: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {needle:?}"),
            }
        }
    };
    let banner = wait_for("web pages: http://");
    let base = banner
        .split("web pages: ")
        .nth(1)
        .unwrap()
        .split('/')
        .take(3)
        .collect::<Vec<_>>()
        .join("/");
    writeln!(stdin, "buy tea").unwrap();
    wait_for("Order 42 placed");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut jar = Default::default();
        let (landed, page) = browse(&format!("{base}/orders"), &mut jar).await;
        assert_eq!(landed, format!("{base}/orders"));
        assert!(page.contains("Signed in as o_chat_user"), "{page}");
        assert!(page.contains("#42 tea"), "{page}");
        assert!(page.contains("\"signature\":"), "a JS-SDK config: {page}");
        // Signed in: the next visit goes straight to the page.
        let (_, again) = browse(&format!("{base}/orders"), &mut jar).await;
        assert!(again.contains("#42 tea"));

        writeln!(stdin, "/as o_other").unwrap();
        wait_for("now chatting as o_other");
        let mut fresh = Default::default();
        let (_, page) = browse(&format!("{base}/orders"), &mut fresh).await;
        assert!(page.contains("Signed in as o_other"), "{page}");
        assert!(page.contains("No orders yet"), "{page}");
    });
    writeln!(stdin, "/quit").unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn account_chats_as_that_account_with_its_scripts_and_envelope() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("shared")).unwrap();
    std::fs::create_dir(dir.path().join("shop")).unwrap();
    std::fs::write(
        dir.path().join("shared/main.lua"),
        "wx.on('text', function(msg) return 'shared ' .. msg.account end)\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("shop/main.lua"),
        r#"
wx.on("text", "^who$", function(msg) return "own " .. msg.account .. " " .. msg.appid end)
wx.on("text", "^kf$", function(msg)
  return tostring(wx.kf.send(msg.from, "hi from " .. msg.account))
end)
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("wechat-lua.toml"),
        "scripts = \"shared\"\n\n\
         [[accounts]]\nname = \"shop\"\nappid = \"wxshop\"\nappsecret = \"not-sent-in-a-chat\"\n\
         token = \"shoptoken1\"\nmode = \"safe\"\n\
         encoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\nscripts = \"shop\"\n\n\
         [[accounts]]\nname = \"news\"\nappid = \"wxnews\"\ntoken = \"newstoken1\"\n",
    )
    .unwrap();
    let output = chat(dir.path(), &["--account", "shop"], &[], "who\nkf\n");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_transcript(
        &stdout_lines(&output),
        &[
            "> who",
            "own shop wxshop",
            "> kf",
            "[客服] text: hi from shop",
            "true",
        ],
    );
    let banner = stderr(&output);
    assert!(banner.contains("account shop, /wechat/shop"), "{banner}");
    assert!(banner.contains("encrypt"), "{banner}");
    assert!(!banner.contains("not-sent-in-a-chat"), "{banner}");

    // A shared-scripts account, and the default one.
    let output = chat(dir.path(), &["--account", "news"], &[], "x\n");
    assert_transcript(&stdout_lines(&output), &["> x", "shared news"]);
    let output = chat(dir.path(), &[], &[], "x\n");
    assert_transcript(&stdout_lines(&output), &["> x", "shared default"]);

    let output = chat(dir.path(), &["--account", "nope"], &[], "x\n");
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("`nope`") && err.contains("default, shop, news"),
        "{err}"
    );
}

#[test]
fn account_chats_as_an_authorizer_of_the_open_platform() {
    const AUTHORIZER: &str = "wxauthorizer000001";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.lua"),
        r#"
wx.on("text", "^who$", function(msg) return "as " .. msg.account .. " " .. msg.appid end)
wx.on("text", "^kf$", function(msg)
  return tostring(wx.kf.send(msg.from, "hi from " .. msg.account))
end)
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("wechat-lua.toml"),
        "scripts = \"main.lua\"\n\n\
         [component]\nappid = \"wxcomponent0000001\"\nappsecret = \"not-sent-in-a-chat\"\n\
         token = \"componenttoken1\"\n\
         encoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n\
         public_url = \"https://bots.example\"\n",
    )
    .unwrap();
    let output = chat(dir.path(), &["--account", AUTHORIZER], &[], "who\nkf\n");
    assert!(output.status.success(), "{}", stderr(&output));
    // The authorization the chat played (ticket, pre_auth_code, the exchange) is not shown;
    // the send goes out with the authorizer's token, so the fake takes it.
    assert_transcript(
        &stdout_lines(&output),
        &[
            "> who",
            &format!("as {AUTHORIZER} {AUTHORIZER}"),
            "> kf",
            &format!("[客服] text: hi from {AUTHORIZER}"),
            "true",
        ],
    );
    let banner = stderr(&output);
    assert!(
        banner.contains(&format!(
            "authorizer {AUTHORIZER} through the open platform wxcomponent0000001, /component/{AUTHORIZER}/callback"
        )),
        "{banner}"
    );
    assert!(banner.contains("encrypt"), "{banner}");
    assert!(!banner.contains("not-sent-in-a-chat"), "{banner}");

    // A name that is no appid still stops with the list of accounts.
    let output = chat(dir.path(), &["--account", "nope"], &[], "x\n");
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("`nope`") && err.contains("an authorizer's appid"),
        "{err}"
    );
}
