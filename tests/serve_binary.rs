//! The real `wechat-lua serve` binary on a free port: replies, hot reload, the generated token,
//! start-up errors and graceful shutdown.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{element, http, now, signed_query_at, text_xml, Server, TOKEN};

/// A fresh MsgId for every message: the same one twice is a retry and gets the first answer.
fn next_msg_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn reply_content(server: &Server, content: &str) -> Option<String> {
    let (status, body) = server.post(&text_xml("u1", content, next_msg_id()));
    assert_eq!(status, 200, "{body}");
    element(&body, "Content")
}

fn wait_for_reply(server: &Server, want: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if reply_content(server, "x").as_deref() == Some(want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn serves_the_echo_example() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/echo.lua");
    let server = Server::start(
        dir.path(),
        &["--scripts", echo.to_str().unwrap()],
        &[("WECHAT_TOKEN", TOKEN)],
    );
    assert_eq!(
        reply_content(&server, "hello 你好").as_deref(),
        Some("hello 你好")
    );
    let (status, _) = server.post_with_query(
        &signed_query_at("other", now(), "n"),
        &text_xml("u", "x", 1),
    );
    assert_eq!(status, 403);
    assert_eq!(server.terminate().code(), Some(0), "SIGTERM exits cleanly");
}

#[test]
fn edits_reload_and_a_broken_edit_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("bot");
    std::fs::create_dir_all(scripts.join("lib")).unwrap();
    std::fs::write(
        scripts.join("main.lua"),
        "local t = require('lib.texts')\nwx.on('text', function() return t.reply end)\n",
    )
    .unwrap();
    std::fs::write(scripts.join("lib/texts.lua"), "return { reply = 'one' }\n").unwrap();
    let server = Server::start(
        dir.path(),
        &["--scripts", "bot"],
        &[("WECHAT_TOKEN", TOKEN)],
    );
    assert_eq!(reply_content(&server, "x").as_deref(), Some("one"));

    // A module reached through require is watched too.
    std::fs::write(scripts.join("lib/texts.lua"), "return { reply = 'two' }\n").unwrap();
    assert!(wait_for_reply(&server, "two"), "the edit was picked up");

    std::fs::write(scripts.join("lib/texts.lua"), "return { reply = \n").unwrap();
    assert!(
        server.wait_for_log("texts.lua:2", Duration::from_secs(10)),
        "the rejected reload names file and line: {:?}",
        server.log.lock().unwrap()
    );
    assert_eq!(
        reply_content(&server, "x").as_deref(),
        Some("two"),
        "the last good set still serves"
    );

    std::fs::write(
        scripts.join("main.lua"),
        "wx.on('text', function() return 'three' end)\n",
    )
    .unwrap();
    std::fs::remove_file(scripts.join("lib/texts.lua")).unwrap();
    assert!(wait_for_reply(&server, "three"));
}

#[test]
fn without_a_token_one_is_generated_printed_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/echo.lua");
    let args = ["--scripts", echo.to_str().unwrap()];
    let server = Server::start(dir.path(), &args, &[]);
    let printed = server.stdout.lock().unwrap().join("\n");
    let token = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("Token: "))
        .unwrap_or_else(|| panic!("token printed: {printed}"))
        .to_string();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/token"))
            .unwrap()
            .trim(),
        token
    );
    let q = signed_query_at(&token, now(), "n1");
    let (status, body) = http("GET", &format!("{}/wechat?{q}&echostr=ok", server.base), "");
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert!(
        !server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&token)),
        "the token is not in the log"
    );
    drop(server);

    let server = Server::start(dir.path(), &args, &[]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !server.stdout.lock().unwrap().join("\n").contains(&token),
        "printed only once"
    );
    let q = signed_query_at(&token, now(), "n2");
    let (status, _) = http("GET", &format!("{}/wechat?{q}&echostr=ok", server.base), "");
    assert_eq!(status, 200, "the kept token still verifies after a restart");
}

#[test]
fn broken_scripts_stop_start_up_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    std::fs::write(
        dir.path().join("scripts/main.lua"),
        "wx.on('text', function()\n  return (\nend)\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wechat-lua"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("WECHAT_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("scripts/main.lua:3"), "{stderr}");
}

#[test]
fn json_logs_are_one_object_per_line_with_a_span_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/echo.lua");
    let server = Server::start(
        dir.path(),
        &["--scripts", echo.to_str().unwrap(), "--log-format", "json"],
        &[("WECHAT_TOKEN", TOKEN), ("RUST_LOG", "debug")],
    );
    let (status, _) = server.post(&text_xml("jsonuser", "hi", next_msg_id()));
    assert_eq!(status, 200);
    assert!(server.wait_for_log("message handled", Duration::from_secs(5)));
    let lines = server.log.lock().unwrap().clone();
    let mut handled = None;
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if value["fields"]["message"] == "message handled" {
            handled = Some(value);
        }
    }
    let handled = handled.expect("a line per handled message");
    let fields = &handled["fields"];
    assert_eq!(fields["type"], "text");
    assert_eq!(fields["outcome"], "reply:text");
    assert!(fields["ms"].is_u64(), "{handled}");
    let openid = fields["openid"].as_str().unwrap();
    assert_eq!(openid.len(), 12, "a short hash");
    assert!(
        !lines.iter().any(|l| l.contains("jsonuser")),
        "the OpenID itself is not logged"
    );
}

/// SIGTERM ends the process within `shutdown_grace` even while handlers spin (and catch their
/// run-limit error with `pcall`): before, such handlers kept the process alive for ever.
#[test]
fn sigterm_exits_within_the_grace_period_while_handlers_spin() {
    let dir = tempfile::tempdir().unwrap();
    let bot = dir.path().join("spin.lua");
    std::fs::write(
        &bot,
        "wx.on(\"text\", function() while true do pcall(function() while true do end end) end end)\n",
    )
    .unwrap();
    let mut server = Server::start(
        dir.path(),
        &["--scripts", bot.to_str().unwrap()],
        &[
            ("WECHAT_TOKEN", TOKEN),
            ("WECHAT_SHUTDOWN_GRACE", "1"),
            ("WECHAT_REPLY_TIMEOUT", "4.8"),
        ],
    );
    let base = server.base.clone();
    for id in 0..2 {
        let url = format!("{base}/wechat?{}", support::signed_query());
        std::thread::spawn(move || {
            let _ = http("POST", &url, &text_xml("u", "spin", 500 + id));
        });
    }
    // Let both handlers start spinning.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = server
        .terminate_within(Duration::from_secs(10))
        .expect("still running 10 s after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        // Without the grace period it would wait for the answers at the reply deadline.
        started.elapsed() < Duration::from_millis(3500),
        "exit took {:?} with a 1 s grace period",
        started.elapsed()
    );
}
