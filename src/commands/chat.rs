//! `wechat-lua chat`: a terminal chat with the bot, playing a WeChat user. It runs the
//! built-in fake WeChat API and a real host in-process, sends each typed line (or slash
//! command) as WeChat would — signed, and encrypted when an EncodingAESKey is configured —
//! over the real HTTP callback, and shows the passive reply, every API call the scripts make,
//! and script errors and reloads as they happen.

pub mod render;
mod screen;
pub mod slash;
mod wire;

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::config::{Config, ConfigError, Overrides, Secret};
use crate::dispatch::LateReplies;
use crate::fake_wechat::{FakeWechat, FAKE_APPID, FAKE_SECRET};
use crate::host::{BuildError, Host};
use crate::protocol::crypto::MessageCrypto;
use crate::protocol::envelope::Envelope;
use crate::script::runtime::{Handled, LateReplyFailure};
use crate::script::ScriptError;
use crate::server::{self, CALLBACK_PATH};
use crate::sync::lock;
use render::ReplyView;
use screen::{init_logging, Screen};
use slash::Input;
use wire::Wire;

/// The user chatting when `--as` is not given.
pub const DEFAULT_USER: &str = "o_chat_user";
/// The token callbacks are signed with when none is configured (never written to disk).
pub const CHAT_TOKEN: &str = "wechatluachat";
/// The account's original ID (ToUserName) in simulated messages.
pub const ACCOUNT: &str = "gh_wechat_lua_chat";
/// The store the chat host uses: nothing outlives the session.
pub const CHAT_STORE: &str = "sqlite::memory:";

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
}

impl Default for ChatOptions {
    fn default() -> Self {
        ChatOptions {
            scripts: None,
            config: None,
            raw: false,
            user: DEFAULT_USER.to_string(),
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
}

/// The chat's settings: loaded as `serve` loads them, then pointed at the fake WeChat API
/// (the host is built with its base once the fake listens) with an in-memory store.
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
    config.store = Some(CHAT_STORE.to_string());
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

async fn session(
    config: Config,
    options: ChatOptions,
    screen: Arc<Screen>,
) -> Result<(), ChatError> {
    let (fake, base) = FakeWechat::start().await?;
    // The fake's sign-in page signs pages in as the user chatting (`/as` switches both).
    fake.set_oauth_user(&options.user);
    let pending = Arc::new(AtomicI64::new(0));
    let counted = pending.clone();
    let host = Host::builder(&config)
        .watch(true)
        .api_base(base)
        .late_replies(move |inner| {
            Arc::new(CountingLate {
                inner,
                pending: counted,
            })
        })
        .build()
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}{CALLBACK_PATH}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::run(listener, host.state.clone(), async {
        let _ = stopped.await;
    }));

    let user = Arc::new(Mutex::new(options.user.clone()));
    let feed = Arc::new(CallFeed {
        fake,
        seen: Mutex::new(0),
        user: user.clone(),
    });
    let token = host.state.token.clone();
    let envelope = match &config.encoding_aes_key {
        Some(key) if config.mode != crate::config::SecurityMode::Plain => Some(Envelope::new(
            token.expose(),
            MessageCrypto::new(key.expose(), FAKE_APPID).map_err(BuildError::from)?,
        )),
        _ => None,
    };
    let wire = Wire {
        client: reqwest::Client::builder().no_proxy().build()?,
        url,
        token,
        envelope,
    };
    eprintln!(
        "wechat-lua chat: {} as {}{} — /help lists commands, /quit leaves",
        config.scripts.display(),
        options.user,
        if wire.envelope.is_some() {
            ", messages encrypted (encrypt_type=aes)"
        } else {
            ""
        }
    );

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
    converse(lines, &wire, &screen, &feed, &user, &interrupt, options.raw).await;

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
    feed.flush(&screen);

    drop(wire);
    let _ = stop.send(());
    match server.await {
        Ok(result) => result?,
        Err(e) => tracing::error!("the chat's HTTP server failed: {e}"),
    }
    host.shutdown().await;
    Ok(())
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
        match slash::parse(&line) {
            Input::Nothing => {}
            Input::Quit => break,
            Input::Help => screen.notes(slash::HELP.lines()),
            Input::Hint(hint) => screen.notes([hint.as_str()]),
            Input::SwitchUser(openid) => {
                screen.notes([format!("(now chatting as {openid})").as_str()]);
                feed.fake.set_oauth_user(&openid);
                *lock(user) = openid;
            }
            Input::Send(inbound) => {
                let from = lock(user).clone();
                let (create_time, msg_id) = clock.next();
                let xml = inbound.to_xml(&from, ACCOUNT, create_time, msg_id);
                let answer = wire.send(&xml).await;
                // Calls the handler made before answering belong above its reply.
                feed.flush_before_answer(screen);
                match answer {
                    Ok(body) if raw => screen.bot(body.trim().lines()),
                    Ok(body) => match render::describe_reply(&body) {
                        ReplyView::NoReply => screen.dim("(no reply)"),
                        ReplyView::Lines(lines) => screen.bot(lines.iter().map(String::as_str)),
                    },
                    Err(e) => screen.bot([format!("[{e}]").as_str()]),
                }
            }
        }
    }
}

/// CreateTime and MsgId for each message: CreateTime never repeats, so two identical events
/// within a second are not taken for WeChat retrying one.
struct Clock {
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
    fn next(&self) -> (i64, u64) {
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

/// Calls recorded by the fake WeChat API, shown once each as they arrive.
struct CallFeed {
    fake: FakeWechat,
    /// How many recorded calls were shown already.
    seen: Mutex<usize>,
    /// The current user, whose sends need no recipient named.
    user: Arc<Mutex<String>>,
}

impl CallFeed {
    /// Shows the calls not shown yet.
    fn flush(&self, screen: &Screen) {
        self.show(screen, false);
    }

    /// Shows the calls the handler made before its answer came back: those not shown yet, up
    /// to the typing indicator the host sends when the reply deadline passes. That one, and
    /// the late reply after it, belong below the answer (`success`) they follow, whichever
    /// reached the fake API first.
    fn flush_before_answer(&self, screen: &Screen) {
        self.show(screen, true);
    }

    fn show(&self, screen: &Screen, stop_at_typing: bool) {
        let mut seen = lock(&self.seen);
        let calls = self.fake.calls();
        let Some(new) = calls.get(*seen..) else {
            // The recording was cleared; start over from what is there now.
            *seen = calls.len();
            return;
        };
        let end = if stop_at_typing {
            new.iter()
                .position(|call| call.path == crate::api::kf::TYPING_PATH)
                .unwrap_or(new.len())
        } else {
            new.len()
        };
        let new = &new[..end];
        let user = lock(&self.user).clone();
        let lines: Vec<String> = new
            .iter()
            .filter_map(|call| render::describe_call(call, &user))
            .collect();
        *seen += end;
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
