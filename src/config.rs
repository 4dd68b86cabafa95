//! Settings from `wechat-lua.toml`, the environment and command-line flags.
//!
//! Precedence, lowest first: built-in defaults, the TOML file, `WECHAT_*` environment
//! variables, flags. Secrets (token, AppSecret, EncodingAESKey) are held in [`Secret`],
//! whose `Debug` never shows the value, so a config can be logged safely.
//!
//! Relative paths have one rule: `scripts` and `data` written in a config file named with
//! `--config` are relative to that file's directory; everything else (flags, the
//! environment, `wechat-lua.toml` found in the working directory) is relative to the working
//! directory. A bot directory made by `new` given where scripts are expected (`--scripts
//! mybot`, `check mybot`) stands for its `wechat-lua.toml` and scripts ([`bot_dir`]).
//!
//! Loading only reads: it never writes a file, so `check`, `token` and `menu` leave the data
//! directory alone. The one write, a generated token, happens when `serve` asks for
//! [`Config::serving_token`].

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::api::TokenEndpoint;
use crate::api::DEFAULT_API_BASE;
use crate::net::{HostRule, HttpSettings, Rules};

/// Default address `serve` listens on.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The file read from the working directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "wechat-lua.toml";
/// Where a generated token is kept, inside the data directory.
pub const TOKEN_FILE: &str = "token";
/// Where a generated `[oauth] cookie_secret` is kept, inside the data directory.
pub const COOKIE_SECRET_FILE: &str = "cookie_secret";
/// Shortest `cookie_secret` accepted: the signing key is derived from it (HKDF), which wants
/// at least 32 bytes of it.
pub const MIN_COOKIE_SECRET_LEN: usize = 32;

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the few places that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How inbound messages are protected (the console's 消息加解密方式).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    /// 明文模式: nothing is encrypted.
    Plain,
    /// 兼容模式: encrypted and plaintext requests are both accepted.
    Compatible,
    /// 安全模式: unencrypted requests are refused.
    Safe,
}

impl fmt::Display for SecurityMode {
    /// As the setting is written (`plain`), for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecurityMode::Plain => "plain",
            SecurityMode::Compatible => "compatible",
            SecurityMode::Safe => "safe",
        })
    }
}

impl std::str::FromStr for SecurityMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "plain" => Ok(SecurityMode::Plain),
            "compatible" => Ok(SecurityMode::Compatible),
            "safe" => Ok(SecurityMode::Safe),
            other => Err(ConfigError::Invalid {
                setting: "mode",
                reason: format!("`{other}` is not one of plain, compatible, safe"),
            }),
        }
    }
}

/// What a host does with a message whose claim in the shared store it cannot confirm (the
/// store is stalled or unreachable), so it cannot know whether another instance has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnconfirmedClaim {
    /// Answer `success` without running the handler, and let WeChat's retry claim it once
    /// the store answers again: a handler never runs twice for one message, but the message
    /// is lost if the store stays away through all of WeChat's retries (about 15 s).
    #[default]
    Skip,
    /// Run the handler anyway: the message is answered even while the store is away, but
    /// another instance that cannot confirm either may run it too.
    Run,
}

impl std::str::FromStr for UnconfirmedClaim {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "skip" => Ok(UnconfirmedClaim::Skip),
            "run" => Ok(UnconfirmedClaim::Run),
            other => Err(ConfigError::Invalid {
                setting: "unconfirmed_claim",
                reason: format!("`{other}` is not one of skip, run"),
            }),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Errors that stop start-up, each naming the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A setting has a value that cannot work.
    #[error("setting `{setting}`: {reason}")]
    Invalid {
        /// Which setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An `[[accounts]]` table is wrong.
    #[error("config file {path}, the [[accounts]] table at line {line}: {reason}")]
    Account {
        /// The file.
        path: PathBuf,
        /// The line of the table's `[[accounts]]` header.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A generated secret (the token, the cookie secret) could not be kept in the data
    /// directory.
    #[error("cannot keep the generated secret in {path}: {source}")]
    TokenFile {
        /// The token file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The TOML file as written by a user; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    token: Option<Secret>,
    appid: Option<String>,
    appsecret: Option<Secret>,
    encoding_aes_key: Option<Secret>,
    mode: Option<SecurityMode>,
    api_base: Option<String>,
    token_endpoint: Option<TokenEndpoint>,
    listen: Option<String>,
    scripts: Option<PathBuf>,
    data: Option<PathBuf>,
    store: Option<String>,
    store_timeout: Option<f64>,
    claim_timeout: Option<f64>,
    unconfirmed_claim: Option<UnconfirmedClaim>,
    reply_timeout: Option<f64>,
    handler_time_budget: Option<f64>,
    shutdown_grace: Option<f64>,
    lua_memory_limit_mb: Option<usize>,
    workers: Option<usize>,
    log_format: Option<LogFormat>,
    header_timeout: Option<f64>,
    body_timeout: Option<f64>,
    idle_timeout: Option<f64>,
    max_connections: Option<usize>,
    retry_cache_mb: Option<usize>,
    api_timeout: Option<f64>,
    route_timeout: Option<f64>,
    trusted_proxies: Option<Vec<String>>,
    http: Option<HttpFileConfig>,
    session_ttl: Option<f64>,
    oauth: Option<OauthFileConfig>,
    /// `[component]`: the open platform (第三方平台) whose authorizers this host serves.
    component: Option<ComponentFileConfig>,
    /// `[[accounts]]`: more Official Accounts served beside the implicit `default` one.
    accounts: Option<Vec<toml::Spanned<AccountFileConfig>>>,
    /// The `[[accounts]]` tables checked against each other, made in [`read_file`] where the
    /// text is at hand to name each table's line.
    #[serde(skip)]
    checked_accounts: Vec<AccountConfig>,
}

/// One `[[accounts]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFileConfig {
    name: String,
    appid: String,
    appsecret: Option<Secret>,
    token: Secret,
    encoding_aes_key: Option<Secret>,
    mode: Option<SecurityMode>,
    scripts: Option<PathBuf>,
}

/// The name of the implicit account the top-level settings describe, served at `/wechat`.
pub const DEFAULT_ACCOUNT: &str = "default";

/// One more Official Account, from an `[[accounts]]` table: served at `/wechat/<name>`.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// URL-safe and unique; the path segment and `msg.account`.
    pub name: String,
    /// The account's AppID (unique among the accounts).
    pub appid: String,
    /// The AppSecret, for the access_token; without it scripts cannot call the API for it.
    pub appsecret: Option<Secret>,
    /// The token its callbacks are signed with.
    pub token: Secret,
    /// Its EncodingAESKey.
    pub encoding_aes_key: Option<Secret>,
    /// How its inbound messages are protected.
    pub mode: SecurityMode,
    /// Its own scripts; `None` runs the shared ones.
    pub scripts: Option<PathBuf>,
}

/// Whether `name` can be one path segment as it is: letters, digits, `-` and `_`, 1 to 64.
fn url_safe(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks the `[[accounts]]` tables of `text`: each name URL-safe, not `default`, and unique,
/// each appid unique (also against the top-level `appid`), each token one the console takes,
/// each mode backed by a key. An error names the table's line.
fn check_accounts(
    path: &Path,
    text: &str,
    top_appid: Option<&str>,
    tables: Vec<toml::Spanned<AccountFileConfig>>,
) -> Result<Vec<AccountConfig>, ConfigError> {
    let mut checked: Vec<AccountConfig> = Vec::with_capacity(tables.len());
    // Lines are counted on from the previous table (tables come in file order), so a file
    // of a thousand tables is read once, not once per table.
    let (mut counted_to, mut newlines) = (0, 0);
    for table in tables {
        let start = table.span().start.min(text.len()).max(counted_to);
        newlines += text.as_bytes()[counted_to..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted_to = start;
        let line = newlines + 1;
        let at = |reason: String| ConfigError::Account {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let table = table.into_inner();
        if !url_safe(&table.name) {
            return Err(at(format!(
                "name `{}` is not URL-safe: use 1 to 64 letters, digits, `-` or `_`",
                table.name
            )));
        }
        if table.name == DEFAULT_ACCOUNT {
            return Err(at(format!(
                "name `{DEFAULT_ACCOUNT}` is the account of the top-level settings, served at /wechat"
            )));
        }
        if checked.iter().any(|a| a.name == table.name) {
            return Err(at(format!(
                "name `{}` is used by another account",
                table.name
            )));
        }
        if checked.iter().any(|a| a.appid == table.appid) || top_appid == Some(&table.appid) {
            return Err(at(format!(
                "appid `{}` is used by another account",
                table.appid
            )));
        }
        validate_token(table.token.expose()).map_err(|e| at(e.to_string()))?;
        let mode = table.mode.unwrap_or(if table.encoding_aes_key.is_some() {
            SecurityMode::Compatible
        } else {
            SecurityMode::Plain
        });
        match &table.encoding_aes_key {
            None if mode != SecurityMode::Plain => {
                return Err(at("compatible and safe mode need encoding_aes_key".into()));
            }
            Some(key) => {
                crate::protocol::crypto::MessageCrypto::new(key.expose(), &table.appid)
                    .map_err(|e| at(format!("encoding_aes_key: {e}")))?;
            }
            None => {}
        }
        checked.push(AccountConfig {
            name: table.name,
            appid: table.appid,
            appsecret: table.appsecret,
            token: table.token,
            encoding_aes_key: table.encoding_aes_key,
            mode,
            scripts: table.scripts,
        });
    }
    Ok(checked)
}

/// The `[oauth]` table: sign-in with WeChat (网页授权) for the scripts' pages.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OauthFileConfig {
    scope: Option<String>,
    cookie_secret: Option<Secret>,
    public_url: Option<String>,
}

/// The `[component]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentFileConfig {
    appid: Option<String>,
    appsecret: Option<Secret>,
    token: Option<Secret>,
    encoding_aes_key: Option<Secret>,
    public_url: Option<String>,
}

/// The `[component]` table checked: the open platform (第三方平台) this host serves
/// authorizers of, at `/component/events` and `/component/<appid>/callback`.
#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// The platform's AppID (component_appid).
    pub appid: String,
    /// The platform's AppSecret, for the component_access_token.
    pub appsecret: Secret,
    /// The token WeChat signs the platform's pushes and its authorizers' messages with
    /// (消息校验Token).
    pub token: Secret,
    /// The platform's EncodingAESKey (消息加解密Key): every push and message is encrypted.
    pub encoding_aes_key: Secret,
    /// The site's origin as WeChat and administrators reach it (`https://bots.example`),
    /// without a trailing slash: the authorization page sends them back to
    /// `<public_url>/component/authorized`.
    pub public_url: String,
}

/// The `[component]` table checked: every key present, the token one the console takes, the
/// key a valid EncodingAESKey, the public URL an origin. Each error names the key.
fn component_settings(file: ComponentFileConfig) -> Result<ComponentConfig, ConfigError> {
    fn required<T>(value: Option<T>, setting: &'static str, what: &str) -> Result<T, ConfigError> {
        value.ok_or_else(|| ConfigError::Invalid {
            setting,
            reason: format!("the open platform needs {what}"),
        })
    }
    let appid = required(file.appid, "component.appid", "its AppID (component_appid)")?;
    if appid.trim().is_empty() {
        return Err(ConfigError::Invalid {
            setting: "component.appid",
            reason: "is empty".into(),
        });
    }
    let appsecret = required(file.appsecret, "component.appsecret", "its AppSecret")?;
    let token = required(
        file.token,
        "component.token",
        "its message token (消息校验Token)",
    )?;
    validate_token(token.expose()).map_err(|e| ConfigError::Invalid {
        setting: "component.token",
        reason: match e {
            ConfigError::Invalid { reason, .. } => reason,
            other => other.to_string(),
        },
    })?;
    let encoding_aes_key = required(
        file.encoding_aes_key,
        "component.encoding_aes_key",
        "its EncodingAESKey (消息加解密Key)",
    )?;
    crate::protocol::crypto::MessageCrypto::new(encoding_aes_key.expose(), &appid).map_err(
        |e| ConfigError::Invalid {
            setting: "component.encoding_aes_key",
            reason: e.to_string(),
        },
    )?;
    let public_url = required(
        file.public_url,
        "component.public_url",
        "the site's origin as WeChat reaches it, like https://bots.example",
    )?;
    let public_url = public_origin(&public_url).map_err(|reason| ConfigError::Invalid {
        setting: "component.public_url",
        reason,
    })?;
    Ok(ComponentConfig {
        appid,
        appsecret,
        token,
        encoding_aes_key,
        public_url,
    })
}

/// The `[http]` table: where `wx.http` may go and how many requests may be in flight.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFileConfig {
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    user_agent: Option<String>,
    max_requests: Option<usize>,
    max_requests_per_worker: Option<usize>,
}

/// Command-line overrides (the flags of `serve` and friends).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--listen ADDR`.
    pub listen: Option<String>,
    /// `--scripts DIR|FILE`.
    pub scripts: Option<PathBuf>,
    /// `--data DIR`.
    pub data: Option<PathBuf>,
    /// `--store URL`.
    pub store: Option<String>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

impl Overrides {
    /// These overrides with a bot directory given as `--scripts` resolved: its scripts become
    /// the scripts, and its `wechat-lua.toml` the config file unless `--config` names one.
    fn with_bot_dir(&self) -> Result<Overrides, ConfigError> {
        let mut resolved = self.clone();
        if let Some(bot) = self.scripts.as_deref().map(bot_dir).transpose()?.flatten() {
            resolved.scripts = Some(bot.scripts);
            if resolved.config.is_none() {
                resolved.config = bot.config;
            }
        }
        Ok(resolved)
    }
}

/// A bot directory as `new` makes it: `wechat-lua.toml` and `scripts/`, no `main.lua` of
/// its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotDir {
    /// Its `wechat-lua.toml`, when it has one.
    pub config: Option<PathBuf>,
    /// Its scripts: the file's `scripts` setting (relative to the directory), else `scripts/`.
    pub scripts: PathBuf,
}

/// `location` as a bot directory, when it is one: a directory without a `main.lua` that has
/// a `wechat-lua.toml`, or a `scripts/main.lua`. `None` for a scripts directory, a file, or
/// anything else (left to the scripts loader to judge).
pub fn bot_dir(location: &Path) -> Result<Option<BotDir>, ConfigError> {
    if !location.is_dir() || location.join("main.lua").exists() {
        return Ok(None);
    }
    let config = location.join(DEFAULT_CONFIG_FILE);
    if config.is_file() {
        let scripts = read_file_at(&config)?
            .scripts
            .unwrap_or_else(|| location.join("scripts"));
        return Ok(Some(BotDir {
            config: Some(config),
            scripts,
        }));
    }
    let scripts = location.join("scripts");
    if scripts.join("main.lua").is_file() {
        return Ok(Some(BotDir {
            config: None,
            scripts,
        }));
    }
    Ok(None)
}

/// Where the token in effect came from; decides what start-up prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// Set by the user (file or environment).
    Configured,
    /// Generated earlier and read back from the data directory.
    Stored,
    /// Generated by this start; must be shown once so it can be pasted into the console.
    Generated,
}

/// The settings in effect.
#[derive(Debug, Clone)]
pub struct Config {
    /// The token shared with the WeChat console (服务器配置 → Token), when one is configured;
    /// `serve` falls back to [`Config::serving_token`].
    pub token: Option<Secret>,
    /// The account's AppID.
    pub appid: Option<String>,
    /// The account's AppSecret, for the access_token.
    pub appsecret: Option<Secret>,
    /// The 43-character EncodingAESKey.
    pub encoding_aes_key: Option<Secret>,
    /// How inbound messages are protected.
    pub mode: SecurityMode,
    /// Base URL of the WeChat API.
    pub api_base: String,
    /// Which access_token endpoint to use.
    pub token_endpoint: TokenEndpoint,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Scripts directory (entry `main.lua`) or a single `.lua` file.
    pub scripts: PathBuf,
    /// Where the host keeps its state.
    pub data: PathBuf,
    /// Store spec: `None` for the embedded default, or `redis://…`.
    pub store: Option<String>,
    /// How long any store command may wait for its answer before it fails (a write then has
    /// an unknown outcome).
    pub store_timeout: Duration,
    /// How long each store operation on the message path (the replay check, the retry-cache
    /// claim, publishing the answer) may take, inside the reply deadline.
    pub claim_timeout: Duration,
    /// What a message gets when its claim cannot be confirmed in the shared store.
    pub unconfirmed_claim: UnconfirmedClaim,
    /// How long a handler may take before `success` is sent for it.
    pub reply_timeout: Duration,
    /// The most one handler run may take in all, waiting included (late replies included);
    /// past it the handler is cancelled.
    pub handler_time_budget: Duration,
    /// How long a graceful shutdown waits, from the signal, for requests in flight and then
    /// for handlers still running past their deadline (so their late replies go out), before
    /// the process exits.
    pub shutdown_grace: Duration,
    /// Memory cap of each Lua state.
    pub lua_memory_limit: usize,
    /// Lua states built at start (the pool builds more while all are busy).
    pub workers: usize,
    /// Log line format.
    pub log_format: LogFormat,
    /// Connection deadlines and the cap on open connections.
    pub connections: ConnectionLimits,
    /// Most bytes of answers the retry cache keeps.
    pub retry_cache_bytes: usize,
    /// `wx.http`: allowed and denied hosts, user agent, caps on requests in flight.
    pub http: HttpSettings,
    /// How long one WeChat API request may wait for its answer. A send that times out may
    /// still have been delivered: its outcome is unknown.
    pub api_timeout: Duration,
    /// How long a `wx.session` table is kept after the last handler that saved it.
    pub session_ttl: Duration,
    /// How long a `wx.route` handler may take, waiting included, before it is stopped and
    /// answered 504.
    pub route_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` names the client of a web request (`req.ip`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The `[[accounts]]` served beside the implicit `default` account, each at
    /// `/wechat/<name>`; empty for a single-account host.
    pub accounts: Vec<AccountConfig>,
    /// Sign-in with WeChat (`[oauth]`), when the table is there.
    pub oauth: Option<OauthConfig>,
    /// The open platform (`[component]`), when the table is there.
    pub component: Option<ComponentConfig>,
}

/// The `[oauth]` table checked: sign-in with WeChat at `/oauth/login` and `/oauth/callback`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthConfig {
    /// What the visitor is asked to grant.
    pub scope: crate::api::oauth::Scope,
    /// Signs the session cookies; `None` until `serve` reads or generates the one kept in the
    /// data directory ([`Config::serving_cookie_secret`]). Never logged.
    pub cookie_secret: Option<Secret>,
    /// The site's origin as visitors reach it (`https://shop.example`), without a trailing
    /// slash: WeChat redirects back to `<public_url>/oauth/callback`, and pages are signed for
    /// the JS-SDK at `<public_url><path>`.
    pub public_url: String,
}

impl OauthConfig {
    /// Whether the site is served over https, so session cookies are `Secure`.
    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// The default of [`Config::claim_timeout`].
pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(1);
/// The default of [`Config::api_timeout`].
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(10);

/// The default of [`Config::shutdown_grace`].
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Default of `retry_cache_mb`: answers kept for WeChat's retries, at most this many MiB.
pub const DEFAULT_RETRY_CACHE_MB: usize = 32;

/// Default of [`ConnectionLimits::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`ConnectionLimits::body_timeout`].
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`ConnectionLimits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`ConnectionLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// How long clients may take, and how many may be connected at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to send a request's head (request line and headers), counted from the accept for a
    /// connection's first request and from the head's first byte for later ones. Stops clients
    /// that hold connections by trickling headers or sending nothing.
    pub header_timeout: Duration,
    /// Time to send a whole request body, counted from when its head was complete.
    pub body_timeout: Duration,
    /// Time a connection with nothing in flight may stay open with no byte moving either way.
    pub idle_timeout: Duration,
    /// Most connections open at once; each holds a file descriptor and some memory.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The longest reply timeout allowed: WeChat gives up at 5 s and the reply needs time to travel.
pub const MAX_REPLY_TIMEOUT: Duration = Duration::from_millis(4800);

impl Config {
    /// Loads settings from the file, the process environment and `overrides`.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load_with_env(overrides, &env)
    }

    /// Same as [`Config::load`] with an explicit environment (tests).
    pub fn load_with_env(
        overrides: &Overrides,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let overrides = overrides.with_bot_dir()?;
        Self::merge(chosen_file(&overrides)?, &overrides, env)
    }

    /// Only where the scripts are, as [`Config::load_with_env`] would find them, without
    /// judging the other settings.
    pub fn scripts_location(
        overrides: &Overrides,
        env: &HashMap<String, String>,
    ) -> Result<PathBuf, ConfigError> {
        let overrides = overrides.with_bot_dir()?;
        let file = chosen_file(&overrides)?;
        Ok(scripts_setting(&overrides, env, file.scripts))
    }

    fn merge(
        file: FileConfig,
        overrides: &Overrides,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let var = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();

        let token = var("WECHAT_TOKEN").map(Secret).or(file.token);
        let appid = var("WECHAT_APPID").or(file.appid);
        let appsecret = var("WECHAT_APPSECRET").map(Secret).or(file.appsecret);
        let encoding_aes_key = var("WECHAT_AES_KEY").map(Secret).or(file.encoding_aes_key);
        let mode = match var("WECHAT_MODE") {
            Some(m) => Some(m.parse()?),
            None => file.mode,
        };
        let mode = mode.unwrap_or(if encoding_aes_key.is_some() {
            SecurityMode::Compatible
        } else {
            SecurityMode::Plain
        });
        if mode != SecurityMode::Plain && encoding_aes_key.is_none() {
            return Err(ConfigError::Invalid {
                setting: "mode",
                reason: "compatible and safe mode need encoding_aes_key (WECHAT_AES_KEY)".into(),
            });
        }
        if let Some(shared) = appid
            .as_deref()
            .filter(|appid| file.checked_accounts.iter().any(|a| a.appid == *appid))
        {
            return Err(ConfigError::Invalid {
                setting: "appid",
                reason: format!("`{shared}` is also an [[accounts]] table's appid"),
            });
        }
        let api_base = var("WECHAT_API_BASE")
            .or(file.api_base)
            .unwrap_or_else(|| DEFAULT_API_BASE.to_string());
        let api_base = api_base.trim_end_matches('/').to_string();
        if !(api_base.starts_with("http://") || api_base.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                setting: "api_base",
                reason: format!("`{api_base}` is not an http(s) URL"),
            });
        }

        let listen_text = overrides
            .listen
            .clone()
            .or_else(|| var("WECHAT_LISTEN"))
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = listen_text.parse().map_err(|_| ConfigError::Invalid {
            setting: "listen",
            reason: format!("`{listen_text}` is not an address like 127.0.0.1:8080"),
        })?;
        let scripts = scripts_setting(overrides, env, file.scripts);
        let data = overrides
            .data
            .clone()
            .or_else(|| var("WECHAT_DATA").map(PathBuf::from))
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from("data"));
        let store = overrides
            .store
            .clone()
            .or_else(|| var("WECHAT_STORE"))
            .or(file.store)
            .filter(|s| !s.is_empty());

        let reply_timeout = match var("WECHAT_REPLY_TIMEOUT") {
            Some(v) => Some(v.parse::<f64>().map_err(|_| ConfigError::Invalid {
                setting: "reply_timeout",
                reason: format!("`{v}` is not a number of seconds"),
            })?),
            None => file.reply_timeout,
        };
        let reply_timeout = match reply_timeout {
            None => Duration::from_millis(4500),
            Some(secs) if secs > 0.0 && secs <= MAX_REPLY_TIMEOUT.as_secs_f64() => {
                Duration::from_secs_f64(secs)
            }
            Some(secs) => {
                return Err(ConfigError::Invalid {
                    setting: "reply_timeout",
                    reason: format!("{secs} s is outside (0, 4.8]: WeChat stops waiting after 5 s"),
                })
            }
        };
        let handler_time_budget = seconds(
            "handler_time_budget",
            var("WECHAT_HANDLER_TIME_BUDGET"),
            file.handler_time_budget,
            crate::script::runtime::DEFAULT_TIME_BUDGET,
        )?;
        let store_timeout = seconds(
            "store_timeout",
            var("WECHAT_STORE_TIMEOUT"),
            file.store_timeout,
            crate::store::DEFAULT_TIMEOUT,
        )?;
        let claim_timeout = seconds(
            "claim_timeout",
            var("WECHAT_CLAIM_TIMEOUT"),
            file.claim_timeout,
            DEFAULT_CLAIM_TIMEOUT,
        )?;
        let unconfirmed_claim = match var("WECHAT_UNCONFIRMED_CLAIM") {
            Some(v) => v.parse()?,
            None => file.unconfirmed_claim.unwrap_or_default(),
        };
        let shutdown_grace = seconds(
            "shutdown_grace",
            var("WECHAT_SHUTDOWN_GRACE"),
            file.shutdown_grace,
            DEFAULT_SHUTDOWN_GRACE,
        )?;
        let api_timeout = seconds(
            "api_timeout",
            var("WECHAT_API_TIMEOUT"),
            file.api_timeout,
            DEFAULT_API_TIMEOUT,
        )?;
        let lua_memory_limit = file.lua_memory_limit_mb.unwrap_or(64) * 1024 * 1024;
        if lua_memory_limit < 1024 * 1024 {
            return Err(ConfigError::Invalid {
                setting: "lua_memory_limit_mb",
                reason: "must be at least 1".into(),
            });
        }
        let workers = file.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        if workers == 0 || workers > 256 {
            return Err(ConfigError::Invalid {
                setting: "workers",
                reason: format!("{workers} is outside 1..=256"),
            });
        }
        let log_format = overrides.log_format.or(file.log_format).unwrap_or_default();
        let defaults = ConnectionLimits::default();
        let connections = ConnectionLimits {
            header_timeout: seconds(
                "header_timeout",
                var("WECHAT_HEADER_TIMEOUT"),
                file.header_timeout,
                defaults.header_timeout,
            )?,
            body_timeout: seconds(
                "body_timeout",
                var("WECHAT_BODY_TIMEOUT"),
                file.body_timeout,
                defaults.body_timeout,
            )?,
            idle_timeout: seconds(
                "idle_timeout",
                var("WECHAT_IDLE_TIMEOUT"),
                file.idle_timeout,
                defaults.idle_timeout,
            )?,
            max_connections: count(
                "max_connections",
                var("WECHAT_MAX_CONNECTIONS"),
                file.max_connections,
                defaults.max_connections,
            )?,
        };
        let retry_cache_mb = count(
            "retry_cache_mb",
            var("WECHAT_RETRY_CACHE_MB"),
            file.retry_cache_mb,
            DEFAULT_RETRY_CACHE_MB,
        )?;

        let http = http_settings(file.http.unwrap_or_default())?;
        let oauth = file.oauth.map(oauth_settings).transpose()?;
        let component = file.component.map(component_settings).transpose()?;
        let session_ttl = session_ttl(var("WECHAT_SESSION_TTL"), file.session_ttl)?;
        let route_timeout = seconds(
            "route_timeout",
            var("WECHAT_ROUTE_TIMEOUT"),
            file.route_timeout,
            crate::web::DEFAULT_ROUTE_TIMEOUT,
        )?;
        let trusted_proxies = match var("WECHAT_TRUSTED_PROXIES") {
            Some(list) => list.split(',').map(str::to_string).collect(),
            None => file.trusted_proxies.unwrap_or_default(),
        }
        .iter()
        .filter(|text| !text.trim().is_empty())
        .map(|text| trusted_proxy(text))
        .collect::<Result<Vec<_>, _>>()?;

        let token = match token {
            Some(token) if !token.expose().is_empty() => {
                validate_token(token.expose())?;
                Some(token)
            }
            _ => None,
        };

        Ok(Config {
            token,
            appid,
            appsecret,
            encoding_aes_key,
            mode,
            api_base,
            token_endpoint: var("WECHAT_TOKEN_ENDPOINT")
                .map(|v| match v.as_str() {
                    "classic" => Ok(TokenEndpoint::Classic),
                    "stable" => Ok(TokenEndpoint::Stable),
                    other => Err(ConfigError::Invalid {
                        setting: "token_endpoint",
                        reason: format!("`{other}` is not stable or classic"),
                    }),
                })
                .transpose()?
                .or(file.token_endpoint)
                .unwrap_or_default(),
            listen,
            scripts,
            data,
            store,
            store_timeout,
            claim_timeout,
            unconfirmed_claim,
            reply_timeout,
            handler_time_budget,
            shutdown_grace,
            lua_memory_limit,
            workers,
            log_format,
            connections,
            retry_cache_bytes: retry_cache_mb.saturating_mul(1024 * 1024),
            http,
            api_timeout,
            session_ttl,
            route_timeout,
            trusted_proxies,
            oauth,
            component,
            accounts: file.checked_accounts,
        })
    }
}

/// The `[oauth]` table checked: a known scope, an http(s) `public_url` that is an origin (no
/// path, query or fragment), a `cookie_secret` long enough when one is written.
fn oauth_settings(file: OauthFileConfig) -> Result<OauthConfig, ConfigError> {
    let scope = match file.scope.as_deref() {
        None => crate::api::oauth::Scope::default(),
        Some(name) => {
            crate::api::oauth::Scope::parse(name).ok_or_else(|| ConfigError::Invalid {
                setting: "oauth.scope",
                reason: format!("`{name}` is not snsapi_base or snsapi_userinfo"),
            })?
        }
    };
    let public_url = file.public_url.ok_or_else(|| ConfigError::Invalid {
        setting: "oauth.public_url",
        reason: "sign-in needs the site's origin as WeChat reaches it, like https://shop.example"
            .into(),
    })?;
    let public_url = public_origin(&public_url).map_err(|reason| ConfigError::Invalid {
        setting: "oauth.public_url",
        reason,
    })?;
    if let Some(secret) = &file.cookie_secret {
        check_cookie_secret(secret.expose())?;
    }
    Ok(OauthConfig {
        scope,
        cookie_secret: file.cookie_secret,
        public_url,
    })
}

/// `text` as an origin (`https://host[:port]`), or why it is not one.
fn public_origin(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{text}` is not an http(s) URL with a host"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}` must be an origin only (scheme, host, port), without a path or query"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}` must not carry a user name or password"));
    }
    Ok(url.origin().ascii_serialization())
}

/// A cookie secret long enough to derive a signing key from; the value is never in the error.
fn check_cookie_secret(secret: &str) -> Result<(), ConfigError> {
    if secret.len() < MIN_COOKIE_SECRET_LEN {
        return Err(ConfigError::Invalid {
            setting: "oauth.cookie_secret",
            reason: format!(
                "must be at least {MIN_COOKIE_SECRET_LEN} bytes (leave it out to have one generated)"
            ),
        });
    }
    Ok(())
}

/// The `[http]` table checked: every rule readable, the user agent a valid header value.
fn http_settings(file: HttpFileConfig) -> Result<HttpSettings, ConfigError> {
    let parse = |setting: &'static str, list: Option<Vec<String>>| {
        list.unwrap_or_default()
            .iter()
            .map(|text| {
                text.parse::<HostRule>().map_err(|e| ConfigError::Invalid {
                    setting,
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let defaults = HttpSettings::default();
    let user_agent = file.user_agent.unwrap_or(defaults.user_agent);
    if crate::net::header_value(user_agent.as_bytes()).is_none() {
        return Err(ConfigError::Invalid {
            setting: "http.user_agent",
            reason: "must be printable text without line breaks".into(),
        });
    }
    Ok(HttpSettings {
        rules: Rules {
            allow: parse("http.allow", file.allow)?,
            deny: parse("http.deny", file.deny)?,
        },
        user_agent,
        max_requests: count(
            "http.max_requests",
            None,
            file.max_requests,
            defaults.max_requests,
        )?,
        max_requests_per_worker: count(
            "http.max_requests_per_worker",
            None,
            file.max_requests_per_worker,
            defaults.max_requests_per_worker,
        )?,
    })
}

/// A `trusted_proxies` entry: an address (`10.0.0.1`) or a network (`10.0.0.0/8`).
fn trusted_proxy(text: &str) -> Result<ipnet::IpNet, ConfigError> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| ConfigError::Invalid {
            setting: "trusted_proxies",
            reason: format!("`{text}` is not an IP address or a network like 10.0.0.0/8"),
        })
}

/// A positive number of seconds from the environment (`env`, text) or the file; `default`
/// when neither sets it.
fn seconds(
    setting: &'static str,
    env: Option<String>,
    file: Option<f64>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let secs = match env {
        Some(v) => v.parse::<f64>().map_err(|_| ConfigError::Invalid {
            setting,
            reason: format!("`{v}` is not a number of seconds"),
        })?,
        None => match file {
            Some(secs) => secs,
            None => return Ok(default),
        },
    };
    // A day is far beyond any sensible deadline and keeps `Duration` arithmetic safe.
    if secs > 0.0 && secs <= 86_400.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(ConfigError::Invalid {
            setting,
            reason: format!("{secs} s is outside (0, 86400]"),
        })
    }
}

/// Longest `session_ttl`: a year.
const MAX_SESSION_TTL_SECS: f64 = 365.0 * 86_400.0;

/// `session_ttl` from the environment (text) or the file, in seconds: positive, at most a year.
fn session_ttl(env: Option<String>, file: Option<f64>) -> Result<Duration, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        setting: "session_ttl",
        reason,
    };
    let secs = match env {
        Some(v) => v
            .parse::<f64>()
            .map_err(|_| invalid(format!("`{v}` is not a number of seconds")))?,
        None => match file {
            Some(secs) => secs,
            None => return Ok(crate::script::services::DEFAULT_SESSION_TTL),
        },
    };
    if secs > 0.0 && secs <= MAX_SESSION_TTL_SECS {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(invalid(format!(
            "{secs} s is outside (0, {MAX_SESSION_TTL_SECS}]"
        )))
    }
}

/// A count of at least 1 from the environment (`env`, text) or the file; `default` when
/// neither sets it.
fn count(
    setting: &'static str,
    env: Option<String>,
    file: Option<usize>,
    default: usize,
) -> Result<usize, ConfigError> {
    let n = match env {
        Some(v) => v.parse::<usize>().map_err(|_| ConfigError::Invalid {
            setting,
            reason: format!("`{v}` is not a whole number"),
        })?,
        None => file.unwrap_or(default),
    };
    if n == 0 {
        return Err(ConfigError::Invalid {
            setting,
            reason: "must be at least 1".into(),
        });
    }
    Ok(n)
}

impl Config {
    /// Whether the store is shared with other instances (Redis), so that per-instance state
    /// such as retry de-duplication must go through it.
    pub fn store_is_shared(&self) -> bool {
        self.store
            .as_deref()
            .is_some_and(|s| s.starts_with("redis://") || s.starts_with("rediss://"))
    }

    /// The settings of one account as a single-account host's: for `name` an `[[accounts]]`
    /// table, its appid, appsecret, token, key, mode and scripts in place of the top-level
    /// ones; `default` is these settings as they are. What the account commands (`menu`,
    /// `token`) act on with `--account NAME`.
    pub fn for_account(&self, name: &str) -> Result<Config, ConfigError> {
        if name == DEFAULT_ACCOUNT {
            return Ok(self.clone());
        }
        let account = self
            .accounts
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| ConfigError::Invalid {
                setting: "--account",
                reason: format!(
                    "no [[accounts]] table is named `{name}` (accounts: {})",
                    std::iter::once(DEFAULT_ACCOUNT)
                        .chain(self.accounts.iter().map(|a| a.name.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        let mut config = self.clone();
        config.appid = Some(account.appid.clone());
        config.appsecret = account.appsecret.clone();
        config.token = Some(account.token.clone());
        config.encoding_aes_key = account.encoding_aes_key.clone();
        config.mode = account.mode;
        if let Some(scripts) = &account.scripts {
            config.scripts = scripts.clone();
        }
        config.accounts.clear();
        Ok(config)
    }

    /// The token `serve` signs callbacks with: the configured one; else the one an earlier
    /// start generated and kept in the data directory; else a new one, kept there (readable
    /// by its owner only). The only place settings write a file.
    pub fn serving_token(&self) -> Result<(Secret, TokenSource), ConfigError> {
        match &self.token {
            Some(token) => Ok((token.clone(), TokenSource::Configured)),
            None => stored_or_generated_token(&self.data),
        }
    }

    /// The `[oauth] cookie_secret` `serve` signs sessions with: the configured one; else the
    /// one an earlier start generated and kept in the data directory; else a new one, kept
    /// there (readable by its owner only), so sessions survive restarts. `None` without
    /// `[oauth]`.
    pub fn serving_cookie_secret(&self) -> Result<Option<Secret>, ConfigError> {
        let Some(oauth) = &self.oauth else {
            return Ok(None);
        };
        if let Some(secret) = &oauth.cookie_secret {
            return Ok(Some(secret.clone()));
        }
        let path = self.data.join(COOKIE_SECRET_FILE);
        let io_err = |source| ConfigError::TokenFile {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let secret = text.trim().to_string();
                check_cookie_secret(&secret)?;
                return Ok(Some(Secret(secret)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        std::fs::create_dir_all(&self.data).map_err(io_err)?;
        let secret = generate_cookie_secret();
        write_private(&path, secret.expose()).map_err(io_err)?;
        Ok(Some(secret))
    }
}

/// A fresh random cookie secret (64 letters and digits, about 380 bits).
pub fn generate_cookie_secret() -> Secret {
    use rand::distr::{Alphanumeric, SampleString};
    Secret(Alphanumeric.sample_string(&mut rand::rng(), 64))
}

/// The config file named by `--config` (its relative paths made relative to its directory),
/// else `wechat-lua.toml` in the working directory when present, else none.
fn chosen_file(overrides: &Overrides) -> Result<FileConfig, ConfigError> {
    match &overrides.config {
        Some(path) => read_file_at(path),
        None => {
            let path = Path::new(DEFAULT_CONFIG_FILE);
            if path.exists() {
                read_file(path)
            } else {
                Ok(FileConfig::default())
            }
        }
    }
}

/// The scripts location: flag, then `WECHAT_SCRIPTS`, then the file, then `scripts`.
fn scripts_setting(
    overrides: &Overrides,
    env: &HashMap<String, String>,
    from_file: Option<PathBuf>,
) -> PathBuf {
    overrides
        .scripts
        .clone()
        .or_else(|| {
            env.get("WECHAT_SCRIPTS")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or(from_file)
        .unwrap_or_else(|| PathBuf::from("scripts"))
}

/// The config file at `path` with its relative `scripts` and `data` made relative to the
/// file's directory, where whoever wrote them meant them to be.
fn read_file_at(path: &Path) -> Result<FileConfig, ConfigError> {
    let mut file = read_file(path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let rebase = |p: PathBuf| if p.is_relative() { dir.join(p) } else { p };
        file.scripts = file.scripts.map(rebase);
        file.data = file.data.map(rebase);
        for account in &mut file.checked_accounts {
            account.scripts = account.scripts.take().map(rebase);
        }
    }
    Ok(file)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if let Some(tables) = file.accounts.take() {
        file.checked_accounts = check_accounts(path, &text, file.appid.as_deref(), tables)?;
    }
    Ok(file)
}

/// The console accepts 3 to 32 letters and digits.
fn validate_token(token: &str) -> Result<(), ConfigError> {
    if (3..=32).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            setting: "token",
            reason: "the WeChat console accepts 3 to 32 letters and digits".into(),
        })
    }
}

/// Reads the token kept in the data directory, or makes and keeps a new one.
fn stored_or_generated_token(data: &Path) -> Result<(Secret, TokenSource), ConfigError> {
    use rand::distr::{Alphanumeric, SampleString};

    let path = data.join(TOKEN_FILE);
    let io_err = |source| ConfigError::TokenFile {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim().to_string();
            validate_token(&token)?;
            return Ok((Secret(token), TokenSource::Stored));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    std::fs::create_dir_all(data).map_err(io_err)?;
    let token = Alphanumeric.sample_string(&mut rand::rng(), 32);
    write_private(&path, &token).map_err(io_err)?;
    Ok((Secret(token), TokenSource::Generated))
}

/// Writes a file only its owner can read: it holds a secret.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn with_data(dir: &Path) -> Overrides {
        Overrides {
            data: Some(dir.to_path_buf()),
            ..Default::default()
        }
    }

    #[test]
    fn the_http_table_sets_rules_user_agent_and_caps() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            let file_path = dir.path().join("c.toml");
            std::fs::write(&file_path, text).unwrap();
            let mut overrides = with_data(dir.path());
            overrides.config = Some(file_path);
            Config::load_with_env(&overrides, &env(&[]))
        };
        let config = load("").unwrap();
        assert_eq!(config.http, HttpSettings::default());
        assert_eq!(config.http.max_requests, 256);
        assert_eq!(config.http.max_requests_per_worker, 32);
        let config = load(
            "[http]\nallow = [\"127.0.0.1:9000\", \"*.internal.example.com\"]\n\
             deny = [\"evil.example.com\"]\nuser_agent = \"bot/1\"\n\
             max_requests = 10\nmax_requests_per_worker = 2\n",
        )
        .unwrap();
        assert_eq!(config.http.rules.allow.len(), 2);
        assert_eq!(config.http.rules.deny[0].text(), "evil.example.com");
        assert_eq!(config.http.user_agent, "bot/1");
        assert_eq!(
            (
                config.http.max_requests,
                config.http.max_requests_per_worker
            ),
            (10, 2)
        );
        let bad = load("[http]\nallow = [\"*.\"]\n").unwrap_err().to_string();
        assert!(bad.contains("setting `http.allow`"), "{bad}");
        let bad = load("[http]\nmax_requests = 0\n").unwrap_err().to_string();
        assert!(bad.contains("http.max_requests"), "{bad}");
        let bad = load("[http]\nproxy = \"x\"\n").unwrap_err().to_string();
        assert!(bad.contains("unknown field `proxy`"), "{bad}");
        let bad = load("[http]\nuser_agent = \"a\\nb\"\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("http.user_agent"), "{bad}");
    }

    #[test]
    fn api_timeout_from_file_or_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file_path = dir.path().join("c.toml");
        std::fs::write(&file_path, "api_timeout = 3.5\n").unwrap();
        let mut overrides = with_data(dir.path());
        let config = Config::load_with_env(&overrides, &env(&[])).unwrap();
        assert_eq!(config.api_timeout, DEFAULT_API_TIMEOUT);
        overrides.config = Some(file_path);
        let config = Config::load_with_env(&overrides, &env(&[])).unwrap();
        assert_eq!(config.api_timeout, Duration::from_millis(3500));
        let config =
            Config::load_with_env(&overrides, &env(&[("WECHAT_API_TIMEOUT", "2")])).unwrap();
        assert_eq!(config.api_timeout, Duration::from_secs(2));
        let bad = Config::load_with_env(&overrides, &env(&[("WECHAT_API_TIMEOUT", "0")]))
            .unwrap_err()
            .to_string();
        assert!(bad.contains("api_timeout"), "{bad}");
    }

    #[test]
    fn route_timeout_and_trusted_proxies_from_the_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file_path = dir.path().join("c.toml");
        let load = |text: &str, vars: &[(&str, &str)]| {
            std::fs::write(&file_path, text).unwrap();
            let mut overrides = with_data(dir.path());
            overrides.config = Some(file_path.clone());
            Config::load_with_env(&overrides, &env(vars))
        };
        let config = load("", &[]).unwrap();
        assert_eq!(config.route_timeout, Duration::from_secs(10));
        assert!(config.trusted_proxies.is_empty());
        let config = load(
            "route_timeout = 2.5\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]\n",
            &[],
        )
        .unwrap();
        assert_eq!(config.route_timeout, Duration::from_millis(2500));
        assert_eq!(
            config.trusted_proxies,
            vec![
                "10.0.0.0/8".parse::<ipnet::IpNet>().unwrap(),
                "127.0.0.1/32".parse().unwrap()
            ]
        );
        let config = load(
            "",
            &[
                ("WECHAT_ROUTE_TIMEOUT", "1"),
                ("WECHAT_TRUSTED_PROXIES", "::1, 192.168.0.0/16"),
            ],
        )
        .unwrap();
        assert_eq!(config.route_timeout, Duration::from_secs(1));
        assert_eq!(config.trusted_proxies.len(), 2);
        let bad = load("trusted_proxies = [\"proxy.local\"]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(bad.contains("setting `trusted_proxies`"), "{bad}");
        let bad = load("route_timeout = 0\n", &[]).unwrap_err().to_string();
        assert!(bad.contains("setting `route_timeout`"), "{bad}");
    }

    #[test]
    fn the_oauth_table_is_checked_and_its_secret_kept_in_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file_path = dir.path().join("c.toml");
        let data = dir.path().join("data");
        let load = |text: &str| {
            std::fs::write(&file_path, text).unwrap();
            let mut overrides = with_data(&data);
            overrides.config = Some(file_path.clone());
            Config::load_with_env(&overrides, &env(&[]))
        };
        let config = load("").unwrap();
        assert_eq!(config.oauth, None);
        assert_eq!(config.serving_cookie_secret().unwrap(), None);

        let config = load("[oauth]\npublic_url = \"https://shop.example/\"\n").unwrap();
        let oauth = config.oauth.clone().unwrap();
        assert_eq!(oauth.public_url, "https://shop.example");
        assert_eq!(oauth.scope, crate::api::oauth::Scope::Base);
        assert!(oauth.is_https());
        assert!(!data.exists(), "loading writes nothing");
        let first = config.serving_cookie_secret().unwrap().unwrap();
        assert_eq!(first.expose().len(), 64);
        let second = config.serving_cookie_secret().unwrap().unwrap();
        assert_eq!(first, second, "kept across restarts");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join(COOKIE_SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let secret = "x".repeat(32);
        let config = load(&format!(
            "[oauth]\nscope = \"snsapi_userinfo\"\npublic_url = \"http://127.0.0.1:8080\"\ncookie_secret = \"{secret}\"\n"
        ))
        .unwrap();
        let oauth = config.oauth.clone().unwrap();
        assert_eq!(oauth.scope, crate::api::oauth::Scope::UserInfo);
        assert!(!oauth.is_https());
        assert_eq!(
            config.serving_cookie_secret().unwrap().unwrap().expose(),
            secret
        );
        assert!(!format!("{config:?}").contains(&secret), "never shown");

        for (text, setting) in [
            ("[oauth]\n", "oauth.public_url"),
            (
                "[oauth]\npublic_url = \"shop.example\"\n",
                "oauth.public_url",
            ),
            (
                "[oauth]\npublic_url = \"https://shop.example/app\"\n",
                "oauth.public_url",
            ),
            (
                "[oauth]\npublic_url = \"ftp://shop.example\"\n",
                "oauth.public_url",
            ),
            (
                "[oauth]\npublic_url = \"https://a.example\"\nscope = \"snsapi_login\"\n",
                "oauth.scope",
            ),
            (
                "[oauth]\npublic_url = \"https://a.example\"\ncookie_secret = \"short\"\n",
                "oauth.cookie_secret",
            ),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(setting), "{text}: {err}");
            assert!(!err.contains("short\""), "{err}");
        }
        let err = load("[oauth]\npublic_url = \"https://a.example\"\nsecret = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `secret`"), "{err}");
    }

    #[test]
    fn the_component_table_is_checked_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            let file = dir.path().join("c.toml");
            std::fs::write(&file, text).unwrap();
            let overrides = Overrides {
                config: Some(file),
                ..with_data(dir.path())
            };
            Config::load_with_env(&overrides, &env(&[]))
        };
        let key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        let good = format!(
            "[component]\nappid = \"wxcomp\"\nappsecret = \"s3cret\"\ntoken = \"ctoken\"\nencoding_aes_key = \"{key}\"\npublic_url = \"https://bots.example/\"\n"
        );
        let config = load(&good).unwrap();
        let component = config.component.unwrap();
        assert_eq!(component.appid, "wxcomp");
        assert_eq!(component.public_url, "https://bots.example");
        assert!(load("").unwrap().component.is_none());
        for (text, setting) in [
            (good.replace("appid = \"wxcomp\"\n", ""), "component.appid"),
            (
                good.replace("appsecret = \"s3cret\"\n", ""),
                "component.appsecret",
            ),
            (good.replace("ctoken", "c-token!"), "component.token"),
            (good.replace(key, "short"), "component.encoding_aes_key"),
            (
                good.replace("https://bots.example/", "bots.example"),
                "component.public_url",
            ),
        ] {
            let err = load(&text).unwrap_err().to_string();
            assert!(err.contains(setting), "{setting}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        let err = load(&format!("{good}secret = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("secret") && err.contains("line"), "{err}");
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file_path = dir.path().join("c.toml");
        std::fs::write(
            &file_path,
            "token = \"fromfile\"\nappid = \"wxfile\"\nlisten = \"127.0.0.1:9000\"\n",
        )
        .unwrap();
        let mut overrides = with_data(dir.path());
        overrides.config = Some(file_path);
        let config = Config::load_with_env(&overrides, &env(&[])).unwrap();
        assert_eq!(config.token.as_ref().unwrap().expose(), "fromfile");
        assert_eq!(config.appid.as_deref(), Some("wxfile"));
        assert_eq!(config.listen.port(), 9000);

        let e = env(&[
            ("WECHAT_TOKEN", "fromenv"),
            ("WECHAT_LISTEN", "127.0.0.1:9001"),
        ]);
        let config = Config::load_with_env(&overrides, &e).unwrap();
        assert_eq!(config.token.as_ref().unwrap().expose(), "fromenv");
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.serving_token().unwrap().1, TokenSource::Configured);

        overrides.listen = Some("127.0.0.1:9002".into());
        let config = Config::load_with_env(&overrides, &e).unwrap();
        assert_eq!(config.listen.port(), 9002);
    }

    #[test]
    fn unknown_key_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file_path = dir.path().join("c.toml");
        std::fs::write(&file_path, "token = \"abc\"\ntokne = \"x\"\n").unwrap();
        let mut overrides = with_data(dir.path());
        overrides.config = Some(file_path);
        let err = Config::load_with_env(&overrides, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml"), "{err}");
        assert!(err.contains("tokne"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn generated_token_is_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = with_data(&dir.path().join("data"));
        let config = Config::load_with_env(&overrides, &env(&[])).unwrap();
        let (first, source) = config.serving_token().unwrap();
        assert_eq!(source, TokenSource::Generated);
        assert_eq!(first.expose().len(), 32);
        let config = Config::load_with_env(&overrides, &env(&[])).unwrap();
        let (second, source) = config.serving_token().unwrap();
        assert_eq!(source, TokenSource::Stored);
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join("data").join(TOKEN_FILE);
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn loading_writes_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = Config::load_with_env(&with_data(&data), &env(&[])).unwrap();
        assert!(config.token.is_none(), "no token is configured");
        assert!(!data.exists(), "loading created {}", data.display());
        let location = Config::scripts_location(&with_data(&data), &env(&[])).unwrap();
        assert_eq!(location, PathBuf::from("scripts"));
        assert!(!data.exists());
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(&[
            ("WECHAT_TOKEN", "tokenvalue1"),
            ("WECHAT_APPSECRET", "secretvalue2"),
            ("WECHAT_AES_KEY", "aeskeyvalue3"),
        ]);
        let config = Config::load_with_env(&with_data(dir.path()), &e).unwrap();
        let shown = format!("{config:?}");
        for secret in ["tokenvalue1", "secretvalue2", "aeskeyvalue3"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!(config.mode, SecurityMode::Compatible);
    }

    #[test]
    fn connection_limits_default_and_come_from_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load_with_env(&with_data(dir.path()), &env(&[])).unwrap();
        assert_eq!(config.connections, ConnectionLimits::default());
        assert_eq!(config.connections.header_timeout, Duration::from_secs(10));
        assert_eq!(config.connections.max_connections, 10_000);
        assert_eq!(config.retry_cache_bytes, 32 * 1024 * 1024);

        let file_path = dir.path().join("c.toml");
        std::fs::write(
            &file_path,
            "header_timeout = 5\nbody_timeout = 7.5\nidle_timeout = 20\nmax_connections = 100\nretry_cache_mb = 8\n",
        )
        .unwrap();
        let mut overrides = with_data(dir.path());
        overrides.config = Some(file_path);
        let config = Config::load_with_env(&overrides, &env(&[])).unwrap();
        assert_eq!(config.connections.header_timeout, Duration::from_secs(5));
        assert_eq!(config.connections.body_timeout, Duration::from_millis(7500));
        assert_eq!(config.connections.idle_timeout, Duration::from_secs(20));
        assert_eq!(config.connections.max_connections, 100);
        assert_eq!(config.retry_cache_bytes, 8 * 1024 * 1024);

        let e = env(&[
            ("WECHAT_IDLE_TIMEOUT", "0.25"),
            ("WECHAT_MAX_CONNECTIONS", "3"),
            ("WECHAT_RETRY_CACHE_MB", "1"),
        ]);
        let config = Config::load_with_env(&overrides, &e).unwrap();
        assert_eq!(config.connections.idle_timeout, Duration::from_millis(250));
        assert_eq!(config.connections.header_timeout, Duration::from_secs(5));
        assert_eq!(config.connections.max_connections, 3);
        assert_eq!(config.retry_cache_bytes, 1024 * 1024);
    }

    #[test]
    fn bad_values_are_refused_with_the_setting_named() {
        let dir = tempfile::tempdir().unwrap();
        let o = with_data(dir.path());
        let cases = [
            ("WECHAT_TOKEN", "has space", "token"),
            ("WECHAT_REPLY_TIMEOUT", "6", "reply_timeout"),
            ("WECHAT_MODE", "secret", "mode"),
            ("WECHAT_API_BASE", "ftp://x", "api_base"),
            ("WECHAT_IDLE_TIMEOUT", "0", "idle_timeout"),
            ("WECHAT_HEADER_TIMEOUT", "soon", "header_timeout"),
            ("WECHAT_BODY_TIMEOUT", "-1", "body_timeout"),
            ("WECHAT_MAX_CONNECTIONS", "0", "max_connections"),
            ("WECHAT_RETRY_CACHE_MB", "lots", "retry_cache_mb"),
        ];
        for (var, value, setting) in cases {
            let err = Config::load_with_env(&o, &env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(setting), "{var}={value}: {err}");
        }
        let err = Config::load_with_env(&o, &env(&[("WECHAT_MODE", "safe")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("encoding_aes_key"), "{err}");
    }
}
