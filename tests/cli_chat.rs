//! `wechat-lua chat` driven through a pipe, as `printf 'hi\n' | wechat-lua chat` would be:
//! one reply block per input line, API calls marked by kind (from handlers and from late
//! replies), safe mode, raw XML, scripts that do not load, script errors and reloads.

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
    let lines = stdout_lines(&output);
    let fixed = [
        "hi",
        "click:MENU",
        "scan:42",
        "welcome",
        "23.1,113.3",
        "1. T",
        "   http://x",
    ];
    assert_eq!(lines[..fixed.len()], fixed, "{lines:#?}");
    let rest = &lines[fixed.len()..];
    assert_eq!(rest.len(), 5, "{lines:#?}");
    assert!(
        rest[0].starts_with("[image media_id=chat_media_"),
        "{rest:?}"
    );
    assert!(
        rest[1].starts_with("[voice media_id=chat_media_"),
        "{rest:?}"
    );
    assert_eq!(rest[2], "(now chatting as other)");
    assert_eq!(rest[3], "again 你好");
    assert!(
        rest[4].starts_with("unknown command /nope"),
        "one-line hint: {rest:?}"
    );
    let err = stderr(&output);
    assert!(err.contains("wechat-lua chat"), "banner on stderr: {err}");
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
    assert_eq!(
        stdout_lines(&output),
        [
            "♪ Song",
            "  url: http://m",
            "  thumb_media_id=T",
            "[transferred to customer service]",
            "1. A",
            "   first",
            "   http://a",
            "2. B",
            "   http://b",
            "one",
            "two",
            "sub qrscene_42 ticket",
            "sub - -",
            "view http://v",
            "heard 你好 world",
            "http://pic",
            "Canton Tower",
            "(no reply)",
        ]
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
    assert_eq!(stdout_lines(&output), ["(no reply)", "(no reply)"]);
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
    assert_eq!(lines[0], "(no reply)", "{lines:?}");
    let late = lines
        .iter()
        .position(|l| l == "[客服] text: later: hi")
        .unwrap_or_else(|| panic!("late reply printed before exit: {lines:?}"));
    assert!(late > 0);
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
    assert_eq!(
        stdout_lines(&output),
        [
            "[客服] text: from customer service",
            "[客服 → o_someone] image media_id=MEDIA",
            "true",
            "[模板] template_id=TPL1 data: name=Ann",
            "refused 40037",
            "[群发] sendall to all: text: hello all",
            "mass true",
            "[api] POST /cgi-bin/menu/create \
             {\"button\":[{\"key\":\"HELP\",\"name\":\"Help\",\"type\":\"click\"}]}",
            "(no reply)",
        ]
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
    assert!(text.starts_with("<xml>"), "{text}");
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
    assert_eq!(stdout_lines(&output), ["hi 安全", "click:K"]);
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
    assert_eq!(next_out(), "one");
    writeln!(stdin, "boom").unwrap();
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
    assert_eq!(next_out(), "two");

    std::fs::write(&script, "wx.on('text', function()\n  return (\nend)\n").unwrap();
    let line = wait_err("reload rejected");
    assert!(line.contains("bot.lua:3"), "{line}");
    writeln!(stdin, "x").unwrap();
    assert_eq!(next_out(), "two", "the last good scripts keep serving");

    drop(stdin);
    assert!(child.wait().unwrap().success());
}
