//! The open platform (第三方平台) against the fake WeChat: the component_access_token from the
//! pushed ticket, authorization, authorizer tokens from rotating refresh tokens (also with two
//! hosts on one Redis), and the HTTP side: ticket pushes, the authorization redirect, an
//! authorized account's messages through the scripts, refusals and the release test.

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{element, event_xml, text_xml};
use wechat_lua::config::{Config, Overrides};
use wechat_lua::host::Host;

use wechat_lua::api::component::{ComponentClient, ComponentSettings};
use wechat_lua::api::oauth::{Scope, COMPONENT_EXCHANGE_PATH, EXCHANGE_PATH};
use wechat_lua::api::KfMessage;
use wechat_lua::fake_wechat::FakeWechat;
use wechat_lua::store::{keys, Store};

const COMPONENT: &str = "wxcomponent0000001";
const COMPONENT_SECRET: &str = "componentsecret0000000000000000";
const COMPONENT_TOKEN: &str = "componenttoken1";
const COMPONENT_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const AUTHORIZER: &str = "wxauthorizer000001";

async fn fake() -> (FakeWechat, String) {
    let (fake, base) = FakeWechat::start().await.unwrap();
    fake.component_setup(COMPONENT, COMPONENT_SECRET, COMPONENT_TOKEN, COMPONENT_KEY);
    (fake, base)
}

fn memory_store() -> Arc<dyn Store> {
    Arc::new(wechat_lua::store::SqliteStore::open_in_memory().unwrap())
}

fn client(base: &str, store: &Arc<dyn Store>) -> ComponentClient {
    ComponentClient::new(
        ComponentSettings::new(COMPONENT, COMPONENT_SECRET, base),
        store.clone(),
    )
    .unwrap()
}

#[tokio::test]
async fn before_the_first_ticket_calls_fail_clearly_without_calling_wechat() {
    let (fake, base) = fake().await;
    let store = memory_store();
    let component = client(&base, &store);
    for _ in 0..3 {
        let err = component.pre_auth_code().await.unwrap_err().to_string();
        assert!(err.contains("component_verify_ticket"), "{err}");
    }
    assert!(fake.calls().is_empty(), "nothing sent: {:?}", fake.calls());
    component
        .save_ticket(&fake.component_issue_ticket())
        .await
        .unwrap();
    assert!(component
        .pre_auth_code()
        .await
        .unwrap()
        .starts_with("preauthcode@@@"));
    assert_eq!(fake.component_token_fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_component_token_is_fetched_once_under_contention_and_again_after_a_rejection() {
    let (fake, base) = fake().await;
    let store = memory_store();
    let component = client(&base, &store);
    component
        .save_ticket(&fake.component_issue_ticket())
        .await
        .unwrap();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let component = component.clone();
            tokio::spawn(async move { component.pre_auth_code().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        fake.component_token_fetches(),
        1,
        "one fetch for 20 callers"
    );
    // WeChat rejects it (42001): dropped, fetched again once, the call goes through.
    fake.component_expire_tokens();
    component.pre_auth_code().await.unwrap();
    assert_eq!(fake.component_token_fetches(), 2);
    // A second client on the same store (a restart) reuses the stored token.
    let restarted = client(&base, &store);
    restarted.pre_auth_code().await.unwrap();
    assert_eq!(fake.component_token_fetches(), 2);
    // The recorded calls (what `chat` shows) carry no secret.
    let recorded = format!("{:?}", fake.calls());
    assert!(!recorded.contains(COMPONENT_SECRET), "{recorded}");
}

#[tokio::test]
async fn an_authorizer_acts_through_its_token_and_its_refresh_token_rotates() {
    let (fake, base) = fake().await;
    let store = memory_store();
    let component = client(&base, &store);
    component
        .save_ticket(&fake.component_issue_ticket())
        .await
        .unwrap();
    let code = fake.component_authorize(AUTHORIZER);
    let auth = component.complete_authorization(&code).await.unwrap();
    assert_eq!(auth.authorizer_appid, AUTHORIZER);
    assert_eq!(auth.func_info, vec![1, 2]);
    let refresh_key = keys::authorizer_refresh_key(COMPONENT, AUTHORIZER);
    assert_eq!(
        store.get(&refresh_key).await.unwrap(),
        fake.authorizer_refresh_token(AUTHORIZER)
    );

    let api = component.authorizer(AUTHORIZER).unwrap();
    let hello = KfMessage::Text {
        content: "hi".into(),
    };
    api.kf().send("o_user", &hello).await.unwrap();
    assert_eq!(
        fake.authorizer_token_fetches(),
        1,
        "api_query_auth's token is used as it is"
    );
    let sent = fake.calls_to("/cgi-bin/message/custom/send");
    assert_eq!(
        sent[0].appid.as_deref(),
        Some(AUTHORIZER),
        "as the authorizer"
    );

    // Its token expires: a new one from the refresh token, which rotates; the new one is kept.
    let before = store.get(&refresh_key).await.unwrap();
    fake.expire_tokens_of(AUTHORIZER);
    api.kf().send("o_user", &hello).await.unwrap();
    assert_eq!(fake.authorizer_token_fetches(), 2);
    let after = store.get(&refresh_key).await.unwrap();
    assert_ne!(before, after, "rotated");
    assert_eq!(
        after,
        fake.authorizer_refresh_token(AUTHORIZER),
        "the one that works"
    );

    // Withdrawn: tokens deleted here, later calls fail saying why.
    component.forget_authorizer(AUTHORIZER).await.unwrap();
    assert_eq!(store.get(&refresh_key).await.unwrap(), None);
    assert_eq!(store.get(&keys::token_key(AUTHORIZER)).await.unwrap(), None);
    let err = api
        .kf()
        .send("o_user", &hello)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not authorized") || err.contains("withdrew"),
        "{err}"
    );
    let status = component.authorizer_status(AUTHORIZER).await.unwrap();
    assert!(!status.authorized);
}

/// An authorizer has no AppSecret here: its 网页授权 goes through the platform. The sign-in
/// URL names the platform, and the code is exchanged at the component endpoint with the
/// component_access_token (fetched again when WeChat rejects it), never a secret.
#[tokio::test]
async fn an_authorizers_web_sign_in_goes_through_the_platform() {
    let (fake, base) = fake().await;
    let store = memory_store();
    let component = client(&base, &store);
    component
        .save_ticket(&fake.component_issue_ticket())
        .await
        .unwrap();
    let code = fake.component_authorize(AUTHORIZER);
    component.complete_authorization(&code).await.unwrap();
    let api = component.authorizer(AUTHORIZER).unwrap();

    let url = api
        .oauth()
        .authorize_url("https://shop.example/cb", Scope::Base, "s1");
    assert!(
        url.contains(&format!("?appid={AUTHORIZER}&redirect_uri=")),
        "{url}"
    );
    assert!(
        url.ends_with(&format!(
            "&state=s1&component_appid={COMPONENT}#wechat_redirect"
        )),
        "{url}"
    );
    // The fake's sign-in page takes it (it refuses an authorizer's appid without the platform).
    fake.set_oauth_user("o_page_visitor");
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let page = browser
        .get(url.split('#').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 302, "{:?}", page.text().await);
    let back = url::Url::parse(page.headers()["location"].to_str().unwrap()).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();

    let visitor = fake.issue_component_oauth_code(AUTHORIZER, "o_visitor", "snsapi_base");
    let token = api.oauth().exchange(&visitor).await.unwrap();
    assert_eq!(token.openid, "o_visitor");
    let calls = fake.calls_to(COMPONENT_EXCHANGE_PATH);
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.query_param("appid"), Some(AUTHORIZER));
    assert_eq!(call.query_param("component_appid"), Some(COMPONENT));
    assert_eq!(call.query_param("grant_type"), Some("authorization_code"));
    assert_eq!(call.query_param("secret"), None, "no secret: {call:?}");
    assert!(fake.calls_to(EXCHANGE_PATH).is_empty());

    // Each code works once, as for any account.
    let again = api.oauth().exchange(&visitor).await.unwrap_err();
    assert_eq!(again.errcode(), 40163, "{again}");

    // The component token expired: fetched again, and the exchange goes through.
    let fetches = fake.component_token_fetches();
    fake.component_expire_tokens();
    let token = api.oauth().exchange(&code).await.unwrap();
    assert_eq!(token.openid, "o_page_visitor");
    assert_eq!(fake.component_token_fetches(), fetches + 1);
    // None of it used the authorizer's own access_token beyond what authorization gave.
    assert_eq!(fake.authorizer_token_fetches(), 1);
}

#[tokio::test]
async fn wechats_errors_reach_the_caller() {
    let (fake, base) = fake().await;
    let store = memory_store();
    let component = client(&base, &store);
    // A ticket WeChat never issued.
    component.save_ticket("ticket@@@forged").await.unwrap();
    let err = component.pre_auth_code().await.unwrap_err();
    assert_eq!(err.errcode(), 61006, "{err}");
    // An older ticket than the latest.
    let old = fake.component_issue_ticket();
    fake.component_issue_ticket();
    component.save_ticket(&old).await.unwrap();
    assert_eq!(
        component.pre_auth_code().await.unwrap_err().errcode(),
        61005
    );
    component
        .save_ticket(&fake.component_issue_ticket())
        .await
        .unwrap();
    // An unknown authorization code.
    let err = component.complete_authorization("nope").await.unwrap_err();
    assert_eq!(err.errcode(), 61009, "{err}");
    // A refresh token WeChat no longer takes (the account authorized again elsewhere).
    let code = fake.component_authorize(AUTHORIZER);
    component.complete_authorization(&code).await.unwrap();
    fake.component_authorize(AUTHORIZER);
    fake.expire_tokens_of(AUTHORIZER);
    let err = component
        .authorizer(AUTHORIZER)
        .unwrap()
        .kf()
        .send(
            "o_user",
            &KfMessage::Text {
                content: "x".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.errcode(), 61023, "{err}");
    assert!(err.to_string().contains("authorize"), "{err}");
}

/// Two hosts on one Redis refresh the same authorizer's token at once, round after round:
/// one fetch per round, and the refresh token kept at the end is the one WeChat takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_on_redis_never_lose_a_refresh_token_rotation() {
    let server = redis_support::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (fake, base) = fake().await;
    let url = server.url(0);
    let store_a = wechat_lua::store::open(Some(&url), dir.path())
        .await
        .unwrap();
    let store_b = wechat_lua::store::open(Some(&url), dir.path())
        .await
        .unwrap();
    let (a, b) = (client(&base, &store_a), client(&base, &store_b));
    a.save_ticket(&fake.component_issue_ticket()).await.unwrap();
    let code = fake.component_authorize(AUTHORIZER);
    a.complete_authorization(&code).await.unwrap();
    let hello = KfMessage::Text {
        content: "hi".into(),
    };
    const ROUNDS: u64 = 5;
    for round in 1..=ROUNDS {
        fake.expire_tokens_of(AUTHORIZER);
        let sends: Vec<_> = (0..16)
            .map(|i| {
                let host = if i % 2 == 0 { a.clone() } else { b.clone() };
                let hello = hello.clone();
                tokio::spawn(async move {
                    host.authorizer(AUTHORIZER)
                        .unwrap()
                        .kf()
                        .send("o_user", &hello)
                        .await
                })
            })
            .collect();
        for send in sends {
            send.await.unwrap().unwrap();
        }
        assert_eq!(
            fake.authorizer_token_fetches(),
            1 + round,
            "one fetch in round {round} for both hosts"
        );
    }
    let kept = store_b
        .get(&keys::authorizer_refresh_key(COMPONENT, AUTHORIZER))
        .await
        .unwrap();
    assert_eq!(kept, fake.authorizer_refresh_token(AUTHORIZER));
    assert_eq!(
        a.component_token_status().fetches + b.component_token_status().fetches,
        1
    );
}

// ---------------------------------------------------------------------------------------
// The HTTP side: a host with `[component]` served on a socket, driven by the fake's pushes.
// ---------------------------------------------------------------------------------------

const BOT: &str = r#"
wx.on('text', function(msg)
  local c = msg.content
  if c == 'who' then return msg.account .. ' ' .. tostring(msg.appid) end
  if c == 'kf' then
    local ok, err = wx.kf.send(msg.from, 'kf from ' .. msg.account)
    return ok and 'sent' or ('failed ' .. tostring(err and err.errmsg))
  end
  if c == 'kf-queued' then
    local ok, err = wx.kf.send(msg.from, 'later from ' .. msg.account)
    return ok and 'sent' or (err.queued and 'queued' or ('failed ' .. tostring(err.errmsg)))
  end
  if c:sub(1, 6) == 'cross ' then
    local ok, err = wx.account(c:sub(7)).kf.send('o_user', 'cross from ' .. msg.account)
    return ok and 'cross sent' or ('cross failed ' .. tostring(err and err.errmsg))
  end
  if c == 'oauth-url' then
    return (wx.oauth.url{redirect_uri = 'https://shop.example/cb', state = 's1'})
  end
  if c:sub(1, 6) == 'oauth ' then
    local t, err = wx.oauth.exchange(c:sub(7))
    return t and t.openid or ('oauth failed ' .. tostring(err.errcode))
  end
  if c == 'events' then
    return tostring(wx.store.global.get('authorized')) .. ' / ' .. tostring(wx.store.global.get('unauthorized'))
  end
  return 'echo ' .. c
end)
wx.on('component.authorized', function(ev)
  wx.store.global.set('authorized', ev.appid .. ' ' .. ev.event .. ' ' .. #ev.func_info)
end)
wx.on('component.unauthorized', function(ev)
  wx.store.global.set('unauthorized', ev.appid .. ' ' .. ev.event)
end)
"#;

/// A host with the default account and `[component]`, its API the fake, served on a socket.
struct Served {
    host: Host,
    url: String,
    fake: FakeWechat,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Served {
    /// The authorizer's refresh token as the host stored it.
    async fn stored_refresh_token(&self) -> Option<String> {
        self.store
            .get(&keys::authorizer_refresh_key(COMPONENT, AUTHORIZER))
            .await
            .unwrap()
    }

    async fn start() -> Served {
        Served::start_on(memory_store()).await
    }

    async fn start_on(store: Arc<dyn Store>) -> Served {
        let (fake, base) = fake().await;
        Served::start_with(store, fake, &base).await
    }

    /// A host on `store` calling `fake` at `base` (two hosts may share both).
    async fn start_with(store: Arc<dyn Store>, fake: FakeWechat, base: &str) -> Served {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("scripts")).unwrap();
        std::fs::write(dir.path().join("scripts/main.lua"), BOT).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::fs::write(
            dir.path().join("wechat-lua.toml"),
            format!(
                "token = \"defaulttoken1\"\n[component]\nappid = \"{COMPONENT}\"\nappsecret = \"{COMPONENT_SECRET}\"\ntoken = \"{COMPONENT_TOKEN}\"\nencoding_aes_key = \"{COMPONENT_KEY}\"\npublic_url = \"{url}\"\n"
            ),
        )
        .unwrap();
        let overrides = Overrides {
            config: Some(dir.path().join("wechat-lua.toml")),
            scripts: Some(dir.path().join("scripts")),
            data: Some(dir.path().join("data")),
            ..Overrides::default()
        };
        let config = Config::load_with_env(&overrides, &Default::default()).unwrap();
        let host = Host::builder(&config)
            .store(store.clone())
            .api_base(base.to_string())
            .build()
            .await
            .unwrap();
        let state = host.state.clone();
        tokio::spawn(async move {
            let _ = wechat_lua::server::run(listener, state, std::future::pending()).await;
        });
        Served {
            host,
            url,
            fake,
            store,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            _dir: dir,
        }
    }

    fn events(&self) -> String {
        format!("{}/component/events", self.url)
    }

    /// Sends `xml` to the authorizer `appid`'s callback; the status and the reply opened.
    async fn message(&self, appid: &str, xml: &str) -> (u16, String) {
        self.fake
            .component_send_message(
                &format!("{}/component/{appid}/callback", self.url),
                "gh_authorizer",
                xml,
            )
            .await
    }

    /// Sends a text `content` from `o_user` to `appid`; the status and the reply opened.
    async fn text(&self, appid: &str, content: &str) -> (u16, String) {
        self.message(appid, &text_xml("o_user", content, next_id()))
            .await
    }

    /// The Content of the reply to a text `content` from `o_user` to `appid`.
    async fn ask(&self, appid: &str, content: &str) -> String {
        let (status, reply) = self.text(appid, content).await;
        assert_eq!(status, 200, "{reply}");
        element(&reply, "Content").unwrap_or_else(|| panic!("no text reply: {reply:?}"))
    }

    async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    async fn ticket_kept(&self) -> bool {
        self.store
            .get(&keys::component_ticket_key(COMPONENT))
            .await
            .unwrap()
            .is_some()
    }
}

/// The Content of the reply to a text `content` sent to the configured `default` account.
async fn default_ask(s: &Served, content: &str) -> String {
    let query = support::signed_query_at("defaulttoken1", support::now(), &support::fresh_nonce());
    let reply = s
        .http
        .post(format!("{}/wechat?{query}", s.url))
        .body(text_xml("o_user", content, next_id()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    element(&reply, "Content").unwrap_or_else(|| panic!("no text reply: {reply:?}"))
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static ID: AtomicU64 = AtomicU64::new(1);
    ID.fetch_add(1, Ordering::SeqCst)
}

fn location(resp: &reqwest::Response) -> String {
    assert_eq!(resp.status(), 302, "a redirect");
    resp.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_from_ticket_to_withdrawal() {
    let s = Served::start().await;
    s.fake.component_set_authorizer(AUTHORIZER);

    // Before the first ticket: no authorization can start, and it says why.
    let early = s.get(&format!("{}/component/authorize", s.url)).await;
    assert_eq!(early.status(), 503);
    assert!(early
        .text()
        .await
        .unwrap()
        .contains("component_verify_ticket"));

    // WeChat pushes the ticket: stored, answered `success`.
    assert_eq!(
        s.fake.component_push_ticket(&s.events()).await,
        (200, "success".into())
    );
    assert!(s.ticket_kept().await);

    // The administrator starts at /component/authorize, is sent to WeChat's page, which
    // sends them back with auth_code; the host exchanges it and sends them on to `next`.
    let to_page = location(
        &s.get(&format!("{}/component/authorize?next=/done", s.url))
            .await,
    );
    assert!(
        to_page.contains(
            "/cgi-bin/componentloginpage?component_appid=wxcomponent0000001&pre_auth_code="
        ),
        "{to_page}"
    );
    let back = location(&s.get(&to_page).await);
    assert!(
        back.starts_with(&format!(
            "{}/component/authorized?next=%2Fdone&auth_code=",
            s.url
        )),
        "{back}"
    );
    assert_eq!(location(&s.get(&back).await), "/done");
    assert_eq!(
        s.stored_refresh_token().await,
        s.fake.authorizer_refresh_token(AUTHORIZER)
    );
    let platform = s.host.state.platform.clone().unwrap();
    assert_eq!(
        platform.authorizers().await.unwrap(),
        vec![AUTHORIZER.to_string()]
    );

    // Its messages reach the same scripts with msg.account = its appid, and the Lua API acts
    // through its authorizer token.
    assert_eq!(
        s.ask(AUTHORIZER, "who").await,
        format!("{AUTHORIZER} {AUTHORIZER}")
    );
    assert_eq!(
        s.ask(AUTHORIZER, "events").await,
        format!("{AUTHORIZER} authorized 2 / nil")
    );
    assert_eq!(s.ask(AUTHORIZER, "kf").await, "sent");
    // 网页授权 too, through the platform: an authorizer has no AppSecret here.
    let url = s.ask(AUTHORIZER, "oauth-url").await;
    assert!(
        url.contains(&format!("?appid={AUTHORIZER}&"))
            && url.ends_with(&format!("&component_appid={COMPONENT}#wechat_redirect")),
        "{url}"
    );
    let code = s
        .fake
        .issue_component_oauth_code(AUTHORIZER, "o_visitor", "snsapi_base");
    assert_eq!(
        s.ask(AUTHORIZER, &format!("oauth {code}")).await,
        "o_visitor"
    );
    assert_eq!(
        s.ask(AUTHORIZER, &format!("oauth {code}")).await,
        "oauth failed 40163"
    );
    // Only at its own path: /wechat/<appid> would skip the check that it is still authorized.
    let (status, _) = s
        .fake
        .component_send_message(
            &format!("{}/wechat/{AUTHORIZER}", s.url),
            "gh_authorizer",
            &text_xml("o_user", "who", next_id()),
        )
        .await;
    assert_eq!(status, 404, "an authorizer answered at /wechat/<appid>");
    let sent = s.fake.calls_to("/cgi-bin/message/custom/send");
    assert_eq!(sent.last().unwrap().appid.as_deref(), Some(AUTHORIZER));
    assert_eq!(
        s.fake
            .delivered("/cgi-bin/message/custom/send")
            .last()
            .unwrap()["text"]["content"],
        format!("kf from {AUTHORIZER}")
    );
    // The configured account reaches it with wx.account(appid), acting with its token.
    assert_eq!(
        default_ask(&s, &format!("cross {AUTHORIZER}")).await,
        "cross sent"
    );
    assert_eq!(
        s.fake
            .calls_to("/cgi-bin/message/custom/send")
            .last()
            .unwrap()
            .appid
            .as_deref(),
        Some(AUTHORIZER)
    );

    // Its token expires: a new one from the refresh token, which rotates and is kept.
    let fetches = s.fake.authorizer_token_fetches();
    s.fake.expire_tokens_of(AUTHORIZER);
    assert_eq!(s.ask(AUTHORIZER, "kf").await, "sent");
    assert_eq!(s.fake.authorizer_token_fetches(), fetches + 1);
    assert_eq!(
        s.stored_refresh_token().await,
        s.fake.authorizer_refresh_token(AUTHORIZER)
    );

    // The `authorized` event of a re-authorization keeps the list as it is and the new
    // refresh token.
    assert_eq!(
        s.fake
            .component_push_authorized(&s.events(), AUTHORIZER)
            .await,
        (200, "success".into())
    );
    assert_eq!(
        s.stored_refresh_token().await,
        s.fake.authorizer_refresh_token(AUTHORIZER)
    );
    assert_eq!(platform.authorizers().await.unwrap().len(), 1);

    // Withdrawn: tokens deleted, out of the list, its messages refused, calls fail clearly.
    assert_eq!(
        s.fake
            .component_push_unauthorized(&s.events(), AUTHORIZER)
            .await,
        (200, "success".into())
    );
    assert_eq!(s.stored_refresh_token().await, None);
    assert_eq!(
        s.store.get(&keys::token_key(AUTHORIZER)).await.unwrap(),
        None
    );
    assert!(platform.authorizers().await.unwrap().is_empty());
    let (status, body) = s.text(AUTHORIZER, "who").await;
    assert_eq!((status, body.as_str()), (404, "success"));
    let err = platform
        .authorizer_api(AUTHORIZER)
        .unwrap()
        .kf()
        .send(
            "o_user",
            &KfMessage::Text {
                content: "x".into(),
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("has not authorized"), "{err}");
    // The scripts heard of it (asked through the configured account, still served).
    assert_eq!(
        default_ask(&s, "events").await,
        format!("{AUTHORIZER} authorized 2 / {AUTHORIZER} unauthorized")
    );
    s.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushes_and_unknown_accounts_are_refused() {
    let s = Served::start().await;
    // A bad signature: 403, nothing stored.
    let resp = s
        .http
        .post(format!(
            "{}?signature=bad&timestamp={}&nonce=1&encrypt_type=aes&msg_signature=x",
            s.events(),
            support::now()
        ))
        .body("<xml><AppId>x</AppId><Encrypt>x</Encrypt></xml>")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(!s.ticket_kept().await);

    // Another platform's push (outside): 403, nothing stored.
    let foreign = "<xml><AppId><![CDATA[wxforeign00000001]]></AppId><CreateTime>1</CreateTime><InfoType><![CDATA[component_verify_ticket]]></InfoType><ComponentVerifyTicket><![CDATA[t]]></ComponentVerifyTicket></xml>".to_string();
    let (status, _) = s
        .fake
        .component_push(&s.events(), "wxforeign00000001", &foreign)
        .await;
    assert_eq!(status, 403);
    // Named as ours outside, another platform's inside: 403.
    let (status, _) = s
        .fake
        .component_push(&s.events(), COMPONENT, &foreign)
        .await;
    assert_eq!(status, 403);
    // Sealed for another platform's appid with the same key: it does not open (400).
    let other = FakeWechat::default();
    other.component_setup("wxforeign00000001", "x", COMPONENT_TOKEN, COMPONENT_KEY);
    let inner = foreign.replace("wxforeign00000001", COMPONENT);
    let (status, _) = other.component_push(&s.events(), COMPONENT, &inner).await;
    assert_eq!(status, 400);
    assert!(!s.ticket_kept().await, "nothing stored");

    // An account that never authorized: 404 with `success`.
    let (status, body) = s.text("wxnever0000000001", "who").await;
    assert_eq!((status, body.as_str()), (404, "success"));
    // A path segment that cannot be an appid: 404.
    let (status, _) = s.text("not-an-appid!", "who").await;
    assert_eq!(status, 404);
    // A `next` that leaves the site: 400.
    let resp = s
        .get(&format!(
            "{}/component/authorize?next=//evil.example",
            s.url
        ))
        .await;
    assert_eq!(resp.status(), 400);
    // An authorization code WeChat does not know: 400.
    s.fake.component_push_ticket(&s.events()).await;
    let resp = s
        .get(&format!("{}/component/authorized?auth_code=nope", s.url))
        .await;
    assert_eq!(resp.status(), 400);
    s.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_test_passes_out_of_the_box() {
    let s = Served::start().await;
    s.fake.component_push_ticket(&s.events()).await;
    let test_account = wechat_lua::component::release_test::TEST_APPIDS[0];
    assert_eq!(
        s.ask(test_account, "TESTCOMPONENT_MSG_TYPE_TEXT").await,
        "TESTCOMPONENT_MSG_TYPE_TEXT_callback"
    );
    let (status, reply) = s
        .message(test_account, &event_xml("o_tester", "LOCATION", None))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        element(&reply, "Content").as_deref(),
        Some("LOCATIONfrom_callback")
    );

    // QUERY_AUTH_CODE: an empty answer, then the code exchanged and a customer-service text
    // sent with the authorizer token it gave.
    let code = s.fake.component_authorize(test_account);
    let (status, body) = s
        .message(
            test_account,
            &text_xml("o_tester", &format!("QUERY_AUTH_CODE:{code}"), next_id()),
        )
        .await;
    assert_eq!((status, body.as_str()), (200, ""));
    let expected = format!("{code}_from_api");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let delivered = s.fake.delivered("/cgi-bin/message/custom/send");
        if let Some(sent) = delivered
            .iter()
            .find(|m| m["text"]["content"] == expected.as_str())
        {
            assert_eq!(sent["touser"], "o_tester");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no customer-service answer: {delivered:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = s.fake.calls_to("/cgi-bin/message/custom/send");
    assert_eq!(
        sent.last().unwrap().appid.as_deref(),
        Some(test_account),
        "with its token"
    );
    // Other texts from the test accounts reach the scripts.
    assert_eq!(s.ask(test_account, "hello").await, "echo hello");
    s.host.shutdown().await;
}

/// Two hosts on one Redis behind one balancer: the ticket pushed to one serves both, an account
/// authorized through one is served by the other, and when both refresh its token at once,
/// round after round, each round costs one fetch and the refresh token kept is the one WeChat
/// takes; withdrawn through one, the other refuses its messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_on_redis_share_the_platform() {
    let server = redis_support::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url(0);
    let (fake, base) = fake().await;
    let a = Served::start_with(
        wechat_lua::store::open(Some(&url), dir.path())
            .await
            .unwrap(),
        fake.clone(),
        &base,
    )
    .await;
    let b = Served::start_with(
        wechat_lua::store::open(Some(&url), dir.path())
            .await
            .unwrap(),
        fake.clone(),
        &base,
    )
    .await;
    assert_eq!(fake.component_push_ticket(&a.events()).await.0, 200);
    fake.component_set_authorizer(AUTHORIZER);
    let to_page = location(&b.get(&format!("{}/component/authorize", b.url)).await);
    let back = location(&a.get(&to_page).await);
    let back = back.replacen(&b.url, &a.url, 1);
    assert_eq!(a.get(&back).await.status(), 200);
    assert_eq!(
        b.ask(AUTHORIZER, "who").await,
        format!("{AUTHORIZER} {AUTHORIZER}")
    );
    assert_eq!(
        fake.component_token_fetches(),
        1,
        "one component token for both"
    );

    let fetches = fake.authorizer_token_fetches();
    const ROUNDS: u64 = 4;
    for round in 1..=ROUNDS {
        fake.expire_tokens_of(AUTHORIZER);
        let asks: Vec<_> = (0..8)
            .map(|i| {
                let (host_url, fake) = (
                    if i % 2 == 0 { &a.url } else { &b.url }.clone(),
                    fake.clone(),
                );
                tokio::spawn(async move {
                    let (status, reply) = fake
                        .component_send_message(
                            &format!("{host_url}/component/{AUTHORIZER}/callback"),
                            "gh_authorizer",
                            &text_xml("o_user", "kf", next_id()),
                        )
                        .await;
                    (status, element(&reply, "Content"))
                })
            })
            .collect();
        for ask in asks {
            assert_eq!(ask.await.unwrap(), (200, Some("sent".to_string())));
        }
        assert_eq!(
            fake.authorizer_token_fetches(),
            fetches + round,
            "one fetch in round {round} for both hosts"
        );
    }
    assert_eq!(
        a.store
            .get(&keys::authorizer_refresh_key(COMPONENT, AUTHORIZER))
            .await
            .unwrap(),
        fake.authorizer_refresh_token(AUTHORIZER)
    );
    // Withdrawn through A: B refuses its messages too.
    assert_eq!(
        fake.component_push_unauthorized(&a.events(), AUTHORIZER)
            .await
            .0,
        200
    );
    let (status, body) = b.text(AUTHORIZER, "who").await;
    assert_eq!((status, body.as_str()), (404, "success"));
    assert!(
        b.host.state.accounts.get(AUTHORIZER).is_none(),
        "no longer served by B"
    );
    a.host.shutdown().await;
    b.host.shutdown().await;
}

/// `wechat-lua accounts` lists the configured accounts and the platform's authorizers with
/// their tokens' state, from the store, printing no secret.
#[tokio::test]
async fn the_accounts_command_lists_configured_and_authorized_accounts_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wechat-lua.toml"),
        format!(
            "appid = \"wxdefault000000001\"\nappsecret = \"defaultsecret\"\n[[accounts]]\nname = \"shop\"\nappid = \"wxshop00000000001\"\ntoken = \"shoptoken1\"\n[component]\nappid = \"{COMPONENT}\"\nappsecret = \"{COMPONENT_SECRET}\"\ntoken = \"{COMPONENT_TOKEN}\"\nencoding_aes_key = \"{COMPONENT_KEY}\"\npublic_url = \"https://bots.example\"\n"
        ),
    )
    .unwrap();
    let overrides = Overrides {
        config: Some(dir.path().join("wechat-lua.toml")),
        data: Some(dir.path().join("data")),
        ..Overrides::default()
    };
    let config = Config::load_with_env(&overrides, &Default::default()).unwrap();
    let listed = wechat_lua::commands::account::accounts(&config)
        .await
        .unwrap();
    assert!(
        listed.contains("no component_verify_ticket yet"),
        "{listed}"
    );
    assert!(listed.contains("authorized (0)"), "{listed}");

    let (fake, base) = fake().await;
    let store = wechat_lua::store::open(None, &config.data).await.unwrap();
    let component = client(&base, &store);
    component
        .save_ticket(&fake.component_issue_ticket())
        .await
        .unwrap();
    let code = fake.component_authorize(AUTHORIZER);
    let platform = wechat_lua::component::Platform::new(
        config.component.clone().unwrap(),
        component.clone(),
        Arc::new(NoHost),
    )
    .unwrap();
    platform.take_auth_code(&code).await.unwrap();
    drop((platform, component, store));

    let listed = wechat_lua::commands::account::accounts(&config)
        .await
        .unwrap();
    for expected in [
        "default",
        "wxdefault000000001",
        "shop",
        "no appsecret",
        "component_verify_ticket kept",
        "component_access_token expires",
        "authorized (1)",
        AUTHORIZER,
        "refresh token kept",
    ] {
        assert!(listed.contains(expected), "{expected}: {listed}");
    }
    for secret in [
        COMPONENT_SECRET,
        "defaultsecret",
        "refreshtoken@@@",
        "FAKE_",
        "ticket@@@",
    ] {
        assert!(!listed.contains(secret), "{secret} shown: {listed}");
    }
}

/// A platform host that serves nothing (the command reads the store only).
struct NoHost;

impl wechat_lua::component::AuthorizerHost for NoHost {
    fn account(
        &self,
        _: &str,
        _: wechat_lua::api::WechatClient,
    ) -> Result<Arc<wechat_lua::account::Account>, String> {
        Err("not serving".into())
    }
    fn remove(&self, _: &str) {}
    fn notify(
        &self,
        _: wechat_lua::component::AuthorizationEvent,
    ) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// A host serving only the platform (no configured account has credentials) still runs the
/// outbox worker: an authorizer's send WeChat refuses as busy is queued and goes out later,
/// with the authorizer's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorizers_queued_send_goes_out_on_a_platform_only_host() {
    let s = Served::start().await;
    s.fake.component_push_ticket(&s.events()).await;
    let code = s.fake.component_authorize(AUTHORIZER);
    assert_eq!(
        s.get(&format!("{}/component/authorized?auth_code={code}", s.url))
            .await
            .status(),
        200
    );
    s.fake.fail_next("/cgi-bin/message/custom/send", -1, 4);
    assert_eq!(s.ask(AUTHORIZER, "kf-queued").await, "queued");
    let expected = format!("later from {AUTHORIZER}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let delivered = s.fake.delivered("/cgi-bin/message/custom/send");
        if delivered
            .iter()
            .any(|m| m["text"]["content"] == expected.as_str())
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never sent: {delivered:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = s.fake.calls_to("/cgi-bin/message/custom/send");
    assert_eq!(sent.last().unwrap().appid.as_deref(), Some(AUTHORIZER));
    s.host.shutdown().await;
}
