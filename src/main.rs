//! The `wechat-lua` command: parse flags, set up logging, hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wechat_lua::commands;
use wechat_lua::config::{Config, LogFormat, Overrides, TokenSource};
use wechat_lua::host::Host;
use wechat_lua::server::{self, CALLBACK_PATH};

#[derive(Parser)]
#[command(
    name = "wechat-lua",
    version,
    about = "WeChat Official Account bots in Lua"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the WeChat callback at /wechat, running the bot in --scripts.
    Serve(CommonArgs),
    /// Load the scripts as serve does, running their top level, without serving; report
    /// errors and warnings with file:line (exit 1 on errors, or on warnings with --strict).
    Check(CheckArgs),
    /// Scaffold a new bot (scripts, config, editor types) into DIR.
    New(NewArgs),
    /// The account's custom menu: push a JSON or TOML file, show it, or delete it.
    Menu {
        #[command(subcommand)]
        action: MenuAction,
        #[command(flatten)]
        common: AccountArgs,
    },
    /// Whether an access_token is cached and when it expires (never the token unless --show).
    Token {
        /// Print the token itself too.
        #[arg(long)]
        show: bool,
        #[command(flatten)]
        common: AccountArgs,
    },
    /// The accounts this host serves: configured ones and, with [component], the accounts that
    /// authorized the open platform, with the state of their tokens (never a secret).
    Accounts(AccountArgs),
    /// Chat with the bot in the terminal, as a WeChat user, against a built-in fake WeChat API.
    Chat(ChatArgs),
    /// The browser playground: a WeChat-like chat window with the bot, its menu, several
    /// simulated users and a developer panel, against the built-in fake WeChat API.
    Play(PlayArgs),
}

#[derive(Args)]
struct PlayArgs {
    /// Scripts: a directory whose entry is main.lua, or one .lua file (default: scripts).
    #[arg(long, value_name = "DIR|FILE")]
    scripts: Option<PathBuf>,
    /// Where the playground page is served.
    #[arg(long, value_name = "ADDR", default_value = commands::play::DEFAULT_LISTEN)]
    listen: String,
    /// The fake account's menu at the start, from a JSON or TOML file as `menu push` takes it.
    #[arg(long, value_name = "FILE")]
    menu: Option<PathBuf>,
    /// Config file (default: wechat-lua.toml in the working directory, when present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A template_id the fake account has, so template sends with it succeed (repeatable).
    #[arg(long = "template", value_name = "ID")]
    templates: Vec<String>,
}

#[derive(Args)]
struct ChatArgs {
    /// Scripts: a directory whose entry is main.lua, or one .lua file (default: scripts).
    #[arg(long, value_name = "DIR|FILE")]
    scripts: Option<PathBuf>,
    /// Config file (default: wechat-lua.toml in the working directory, when present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the reply XML instead of reading it.
    #[arg(long)]
    raw: bool,
    /// The user's OpenID.
    #[arg(long = "as", value_name = "OPENID", default_value = commands::chat::DEFAULT_USER)]
    user: String,
    /// Keep the store (wx.store) in DIR between chats (default: in memory, gone at the end).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The fake account's menu at the start, from a JSON or TOML file as `menu push` takes it.
    #[arg(long, value_name = "FILE")]
    menu: Option<PathBuf>,
    /// A template_id the fake account has, so template sends with it succeed (repeatable).
    #[arg(long = "template", value_name = "ID")]
    templates: Vec<String>,
    /// Serve the scripts' pages (wx.route) for a browser too, signed in with WeChat as the
    /// user chatting (through the fake's sign-in page); prints the address.
    #[arg(long)]
    web: bool,
    /// Where --web serves the pages (default: a free port on 127.0.0.1).
    #[arg(long, value_name = "ADDR", requires = "web")]
    listen: Option<String>,
    /// Chat with this [[accounts]] account (its path, token, envelope and scripts; every
    /// account gets fake credentials) instead of the top-level settings' account.
    #[arg(long, value_name = "NAME")]
    account: Option<String>,
}

#[derive(Subcommand)]
enum MenuAction {
    /// Create the menu from FILE (JSON, or TOML when it ends in .toml).
    Push {
        /// The menu definition, as `menu/create` takes it.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the menu WeChat has.
    Show,
    /// Delete the menu.
    Delete,
}

#[derive(Args)]
struct CheckArgs {
    /// Scripts directory, one .lua file, or a bot directory (default: the configured scripts).
    #[arg(value_name = "DIR|FILE")]
    path: Option<PathBuf>,
    /// Config file, checked as serve reads it (default: wechat-lua.toml, when present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Fail (exit 1) on warnings too, such as misspelt wx.* names: for a pre-commit hook.
    #[arg(long)]
    strict: bool,
}

/// The flags of the account commands (`menu`, `token`): where the settings and the cached
/// access_token are; nothing about serving.
#[derive(Args, Clone, Default)]
struct AccountArgs {
    /// Config file (default: wechat-lua.toml in the working directory, when present).
    // Global: `menu push FILE --config X` reads as naturally as `menu --config X push FILE`.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Where the host keeps its state, the cached access_token included (default: data).
    #[arg(long, value_name = "DIR", global = true)]
    data: Option<PathBuf>,
    /// Store: redis://HOST:PORT/DB when instances share one (default: embedded, in --data).
    #[arg(long, value_name = "URL", global = true)]
    store: Option<String>,
    /// Which account: an [[accounts]] table's name (default: the top-level settings' account).
    /// Global, so `menu push FILE --account NAME` reads as well as `menu --account NAME push`.
    #[arg(long, value_name = "NAME", global = true)]
    account: Option<String>,
}

impl AccountArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            data: self.data.clone(),
            store: self.store.clone(),
            ..Overrides::default()
        }
    }
}

#[derive(Args)]
struct NewArgs {
    /// Directory to create; must be missing or empty.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Args, Clone, Default)]
struct CommonArgs {
    /// Config file (default: wechat-lua.toml in the working directory, when present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Scripts: a directory whose entry is main.lua, or one .lua file (default: scripts).
    #[arg(long, value_name = "DIR|FILE")]
    scripts: Option<PathBuf>,
    /// Where the host keeps its state (default: data).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Store: redis://HOST:PORT/DB for several instances (default: embedded, in --data).
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Log line format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

impl CommonArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            listen: self.listen.clone(),
            scripts: self.scripts.clone(),
            data: self.data.clone(),
            store: self.store.clone(),
            log_format: self.log_format,
        }
    }
}

/// Logs to stderr, one event a line: control characters escaped and long lines cut
/// ([`wechat_lua::logging`]), colours only on a terminal and unless `NO_COLOR` is set.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = format == LogFormat::Text
        && std::io::stderr().is_terminal()
        && !wechat_lua::logging::no_color(std::env::var_os("NO_COLOR").as_deref());
    let writer = wechat_lua::logging::SafeLines {
        json: format == LogFormat::Json,
        keep_ansi: ansi,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// jemalloc rather than the system's allocator for the whole binary: a message allocates some
/// forty short-lived blocks, and under load glibc's per-thread cache (seven blocks a size)
/// overflows into its shared bins, whose consolidation and searching led the profile. Measured
/// against glibc with the same source, see Cargo.toml and docs/benchmarks.md.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Check(args) => return check(&args),
        Command::New(args) => new(&args),
        Command::Menu { action, common } => account(&common, |config| async move {
            match action {
                MenuAction::Push { file } => commands::account::menu_push(&config, &file).await,
                MenuAction::Show => commands::account::menu_show(&config).await,
                MenuAction::Delete => commands::account::menu_delete(&config).await,
            }
        }),
        Command::Token { show, common } => account(&common, |config| async move {
            commands::account::token_status(&config, show).await
        }),
        Command::Accounts(common) => account(&common, |config| async move {
            commands::account::accounts(&config).await
        }),
        Command::Chat(args) => commands::chat::run(commands::ChatOptions {
            scripts: args.scripts,
            config: args.config,
            raw: args.raw,
            user: args.user,
            data: args.data,
            menu: args.menu,
            templates: args.templates,
            web: args.web,
            listen: args.listen,
            account: args.account,
        })
        .map_err(anyhow::Error::from),
        Command::Play(args) => commands::play::run(commands::play::PlayOptions {
            scripts: args.scripts,
            config: args.config,
            listen: args.listen,
            menu: args.menu,
            templates: args.templates,
        })
        .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(args: &CheckArgs) -> ExitCode {
    // The settings are loaded and judged as `serve` would (an unknown key fails here too);
    // the scripts they point at are what is checked.
    let overrides = Overrides {
        config: args.config.clone(),
        scripts: args.path.clone(),
        ..Overrides::default()
    };
    let config = match Config::load(&overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The shared scripts, then every `[[accounts]]` table's own scripts directory, once each.
    let mut locations = vec![config.scripts.clone()];
    for own in config.accounts.iter().filter_map(|a| a.scripts.clone()) {
        if !locations.contains(&own) {
            locations.push(own);
        }
    }
    let mut passed = true;
    for location in &locations {
        let report = wechat_lua::commands::check(location);
        println!("{report}");
        passed &= report.passed(args.strict);
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn new(args: &NewArgs) -> anyhow::Result<()> {
    let written = wechat_lua::commands::scaffold(&args.dir)?;
    for path in &written {
        println!("created {}", path.display());
    }
    println!("\n{}", wechat_lua::commands::new::next_steps(&args.dir));
    Ok(())
}

/// Runs an account command with the configured account and prints what it returns.
fn account<F, Fut>(args: &AccountArgs, run: F) -> anyhow::Result<()>
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let config = Config::load(&args.overrides())?;
    let config = match &args.account {
        Some(name) => config.for_account(name)?,
        None => config,
    };
    init_logging(config.log_format);
    let output = tokio::runtime::Runtime::new()?.block_on(run(config))?;
    println!("{output}");
    Ok(())
}

fn serve(args: &CommonArgs) -> anyhow::Result<()> {
    let mut config = Config::load(&args.overrides())?;
    init_logging(config.log_format);
    let (token, source) = config.serving_token()?;
    if source == TokenSource::Generated {
        println!(
            "No token was configured, so one was generated and kept in {}:\n\n    Token: {}\n\n\
             Paste it into 公众号后台 → 设置与开发 → 基本配置 → 服务器配置 (Token), with URL \
             http://<your public host>{CALLBACK_PATH}. Set WECHAT_TOKEN to use your own instead.\n",
            config.data.join(wechat_lua::config::TOKEN_FILE).display(),
            token.expose()
        );
    }
    config.token = Some(token);
    // Sessions signed with a kept secret survive restarts (never printed: nobody pastes it).
    let cookie_secret = config.serving_cookie_secret()?;
    if let Some(oauth) = config.oauth.as_mut() {
        oauth.cookie_secret = cookie_secret;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let host = Host::build(&config, true).await?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        tracing::info!(
            mode = %config.mode,
            scripts = %config.scripts.display(),
            "listening on http://{addr}{CALLBACK_PATH}"
        );
        // Requests in flight, and then handlers still running past their deadline (their
        // replies go out late), get `shutdown_grace` after the signal; then the process exits
        // whatever scripts are doing.
        let (signalled, on_signal) = tokio::sync::watch::channel(None);
        let shutdown = async move {
            server::shutdown_signal().await;
            let _ = signalled.send(Some(tokio::time::Instant::now()));
        };
        let grace = config.shutdown_grace;
        let grace_end = {
            let mut on_signal = on_signal.clone();
            async move {
                match on_signal.wait_for(Option::is_some).await.map(|at| *at) {
                    Ok(Some(at)) => tokio::time::sleep_until(at + grace).await,
                    _ => std::future::pending::<()>().await,
                }
            }
        };
        tokio::select! {
            served = server::run(listener, host.state.clone(), shutdown) => served?,
            _ = grace_end => tracing::warn!(
                grace_s = grace.as_secs_f64(),
                "shutdown grace period over with requests still in flight: exiting"
            ),
        }
        let signalled_at = (*on_signal.borrow()).unwrap_or_else(tokio::time::Instant::now);
        let still_running = host.state.wait_for_handlers(signalled_at + grace).await;
        if still_running > 0 {
            tracing::warn!(
                count = still_running,
                grace_s = grace.as_secs_f64(),
                "shutdown grace period over with {still_running} handler(s) still running: cut off, their replies are not sent"
            );
        }
        if tokio::time::timeout(grace.max(Duration::from_secs(1)), host.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("the outbox worker did not stop in time: exiting");
        }
        Ok::<_, anyhow::Error>(())
    })?;
    // Tasks still running (late handlers) are cancelled at their next yield; a handler always
    // reaches one within a time slice, so this returns promptly.
    runtime.shutdown_timeout(Duration::from_secs(1));
    tracing::info!("stopped");
    Ok(())
}
