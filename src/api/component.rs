//! The open platform (第三方平台) side of the outbound API: the component_access_token, the
//! pre_auth_code and authorization calls, and the access_tokens of the accounts that
//! authorized the platform (authorizers).
//!
//! - The component_access_token (`api_component_token`) needs the latest
//!   `component_verify_ticket` WeChat pushes every 10 minutes; [`ComponentClient::save_ticket`]
//!   keeps it in the store, so on Redis every instance has it. The token itself is kept by a
//!   [`TokenManager`] like any access_token (cached in the store, refreshed ahead, fetched once
//!   under contention, dropped and fetched again after 40001/40014/42001). Before the first
//!   ticket a fetch fails at once with a clear [`ApiError::Config`], without calling WeChat.
//! - An authorizer's access_token comes from `api_authorizer_token` with its refresh token,
//!   which WeChat may hand back rotated. The new one is stored with a compare-and-set over the
//!   one it was fetched with ([`Store::set_if_eq`]), so a newer refresh token (a
//!   re-authorization) is never overwritten; a refresh token WeChat refuses (61023) is read
//!   again in case another instance rotated it meanwhile. Each authorizer's client is an
//!   ordinary [`WechatClient`] whose token comes from [`AuthorizerTokens`]: the whole API
//!   (kf, menus, media, …) works for it, single flight per authorizer and shared on Redis
//!   through the same store key and fetch lock as a configured account's token. The client
//!   also knows the platform ([`ComponentAccess`]), so its 网页授权 takes WeChat's component
//!   variant with the component_access_token (an authorizer has no AppSecret here).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{ClientConfig, ComponentAccess, WechatClient};
use super::error::{self, ApiError};
use super::token::{
    credential_field, expires_in, CachedToken, Clock, Credentials, SystemClock, TokenEndpoint,
    TokenManager, TokenSettings, TokenSource, TokenStatus,
};
use super::token_store::StoreTokenPersistence;
use super::transport::{RetryPolicy, Transport, Wire};
use crate::store::keys;
use crate::store::Store;
use crate::sync::lock;

/// `POST`: the component_access_token from the AppID, AppSecret and the pushed ticket.
pub const COMPONENT_TOKEN_PATH: &str = "/cgi-bin/component/api_component_token";
/// `POST`: a pre_auth_code for the authorization page.
pub const PRE_AUTH_CODE_PATH: &str = "/cgi-bin/component/api_create_preauthcode";
/// `POST`: an authorization code exchanged for the authorizer's appid and tokens.
pub const QUERY_AUTH_PATH: &str = "/cgi-bin/component/api_query_auth";
/// `POST`: an authorizer's access_token from its refresh token.
pub const AUTHORIZER_TOKEN_PATH: &str = "/cgi-bin/component/api_authorizer_token";
/// The authorization page an account's administrator is sent to (on mp.weixin.qq.com).
pub const LOGIN_PAGE_PATH: &str = "/cgi-bin/componentloginpage";
/// Where the authorization page lives for WeChat's API hosts.
pub const DEFAULT_LOGIN_PAGE_BASE: &str = "https://mp.weixin.qq.com";

/// The ticket WeChat pushed is expired (push it again: WeChat does every 10 minutes).
pub const TICKET_EXPIRED: i64 = 61005;
/// The ticket is not one WeChat issued for this platform.
pub const TICKET_INVALID: i64 = 61006;
/// The authorization code is unknown.
pub const AUTH_CODE_INVALID: i64 = 61009;
/// The authorization code is expired (10 minutes).
pub const AUTH_CODE_EXPIRED: i64 = 61010;
/// The refresh token is not the authorizer's current one (rotated, or authorization withdrawn).
pub const REFRESH_TOKEN_INVALID: i64 = 61023;

/// How long a pushed ticket is kept: WeChat's tickets are valid for 12 hours.
const TICKET_TTL: Duration = Duration::from_secs(12 * 3600);
/// How often a refused refresh token is read again, in case another instance was storing a
/// rotated one while this one fetched.
const REFRESH_REREADS: u32 = 5;

/// How a [`ComponentClient`] reaches WeChat.
#[derive(Clone)]
pub struct ComponentSettings {
    /// The platform's AppID (component_appid).
    pub appid: String,
    /// The platform's AppSecret; never logged.
    pub appsecret: String,
    /// API host without a trailing slash.
    pub base_url: String,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Backoff while WeChat is busy.
    pub retry: RetryPolicy,
    /// Fetch the next token in the background when less than this remains.
    pub refresh_ahead: Duration,
    /// The clock token expiry is measured against.
    pub clock: Arc<dyn Clock>,
    /// An HTTP client shared with the host's other API clients (one connection pool); `None`
    /// builds one. Every authorizer's client sends through the same one.
    pub http: Option<reqwest::Client>,
}

impl ComponentSettings {
    /// Defaults for a platform's AppID and AppSecret talking to `base_url`.
    pub fn new(
        appid: impl Into<String>,
        appsecret: impl Into<String>,
        base_url: impl Into<String>,
    ) -> ComponentSettings {
        ComponentSettings {
            appid: appid.into(),
            appsecret: appsecret.into(),
            base_url: base_url.into(),
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            refresh_ahead: Duration::from_secs(300),
            clock: Arc::new(SystemClock),
            http: None,
        }
    }
}

impl fmt::Debug for ComponentSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentSettings")
            .field("appid", &self.appid)
            .field("appsecret", &"<redacted>")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// What `api_query_auth` says of an authorization.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The account that authorized the platform.
    pub authorizer_appid: String,
    /// Its first access_token.
    pub access_token: CachedToken,
    /// Its refresh token (kept in the store; never logged).
    pub refresh_token: String,
    /// The permission sets (权限集) it granted.
    pub func_info: Vec<i64>,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("authorizer_appid", &self.authorizer_appid)
            .field("func_info", &self.func_info)
            .finish_non_exhaustive()
    }
}

/// What `wechat-lua accounts` shows of an authorizer (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerStatus {
    /// Whether a refresh token is stored (the authorization holds, as far as the host knows).
    pub authorized: bool,
    /// Its access_token's state on this process.
    pub token: TokenStatus,
    /// Unix seconds at which the access_token kept in the store expires, if one is kept.
    pub stored_token_expires_at: Option<i64>,
}

/// The open platform's client; clones share the component token and authorizer clients.
#[derive(Clone)]
pub struct ComponentClient {
    inner: Arc<Inner>,
}

struct Inner {
    appid: String,
    settings: ComponentSettings,
    transport: Arc<Transport>,
    store: Arc<dyn Store>,
    /// The component_access_token.
    tokens: Arc<TokenManager>,
    /// Origin of the authorization page: WeChat's, or the fake's.
    login_page_base: String,
    /// One client per authorizer, so its token cache and single flight are shared by every
    /// caller on this process.
    authorizers: Mutex<HashMap<String, WechatClient>>,
}

impl fmt::Debug for ComponentClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentClient")
            .field("appid", &self.inner.appid)
            .finish_non_exhaustive()
    }
}

/// Fetches the component_access_token with the stored ticket.
struct ComponentTokens {
    transport: Arc<Transport>,
    store: Arc<dyn Store>,
    appid: String,
    secret: String,
    clock: Arc<dyn Clock>,
}

impl TokenSource for ComponentTokens {
    fn fetch(&self) -> BoxFuture<'_, Result<CachedToken, ApiError>> {
        Box::pin(async move {
            let ticket = self
                .store
                .get(&keys::component_ticket_key(&self.appid))
                .await
                .map_err(|e| ApiError::Config(format!("cannot read the component_verify_ticket: {e}")))?
                .ok_or_else(|| {
                    ApiError::Config(
                        "no component_verify_ticket yet: WeChat pushes one to /component/events every 10 minutes once the platform is set up; calls for the platform fail until then"
                            .into(),
                    )
                })?;
            let started = self.clock.now_unix();
            let body = json!({
                "component_appid": self.appid,
                "component_appsecret": self.secret,
                "component_verify_ticket": ticket,
            });
            let v = self
                .transport
                .send_json(Method::POST, COMPONENT_TOKEN_PATH, None, &Wire::Json(&body))
                .await?;
            let token = credential_field(&v, "component_access_token")?;
            let expires_in = expires_in(&v);
            tracing::info!(expires_in, "fetched a new component_access_token");
            Ok(CachedToken {
                access_token: token,
                expires_at_unix: started + expires_in,
            })
        })
    }
}

/// Fetches one authorizer's access_token with its stored refresh token.
pub struct AuthorizerTokens {
    /// The platform (weak: the platform holds this authorizer's client).
    component: Weak<Inner>,
    authorizer_appid: String,
}

impl TokenSource for AuthorizerTokens {
    fn fetch(&self) -> BoxFuture<'_, Result<CachedToken, ApiError>> {
        Box::pin(async move {
            let inner = self
                .component
                .upgrade()
                .ok_or_else(|| ApiError::Config("the open platform client is gone".into()))?;
            ComponentClient { inner }
                .fetch_authorizer_token(&self.authorizer_appid)
                .await
        })
    }
}

/// What an authorizer's client knows of the platform it acts through (its 网页授权 goes
/// through the platform's endpoints with the component_access_token).
struct PlatformAccess {
    /// The platform (weak: the platform holds this authorizer's client).
    component: Weak<Inner>,
    /// The platform's AppID, kept so it is at hand without the platform.
    appid: String,
}

impl PlatformAccess {
    fn platform(&self) -> Result<ComponentClient, ApiError> {
        let inner = self
            .component
            .upgrade()
            .ok_or_else(|| ApiError::Config("the open platform client is gone".into()))?;
        Ok(ComponentClient { inner })
    }
}

impl ComponentAccess for PlatformAccess {
    fn component_appid(&self) -> &str {
        &self.appid
    }

    fn component_token(&self) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(async move { self.platform()?.component_token().await })
    }

    fn component_token_rejected(&self, token: &str) {
        if let Ok(platform) = self.platform() {
            platform.inner.tokens.invalidate(token);
        }
    }
}

/// The error for a store operation (`what`) the platform's state needed and could not do.
fn store_error(what: &str, e: crate::store::StoreError) -> ApiError {
    ApiError::Config(format!("store: cannot {what}: {e}"))
}

/// The authorization page's origin for an API host: WeChat's own for `*.weixin.qq.com`,
/// otherwise that host (the fake serves its own page).
fn login_page_base_for(api_base: &str) -> String {
    let wechat = url::Url::parse(api_base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|h| h == "weixin.qq.com" || h.ends_with(".weixin.qq.com"));
    if wechat {
        DEFAULT_LOGIN_PAGE_BASE.to_string()
    } else {
        api_base.trim_end_matches('/').to_string()
    }
}

impl ComponentClient {
    /// The platform's client; its token and tickets live in `store`.
    pub fn new(
        settings: ComponentSettings,
        store: Arc<dyn Store>,
    ) -> Result<ComponentClient, ApiError> {
        let http = match &settings.http {
            Some(http) => http.clone(),
            None => super::transport::http_client(
                settings.timeout,
                settings.timeout.min(Duration::from_secs(5)),
            )?,
        };
        let transport = Transport::new(
            &settings.base_url,
            settings.timeout,
            settings.timeout.min(Duration::from_secs(5)),
            Some(http.clone()),
        )?;
        let mut settings = settings;
        settings.http = Some(http);
        let source = ComponentTokens {
            transport: Arc::clone(&transport),
            store: Arc::clone(&store),
            appid: settings.appid.clone(),
            secret: settings.appsecret.clone(),
            clock: Arc::clone(&settings.clock),
        };
        let tokens = Arc::new(TokenManager::new(
            Arc::clone(&transport),
            TokenSettings {
                creds: Credentials {
                    appid: settings.appid.clone(),
                    secret: String::new(),
                },
                retry: settings.retry,
                endpoint: TokenEndpoint::Stable,
                refresh_ahead: settings.refresh_ahead,
                persistence: Arc::new(StoreTokenPersistence::component_token(
                    Arc::clone(&store),
                    &settings.appid,
                )),
                clock: Arc::clone(&settings.clock),
                source: Some(Arc::new(source)),
            },
        ));
        Ok(ComponentClient {
            inner: Arc::new(Inner {
                appid: settings.appid.clone(),
                login_page_base: login_page_base_for(&settings.base_url),
                settings,
                transport,
                store,
                tokens,
                authorizers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The platform's AppID.
    pub fn appid(&self) -> &str {
        &self.inner.appid
    }

    /// The store the platform keeps its ticket, tokens and refresh tokens in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Keeps a verified `component_verify_ticket` (12 hours, as WeChat's).
    pub async fn save_ticket(&self, ticket: &str) -> Result<(), crate::store::StoreError> {
        self.inner
            .store
            .set(
                &keys::component_ticket_key(&self.inner.appid),
                ticket,
                Some(TICKET_TTL),
            )
            .await
    }

    /// Whether a ticket is kept.
    pub async fn has_ticket(&self) -> bool {
        matches!(
            self.inner
                .store
                .get(&keys::component_ticket_key(&self.inner.appid))
                .await,
            Ok(Some(_))
        )
    }

    /// The component_access_token, fetched once however many callers wait; never log it.
    pub async fn component_token(&self) -> Result<String, ApiError> {
        self.inner.tokens.get().await
    }

    /// The component_access_token's state (never the token).
    pub fn component_token_status(&self) -> TokenStatus {
        self.inner.tokens.status()
    }

    /// `POST {path}?component_access_token=…` with `body`: the token is fetched first, dropped
    /// and fetched once more when WeChat rejects it, and busy answers are retried with backoff.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        let mut token_retried = false;
        let mut attempt = 0;
        loop {
            let token = self.inner.tokens.get().await?;
            let r = self
                .inner
                .transport
                .send_json_as(
                    Method::POST,
                    path,
                    Some(("component_access_token", &token)),
                    &Wire::Json(body),
                )
                .await
                .map_err(ApiError::after_sending);
            match r {
                Err(e) if error::is_token_rejected(e.errcode()) && !token_retried => {
                    token_retried = true;
                    self.inner.tokens.invalidate(&token);
                }
                Err(e) => match self.inner.settings.retry.retry_after_busy(&e, attempt) {
                    Some(delay) => {
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
                ok => return ok,
            }
        }
    }

    /// A new pre_auth_code (valid 30 minutes) for the authorization page.
    pub async fn pre_auth_code(&self) -> Result<String, ApiError> {
        let v = self
            .post(
                PRE_AUTH_CODE_PATH,
                &json!({"component_appid": self.inner.appid}),
            )
            .await?;
        credential_field(&v, "pre_auth_code")
    }

    /// The authorization page for `pre_auth_code`, which sends the administrator back to
    /// `redirect_uri` with `auth_code` (auth_type 1: Official Accounts).
    pub fn authorize_url(&self, pre_auth_code: &str, redirect_uri: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("component_appid", &self.inner.appid)
            .append_pair("pre_auth_code", pre_auth_code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("auth_type", "1")
            .finish();
        format!("{}{LOGIN_PAGE_PATH}?{query}", self.inner.login_page_base)
    }

    /// `api_query_auth`: what the authorization `code` grants (not stored; see
    /// [`ComponentClient::complete_authorization`]).
    pub async fn query_auth(&self, code: &str) -> Result<Authorization, ApiError> {
        let started = self.inner.settings.clock.now_unix();
        let v = self
            .post(
                QUERY_AUTH_PATH,
                &json!({"component_appid": self.inner.appid, "authorization_code": code}),
            )
            .await?;
        let info = v.get("authorization_info").unwrap_or(&Value::Null);
        let func_info = info
            .get("func_info")
            .and_then(Value::as_array)
            .map(|sets| {
                sets.iter()
                    .filter_map(|f| f.pointer("/funcscope_category/id").and_then(Value::as_i64))
                    .collect()
            })
            .unwrap_or_default();
        let expires_in = expires_in(info);
        Ok(Authorization {
            authorizer_appid: credential_field(info, "authorizer_appid")?,
            access_token: CachedToken {
                access_token: credential_field(info, "authorizer_access_token")?,
                expires_at_unix: started + expires_in,
            },
            refresh_token: credential_field(info, "authorizer_refresh_token")?,
            func_info,
        })
    }

    /// Exchanges `code` and keeps what it grants: the refresh token (replacing any earlier
    /// one: a re-authorization invalidates it) and the first access_token, in the store.
    pub async fn complete_authorization(&self, code: &str) -> Result<Authorization, ApiError> {
        let auth = self.query_auth(code).await?;
        let appid = &auth.authorizer_appid;
        let store = &self.inner.store;
        store
            .set(
                &keys::authorizer_refresh_key(&self.inner.appid, appid),
                &auth.refresh_token,
                None,
            )
            .await
            .map_err(|e| store_error("keep the authorizer's refresh token", e))?;
        let persistence = StoreTokenPersistence::new(Arc::clone(store), appid);
        crate::api::TokenPersistence::save(&persistence, &auth.access_token).await;
        // A client built before (an earlier authorization) must not keep a withdrawn token.
        if let Some(client) = lock(&self.inner.authorizers).get(appid) {
            client.forget_token();
        }
        tracing::info!(authorizer = %appid, func_info = ?auth.func_info, "authorizer authorized the platform");
        Ok(auth)
    }

    /// Whether a refresh token is kept for `appid` (it authorized, and did not withdraw).
    pub async fn is_authorized(&self, appid: &str) -> Result<bool, crate::store::StoreError> {
        Ok(self
            .inner
            .store
            .get(&keys::authorizer_refresh_key(&self.inner.appid, appid))
            .await?
            .is_some())
    }

    /// The API client acting for the authorizer `appid`, its token from its refresh token.
    /// Calls fail with a clear error while no refresh token is kept for it.
    pub fn authorizer(&self, appid: &str) -> Result<WechatClient, ApiError> {
        let mut clients = lock(&self.inner.authorizers);
        if let Some(client) = clients.get(appid) {
            return Ok(client.clone());
        }
        let settings = &self.inner.settings;
        let store = &self.inner.store;
        let mut config = ClientConfig::new(appid, "").with_base_url(&settings.base_url);
        config.timeout = settings.timeout;
        config.connect_timeout = config.connect_timeout.min(settings.timeout);
        config.retry = settings.retry;
        config.refresh_ahead = settings.refresh_ahead;
        config.clock = Arc::clone(&settings.clock);
        config.http = settings.http.clone();
        config.persistence = Arc::new(StoreTokenPersistence::new(Arc::clone(store), appid));
        config.ticket_persistence = Arc::new(StoreTokenPersistence::jsapi_ticket(
            Arc::clone(store),
            appid,
        ));
        config.token_source = Some(Arc::new(AuthorizerTokens {
            component: Arc::downgrade(&self.inner),
            authorizer_appid: appid.to_string(),
        }));
        config.component = Some(Arc::new(PlatformAccess {
            component: Arc::downgrade(&self.inner),
            appid: self.inner.appid.clone(),
        }));
        let client = WechatClient::new(config)?;
        clients.insert(appid.to_string(), client.clone());
        Ok(client)
    }

    /// The authorizer `appid` withdrew its authorization: its refresh token and access_token
    /// are deleted from the store and from this process, so later calls fail with a clear
    /// error (another instance's cached token is refused by WeChat, and then cannot be
    /// replaced).
    pub async fn forget_authorizer(&self, appid: &str) -> Result<(), crate::store::StoreError> {
        let store = &self.inner.store;
        store
            .del(&keys::authorizer_refresh_key(&self.inner.appid, appid))
            .await?;
        store.del(&keys::token_key(appid)).await?;
        store.del(&keys::ticket_key("jsapi", appid)).await?;
        if let Some(client) = lock(&self.inner.authorizers).get(appid) {
            client.forget_token();
        }
        tracing::info!(authorizer = %appid, "authorizer withdrew its authorization; its tokens are deleted");
        Ok(())
    }

    /// What `wechat-lua accounts` shows of `appid`.
    pub async fn authorizer_status(
        &self,
        appid: &str,
    ) -> Result<AuthorizerStatus, crate::store::StoreError> {
        let authorized = self.is_authorized(appid).await?;
        let stored = self.inner.store.get(&keys::token_key(appid)).await?;
        let token = match lock(&self.inner.authorizers).get(appid) {
            Some(client) => client.token_status(),
            None => TokenStatus {
                cached: false,
                expires_at_unix: None,
                expires_in_secs: None,
                endpoint: TokenEndpoint::Stable,
                fetches: 0,
            },
        };
        Ok(AuthorizerStatus {
            authorized,
            token,
            stored_token_expires_at: stored
                .and_then(|raw| raw.split_once(':').and_then(|(e, _)| e.parse().ok())),
        })
    }

    /// One authorizer access_token from the stored refresh token; a rotated refresh token is
    /// stored over the one used, only if that one is still stored.
    async fn fetch_authorizer_token(&self, appid: &str) -> Result<CachedToken, ApiError> {
        let key = keys::authorizer_refresh_key(&self.inner.appid, appid);
        let store = &self.inner.store;
        let mut rereads = 0;
        let mut refused: Option<String> = None;
        loop {
            let refresh = store
                .get(&key)
                .await
                .map_err(|e| store_error("read the authorizer's refresh token", e))?
                .ok_or_else(|| {
                    ApiError::Config(format!(
                        "account {appid} has not authorized this platform, or withdrew its authorization: no refresh token is kept for it"
                    ))
                })?;
            if refused.as_ref() == Some(&refresh) {
                // Refused, and nobody stored another yet: one may be on its way.
                if rereads >= REFRESH_REREADS {
                    return Err(ApiError::Api {
                        errcode: REFRESH_TOKEN_INVALID,
                        errmsg: format!(
                            "WeChat refuses the refresh token kept for {appid}: the account must authorize the platform again"
                        ),
                    });
                }
                rereads += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let started = self.inner.settings.clock.now_unix();
            let body = json!({
                "component_appid": self.inner.appid,
                "authorizer_appid": appid,
                "authorizer_refresh_token": refresh,
            });
            let v = match self.post(AUTHORIZER_TOKEN_PATH, &body).await {
                Ok(v) => v,
                Err(e) if e.errcode() == REFRESH_TOKEN_INVALID => {
                    tracing::info!(authorizer = %appid, "refresh token refused; reading the stored one again");
                    refused = Some(refresh);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let token = credential_field(&v, "authorizer_access_token")?;
            let expires_in = expires_in(&v);
            if let Some(rotated) = v
                .get("authorizer_refresh_token")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty() && *r != refresh)
            {
                match store.set_if_eq(&key, &refresh, rotated, None).await {
                    Ok(true) => {
                        tracing::info!(authorizer = %appid, "authorizer refresh token rotated and stored")
                    }
                    Ok(false) => tracing::warn!(
                        authorizer = %appid,
                        "the stored refresh token changed while this one was used (re-authorized or withdrawn); keeping the stored one"
                    ),
                    Err(e) => tracing::error!(
                        authorizer = %appid,
                        "cannot store the rotated refresh token; the account may have to authorize again: {e}"
                    ),
                }
            }
            tracing::info!(authorizer = %appid, expires_in, "fetched a new authorizer access_token");
            return Ok(CachedToken {
                access_token: token,
                expires_at_unix: started + expires_in,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_page_follows_a_fake_api_only() {
        assert_eq!(
            login_page_base_for("https://api.weixin.qq.com"),
            DEFAULT_LOGIN_PAGE_BASE
        );
        assert_eq!(
            login_page_base_for("http://127.0.0.1:9/"),
            "http://127.0.0.1:9"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = ComponentSettings::new("wxc", "SECRET", "http://x");
        assert!(!format!("{s:?}").contains("SECRET"));
    }
}
