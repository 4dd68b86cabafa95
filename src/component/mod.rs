//! The open platform (第三方平台): one `[component]` whose authorized accounts this host
//! serves beside its configured ones. It owns what arrives for the platform and its
//! authorizers, past the HTTP checks of [`crate::server::component`]:
//!
//! - pushes to `/component/events`, opened with the platform's envelope: the
//!   `component_verify_ticket` (stored, so the component_access_token can be fetched) and the
//!   `authorized` / `updateauthorized` / `unauthorized` events that keep the list of
//!   authorizers current (an `unauthorized` account's tokens are deleted);
//! - the authorization: a pre_auth_code and the authorization page's URL, and the code it
//!   sends back exchanged once (the redirect and the `authorized` event carry the same code);
//! - which authorizer a callback is for, and whether it may be served: an account that never
//!   authorized is refused; the platform's two published test accounts get the built-in
//!   release-test answers ([`release_test`]) before any script runs.
//!
//! The list of authorizers lives in the store (a JSON array updated by compare-and-set), so
//! instances sharing a Redis share it; their credentials live in [`crate::api::component`].
//! How an authorizer's messages are answered is the host's business ([`AuthorizerHost`]):
//! this module knows no Lua.

pub mod release_test;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::account::Account;
use crate::api::component::{Authorization, ComponentClient};
use crate::api::{ApiError, WechatClient};
use crate::config::ComponentConfig;
use crate::protocol::crypto::{CryptoError, MessageCrypto};
use crate::protocol::envelope::{Envelope, OpenError};
use crate::store::{keys, Store, StoreError};

/// Where WeChat pushes tickets and authorization events (授权事件接收URL).
pub const EVENTS_PATH: &str = "/component/events";
/// Where administrators start an authorization.
pub const AUTHORIZE_PATH: &str = "/component/authorize";
/// Where the authorization page sends them back with `auth_code`.
pub const AUTHORIZED_PATH: &str = "/component/authorized";
/// How long an exchanged authorization code is remembered (its own lifetime).
const AUTH_CODE_MEMORY: Duration = Duration::from_secs(600);
/// Attempts at updating the shared list of authorizers before giving up.
const LIST_UPDATE_ATTEMPTS: usize = 16;

/// An authorization change the scripts hear of (`wx.on("component.authorized", fn)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationEvent {
    /// `authorized`, `updateauthorized` or `unauthorized`.
    pub kind: AuthorizationKind,
    /// The account.
    pub appid: String,
    /// The permission sets granted (empty for `unauthorized`).
    pub func_info: Vec<i64>,
}

/// What happened to an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationKind {
    /// An account authorized the platform (or did again).
    Authorized,
    /// An account changed what it grants.
    Updated,
    /// An account withdrew its authorization.
    Unauthorized,
}

impl AuthorizationKind {
    /// The InfoType WeChat pushes: `authorized`, `updateauthorized` or `unauthorized`.
    pub fn wire(self) -> &'static str {
        match self {
            AuthorizationKind::Authorized => "authorized",
            AuthorizationKind::Updated => "updateauthorized",
            AuthorizationKind::Unauthorized => "unauthorized",
        }
    }

    /// The script event name: `component.authorized` or `component.unauthorized` (an update
    /// is an authorization with new permissions).
    pub fn script_event(self) -> &'static str {
        match self {
            AuthorizationKind::Authorized | AuthorizationKind::Updated => "component.authorized",
            AuthorizationKind::Unauthorized => "component.unauthorized",
        }
    }
}

/// What the platform needs from the host it runs in.
pub trait AuthorizerHost: Send + Sync {
    /// The account serving the authorizer `appid`'s messages with `api` (its authorizer
    /// token): the same scripts as every account, `msg.account` = `appid`. Made on first use
    /// and kept.
    fn account(&self, appid: &str, api: WechatClient) -> Result<Arc<Account>, String>;
    /// `appid` withdrew its authorization: stop serving it.
    fn remove(&self, appid: &str);
    /// Tells the scripts of an authorization change.
    fn notify(&self, event: AuthorizationEvent) -> BoxFuture<'static, ()>;
}

/// Why a push was refused or could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The push names another platform (outside, or inside the encrypted body).
    #[error("push for another platform")]
    ForeignPlatform,
    /// The envelope could not be opened (signature, encryption, XML).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A field the push must carry is absent.
    #[error("push without {0}")]
    MissingField(&'static str),
    /// The store did not take it: WeChat should push again.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Why an authorizer cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store cannot say whether it authorized the platform.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The host could not make the account that serves it.
    #[error("cannot serve the account: {0}")]
    Host(String),
}

/// The platform of a host.
pub struct Platform {
    config: ComponentConfig,
    client: ComponentClient,
    envelope: Arc<Envelope>,
    host: Arc<dyn AuthorizerHost>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("appid", &self.config.appid)
            .finish_non_exhaustive()
    }
}

impl Platform {
    /// The platform `config` describes, its API through `client`, its authorizers served by
    /// `host`.
    pub fn new(
        config: ComponentConfig,
        client: ComponentClient,
        host: Arc<dyn AuthorizerHost>,
    ) -> Result<Platform, CryptoError> {
        let envelope = Arc::new(Envelope::new(
            config.token.expose(),
            MessageCrypto::new(config.encoding_aes_key.expose(), &config.appid)?,
        ));
        Ok(Platform {
            config,
            client,
            envelope,
            host,
        })
    }

    /// The platform's AppID.
    pub fn appid(&self) -> &str {
        &self.config.appid
    }

    /// The token WeChat signs the platform's requests with.
    pub fn token(&self) -> &crate::config::Secret {
        &self.config.token
    }

    /// The platform's envelope: every push and every authorizer message is sealed in it.
    pub fn envelope(&self) -> &Arc<Envelope> {
        &self.envelope
    }

    /// The platform's API client.
    pub fn client(&self) -> &ComponentClient {
        &self.client
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.client.store()
    }

    /// Takes one push to `/component/events`, signed query already checked: opens it, checks
    /// it is for this platform, and acts on it. A ticket is stored before this returns.
    pub async fn take_push(
        &self,
        body: &[u8],
        timestamp: &str,
        nonce: &str,
        msg_signature: Option<&str>,
    ) -> Result<(), PushError> {
        let outer = crate::protocol::xml_fields::parse_fields(body)
            .map_err(|e| PushError::Open(OpenError::Xml(e)))?;
        if outer
            .text("AppId")
            .is_some_and(|appid| appid.trim() != self.config.appid)
        {
            return Err(PushError::ForeignPlatform);
        }
        let fields = self
            .envelope
            .open_request_fields(body, timestamp, nonce, msg_signature)?;
        let text = |name: &'static str| {
            fields
                .text(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .ok_or(PushError::MissingField(name))
        };
        if text("AppId")? != self.config.appid {
            return Err(PushError::ForeignPlatform);
        }
        match text("InfoType")? {
            "component_verify_ticket" => {
                let ticket = text("ComponentVerifyTicket")?;
                self.client.save_ticket(ticket).await?;
                tracing::info!("component_verify_ticket received and stored");
            }
            kind @ ("authorized" | "updateauthorized") => {
                let appid = text("AuthorizerAppid")?;
                let code = text("AuthorizationCode")?;
                let kind = if kind == "authorized" {
                    AuthorizationKind::Authorized
                } else {
                    AuthorizationKind::Updated
                };
                match self.complete(code, kind).await {
                    Ok(Some(auth)) if auth.authorizer_appid != appid => tracing::warn!(
                        event = %appid,
                        code = %auth.authorizer_appid,
                        "authorization event and its code name different accounts"
                    ),
                    Ok(_) => {}
                    // The administrator's redirect exchanges the same code; WeChat does not
                    // push again for a failed exchange, so retrying here gains nothing.
                    Err(e) => {
                        tracing::error!(authorizer = %appid, errcode = e.errcode(), "cannot exchange the authorization code: {e}")
                    }
                }
            }
            "unauthorized" => {
                let appid = text("AuthorizerAppid")?.to_string();
                self.unauthorize(&appid).await?;
            }
            other => tracing::info!(info_type = %other, "platform push of a kind not handled"),
        }
        Ok(())
    }

    /// A pre_auth_code and the authorization page's URL, which sends the administrator back
    /// to `/component/authorized` (carrying `next`, a local path, if given).
    pub async fn authorize_url(&self, next: Option<&str>) -> Result<String, ApiError> {
        let code = self.client.pre_auth_code().await?;
        let mut back = format!("{}{AUTHORIZED_PATH}", self.config.public_url);
        if let Some(next) = next {
            back.push_str("?next=");
            back.push_str(&form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>());
        }
        Ok(self.client.authorize_url(&code, &back))
    }

    /// The redirect back from the authorization page: exchanges `code` (once, whoever comes
    /// first: this or the `authorized` event) and returns the authorizer's appid.
    pub async fn take_auth_code(&self, code: &str) -> Result<Option<String>, ApiError> {
        Ok(self
            .complete(code, AuthorizationKind::Authorized)
            .await?
            .map(|a| a.authorizer_appid))
    }

    /// Exchanges `code` unless it was exchanged already (then `None`), keeps the authorizer
    /// in the list and tells the scripts.
    async fn complete(
        &self,
        code: &str,
        kind: AuthorizationKind,
    ) -> Result<Option<Authorization>, ApiError> {
        let key = keys::auth_code_key(&self.config.appid, code);
        match self.store().set_nx(&key, "1", Some(AUTH_CODE_MEMORY)).await {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => {
                tracing::warn!("cannot remember the authorization code, exchanging it anyway: {e}")
            }
        }
        let auth = match self.client.complete_authorization(code).await {
            Ok(auth) => auth,
            Err(e) => {
                // Let the other path (redirect or event) try the code.
                let _ = self.store().del(&key).await;
                return Err(e);
            }
        };
        if let Err(e) = self.edit_list(&auth.authorizer_appid, true).await {
            tracing::error!(authorizer = %auth.authorizer_appid, "cannot add the authorizer to the list: {e}");
        }
        // Served (and reachable with `wx.account(appid)`) from now on, before the scripts
        // hear of it, so their handler can act for it.
        if let Err(e) = self.serve(&auth.authorizer_appid) {
            tracing::error!(authorizer = %auth.authorizer_appid, "cannot serve the authorizer: {e}");
        }
        self.host
            .notify(AuthorizationEvent {
                kind,
                appid: auth.authorizer_appid.clone(),
                func_info: auth.func_info.clone(),
            })
            .await;
        Ok(Some(auth))
    }

    /// `appid` withdrew its authorization: its tokens deleted, out of the list, no longer
    /// served, the scripts told.
    pub async fn unauthorize(&self, appid: &str) -> Result<(), StoreError> {
        self.client.forget_authorizer(appid).await?;
        self.edit_list(appid, false).await?;
        self.host.remove(appid);
        self.host
            .notify(AuthorizationEvent {
                kind: AuthorizationKind::Unauthorized,
                appid: appid.to_string(),
                func_info: Vec::new(),
            })
            .await;
        Ok(())
    }

    /// The authorizers in the list, in the order they first authorized.
    pub async fn authorizers(&self) -> Result<Vec<String>, StoreError> {
        let raw = self
            .store()
            .get(&keys::authorizers_key(&self.config.appid))
            .await?;
        Ok(raw
            .and_then(|raw| serde_json::from_str(&raw).ok())
            .unwrap_or_default())
    }

    /// Adds `appid` to the shared list (or removes it), by compare-and-set so two instances
    /// editing at once lose neither edit.
    async fn edit_list(&self, appid: &str, add: bool) -> Result<(), StoreError> {
        let key = keys::authorizers_key(&self.config.appid);
        let store = self.store();
        for _ in 0..LIST_UPDATE_ATTEMPTS {
            let raw = store.get(&key).await?;
            let mut list: Vec<String> = raw
                .as_deref()
                .and_then(|raw| serde_json::from_str(raw).ok())
                .unwrap_or_default();
            let present = list.iter().any(|a| a == appid);
            if present == add {
                return Ok(());
            }
            if add {
                list.push(appid.to_string());
            } else {
                list.retain(|a| a != appid);
            }
            let new = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
            let written = match &raw {
                Some(old) => store.set_if_eq(&key, old, &new, None).await?,
                None => store.set_nx(&key, &new, None).await?,
            };
            if written {
                return Ok(());
            }
        }
        Err(StoreError::Backend(
            "the list of authorizers kept changing while it was edited".into(),
        ))
    }

    /// Serves every authorizer in the list that still has its refresh token (at start-up, so
    /// `wx.account(appid)` finds them before their first message); returns how many.
    pub async fn serve_authorized(&self) -> Result<usize, ServeError> {
        let mut served = 0;
        for appid in self.authorizers().await? {
            if self.client.is_authorized(&appid).await? {
                self.serve(&appid).map_err(ServeError::Host)?;
                served += 1;
            }
        }
        Ok(served)
    }

    fn serve(&self, appid: &str) -> Result<Arc<Account>, String> {
        let api = self.client.authorizer(appid).map_err(|e| e.to_string())?;
        self.host.account(appid, api)
    }

    /// The account serving a callback for `appid`, if `appid` authorized the platform (on
    /// any instance: its refresh token is in the store); `Ok(None)` when it never did (or
    /// withdrew).
    pub async fn authorizer(&self, appid: &str) -> Result<Option<Arc<Account>>, ServeError> {
        if !self.client.is_authorized(appid).await? {
            // Withdrawn through another instance (which got the push): stop serving it here.
            self.host.remove(appid);
            return Ok(None);
        }
        self.serve(appid).map(Some).map_err(ServeError::Host)
    }

    /// The API client of an authorizer (for the release test's customer-service answer).
    pub fn authorizer_api(&self, appid: &str) -> Result<WechatClient, ApiError> {
        self.client.authorizer(appid)
    }
}
