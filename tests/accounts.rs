//! Several accounts on one host: `[[accounts]]` tables served at `/wechat/<name>` beside the
//! implicit `default` account at `/wechat`, each with its own token, retry cache, API client,
//! window tracker and `wx.store` space.

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;
use wechat_lua::config::{Config, Overrides};
use wechat_lua::fake_wechat::FakeWechat;
use wechat_lua::host::Host;
use wechat_lua::store::sqlite::SqliteStore;

use support::{fresh_nonce, now, signed_query_at, text_xml};

const DEFAULT_TOKEN: &str = "defaulttoken1";
const SHOP_TOKEN: &str = "shoptoken1";
const NEWS_TOKEN: &str = "newstoken1";

const BOT: &str = r#"
wx.on('text', function(msg)
  local c = msg.content
  if c == 'who' then return msg.account .. ' ' .. tostring(msg.appid) end
  if c == 'count' then
    return msg.account .. ' own=' .. wx.store.incr('n') .. ' global=' .. wx.store.global.incr('g')
  end
  if c == 'kf' then
    local ok, err = wx.kf.send(msg.from, 'hello from ' .. msg.account)
    return ok and 'sent' or ('failed ' .. tostring(err and err.errmsg))
  end
  if c == 'cross' then
    local _, err = wx.account('news').menu.get()
    return 'cross ' .. tostring(err and err.errcode)
  end
  if c == 'window' then
    return 'own=' .. wx.kf.window(msg.from).remaining
      .. ' news=' .. wx.account('news').kf.window(msg.from).remaining
  end
  if c == 'unknown' then
    local ok, err = pcall(wx.account, 'nope')
    return tostring(ok) .. ' ' .. tostring(err)
  end
  return 'ran ' .. msg.account .. ' ' .. wx.store.incr('runs:' .. msg.id)
end)
wx.route('GET', '/n', function() return tostring(wx.store.incr('n')) end)
"#;

/// A host with the default account and `shop` and `news`, all on `fake` (its first app is
/// the default account's), the scripts `BOT`.
struct Accounts {
    router: axum::Router,
    _host: Host,
    _dir: tempfile::TempDir,
}

async fn accounts(fake: &FakeWechat, base: &str) -> Accounts {
    accounts_on(fake, base, None).await
}

/// [`accounts`] on the store `store` (a Redis URL), or an in-memory one.
async fn accounts_on(fake: &FakeWechat, base: &str, store: Option<&str>) -> Accounts {
    fake.add_app("wxshop", "shopsecret000000000000000000000");
    fake.add_app("wxnews", "newssecret000000000000000000000");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    std::fs::write(dir.path().join("scripts/main.lua"), BOT).unwrap();
    let file = dir.path().join("wechat-lua.toml");
    std::fs::write(
        &file,
        format!(
            r#"
token = "{DEFAULT_TOKEN}"
appid = "{appid}"
appsecret = "{secret}"
api_base = "{base}"
scripts = "scripts"
data = "data"
{store}

[[accounts]]
name = "shop"
appid = "wxshop"
appsecret = "shopsecret000000000000000000000"
token = "{SHOP_TOKEN}"

[[accounts]]
name = "news"
appid = "wxnews"
appsecret = "newssecret000000000000000000000"
token = "{NEWS_TOKEN}"
"#,
            appid = fake.appid(),
            secret = fake.secret(),
            store = store
                .map(|url| format!("store = \"{url}\""))
                .unwrap_or_default(),
        ),
    )
    .unwrap();
    let overrides = Overrides {
        config: Some(file),
        ..Default::default()
    };
    let config = Config::load_with_env(&overrides, &Default::default()).unwrap();
    let mut builder = Host::builder(&config);
    if store.is_none() {
        builder = builder.store(Arc::new(SqliteStore::open_in_memory().unwrap()));
    }
    let host = builder.build().await.expect("host builds");
    Accounts {
        router: wechat_lua::server::app(host.state.clone()),
        _host: host,
        _dir: dir,
    }
}

impl Accounts {
    /// POSTs `body` to `path` signed with `token`; status and body.
    async fn post(&self, path: &str, token: &str, body: String) -> (u16, String) {
        let query = signed_query_at(token, now(), &fresh_nonce());
        let response = self
            .router
            .clone()
            .oneshot(
                Request::post(format!("{path}?{query}"))
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The reply's content to `text` from `oUSER` at `path`.
    async fn ask(&self, path: &str, token: &str, text: &str, msg_id: u64) -> String {
        let (status, body) = self
            .post(path, token, text_xml("oUSER", text, msg_id))
            .await;
        assert_eq!(status, 200, "{path}: {body}");
        support::element(&body, "Content").unwrap_or(body)
    }

    /// The body of an unsigned GET of `path` (metrics, health, a script's web route).
    async fn get(&self, path: &str) -> String {
        let response = self
            .router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8_lossy(&body).into_owned()
    }

    /// GET verification of `path` signed with `token`: the status.
    async fn verify(&self, path: &str, token: &str) -> u16 {
        let query = signed_query_at(token, now(), &fresh_nonce());
        self.router
            .clone()
            .oneshot(
                Request::get(format!("{path}?{query}&echostr=e1"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

#[tokio::test]
async fn each_path_accepts_only_its_own_accounts_signature() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts(&fake, &base).await;
    for (path, own) in [
        ("/wechat", DEFAULT_TOKEN),
        ("/wechat/shop", SHOP_TOKEN),
        ("/wechat/news", NEWS_TOKEN),
    ] {
        for token in [DEFAULT_TOKEN, SHOP_TOKEN, NEWS_TOKEN] {
            let expected = if token == own { 200 } else { 403 };
            assert_eq!(host.verify(path, token).await, expected, "GET {path}");
            let (status, _) = host.post(path, token, text_xml("oUSER", "who", 1)).await;
            assert_eq!(status, expected, "POST {path} signed with another token");
        }
    }
    let (status, body) = host
        .post("/wechat/nope", SHOP_TOKEN, text_xml("oUSER", "who", 2))
        .await;
    assert_eq!((status, body.as_str()), (404, "no such account"));
}

#[tokio::test]
async fn a_handler_sees_its_account_and_appid() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts(&fake, &base).await;
    let default = format!("default {}", fake.appid());
    assert_eq!(host.ask("/wechat", DEFAULT_TOKEN, "who", 1).await, default);
    assert_eq!(
        host.ask("/wechat/shop", SHOP_TOKEN, "who", 2).await,
        "shop wxshop"
    );
    let metrics = host.get("/metrics").await;
    for account in ["default", "shop"] {
        let line = format!("wechat_lua_account_messages_total{{account=\"{account}\"}}");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn the_same_msg_id_at_two_accounts_is_two_messages() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts(&fake, &base).await;
    // Each account runs the handler for MsgId 7 once: its own store space counts 1 each.
    assert_eq!(
        host.ask("/wechat/shop", SHOP_TOKEN, "x", 7).await,
        "ran shop 1"
    );
    assert_eq!(
        host.ask("/wechat/news", NEWS_TOKEN, "x", 7).await,
        "ran news 1"
    );
    // A retry at one account is still a retry: the first answer, nothing run again.
    assert_eq!(
        host.ask("/wechat/shop", SHOP_TOKEN, "x", 7).await,
        "ran shop 1"
    );
}

#[tokio::test]
async fn the_same_msg_id_at_two_accounts_is_two_messages_also_on_a_shared_store() {
    // On Redis the retry cache's claims go through the store, where one key per message would
    // make news's message a retry of shop's.
    let redis = redis_support::RedisServer::start();
    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts_on(&fake, &base, Some(&redis.url(0))).await;
    assert_eq!(
        host.ask("/wechat/shop", SHOP_TOKEN, "x", 7).await,
        "ran shop 1"
    );
    assert_eq!(
        host.ask("/wechat/news", NEWS_TOKEN, "x", 7).await,
        "ran news 1"
    );
    assert_eq!(
        host.ask("/wechat/news", NEWS_TOKEN, "x", 7).await,
        "ran news 1"
    );
}

#[tokio::test]
async fn wx_store_is_per_account_and_wx_store_global_is_shared() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts(&fake, &base).await;
    assert_eq!(
        host.ask("/wechat/shop", SHOP_TOKEN, "count", 1).await,
        "shop own=1 global=1"
    );
    assert_eq!(
        host.ask("/wechat/shop", SHOP_TOKEN, "count", 2).await,
        "shop own=2 global=2"
    );
    assert_eq!(
        host.ask("/wechat/news", NEWS_TOKEN, "count", 3).await,
        "news own=1 global=3"
    );
    assert_eq!(
        host.ask("/wechat", DEFAULT_TOKEN, "count", 4).await,
        "default own=1 global=4"
    );
}

#[tokio::test]
async fn api_calls_go_out_with_the_handling_accounts_token() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts(&fake, &base).await;
    assert_eq!(host.ask("/wechat/shop", SHOP_TOKEN, "kf", 1).await, "sent");
    assert_eq!(host.ask("/wechat/news", NEWS_TOKEN, "kf", 2).await, "sent");
    assert_eq!(host.ask("/wechat", DEFAULT_TOKEN, "kf", 3).await, "sent");
    let sends: Vec<(Option<String>, String)> = fake
        .calls_to(support::fake::SEND)
        .into_iter()
        .map(|call| {
            let text = call.body.unwrap()["text"]["content"]
                .as_str()
                .unwrap()
                .to_string();
            (call.appid, text)
        })
        .collect();
    assert_eq!(
        sends,
        [
            (Some("wxshop".to_string()), "hello from shop".to_string()),
            (Some("wxnews".to_string()), "hello from news".to_string()),
            (Some(fake.appid()), "hello from default".to_string()),
        ]
    );

    // wx.account(name) acts for the account named, from another account's handler (the
    // fake has no menu: 46003, but the call was made, with news's token).
    assert_eq!(
        host.ask("/wechat/shop", SHOP_TOKEN, "cross", 4).await,
        "cross 46003"
    );
    let menu = support::fake::last(&fake, "/cgi-bin/menu/get");
    assert_eq!(menu.appid.as_deref(), Some("wxnews"));
}

#[tokio::test]
async fn the_customer_service_window_is_per_account() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts(&fake, &base).await;
    // The user wrote to shop (this message), never to news.
    assert_eq!(
        host.ask("/wechat/shop", SHOP_TOKEN, "window", 1).await,
        "own=5 news=0"
    );
}

#[tokio::test]
async fn an_unknown_account_name_is_a_located_error() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts(&fake, &base).await;
    let err = host.ask("/wechat/shop", SHOP_TOKEN, "unknown", 1).await;
    assert!(err.starts_with("false "), "{err}");
    assert!(err.contains("main.lua:"), "the script's line: {err}");
    assert!(
        err.contains("no account named `nope` (configured: default, news, shop)"),
        "{err}"
    );
}

fn load(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wechat-lua.toml");
    std::fs::write(&file, toml).unwrap();
    let overrides = Overrides {
        config: Some(file),
        ..Default::default()
    };
    match Config::load_with_env(&overrides, &Default::default()) {
        Ok(_) => "loaded".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn config_errors_name_the_accounts_table_line() {
    let table = |name: &str, appid: &str| {
        format!("[[accounts]]\nname = \"{name}\"\nappid = \"{appid}\"\ntoken = \"tok123\"\n\n")
    };
    let duplicate = format!(
        "token = \"t0ken\"\n\n{}{}",
        table("a", "wx1"),
        table("a", "wx2")
    );
    let err = load(&duplicate);
    assert!(
        err.contains("line 8") && err.contains("name `a` is used by another account"),
        "{err}"
    );
    let err = load(&format!("{}{}", table("a", "wx1"), table("b", "wx1")));
    assert!(
        err.contains("line 6") && err.contains("appid `wx1`"),
        "{err}"
    );
    let err = load(&table("a/b", "wx1"));
    assert!(
        err.contains("line 1") && err.contains("not URL-safe"),
        "{err}"
    );
    let err = load(&table("default", "wx1"));
    assert!(err.contains("`default`"), "{err}");
    let err = load(&format!(
        "{}encoding_aes_key = \"short\"\n",
        table("a", "wx1")
    ));
    assert!(
        err.contains("line 1") && err.contains("encoding_aes_key"),
        "{err}"
    );
    assert!(!err.contains("short"), "no key in the message: {err}");
    let err = load(&format!("appid = \"wx1\"\n{}", table("a", "wx1")));
    assert!(err.contains("appid `wx1`"), "{err}");
    assert_eq!(
        load(&format!("{}{}", table("a", "wx1"), table("b", "wx2"))),
        "loaded"
    );
}

#[tokio::test]
async fn a_queued_send_goes_out_again_with_its_own_accounts_token() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts(&fake, &base).await;
    // Busy on every try of the first send: it is queued in the one outbox of the host.
    fake.fail_next(support::fake::SEND, -1, 4);
    let answer = host.ask("/wechat/news", NEWS_TOKEN, "kf", 1).await;
    assert!(answer.starts_with("failed"), "{answer}");
    let delivered = |fake: &FakeWechat| {
        fake.calls_to(support::fake::SEND)
            .into_iter()
            .filter(|c| {
                c.answer
                    .as_ref()
                    .is_some_and(|a| a.json.as_ref().is_some_and(|j| j["errcode"] == 0))
            })
            .collect::<Vec<_>>()
    };
    let waited = std::time::Instant::now();
    while delivered(&fake).is_empty() && waited.elapsed() < std::time::Duration::from_secs(20) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let sent = delivered(&fake);
    assert_eq!(sent.len(), 1, "the queued send went out once");
    assert_eq!(sent[0].appid.as_deref(), Some("wxnews"));
}

#[tokio::test]
async fn an_accounts_own_scripts_reload_on_their_own() {
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
        "wx.on('text', function(msg) return 'own ' .. msg.account end)\n",
    )
    .unwrap();
    let file = dir.path().join("wechat-lua.toml");
    std::fs::write(
        &file,
        format!(
            "token = \"{DEFAULT_TOKEN}\"\nscripts = \"shared\"\n\n\
             [[accounts]]\nname = \"shop\"\nappid = \"wxshop\"\ntoken = \"{SHOP_TOKEN}\"\nscripts = \"shop\"\n\n\
             [[accounts]]\nname = \"news\"\nappid = \"wxnews\"\ntoken = \"{NEWS_TOKEN}\"\n"
        ),
    )
    .unwrap();
    let overrides = Overrides {
        config: Some(file),
        ..Default::default()
    };
    let config = Config::load_with_env(&overrides, &Default::default()).unwrap();
    let host = Host::builder(&config)
        .store(Arc::new(SqliteStore::open_in_memory().unwrap()))
        .build()
        .await
        .unwrap();
    let accounts = Accounts {
        router: wechat_lua::server::app(host.state.clone()),
        _host: host,
        _dir: dir,
    };
    assert_eq!(
        accounts.ask("/wechat/shop", SHOP_TOKEN, "a", 1).await,
        "own shop"
    );
    let scripts: Vec<(String, &str)> = accounts
        ._host
        .state
        .accounts
        .health()
        .into_iter()
        .map(|a| (a.name, a.scripts))
        .collect();
    assert_eq!(
        scripts,
        [
            ("default".to_string(), "shared"),
            ("news".to_string(), "shared"),
            ("shop".to_string(), "own")
        ]
    );
    assert_eq!(
        accounts.ask("/wechat/news", NEWS_TOKEN, "a", 2).await,
        "shared news"
    );

    // A broken edit of shop's scripts: its reload fails and keeps the last good set; the
    // shared scripts (default, news) are not touched, and reload on their own.
    std::fs::write(
        accounts._dir.path().join("shop/main.lua"),
        "wx.on('text', function() return 'broken' end\n",
    )
    .unwrap();
    std::fs::write(
        accounts._dir.path().join("shared/main.lua"),
        "wx.on('text', function(msg) return 'shared v2 ' .. msg.account end)\n",
    )
    .unwrap();
    let state = &accounts._host.state;
    assert!(state
        .accounts
        .get("shop")
        .unwrap()
        .dispatcher
        .scripts()
        .reload()
        .is_err());
    state.dispatcher.scripts().reload().unwrap();
    state
        .accounts
        .get("news")
        .unwrap()
        .dispatcher
        .scripts()
        .reload()
        .unwrap();
    assert_eq!(
        accounts.ask("/wechat/shop", SHOP_TOKEN, "a", 3).await,
        "own shop"
    );
    assert_eq!(
        accounts.ask("/wechat/news", NEWS_TOKEN, "a", 4).await,
        "shared v2 news"
    );
    assert_eq!(
        accounts.ask("/wechat", DEFAULT_TOKEN, "a", 5).await,
        "shared v2 default"
    );
}

#[tokio::test]
async fn accounts_without_scripts_of_their_own_share_one_pool_of_lua_states() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts(&fake, &base).await;
    let state = &host._host.state;
    let shared = state.dispatcher.scripts();
    for name in ["shop", "news"] {
        let account = state.accounts.get(name).unwrap();
        assert!(
            Arc::ptr_eq(account.dispatcher.scripts(), shared),
            "{name} runs on the shared pool"
        );
        assert!(
            Arc::ptr_eq(
                account.dispatcher.retry_cache(),
                state.dispatcher.retry_cache()
            ),
            "{name} shares the retry cache (retry_cache_mb bounds the instance)"
        );
    }
    let states = shared.states();
    // Messages to every account, one after another, run on the states already built.
    for (i, (path, token, name)) in [
        ("/wechat", DEFAULT_TOKEN, "default "),
        ("/wechat/shop", SHOP_TOKEN, "shop "),
        ("/wechat/news", NEWS_TOKEN, "news "),
    ]
    .into_iter()
    .enumerate()
    {
        let who = host.ask(path, token, "who", 100 + i as u64).await;
        assert!(who.starts_with(name), "{who}");
    }
    assert_eq!(shared.states(), states, "no state per account");
}

#[tokio::test]
async fn an_account_added_while_serving_is_answered_by_the_shared_scripts() {
    use wechat_lua::account::AccountSettings;
    use wechat_lua::config::Secret;

    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts(&fake, &base).await;
    fake.add_app("wxlate", "latesecret000000000000000000000");
    let registry = host._host.state.accounts.clone();
    let (status, _) = host
        .post("/wechat/late", "latetoken1", text_xml("oUSER", "who", 1))
        .await;
    assert_eq!(status, 404, "not served before it is added");

    let store: Arc<dyn wechat_lua::store::Store> = host._host.state.store.clone();
    let config = Config::load_with_env(&Overrides::default(), &Default::default()).unwrap();
    let client = wechat_lua::host::client_for(
        &config,
        "wxlate",
        &Secret::new("latesecret000000000000000000000"),
        &store,
        &base,
        registry.api_http(),
    )
    .unwrap();
    let settings = AccountSettings::new("late", Secret::new("latetoken1")).appid("wxlate");
    let account = registry.shared_account(&settings, Some(client)).unwrap();
    assert!(registry.insert(account).is_none());

    assert_eq!(
        host.ask("/wechat/late", "latetoken1", "who", 2).await,
        "late wxlate"
    );
    assert_eq!(
        host.ask("/wechat/late", "latetoken1", "kf", 3).await,
        "sent"
    );
    let send = support::fake::last(&fake, support::fake::SEND);
    assert_eq!(send.appid.as_deref(), Some("wxlate"), "with its own token");
    // Its store space is its own, and wx.account finds it from another account's handler.
    assert_eq!(
        host.ask("/wechat/late", "latetoken1", "count", 4).await,
        "late own=1 global=1"
    );
    assert_eq!(
        host.ask("/wechat/shop", SHOP_TOKEN, "count", 5).await,
        "shop own=1 global=2"
    );
    assert!(
        Arc::ptr_eq(
            registry.get("late").unwrap().dispatcher.scripts(),
            host._host.state.dispatcher.scripts()
        ),
        "no pool of its own"
    );

    assert!(registry.remove("late").is_some());
    let (status, _) = host
        .post("/wechat/late", "latetoken1", text_xml("oUSER", "who", 6))
        .await;
    assert_eq!(status, 404, "not served once removed");
    // A name that cannot be a path segment is refused.
    let bad = AccountSettings::new("no/slash", Secret::new("t0ken123"));
    assert!(registry.shared_account(&bad, None).is_err());
}

#[tokio::test]
async fn healthz_reports_every_account_without_secrets() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts(&fake, &base).await;
    let text = host.get("/healthz").await;
    for secret in [
        DEFAULT_TOKEN,
        SHOP_TOKEN,
        NEWS_TOKEN,
        "shopsecret",
        "newssecret",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let health: serde_json::Value = serde_json::from_str(&text).unwrap();
    let accounts: Vec<(String, bool, String, u64)> = health["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["api"].as_bool().unwrap(),
                a["scripts"].as_str().unwrap().to_string(),
                a["scripts_generation"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected =
        ["default", "news", "shop"].map(|name| (name.to_string(), true, "shared".to_string(), 1));
    assert_eq!(accounts, expected);
}

#[tokio::test]
async fn the_first_account_with_an_api_added_while_serving_starts_the_outbox_worker() {
    use wechat_lua::account::AccountSettings;
    use wechat_lua::config::Secret;

    // No account of the host has API credentials at start: no outbox queue, no worker (as an
    // open platform whose own account has no AppSecret).
    let (fake, base) = FakeWechat::start().await.unwrap();
    fake.add_app("wxlate", "latesecret000000000000000000000");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.lua"), BOT).unwrap();
    let overrides = Overrides {
        scripts: Some(dir.path().to_path_buf()),
        data: Some(dir.path().join("data")),
        ..Default::default()
    };
    let env = [("WECHAT_TOKEN".to_string(), DEFAULT_TOKEN.to_string())].into();
    let config = Config::load_with_env(&overrides, &env).unwrap();
    let store: Arc<dyn wechat_lua::store::Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let built = Host::builder(&config)
        .store(store.clone())
        .build()
        .await
        .unwrap();
    let registry = built.state.accounts.clone();
    assert!(registry.outbox().is_none());
    let host = Accounts {
        router: wechat_lua::server::app(built.state.clone()),
        _host: built,
        _dir: dir,
    };

    let client = wechat_lua::host::client_for(
        &config,
        "wxlate",
        &Secret::new("latesecret000000000000000000000"),
        &store,
        &base,
        registry.api_http(),
    )
    .unwrap();
    let settings = AccountSettings::new("late", Secret::new("latetoken1")).appid("wxlate");
    registry.insert(registry.shared_account(&settings, Some(client)).unwrap());
    assert!(registry.outbox().is_some(), "its client made the queue");

    // Busy on every try of the send: queued, and sent again by the worker started for it.
    fake.fail_next(support::fake::SEND, -1, 4);
    let answer = host.ask("/wechat/late", "latetoken1", "kf", 1).await;
    assert!(answer.starts_with("failed"), "{answer}");
    let delivered = |fake: &FakeWechat| {
        fake.calls_to(support::fake::SEND)
            .into_iter()
            .filter(|c| {
                c.answer
                    .as_ref()
                    .is_some_and(|a| a.json.as_ref().is_some_and(|j| j["errcode"] == 0))
            })
            .count()
    };
    let waited = std::time::Instant::now();
    while delivered(&fake) == 0 && waited.elapsed() < std::time::Duration::from_secs(20) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(delivered(&fake), 1, "the queued send went out once");
    assert_eq!(
        support::fake::last(&fake, support::fake::SEND)
            .appid
            .as_deref(),
        Some("wxlate")
    );
}

#[tokio::test]
async fn a_sender_named_like_another_accounts_key_cannot_answer_its_messages() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts(&fake, &base).await;
    // At the default account (whose keys have no prefix), a FromUserName that spells shop's
    // key for oUSER's MsgId 9, then shop's own message 9 from oUSER: two messages.
    let (status, body) = host
        .post("/wechat", DEFAULT_TOKEN, text_xml("shop/oUSER", "x", 9))
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("ran default 1"), "{body}");
    assert_eq!(
        host.ask("/wechat/shop", SHOP_TOKEN, "x", 9).await,
        "ran shop 1"
    );
}

#[tokio::test]
async fn web_routes_act_for_the_default_account_on_the_shared_states() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let host = accounts(&fake, &base).await;
    // shop's handler counts in shop's space; a route run on the same states counts in the
    // default account's, as does the default account's handler afterwards.
    assert_eq!(
        host.ask("/wechat/shop", SHOP_TOKEN, "count", 1).await,
        "shop own=1 global=1"
    );
    assert_eq!(host.get("/n").await, "1");
    assert_eq!(
        host.ask("/wechat", DEFAULT_TOKEN, "count", 2).await,
        "default own=2 global=2"
    );
}
