//! Sign-in with WeChat in a real browser: the real binary serves `examples/shop` against the
//! fake WeChat API, and headless Chromium (driven over WebDriver by `fantoccini` through
//! Debian's `chromium-driver`) opens `/orders`, follows the redirects through `/oauth/login`,
//! the fake's sign-in page and `/oauth/callback`, and lands on the page listing the signed-in
//! user's orders with a JS-SDK config whose signature is checked here against the fake's
//! jsapi_ticket and the URL the browser shows. A screenshot is kept under
//! `target/screenshots/`, its path printed.
//!
//! The browser is required: without `chromium` and `chromedriver` this test fails, saying what
//! to install (`.ci/run` installs both). A second test checks that a browser test which
//! panics leaves no chromedriver or Chromium process behind.

mod support;

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::json;
use sha1::{Digest, Sha1};

use support::browser::Browser;
use support::{env_refs, free_port, text_xml, FakeApi, Server};

fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("screenshots")
        .join("shop-orders.png")
}

#[test]
fn orders_page_signs_in_through_wechat_and_carries_a_valid_jssdk_config() {
    let fake = FakeApi::start();
    fake.fake.set_oauth_user("o_shopper");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    let config = dir.path().join("wechat-lua.toml");
    std::fs::write(
        &config,
        format!(
            "scripts = {:?}\ndata = \"data\"\n\n[oauth]\nscope = \"snsapi_base\"\npublic_url = \"{public_url}\"\n",
            shop.to_str().unwrap()
        ),
    )
    .unwrap();
    let env = fake.env();
    let server = Server::start_on(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        &["--config", config.to_str().unwrap()],
        &env_refs(&env),
    );
    assert!(
        !server.log.lock().unwrap().iter().any(|l| l.contains(
            &std::fs::read_to_string(dir.path().join("data/cookie_secret"))
                .unwrap()
                .trim()
                .to_string()
        )),
        "the cookie secret is never logged"
    );

    // Orders placed in the chat: two by the visitor, one by someone else.
    for (n, (from, text)) in [
        ("o_shopper", "buy tea"),
        ("o_someone_else", "buy coffee"),
        ("o_shopper", "buy green & <b>black</b> tea"),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = server.post(&text_xml(from, text, 9000 + n as u64));
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("placed"), "{body}");
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // The page's JS-SDK script comes from WeChat's CDN, which a test machine may not
        // reach: the page is ready when its document is, not when every script gave up.
        let client = Browser::start(480, 800, "eager").await;

        client
            .goto(&format!("{public_url}/orders"))
            .await
            .expect("open /orders");
        let mut landed = client.current_url().await.unwrap();
        // The browser carries the sign-in URL's `#wechat_redirect` through the redirects
        // (a Location without a fragment keeps the request's): one reason the JS-SDK signs
        // the URL without its fragment.
        landed.set_fragment(None);
        assert_eq!(
            landed.as_str(),
            format!("{public_url}/orders"),
            "back on the page after sign-in"
        );

        let text = client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("Signed in as o_shopper"), "{text}");
        assert!(text.contains("#42 tea"), "{text}");
        assert!(
            text.contains("#44 green & <b>black</b> tea"),
            "escaped: {text}"
        );
        assert!(!text.contains("coffee"), "another user's order: {text}");
        let orders = client.find_all(Locator::Css("li.order")).await.unwrap();
        assert_eq!(orders.len(), 2);
        let subscribe = client
            .find(Locator::Css("wx-open-subscribe"))
            .await
            .unwrap()
            .attr("template")
            .await
            .unwrap();
        assert!(
            subscribe.is_some_and(|t| t.starts_with("FAKE_SUB_")),
            "the button names the account's template"
        );

        // The JS-SDK config, signed for the URL this browser shows.
        let config = client
            .execute(
                "return JSON.parse(document.getElementById('jssdk-config').textContent)",
                vec![],
            )
            .await
            .expect("the page has a JS-SDK config");
        let ticket = fake
            .fake
            .current_jsapi_ticket()
            .expect("the host fetched a jsapi_ticket");
        let href = client
            .execute("return location.href.split('#')[0]", vec![])
            .await
            .unwrap();
        let string1 = format!(
            "jsapi_ticket={ticket}&noncestr={}&timestamp={}&url={}",
            config["nonceStr"].as_str().unwrap(),
            config["timestamp"].as_i64().unwrap(),
            href.as_str().unwrap()
        );
        let expected = hex::encode(Sha1::digest(string1.as_bytes()));
        assert_eq!(config["signature"], expected, "{config}");
        assert_eq!(config["appId"], wechat_lua::fake_wechat::FAKE_APPID);
        assert_eq!(config["openTagList"], json!(["wx-open-subscribe"]));

        // The session cookie is HttpOnly: the page's scripts cannot read it.
        let cookies = client
            .execute("return document.cookie", vec![])
            .await
            .unwrap();
        assert!(
            !cookies.as_str().unwrap_or("").contains("wl_session"),
            "{cookies}"
        );

        let png = client.screenshot().await.expect("a screenshot");
        let path = screenshot_path();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &png).unwrap();
        // Straight to stderr, past the test harness's capture, so the path is in the log.
        let _ = writeln!(std::io::stderr(), "screenshot: {}", path.display());

        client.close().await;
    });

    // The visitor went through the fake's sign-in page and the code was exchanged once.
    assert_eq!(
        fake.fake
            .calls_to(wechat_lua::api::oauth::EXCHANGE_PATH)
            .len(),
        1
    );
    assert!(server.wait_for_log("signed in with WeChat", Duration::from_secs(5)));
    // The log names the visitor by a tag, never by their OpenID.
    assert!(!server.logged("o_shopper"), "an OpenID reached the log");
}

/// The live (not zombie) processes in process group `group`, by name.
fn live_processes_in_group(group: u32) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        // `pid (comm) state ppid pgrp …`; the name may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == group.to_string() {
            names.push(stat[open + 1..close].to_string());
        }
    }
    names
}

#[test]
fn a_browser_test_that_panics_leaves_no_browser_process_behind() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = None;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async {
            let client = Browser::start(480, 800, "normal").await;
            client.goto("about:blank").await.expect("open a blank page");
            group = Some(client.process_group());
            let running = live_processes_in_group(client.process_group());
            assert!(
                running.iter().any(|name| name == "chromedriver")
                    && running
                        .iter()
                        .any(|name| name.starts_with("chrom") && name != "chromedriver"),
                "chromedriver and Chromium run in the browser's process group: {running:?}"
            );
            panic!("a browser test failing before it closes its session");
        })
    }));
    assert!(outcome.is_err(), "the test body panicked");
    let group = group.expect("the browser started");
    let started = Instant::now();
    loop {
        let left = live_processes_in_group(group);
        if left.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "left running after the test panicked: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
