//! `wechat-lua chat`: a terminal chat with the bot, playing a WeChat user. It runs the
//! built-in fake WeChat API and a real host in-process, sends each typed line (or slash
//! command) as WeChat would — signed, and encrypted when an EncodingAESKey is configured —
//! over the real HTTP callback, and shows the passive reply, every API call the scripts make
//! (with WeChat's refusal when the fake refused it) and every `wx.http` request, and script
//! errors and reloads as they happen.
//!
//! The fake account behaves as WeChat does where a newcomer would trip: the user chatting
//! follows it until `/unsubscribe` (`wx.user.info` says so), template sends need a template
//! it has (`--template ID`, `/templates add ID`), and its menu (`--menu FILE`, or pushed with
//! `wechat-lua menu push` at the address the banner prints) is shown by `/menu`. The store is
//! in memory unless `--data DIR` keeps it; `wx.http` may reach loopback addresses.
//!
//! With `--web` the chat also serves the scripts' pages (`wx.route`) at a printed local
//! address (`--listen`), with sign-in with WeChat wired to the fake: `/oauth/login` goes to
//! the fake's sign-in page, which comes straight back signed in as the user chatting (`/as`
//! switches), so pages that need sign-in and the JS-SDK can be developed in a browser without
//! an account.
//!
//! With `[component]` configured, `--account wx…` naming no `[[accounts]]` table chats as that
//! authorizer of the open platform: the chat plays WeChat and the account's administrator
//! through the host's own routes (a ticket pushed to `/component/events`, the authorization
//! page, back at `/component/authorized`), then sends each message to
//! `/component/<appid>/callback`, sealed as WeChat seals a platform's messages.

pub mod render;
mod screen;
pub mod slash;
pub mod wire;

use std::collections::{HashSet, VecDeque};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::config::{Config, ConfigError, Overrides, Secret};
use crate::dispatch::LateReplies;
use crate::fake_wechat::{FakeWechat, FAKE_APPID, FAKE_SECRET};
use crate::host::{BuildError, Host};
use crate::net::HostRule;
use crate::script::runtime::{Handled, LateReplyFailure};
use crate::script::ScriptError;
use crate::server::{self, CALLBACK_PATH};
use crate::sync::lock;
use render::ReplyView;
use screen::{init_logging, Screen};
use slash::{Input, TemplatesCommand};
pub use wire::Wire;

/// The user chatting when `--as` is not given.
pub const DEFAULT_USER: &str = "o_chat_user";
/// The token callbacks are signed with when none is configured (never written to disk).
pub const CHAT_TOKEN: &str = "wechatluachat";
/// The account's original ID (ToUserName) in simulated messages.
pub const ACCOUNT: &str = "gh_wechat_lua_chat";
/// The store the chat host uses unless `--data` is given: nothing outlives the session.
pub const CHAT_STORE: &str = "sqlite::memory:";
/// What `wx.http` may reach in a chat besides public addresses: the developer's own machine.
pub const CHAT_HTTP_ALLOW: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// Longest wait at the end for handlers whose replies go out late.
const LATE_WAIT: Duration = Duration::from_secs(30);
/// Quiet time at the end for API calls still travelling.
const SETTLE: Duration = Duration::from_millis(300);
/// How often the recorded API calls are looked at.
const POLL: Duration = Duration::from_millis(100);

/// What `wechat-lua chat` was asked for.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// `--scripts DIR|FILE`.
    pub scripts: Option<PathBuf>,
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--raw`: print reply XML instead of reading it.
    pub raw: bool,
    /// `--as OPENID`: the user to chat as.
    pub user: String,
    /// `--data DIR`: keep the store (`wx.store`) in DIR instead of in memory.
    pub data: Option<PathBuf>,
    /// `--menu FILE`: the fake account's menu at the start (JSON or TOML).
    pub menu: Option<PathBuf>,
    /// `--template ID`: templates the fake account has at the start.
    pub templates: Vec<String>,
    /// `--web`: serve the scripts' pages for a browser, signed in as the user chatting.
    pub web: bool,
    /// `--listen ADDR`: where the pages are served (default: a free loopback port).
    pub listen: Option<String>,
    /// `--account NAME`: chat with that `[[accounts]]` account (its path, token, envelope and
    /// scripts) instead of the default one; with `[component]`, an appid no table is named
    /// after chats as that authorizer of the open platform.
    pub account: Option<String>,
}

impl Default for ChatOptions {
    fn default() -> Self {
        ChatOptions {
            scripts: None,
            config: None,
            raw: false,
            user: DEFAULT_USER.to_string(),
            data: None,
            menu: None,
            templates: Vec::new(),
            web: false,
            listen: None,
            account: None,
        }
    }
}

/// Why a chat could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The settings are unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The host did not start (scripts that do not load say file:line here).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A socket, the terminal or the runtime failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The HTTP client could not be made.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The `--menu` file is unusable (the message names it).
    #[error("--menu: {0}")]
    Menu(String),
    /// The `--data` store could not be opened or cleared.
    #[error("--data: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The host did not take the authorization the chat played through the open platform.
    #[error("authorizing {appid} through the open platform: {reason}")]
    Authorize { appid: String, reason: String },
}

/// The authorizer `--account` chats as: with `[component]`, a name that looks like an appid
/// (`wx…`) and names no `[[accounts]]` table (a configured account keeps its name).
pub fn chatted_authorizer<'a>(config: &Config, options: &'a ChatOptions) -> Option<&'a str> {
    let name = options.account.as_deref()?;
    let looks_like_appid = name.starts_with("wx")
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (config.component.is_some()
        && looks_like_appid
        && name != crate::config::DEFAULT_ACCOUNT
        && !config.accounts.iter().any(|a| a.name == name))
    .then_some(name)
}

/// The chat's settings: loaded as `serve` loads them, then pointed at the fake WeChat API
/// (the host is built with its base once the fake listens) with an in-memory store (or the
/// embedded store in `--data DIR`), and `wx.http` let through to loopback addresses.
pub fn chat_config(
    options: &ChatOptions,
    env: &std::collections::HashMap<String, String>,
) -> Result<Config, ConfigError> {
    let overrides = Overrides {
        config: options.config.clone(),
        scripts: options.scripts.clone(),
        ..Overrides::default()
    };
    let mut config = Config::load_with_env(&overrides, env)?;
    // A chat needs no generated token kept in the data directory: any token signs its calls.
    config.token.get_or_insert_with(|| Secret::new(CHAT_TOKEN));
    config.appid = Some(FAKE_APPID.to_string());
    config.appsecret = Some(Secret::new(FAKE_SECRET));
    if let Some(name) = &options.account {
        if chatted_authorizer(&config, options).is_none() {
            // An unknown name stops here, listing the accounts there are.
            config.for_account(name).map_err(|e| match e {
                ConfigError::Invalid { setting, reason } if config.component.is_some() => {
                    ConfigError::Invalid {
                        setting,
                        reason: format!(
                            "{reason}; with [component], an authorizer's appid (wx…) chats through the open platform"
                        ),
                    }
                }
                other => other,
            })?;
        }
    }
    // The platform calls the fake with the fake's secret too.
    if let Some(component) = &mut config.component {
        component.appsecret = Secret::new(FAKE_SECRET);
    }
    // Every account calls the fake with the fake's secret (the fake serves each appid), so
    // `wx.account(name)` works in a chat as in `serve`; no real secret is ever sent.
    for account in &mut config.accounts {
        account.appsecret = Some(Secret::new(FAKE_SECRET));
    }
    match &options.data {
        Some(dir) => {
            config.data = dir.clone();
            config.store = None;
        }
        None => config.store = Some(CHAT_STORE.to_string()),
    }
    // The chat runs on the developer's machine, where the services a bot talks to often run
    // too; `[http] deny` still wins over these.
    for host in CHAT_HTTP_ALLOW {
        if let Ok(rule) = host.parse::<HostRule>() {
            config.http.rules.allow.push(rule);
        }
    }
    Ok(config)
}

/// Runs a chat session until `/quit`, Ctrl-C or the end of input.
pub fn run(options: ChatOptions) -> Result<(), ChatError> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let config = chat_config(&options, &env)?;
    let screen = Arc::new(Screen::new());
    init_logging(screen.clone());
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(session(config, options, screen));
    // The fake API's server task never ends by itself.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// Counts handlers that missed the deadline and have not finished delivering, so the end of
/// piped input can wait for their replies.
struct CountingLate {
    inner: Arc<dyn LateReplies>,
    pending: Arc<AtomicI64>,
}

impl LateReplies for CountingLate {
    fn started(&self, openid: &str) -> BoxFuture<'static, ()> {
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.inner.started(openid)
    }

    fn finished(
        &self,
        openid: &str,
        result: Result<Handled, ScriptError>,
    ) -> BoxFuture<'static, Option<LateReplyFailure>> {
        let delivery = self.inner.finished(openid, result);
        let pending = self.pending.clone();
        Box::pin(async move {
            let failure = delivery.await;
            pending.fetch_sub(1, Ordering::SeqCst);
            failure
        })
    }
}

/// What `chat` and `play` share: the built-in fake WeChat API, a host running the scripts
/// against it (reloading them on save, `wx.http` let through to loopback), served over HTTP
/// with sign-in wired to the fake, and the wire that sends it messages as WeChat would.
pub struct Simulator {
    /// The fake WeChat API the scripts call.
    pub fake: FakeWechat,
    /// The fake's base URL (`http://127.0.0.1:port`), for `menu push` from another terminal.
    pub base: String,
    /// The host: its state, and the reload watcher.
    pub host: Host,
    /// Sends messages to the host as WeChat would (signed, sealed when encrypted).
    pub wire: Wire,
    /// Where the host serves the callback and the scripts' pages.
    pub address: std::net::SocketAddr,
    /// The settings the host was built with (the chat's, with sign-in at [`Self::address`]).
    pub config: Config,
    /// Handlers that missed the deadline and have not finished delivering.
    pub pending: Arc<AtomicI64>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Simulator {
    /// Starts the fake (with `--menu` and `--template`, `options.user` following), the store,
    /// and the host serving at `options.listen` (default: a free loopback port). `observer`
    /// is given the fake and may return a watcher of the scripts' `wx.http` requests.
    pub async fn start(
        config: Config,
        options: &ChatOptions,
        observer: impl FnOnce(&FakeWechat) -> Option<crate::net::RequestObserver>,
    ) -> Result<Simulator, ChatError> {
        let (fake, base) = FakeWechat::start().await?;
        if let Some(path) = &options.menu {
            let menu = crate::commands::account::read_menu(path)
                .map_err(|e| ChatError::Menu(format!("{e:#}")))?;
            fake.set_menu(menu);
        }
        for id in &options.templates {
            fake.add_template(id, &format!("template {id}"));
        }
        fake.follow(&options.user);
        for account in &config.accounts {
            fake.add_app(&account.appid, FAKE_SECRET);
        }
        // The fake is the platform `[component]` describes: it signs and seals with its token
        // and key, and takes the fake's secret (see `chat_config`).
        if let Some(component) = &config.component {
            fake.component_setup(
                &component.appid,
                FAKE_SECRET,
                component.token.expose(),
                component.encoding_aes_key.expose(),
            );
        }
        let authorizer = chatted_authorizer(&config, options).map(str::to_string);
        let store = crate::store::open(config.store.as_deref(), &config.data).await?;
        // A kept store holds the access_tokens of the last chat's fake, which this fake never
        // issued: forget them rather than show every first call refused with 40001.
        for appid in std::iter::once(FAKE_APPID)
            .chain(config.accounts.iter().map(|a| a.appid.as_str()))
            .chain(authorizer.as_deref())
        {
            store.del(&crate::store::keys::token_key(appid)).await?;
        }
        if let Some(component) = &config.component {
            store
                .del(&crate::store::keys::component_token_key(&component.appid))
                .await?;
        }
        // The fake's sign-in page signs pages in as the user chatting (`/as` switches both).
        fake.set_oauth_user(&options.user);
        let pending = Arc::new(AtomicI64::new(0));
        let counted = pending.clone();
        let listen = options.listen.as_deref().unwrap_or("127.0.0.1:0");
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        let mut config = config;
        local_sign_in(&mut config, address);
        let mut builder = Host::builder(&config)
            .watch(true)
            .store(store)
            .api_base(base.clone())
            .late_replies(move |inner| {
                Arc::new(CountingLate {
                    inner,
                    pending: counted,
                })
            });
        if let Some(observer) = observer(&fake) {
            builder = builder.http_observer(observer);
        }
        let host = builder.build().await?;
        // The account chatted with: its path, and the token and envelope its callbacks use.
        let chatted = match options.account.as_deref() {
            _ if authorizer.is_some() => None,
            Some(name) if name != crate::config::DEFAULT_ACCOUNT => host.state.accounts.get(name),
            _ => None,
        };
        let url = match &chatted {
            Some(account) => format!("http://{address}{CALLBACK_PATH}/{}", account.name),
            None => format!("http://{address}{CALLBACK_PATH}"),
        };
        let chatted = chatted.unwrap_or_else(|| host.state.default_account.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server::run(listener, host.state.clone(), async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder().no_proxy().build()?;
        let wire = match (&authorizer, &host.state.platform) {
            (Some(appid), Some(platform)) => {
                authorize_through_platform(&fake, address, appid).await?;
                // The platform's messages are signed with its token and always sealed.
                Wire {
                    client,
                    url: format!("http://{address}/component/{appid}/callback"),
                    token: platform.token().clone(),
                    envelope: Some(platform.envelope().clone()),
                }
            }
            _ => Wire {
                client,
                url,
                token: chatted.token.clone(),
                envelope: chatted.envelope.clone(),
            },
        };
        Ok(Simulator {
            fake,
            base,
            host,
            wire,
            address,
            config,
            pending,
            stop,
            server,
        })
    }

    /// Stops the host's HTTP server, then what runs beside it.
    pub async fn stop(self) -> Result<(), ChatError> {
        drop(self.wire);
        let _ = self.stop.send(());
        match self.server.await {
            Ok(result) => result?,
            Err(e) => tracing::error!("the chat's HTTP server failed: {e}"),
        }
        self.host.shutdown().await;
        Ok(())
    }
}

async fn session(
    config: Config,
    options: ChatOptions,
    screen: Arc<Screen>,
) -> Result<(), ChatError> {
    let http_seen: Arc<Mutex<VecDeque<(usize, String)>>> = Arc::default();
    let sim = Simulator::start(config, &options, |fake| {
        let (fake, http_seen) = (fake.clone(), http_seen.clone());
        Some(Arc::new(move |seen: &crate::net::SeenRequest| {
            // Numbered by the API calls received before it ended, to keep the order on screen.
            let before = fake.call_count();
            lock(&http_seen).push_back((before, render::describe_http(seen)));
        }))
    })
    .await?;
    let (config, base, address, pending) = (
        sim.config.clone(),
        sim.base.clone(),
        sim.address,
        sim.pending.clone(),
    );
    let fake = sim.fake.clone();
    let wire = &sim.wire;

    let user = Arc::new(Mutex::new(options.user.clone()));
    let feed = Arc::new(CallFeed {
        fake,
        seen: Mutex::new(0),
        user: user.clone(),
        http: http_seen,
        known_users: Mutex::new(HashSet::from([options.user.clone()])),
    });
    eprintln!(
        "{}",
        banner(
            &config,
            &options,
            &base,
            wire.envelope.is_some(),
            options.data.as_deref()
        )
    );
    if options.web {
        eprintln!("{}", web_banner(address, &options.user));
    }

    let poller = {
        let (feed, screen) = (feed.clone(), screen.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL).await;
                feed.flush(&screen);
            }
        })
    };

    // A person at a terminal leaves with Ctrl-C; a permit is kept when it is pressed while a
    // message is on its way, so it is not lost. Piped sessions keep the default (exit at once).
    let interrupt = Arc::new(tokio::sync::Notify::new());
    let interrupts = screen.interactive.then(|| {
        let interrupt = interrupt.clone();
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                interrupt.notify_one();
            }
        })
    });

    let lines = read_lines();
    converse(lines, wire, &screen, &feed, &user, &interrupt, options.raw).await;

    // Replies that missed the deadline are still on their way: wait for them.
    let wait = async {
        let started = Instant::now();
        let late = pending.load(Ordering::SeqCst);
        if late > 0 && screen.interactive {
            eprintln!("(waiting for late replies still on their way: {late}; Ctrl-C leaves now)");
        }
        while pending.load(Ordering::SeqCst) > 0 && started.elapsed() < LATE_WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(SETTLE).await;
    };
    // Once Ctrl-C is caught it no longer ends the process, so the wait must heed it.
    tokio::select! {
        _ = wait => {}
        _ = interrupt.notified() => {}
    }
    poller.abort();
    if let Some(task) = interrupts {
        task.abort();
    }
    feed.flush_all(&screen);

    sim.stop().await
}

/// What the chat says before the first prompt: whose scripts, as whom, where the store is,
/// where `wx.http` may go, and how to reach the fake WeChat API from another terminal.
fn banner(
    config: &Config,
    options: &ChatOptions,
    base: &str,
    encrypted: bool,
    data: Option<&Path>,
) -> String {
    let account = options
        .account
        .as_deref()
        .and_then(|name| config.accounts.iter().find(|a| a.name == name));
    let scripts = account
        .and_then(|a| a.scripts.as_ref())
        .unwrap_or(&config.scripts);
    let chatted = match (
        account,
        chatted_authorizer(config, options),
        &config.component,
    ) {
        (Some(a), _, _) => format!(" (account {}, {CALLBACK_PATH}/{})", a.name, a.name),
        (None, Some(appid), Some(component)) => format!(
            " (authorizer {appid} through the open platform {}, /component/{appid}/callback)",
            component.appid
        ),
        _ => String::new(),
    };
    let mut text = format!(
        "wechat-lua chat: {}{} as {}{} — /help lists commands, /quit leaves\n",
        scripts.display(),
        chatted,
        options.user,
        if encrypted {
            ", messages encrypted (encrypt_type=aes)"
        } else {
            ""
        }
    );
    match data {
        Some(dir) => text.push_str(&format!(
            "  store: {} (kept between chats)\n",
            dir.join(crate::store::SQLITE_FILE_NAME).display()
        )),
        None => {
            text.push_str("  store: in memory, gone when the chat ends (--data DIR keeps it)\n")
        }
    }
    text.push_str(&format!(
        "  wx.http: loopback ({}) allowed in chat; serve refuses it unless [http] allow lists it\n",
        CHAT_HTTP_ALLOW.join(", ")
    ));
    text.push_str(&format!(
        "  fake WeChat API: {base} (appid {FAKE_APPID}, appsecret {FAKE_SECRET}); from another terminal:\n    \
         WECHAT_API_BASE={base} WECHAT_APPID={FAKE_APPID} WECHAT_APPSECRET={FAKE_SECRET} \
         WECHAT_STORE={CHAT_STORE} wechat-lua menu push menu.toml"
    ));
    text
}

/// Sign-in with WeChat for the chat's pages at `address`: the configured scope (if any),
/// `public_url` the chat's own address, and a cookie secret made for this chat (nothing is
/// written). The fake's sign-in page signs the user chatting in.
fn local_sign_in(config: &mut Config, address: std::net::SocketAddr) {
    let scope = config.oauth.as_ref().map(|o| o.scope).unwrap_or_default();
    config.oauth = Some(crate::config::OauthConfig {
        scope,
        cookie_secret: Some(crate::config::generate_cookie_secret()),
        public_url: format!("http://{address}"),
    });
    // The fake's authorization page sends the administrator back here, not to the site.
    if let Some(component) = &mut config.component {
        component.public_url = format!("http://{address}");
    }
}

/// Authorizes `appid` as WeChat and its administrator would, through the host serving at
/// `address`: the fake pushes a ticket to `/component/events`, then `/component/authorize`
/// leads to the fake's authorization page, which sends the administrator back to
/// `/component/authorized` with an auth_code the host exchanges. The calls this makes are
/// forgotten so the chat shows only those of the scripts.
async fn authorize_through_platform(
    fake: &FakeWechat,
    address: std::net::SocketAddr,
    appid: &str,
) -> Result<(), ChatError> {
    use crate::component::{AUTHORIZE_PATH, EVENTS_PATH};
    let refused = |reason: String| ChatError::Authorize {
        appid: appid.to_string(),
        reason,
    };
    let origin = format!("http://{address}");
    let (status, body) = fake
        .component_push_ticket(&format!("{origin}{EVENTS_PATH}"))
        .await;
    if status != 200 {
        return Err(refused(format!(
            "the ticket push got HTTP {status}: {}",
            body.trim()
        )));
    }
    fake.component_set_authorizer(appid);
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // The host's redirect to the page, then the page's back to the host.
    let mut url = format!("{origin}{AUTHORIZE_PATH}");
    for _ in 0..2 {
        let response = client.get(&url).send().await?;
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        match location {
            Some(location) if response.status().is_redirection() => url = location,
            _ => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                return Err(refused(format!(
                    "{url} answered HTTP {status}: {}",
                    body.trim()
                )));
            }
        }
    }
    let response = client.get(&url).send().await?;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        return Err(refused(format!(
            "the way back answered HTTP {status}: {}",
            body.trim()
        )));
    }
    fake.clear_calls();
    Ok(())
}

/// What `--web` adds to the banner: where the pages are and who is signed in.
pub fn web_banner(address: std::net::SocketAddr, user: &str) -> String {
    format!(
        "  web pages: http://{address}/ — open a page (wx.route) in a browser; sign-in ({}) signs you in as {user}, the user chatting (/as switches)",
        crate::web::oauth::LOGIN_PATH
    )
}

/// Lines typed (or piped) on stdin, read on their own thread so waiting for input blocks
/// nothing; the channel closes at end of input.
fn read_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    // A stray byte that is not UTF-8 should not end the session.
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_string();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// The conversation: one typed line at a time until `/quit`, Ctrl-C or end of input.
async fn converse(
    mut lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    wire: &Wire,
    screen: &Screen,
    feed: &CallFeed,
    user: &Mutex<String>,
    interrupt: &tokio::sync::Notify,
    raw: bool,
) {
    let clock = Clock::default();
    loop {
        screen.prompt();
        let line = tokio::select! {
            line = lines.recv() => line,
            _ = interrupt.notified() => None,
        };
        let Some(line) = line else {
            screen.end_prompt();
            break;
        };
        screen.answered();
        // Calls answered while the line was typed (another terminal's `menu push`, a late
        // reply) belong above it.
        feed.flush(screen);
        let input = slash::parse(&line);
        if input != Input::Nothing {
            screen.echo(&line);
        }
        match input {
            Input::Nothing => {}
            Input::Quit => break,
            Input::Help => screen.notes(slash::HELP.lines()),
            Input::Hint(hint) => screen.notes([hint.as_str()]),
            Input::ShowMenu => {
                let lines = match feed.fake.menu() {
                    Some(menu) => render::describe_menu(&menu),
                    None => vec![
                        "(no menu: start with --menu FILE, push one with `wechat-lua menu push`, or call wx.menu.create)"
                            .to_string(),
                    ],
                };
                screen.notes(lines.iter().map(String::as_str));
            }
            Input::Templates(command) => {
                let note = templates(&feed.fake, command);
                screen.notes(note.iter().map(String::as_str));
            }
            Input::SwitchUser(openid) => {
                screen.notes([format!("(now chatting as {openid})").as_str()]);
                // Someone new writing to the account follows it, as the user at the start.
                if lock(&feed.known_users).insert(openid.clone()) {
                    feed.fake.follow(&openid);
                }
                feed.fake.set_oauth_user(&openid);
                *lock(user) = openid;
            }
            Input::Send(inbound) => {
                let from = lock(user).clone();
                // WeChat counts a user in or out before it tells the bot, so `wx.user.info`
                // in the handler already agrees with the event.
                match &inbound {
                    slash::Inbound::Subscribe(_) => feed.fake.follow(&from),
                    slash::Inbound::Unsubscribe => feed.fake.unfollow(&from),
                    _ => {}
                }
                let (create_time, msg_id) = clock.next();
                if let Some((kind, filename, content_type, bytes)) = inbound.sent_media() {
                    feed.fake.add_media_as(
                        &slash::media_id(msg_id),
                        kind,
                        filename,
                        content_type,
                        bytes,
                    );
                }
                let xml = inbound.to_xml(&from, ACCOUNT, create_time, msg_id);
                let answer = wire.send(&xml).await;
                // Calls the handler made before answering belong above its reply.
                feed.flush_before_answer(screen);
                match answer {
                    Ok(body) if raw => screen.bot(body.trim().lines()),
                    Ok(body) => match render::describe_reply(&body) {
                        ReplyView::NoReply => screen.dim("(no reply)"),
                        ReplyView::Lines(lines) => screen.bot(lines.iter().map(String::as_str)),
                        ReplyView::Trimmed { lines, warning } => {
                            screen.bot(lines.iter().map(String::as_str));
                            screen.notes([warning.as_str()]);
                        }
                    },
                    Err(e) => screen.bot([format!("[{e}]").as_str()]),
                }
            }
        }
    }
}

/// `/templates`: lists the fake account's templates, or adds one.
fn templates(fake: &FakeWechat, command: TemplatesCommand) -> Vec<String> {
    match command {
        TemplatesCommand::Add { id, title } => {
            if fake.add_template(&id, &title) {
                vec![format!(
                    "(template {id} added: wx.template.send can use it)"
                )]
            } else {
                vec![format!("(template {id} is there already)")]
            }
        }
        TemplatesCommand::List => {
            let list = fake.templates();
            if list.is_empty() {
                return vec![
                    "(no templates: a template send is refused with 40037; add one with /templates add ID or --template ID)"
                        .to_string(),
                ];
            }
            list.into_iter()
                .map(|(id, title)| format!("(template {id}: {title})"))
                .collect()
        }
    }
}

/// CreateTime and MsgId for each message: CreateTime never repeats, so two identical events
/// within a second are not taken for WeChat retrying one.
pub(crate) struct Clock {
    last_time: AtomicI64,
    next_id: AtomicU64,
}

impl Default for Clock {
    fn default() -> Self {
        let now = crate::clock::unix_secs();
        Clock {
            last_time: AtomicI64::new(0),
            next_id: AtomicU64::new(now.unsigned_abs() * 1000 + 1),
        }
    }
}

impl Clock {
    /// The next message's CreateTime and MsgId.
    pub(crate) fn next(&self) -> (i64, u64) {
        let now = crate::clock::unix_secs();
        let previous = self
            .last_time
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(now);
        (
            now.max(previous + 1),
            self.next_id.fetch_add(1, Ordering::SeqCst),
        )
    }
}

/// Calls recorded by the fake WeChat API and `wx.http` requests, shown once each, in order,
/// as they are answered.
struct CallFeed {
    fake: FakeWechat,
    /// How many recorded calls were shown already.
    seen: Mutex<usize>,
    /// The current user, whose sends need no recipient named.
    user: Arc<Mutex<String>>,
    /// `wx.http` requests not shown yet, each with the number of API calls received before it
    /// ended: it shows after those.
    http: Arc<Mutex<VecDeque<(usize, String)>>>,
    /// Users who chatted in this session: someone new follows the account when first seen.
    known_users: Mutex<HashSet<String>>,
}

/// Where [`CallFeed::show`] stops.
#[derive(Clone, Copy, PartialEq)]
enum Until {
    /// Before the first call not answered yet, so its outcome shows with it.
    Unanswered,
    /// Before the first unanswered call or the typing indicator, whichever comes first.
    TypingOrUnanswered,
    /// After the last call, answered or not (the session is ending).
    End,
}

impl CallFeed {
    /// Shows the answered calls not shown yet.
    fn flush(&self, screen: &Screen) {
        self.show(screen, Until::Unanswered);
    }

    /// Shows every call not shown yet, answered or not.
    fn flush_all(&self, screen: &Screen) {
        self.show(screen, Until::End);
    }

    /// Shows the calls the handler made before its answer came back: those not shown yet, up
    /// to the typing indicator the host sends when the reply deadline passes. That one, and
    /// the late reply after it, belong below the answer (`success`) they follow, whichever
    /// reached the fake API first.
    fn flush_before_answer(&self, screen: &Screen) {
        self.show(screen, Until::TypingOrUnanswered);
    }

    fn show(&self, screen: &Screen, until: Until) {
        let mut seen = lock(&self.seen);
        let calls = self.fake.calls();
        let Some(new) = calls.get(*seen..) else {
            // The recording was cleared; start over from what is there now.
            *seen = calls.len();
            return;
        };
        let stop = new
            .iter()
            .position(|call| match until {
                Until::End => false,
                Until::Unanswered => call.answer.is_none(),
                Until::TypingOrUnanswered => {
                    call.answer.is_none() || call.path == crate::api::kf::TYPING_PATH
                }
            })
            .unwrap_or(new.len());
        let user = lock(&self.user).clone();
        let mut http = lock(&self.http);
        let mut lines = Vec::new();
        let mut http_before = |number: usize, lines: &mut Vec<String>| {
            while http.front().is_some_and(|(before, _)| *before <= number) {
                if let Some((_, line)) = http.pop_front() {
                    lines.push(line);
                }
            }
        };
        for (i, call) in new[..stop].iter().enumerate() {
            http_before(*seen + i, &mut lines);
            lines.extend(render::describe_call(call, &user));
        }
        *seen += stop;
        http_before(*seen, &mut lines);
        if until == Until::End {
            http_before(usize::MAX, &mut lines);
        }
        if !lines.is_empty() {
            screen.api(&lines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn config_points_at_the_fake_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let env: HashMap<String, String> = [
            ("WECHAT_DATA", data.to_str().unwrap()),
            ("WECHAT_APPID", "wxreal"),
            ("WECHAT_APPSECRET", "realsecret"),
            ("WECHAT_STORE", "redis://127.0.0.1:1/0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = chat_config(&ChatOptions::default(), &env).unwrap();
        assert_eq!(config.token.as_ref().unwrap().expose(), CHAT_TOKEN);
        assert_eq!(config.appid.as_deref(), Some(FAKE_APPID));
        assert_eq!(config.appsecret.as_ref().unwrap().expose(), FAKE_SECRET);
        assert_eq!(config.store.as_deref(), Some(CHAT_STORE));
        assert!(!data.exists(), "no token file or data directory is created");

        let mut env = env;
        env.insert("WECHAT_TOKEN".into(), "mine123".into());
        let config = chat_config(&ChatOptions::default(), &env).unwrap();
        assert_eq!(config.token.as_ref().unwrap().expose(), "mine123");
    }

    #[test]
    fn data_keeps_the_store_on_disk_and_loopback_is_let_through() {
        let dir = tempfile::tempdir().unwrap();
        let options = ChatOptions {
            data: Some(dir.path().join("kept")),
            ..ChatOptions::default()
        };
        let env: HashMap<String, String> = [(
            "WECHAT_STORE".to_string(),
            "redis://127.0.0.1:1/0".to_string(),
        )]
        .into();
        let config = chat_config(&options, &env).unwrap();
        assert_eq!(
            config.store, None,
            "the embedded store, not the configured one"
        );
        assert_eq!(config.data, dir.path().join("kept"));
        let url = |u: &str| url::Url::parse(u).unwrap();
        for allowed in [
            "http://127.0.0.1:9000/",
            "http://[::1]/",
            "http://localhost:1/",
        ] {
            assert_eq!(
                config.http.rules.check_url(&url(allowed)),
                Ok(()),
                "{allowed}"
            );
        }
        assert!(config
            .http
            .rules
            .check_resolved("localhost", "127.0.0.1".parse().unwrap())
            .is_ok());
        assert!(
            config
                .http
                .rules
                .check_url(&url("http://10.0.0.1/"))
                .is_err(),
            "private addresses stay refused"
        );
        assert!(
            crate::net::Rules::default()
                .check_url(&url("http://127.0.0.1/"))
                .is_err(),
            "outside chat, loopback stays refused"
        );
    }

    #[test]
    fn create_times_never_repeat() {
        let clock = Clock::default();
        let (t1, id1) = clock.next();
        let (t2, id2) = clock.next();
        assert!(t2 > t1, "{t1} {t2}");
        assert_ne!(id1, id2);
    }

    #[tokio::test]
    async fn counting_late_replies_settles_to_zero() {
        let pending = Arc::new(AtomicI64::new(0));
        let late = CountingLate {
            inner: Arc::new(crate::dispatch::LogLateReplies),
            pending: pending.clone(),
        };
        late.started("o").await;
        assert_eq!(pending.load(Ordering::SeqCst), 1);
        let finished = late.finished(
            "o",
            Ok(Handled {
                reply: None,
                handler: None,
            }),
        );
        assert_eq!(
            pending.load(Ordering::SeqCst),
            1,
            "not before delivery ends"
        );
        finished.await;
        assert_eq!(pending.load(Ordering::SeqCst), 0);
    }
}
