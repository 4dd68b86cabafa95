//! `wechat-lua play`: the browser playground. Starts the same fake WeChat API and host as
//! `chat` ([`super::chat::Simulator`]), serves the playground page ([`crate::playground`])
//! at `--listen`, prints its address and opens nothing; runs until Ctrl-C.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use super::chat::{chat_config, ChatError, ChatOptions, Simulator};
use crate::playground::feed::{EventBody, Feed};
use crate::playground::logs::FeedLayer;
use crate::playground::{Playground, FIRST_USER};

/// Where the page is served unless `--listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8090";

/// What `wechat-lua play` was asked for.
#[derive(Debug, Clone)]
pub struct PlayOptions {
    /// `--scripts DIR|FILE`.
    pub scripts: Option<PathBuf>,
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--listen ADDR`: where the page is served.
    pub listen: String,
    /// `--menu FILE`: the fake account's menu at the start (JSON or TOML).
    pub menu: Option<PathBuf>,
    /// `--template ID`: templates the fake account has at the start.
    pub templates: Vec<String>,
}

/// Runs the playground until Ctrl-C or SIGTERM.
pub fn run(options: PlayOptions) -> Result<(), ChatError> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let chat = ChatOptions {
        scripts: options.scripts.clone(),
        config: options.config.clone(),
        user: FIRST_USER.to_string(),
        menu: options.menu.clone(),
        templates: options.templates.clone(),
        ..ChatOptions::default()
    };
    let config = chat_config(&chat, &env)?;
    let feed = Arc::new(Feed::default());
    init_logging(feed.clone());
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(session(config, chat, options, feed));
    // The fake API's server task and open event streams never end by themselves.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// Log lines to stderr as `serve` writes them, and to the page's panel.
fn init_logging(feed: Arc<Feed>) {
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(crate::logging::SafeLines {
            json: false,
            keep_ansi: false,
        })
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        );
    let page = FeedLayer { feed }.with_filter(tracing_subscriber::EnvFilter::new(
        "warn,wechat_lua=info,script=info",
    ));
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(page)
        .try_init();
}

async fn session(
    config: crate::config::Config,
    chat: ChatOptions,
    options: PlayOptions,
    feed: Arc<Feed>,
) -> Result<(), ChatError> {
    // Bound first: a port in use fails before anything starts.
    let listener = tokio::net::TcpListener::bind(&options.listen).await?;
    let address = listener.local_addr()?;
    let account_name = config
        .scripts
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bot".into());
    // `chat`'s settings replace `public_url` with the host's local address; the configured
    // one is kept so links to the bot's site open locally.
    let site_url = config
        .oauth
        .as_ref()
        .map(|oauth| oauth.public_url.clone())
        .filter(|url| !url.is_empty());
    let mut calls = None;
    let http_feed = feed.clone();
    let sim = Simulator::start(config, &chat, |fake| {
        // Watched before the host starts, so calls its scripts make at start-up show too.
        calls = Some(fake.watch_calls());
        Some(Arc::new(move |seen: &crate::net::SeenRequest| {
            http_feed.push(EventBody::Http {
                line: super::chat::render::describe_http(seen),
            });
        }))
    })
    .await?;
    let playground = Arc::new(Playground::with_site(
        feed.clone(),
        &sim,
        address,
        account_name,
        FIRST_USER,
        site_url,
    ));
    let watcher = calls.map(|calls| tokio::spawn(playground.clone().watch_calls(calls)));
    feed.push(EventBody::Generation {
        generation: sim.host.state.dispatcher.scripts().generation(),
    });
    eprintln!(
        "wechat-lua play: {} — open http://{address}/ in a browser (Ctrl-C stops)\n  \
         the scripts' pages: http://{}/\n  fake WeChat API: {} (appid {})",
        sim.config.scripts.display(),
        sim.address,
        sim.base,
        crate::fake_wechat::FAKE_APPID,
    );
    let app = playground.router();
    // Open event streams never end by themselves: stop serving at once on Ctrl-C rather
    // than wait for every page to close.
    tokio::select! {
        served = axum::serve(listener, app) => served?,
        _ = crate::server::shutdown_signal() => {}
    }
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    sim.stop().await
}
