//! The playground in a real browser: the real binary runs `play` on a free port against its
//! built-in fake WeChat API, and headless Chromium (driven over WebDriver by `fantoccini`
//! through Debian's `chromium-driver`, as in `browser_signin.rs`) uses the page as a person
//! would: types a message and sees the echo, taps a menu button (one the scripts pushed with
//! `wx.menu.create`) and sees the reply to its CLICK, gets news cards, a late reply after the
//! deadline, a `<script>` reply shown as text, a broken save reported with file:line while
//! the previous scripts keep answering, and a second simulated user with their own history.
//! A screenshot of each step is written under the test's temp dir, its path printed.
//!
//! `WECHAT_LUA_PLAYGROUND_SCREENSHOT=docs/playground.png cargo test --test browser_playground`
//! also writes the README's screenshot there.
//!
//! The browser is required: without `chromium` and `chromedriver` this test fails, saying what
//! to install (`.ci/run` installs both).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::{json, Value};

use support::browser::Browser;
use support::{free_port, wait_for_port};

/// `wechat-lua play` on a free port; killed on drop; its stderr kept for failure messages.
struct Play {
    child: Child,
    port: u16,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Play {
    fn start(dir: &Path) -> Play {
        Play::start_on(dir, free_port())
    }

    fn start_on(dir: &Path, port: u16) -> Play {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wechat-lua"))
            .current_dir(dir)
            .args([
                "play",
                "--scripts",
                "bot",
                "--config",
                "wechat-lua.toml",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--template",
                "TPL_SHIPPED",
            ])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wechat-lua play");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        wait_for_port(port, "wechat-lua play");
        Play {
            child,
            port,
            url: format!("http://127.0.0.1:{port}/"),
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Play {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MAIN_LUA: &str = r#"
wx.on_start(function()
  local ok, err = wx.menu.create{button = {
    {type = "click", name = "Today", key = "MENU_TODAY"},
    {name = "More", sub_button = {
      {type = "click", name = "Contact", key = "MENU_CONTACT"},
      {type = "view", name = "Website", url = "https://example.com/"},
    }},
  }}
  if not ok then wx.log.warn("menu not created", err.errcode) end
end)

wx.on("text", "^news%d$", function(msg)
  local articles = {}
  for i = 1, tonumber(msg.content:sub(5)) do
    articles[i] = { title = "Article " .. i, description = "About " .. i,
                    url = "https://example.com/" .. i }
  end
  return wx.reply.news(articles)
end)

wx.on("text", "^slow$", function()
  wx.sleep(1.2)
  return "late answer"
end)

wx.on("text", "^xss$", function()
  return '<script>window.pwned = 1</script> <a href="javascript:window.pwned=2">bad</a> <a href="https://example.com/ok">good</a>'
end)

wx.on("text", "^flood$", function(msg)
  -- 1,250 log lines and 250 sends, the lines between sends: each send waits on the fake API,
  -- so the handler never runs 400 ms without waiting (the run limit) on a loaded machine.
  for i = 1, 250 do
    for j = 1, 5 do wx.log.info("flood line", i, j) end
    wx.kf.send(msg.from, "flood " .. i)
  end
  return "flooded"
end)

wx.on("text", "^notify$", function(msg)
  wx.template.send{to = msg.from, template_id = "TPL_SHIPPED", data = {keyword1 = "A-1", keyword2 = "today"}}
end)

wx.on("text", "^announce$", function()
  wx.mass.send{to = {all = true}, message = "big sale"}
end)

wx.on("text", "^fetch (.+)$", function(msg, url)
  local r, err = wx.http.get(url)
  return r and ("status " .. r.status) or ("failed " .. err.kind)
end)

wx.route("GET", "/me", function(req)
  local login = wx.web.require_login(req)
  if login then return login end
  return "<p id='who'>signed in as " .. req.openid .. "</p>"
end)

wx.on("text", function(msg) return "echo: " .. msg.content end)
wx.on("image", function(msg) return wx.reply.image(msg.media_id) end)
wx.on("event.subscribe", function() return "welcome" end)
wx.on("location", function(msg) return "at " .. msg.location_x .. "," .. msg.location_y end)
wx.on("event.click", function(msg) return "clicked " .. msg.key end)
"#;

/// Polls `predicate` (a JS function body returning a boolean, given `arguments`) until true.
async fn wait_until(client: &Client, what: &str, predicate: &str, args: Vec<Value>, play: &Play) {
    let started = Instant::now();
    loop {
        let value = client
            .execute(predicate, args.clone())
            .await
            .unwrap_or(Value::Null);
        if value == Value::Bool(true) {
            return;
        }
        if started.elapsed() > Duration::from_secs(15) {
            let page = client
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap_or(Value::Null);
            panic!(
                "timed out waiting for {what}\n--- page ---\n{}\n--- play's log ---\n{}",
                page.as_str().unwrap_or_default(),
                play.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A 1×1 green PNG, a picture the simulated user sends.
const PIXEL_PNG: [u8; 69] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x3f, 0x98, 0x00,
    0x00, 0x01, 0xfb, 0x01, 0x29, 0x07, 0x0a, 0x67, 0xb2, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

const HAS_BOT_BUBBLE: &str = "return [...document.querySelectorAll('.msg.bot .bubble')].some(b => b.textContent === arguments[0]);";

/// Opens the bot's page `/me` in the phone browser and waits until it says who is signed in.
async fn page_signs_in_as(client: &Client, openid: &str, play: &Play) {
    client
        .execute("openBrowser(S.hostUrl + '/me');", vec![])
        .await
        .unwrap();
    let expected = format!("signed in as {openid}");
    let started = Instant::now();
    loop {
        client.enter_frame(0).await.unwrap();
        let text = client
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await
            .unwrap_or(Value::Null);
        client.enter_parent_frame().await.unwrap();
        if text.as_str().is_some_and(|t| t.contains(&expected)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the page never said {expected:?}: {text}\n{}",
            play.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    click(client, Locator::Id("browser-close")).await;
}

/// Finds the element and clicks it; a failure names the element.
async fn click(client: &Client, locator: Locator<'_>) {
    let described = format!("{locator:?}");
    let element = client
        .find(locator)
        .await
        .unwrap_or_else(|e| panic!("no element {described} on the page: {e}"));
    element
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {described}: {e}"));
}

async fn type_and_send(client: &Client, text: &str) {
    let input = client.find(Locator::Id("input")).await.unwrap();
    input.send_keys(text).await.unwrap();
    click(client, Locator::Id("send-btn")).await;
}

async fn screenshot(client: &Client, dir: &Path, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("a screenshot");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, &png).unwrap();
    // Straight to stderr, past the test harness's capture, so the path is in the log.
    let _ = writeln!(std::io::stderr(), "screenshot: {}", path.display());
    path
}

#[test]
fn the_playground_page_talks_to_the_real_host() {
    let dir = tempfile::tempdir().unwrap();
    let bot = dir.path().join("bot");
    std::fs::create_dir_all(&bot).unwrap();
    std::fs::write(bot.join("main.lua"), MAIN_LUA).unwrap();
    std::fs::write(dir.path().join("wechat-lua.toml"), "reply_timeout = 0.4\n").unwrap();
    // Kept after the test, so the printed paths can be opened.
    let shots = tempfile::Builder::new()
        .prefix("playground-screenshots-")
        .tempdir()
        .unwrap()
        .keep();
    let play = Play::start(dir.path());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let client = Browser::start(1100, 800, "normal").await;
        client.goto(&play.url).await.expect("open the playground");

        // The page drew itself: the account's name and the menu the scripts pushed.
        wait_until(
            &client,
            "the menu pushed by wx.menu.create",
            "return document.querySelectorAll('#menu .menu-btn').length >= 2 && document.getElementById('account-name').textContent === 'bot';",
            vec![],
            &play,
        )
        .await;

        // A text and its echo.
        type_and_send(&client, "hello").await;
        wait_until(&client, "the echo", HAS_BOT_BUBBLE, vec![json!("echo: hello")], &play).await;
        wait_until(
            &client,
            "the user's bubble",
            "return [...document.querySelectorAll('.msg.me .bubble')].some(b => b.textContent === 'hello');",
            vec![],
            &play,
        )
        .await;
        screenshot(&client, &shots, "1-echo").await;

        // The raw XML of a bubble, signed as WeChat signs.
        client
            .execute(
                "[...document.querySelectorAll('.msg.bot .bubble')].find(b => b.textContent === 'echo: hello').click();",
                vec![],
            )
            .await
            .unwrap();
        wait_until(
            &client,
            "the raw XML",
            "const r = document.getElementById('raw'); return !r.hidden && r.textContent.includes('POST /wechat?signature=') && r.textContent.includes('<Content><![CDATA[hello]]></Content>') && r.textContent.includes('<Content><![CDATA[echo: hello]]></Content>');",
            vec![],
            &play,
        )
        .await;

        // Unfollow and follow again; share a location.
        click(&client, Locator::Id("unfollow")).await;
        wait_until(
            &client,
            "not following",
            "return document.getElementById('follow-state').textContent.endsWith('not following');",
            vec![],
            &play,
        )
        .await;
        click(&client, Locator::Id("follow")).await;
        wait_until(&client, "the welcome", HAS_BOT_BUBBLE, vec![json!("welcome")], &play).await;
        click(&client, Locator::Id("more")).await;
        click(&client, Locator::Id("send-location")).await;
        wait_until(&client, "the location's reply", HAS_BOT_BUBBLE, vec![json!("at 23.1291,113.2644")], &play).await;
        // A picture from the file picker: the user's tile and the bot's image reply (the same
        // media_id, which the fake keeps) both show it.
        let pixel = dir.path().join("pixel.png");
        std::fs::write(&pixel, PIXEL_PNG).unwrap();
        client
            .find(Locator::Id("picture"))
            .await
            .unwrap()
            .send_keys(pixel.to_str().unwrap())
            .await
            .unwrap();
        wait_until(
            &client,
            "the picture on both sides",
            "const loaded = (sel) => [...document.querySelectorAll(sel)].some(i => i.complete && i.naturalWidth === 1); \
             return loaded('.msg.me .tile img') && loaded('.msg.bot .tile img');",
            vec![],
            &play,
        )
        .await;
        click(&client, Locator::Id("more")).await;

        // The menu: a button, and a sub-menu's button.
        click(&client, Locator::XPath("//nav[@id='menu']//button[text()='Today']")).await;
        wait_until(&client, "the CLICK reply", HAS_BOT_BUBBLE, vec![json!("clicked MENU_TODAY")], &play).await;
        click(&client, Locator::XPath("//nav[@id='menu']//button[text()='More']")).await;
        click(&client, Locator::XPath("//nav[@id='menu']//ul//button[text()='Contact']")).await;
        wait_until(&client, "the sub-menu's CLICK reply", HAS_BOT_BUBBLE, vec![json!("clicked MENU_CONTACT")], &play).await;
        // A view button sends VIEW and opens the page in the phone's browser.
        click(&client, Locator::XPath("//nav[@id='menu']//button[text()='More']")).await;
        click(&client, Locator::XPath("//nav[@id='menu']//ul//button[text()='Website']")).await;
        wait_until(
            &client,
            "the phone browser and the VIEW event",
            "return !document.getElementById('browser').hidden && document.getElementById('browser-url').textContent === 'https://example.com/' && [...document.querySelectorAll('.sys')].some(s => s.textContent === 'You opened https://example.com/');",
            vec![],
            &play,
        )
        .await;
        screenshot(&client, &shots, "2-menu").await;
        click(&client, Locator::Id("browser-close")).await;
        // The bot's own page opens signed in as the current user.
        page_signs_in_as(&client, "o_play_user_1", &play).await;

        // News: three articles are the stacked list, one is the large card.
        type_and_send(&client, "news3").await;
        wait_until(
            &client,
            "three article cards",
            "const cards = document.querySelectorAll('.news-multi'); if (!cards.length) return false; \
             const titles = [...cards[cards.length - 1].querySelectorAll('.article .article-title')].map(t => t.textContent); \
             return JSON.stringify(titles) === JSON.stringify(['Article 1', 'Article 2', 'Article 3']);",
            vec![],
            &play,
        )
        .await;
        type_and_send(&client, "news1").await;
        wait_until(
            &client,
            "one large card",
            "const c = document.querySelector('.news-single'); return !!c && c.querySelector('.article-title').textContent === 'Article 1' && c.querySelector('.article-description').textContent === 'About 1';",
            vec![],
            &play,
        )
        .await;
        let news = screenshot(&client, &shots, "3-news").await;
        if let Ok(path) = std::env::var("WECHAT_LUA_PLAYGROUND_SCREENSHOT") {
            // The README's picture: a conversation with menu taps and news cards.
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
            std::fs::copy(&news, &path).unwrap();
            let _ = writeln!(std::io::stderr(), "README screenshot: {}", path.display());
        }

        // HTML in a reply is text; only the http(s) link becomes a link.
        type_and_send(&client, "xss").await;
        wait_until(
            &client,
            "the <script> reply as text",
            "return [...document.querySelectorAll('.msg.bot .bubble')].some(b => b.textContent.startsWith('<script>window.pwned = 1</script>'));",
            vec![],
            &play,
        )
        .await;
        let checked = client
            .execute(
                "const b = [...document.querySelectorAll('.msg.bot .bubble')].find(b => b.textContent.startsWith('<script>')); \
                 return { pwned: window.pwned === undefined ? null : window.pwned, \
                          scripts: b.querySelectorAll('script').length, \
                          links: [...b.querySelectorAll('a')].map(a => a.getAttribute('href')), \
                          text: b.textContent };",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(checked["pwned"], Value::Null, "{checked}");
        assert_eq!(checked["scripts"], 0, "{checked}");
        assert_eq!(checked["links"], json!(["https://example.com/ok"]), "{checked}");
        assert!(
            checked["text"]
                .as_str()
                .unwrap()
                .contains(r#"<a href="javascript:window.pwned=2">bad</a>"#),
            "{checked}"
        );
        screenshot(&client, &shots, "4-escaped").await;

        // A reply after the deadline: nothing at first, then a customer-service message.
        type_and_send(&client, "slow").await;
        wait_until(
            &client,
            "no passive reply",
            "return [...document.querySelectorAll('.sys.dim')].length > 0;",
            vec![],
            &play,
        )
        .await;
        let early = client
            .execute(HAS_BOT_BUBBLE, vec![json!("late answer")])
            .await
            .unwrap();
        assert_eq!(early, Value::Bool(false), "the late reply came before the deadline");
        wait_until(&client, "the late reply", HAS_BOT_BUBBLE, vec![json!("late answer")], &play).await;
        wait_until(
            &client,
            "the customer-service send in the panel",
            "return [...document.querySelectorAll('#panel-list li.api')].some(li => li.textContent.includes('/cgi-bin/message/custom/send'));",
            vec![],
            &play,
        )
        .await;
        screenshot(&client, &shots, "5-late-reply").await;

        // A broken save: its file:line in the panel, the previous scripts keep answering.
        std::fs::write(
            bot.join("main.lua"),
            "wx.on(\"text\", function(msg)\n  return \"new\"\nend\nthis is not lua\n",
        )
        .unwrap();
        wait_until(
            &client,
            "the reload error",
            "const e = document.getElementById('reload-error'); return !e.hidden && /main\\.lua:4/.test(e.textContent);",
            vec![],
            &play,
        )
        .await;
        type_and_send(&client, "still there").await;
        wait_until(&client, "the previous version's answer", HAS_BOT_BUBBLE, vec![json!("echo: still there")], &play).await;
        screenshot(&client, &shots, "6-reload-error").await;

        // A second simulated user has their own history.
        click(&client, Locator::Id("add-user")).await;
        wait_until(
            &client,
            "the second user",
            "return document.getElementById('user-select').value === 'o_play_user_2' && document.querySelectorAll('#messages .msg').length === 0;",
            vec![],
            &play,
        )
        .await;
        type_and_send(&client, "second").await;
        wait_until(&client, "the second user's echo", HAS_BOT_BUBBLE, vec![json!("echo: second")], &play).await;
        let second_only = client
            .execute(HAS_BOT_BUBBLE, vec![json!("echo: hello")])
            .await
            .unwrap();
        assert_eq!(second_only, Value::Bool(false), "the first user's history shows for the second");
        // A mass send to everyone is a broadcast in each follower's conversation.
        type_and_send(&client, "announce").await;
        wait_until(&client, "the broadcast for the second user", HAS_BOT_BUBBLE, vec![json!("big sale")], &play).await;
        page_signs_in_as(&client, "o_play_user_2", &play).await;
        screenshot(&client, &shots, "7-second-user").await;
        client
            .execute(
                "const s = document.getElementById('user-select'); s.value = 'o_play_user_1'; s.dispatchEvent(new Event('change'));",
                vec![],
            )
            .await
            .unwrap();
        wait_until(
            &client,
            "the first user's history back",
            "const texts = [...document.querySelectorAll('.msg.bot .bubble')].map(b => b.textContent); return texts.includes('echo: hello') && texts.includes('big sale') && !texts.includes('echo: second');",
            vec![],
            &play,
        )
        .await;

        // A template message is a notice card; wx.http shows in the panel.
        type_and_send(&client, "notify").await;
        wait_until(
            &client,
            "the template notice",
            "return [...document.querySelectorAll('.notice')].some(n => n.querySelector('.title').textContent === 'template TPL_SHIPPED' && n.textContent.includes('keyword1') && n.textContent.includes('A-1'));",
            vec![],
            &play,
        )
        .await;
        type_and_send(&client, &format!("fetch {}play/state", play.url)).await;
        wait_until(&client, "the wx.http reply", HAS_BOT_BUBBLE, vec![json!("status 200")], &play).await;
        wait_until(
            &client,
            "the wx.http line in the panel",
            "return [...document.querySelectorAll('#panel-list li.http')].some(li => li.textContent.includes('/play/state'));",
            vec![],
            &play,
        )
        .await;
        screenshot(&client, &shots, "8-notice-and-http").await;

        // An event numbered below one already shown is still new: a send's answer (carrying
        // its reply) can beat the stream's event for an API call made during that send.
        let both = client
            .execute(
                "apply({seq: 1e9 + 2, at_ms: 0, kind: 'reply', user: S.current, via: 'passive', exchange: null, raw: null, reply: {type: 'text', content: 'numbered higher'}}); \
                 apply({seq: 1e9 + 1, at_ms: 0, kind: 'broadcast', user: S.current, reply: {type: 'text', content: 'numbered lower'}}); \
                 const texts = [...document.querySelectorAll('.msg.bot .bubble')].map(b => b.textContent); \
                 return texts.includes('numbered higher') && texts.includes('numbered lower');",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(both, Value::Bool(true), "an event was dropped for its number");

        // A flood of log lines and sends: the page keeps up, its panel and feed stay capped.
        type_and_send(&client, "flood").await;
        wait_until(&client, "the flood's reply", HAS_BOT_BUBBLE, vec![json!("flooded")], &play).await;
        wait_until(&client, "the flood's sends", HAS_BOT_BUBBLE, vec![json!("flood 250")], &play).await;
        type_and_send(&client, "after the flood").await;
        wait_until(&client, "an answer after the flood", HAS_BOT_BUBBLE, vec![json!("echo: after the flood")], &play).await;
        let panel = client
            .execute("return document.querySelectorAll('#panel-list li').length;", vec![])
            .await
            .unwrap();
        assert!(panel.as_u64().unwrap() <= 400, "the panel is capped: {panel}");
        screenshot(&client, &shots, "9-flood").await;
        // The conversation draws the newest 200; "Earlier messages" draws the rest.
        let drawn = client
            .execute(
                "return [document.getElementById('messages').childElementCount, document.getElementById('earlier').hidden];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(drawn, json!([200, false]), "{drawn}");
        click(&client, Locator::Id("earlier")).await;
        wait_until(
            &client,
            "earlier messages drawn",
            "return document.getElementById('messages').childElementCount > 200 && [...document.querySelectorAll('.msg.bot .bubble')].some(b => b.textContent === 'echo: hello');",
            vec![],
            &play,
        )
        .await;

        // `play` restarts under the open page: it reconnects and starts over.
        let port = play.port;
        drop(play);
        std::fs::write(bot.join("main.lua"), MAIN_LUA).unwrap();
        let play = Play::start_on(dir.path(), port);
        wait_until(
            &client,
            "the page back on the new session",
            "return document.querySelectorAll('#messages .msg').length === 0 && document.getElementById('conn').className === 'conn up' && document.getElementById('user-select').value === 'o_play_user_1';",
            vec![],
            &play,
        )
        .await;
        type_and_send(&client, "again").await;
        wait_until(&client, "an answer from the new session", HAS_BOT_BUBBLE, vec![json!("echo: again")], &play).await;
        screenshot(&client, &shots, "10-restarted").await;
        client.close().await;
    });
}

#[test]
fn play_refuses_a_busy_port_and_broken_scripts_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bot = dir.path().join("bot");
    std::fs::create_dir_all(&bot).unwrap();
    std::fs::write(bot.join("main.lua"), MAIN_LUA).unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let run = |listen: &str| {
        Command::new(env!("CARGO_BIN_EXE_wechat-lua"))
            .current_dir(dir.path())
            .args(["play", "--scripts", "bot", "--listen", listen])
            .output()
            .unwrap()
    };
    let out = run(&format!("127.0.0.1:{port}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("error:") && stderr.contains("in use"),
        "{stderr}"
    );

    std::fs::write(
        bot.join("main.lua"),
        "wx.on(\"text\", function()\nthis is not lua\n",
    )
    .unwrap();
    let out = run("127.0.0.1:0");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("main.lua:2"), "{stderr}");
}
