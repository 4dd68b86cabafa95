//! 网页授权 (OAuth2 sign-in of pages opened inside WeChat): the authorize URL a visitor is
//! sent to, the exchange of the code WeChat hands back for the visitor's openid
//! (`/sns/oauth2/access_token`), and the profile of a visitor who granted `snsapi_userinfo`
//! (`/sns/userinfo`). These calls carry the AppSecret or the visitor's own access_token,
//! never the account's, so a rejection here never touches the account's token.
//!
//! An authorizer of the open platform (第三方平台) has no AppSecret here: for its client
//! ([`WechatClient::component`]) the authorize URL carries `component_appid` and the code is
//! exchanged at `/sns/oauth2/component/access_token` with the platform's
//! component_access_token instead of the secret. Scripts call the same functions either way.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::WechatClient;
use super::error::ApiError;

/// The code exchange.
pub const EXCHANGE_PATH: &str = "/sns/oauth2/access_token";
/// The code exchange of an authorizer, through the open platform.
pub const COMPONENT_EXCHANGE_PATH: &str = "/sns/oauth2/component/access_token";
/// The renewal of a visitor's token of an authorizer, through the open platform.
pub const COMPONENT_REFRESH_PATH: &str = "/sns/oauth2/component/refresh_token";
/// The visitor's profile (`snsapi_userinfo`).
pub const USERINFO_PATH: &str = "/sns/userinfo";
/// The sign-in page, on the authorize origin (`open.weixin.qq.com`).
pub const AUTHORIZE_PATH: &str = "/connect/oauth2/authorize";
/// WeChat: the code is unknown (or expired: codes live 5 minutes).
pub const INVALID_CODE: i64 = 40029;
/// WeChat: the code was already exchanged (each works once).
pub const CODE_USED: i64 = 40163;
/// Longest `state` WeChat carries through the sign-in, in bytes.
pub const MAX_STATE_LEN: usize = 128;

/// What the visitor is asked to grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Scope {
    /// `snsapi_base`: the openid only, without asking (silent sign-in).
    #[default]
    #[serde(rename = "snsapi_base")]
    Base,
    /// `snsapi_userinfo`: the openid and, after the visitor agrees, the profile.
    #[serde(rename = "snsapi_userinfo")]
    UserInfo,
}

impl Scope {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Base => "snsapi_base",
            Scope::UserInfo => "snsapi_userinfo",
        }
    }

    /// The scope called `name`, if it is one.
    pub fn parse(name: &str) -> Option<Scope> {
        match name {
            "snsapi_base" => Some(Scope::Base),
            "snsapi_userinfo" => Some(Scope::UserInfo),
            _ => None,
        }
    }
}

/// Checks a `state` as WeChat documents it: up to 128 bytes of `a-zA-Z0-9`.
pub fn check_state(state: &str) -> Result<(), String> {
    if state.len() > MAX_STATE_LEN {
        return Err(format!(
            "state is at most {MAX_STATE_LEN} characters, not {}",
            state.len()
        ));
    }
    if !state.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("state may hold only the letters a-z, A-Z and digits".into());
    }
    Ok(())
}

/// The sign-in URL at `authorize_base`, its parameters in the documented order (WeChat
/// refuses others) and `#wechat_redirect` at the end. `component_appid` is the open
/// platform's AppID when `appid` is one of its authorizers (it goes last, as documented).
pub fn authorize_url(
    authorize_base: &str,
    appid: &str,
    redirect_uri: &str,
    scope: Scope,
    state: &str,
    component_appid: Option<&str>,
) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let component = component_appid
        .map(|c| format!("&component_appid={}", enc(c)))
        .unwrap_or_default();
    format!(
        "{}{AUTHORIZE_PATH}?appid={}&redirect_uri={}&response_type=code&scope={}&state={}{component}#wechat_redirect",
        authorize_base.trim_end_matches('/'),
        enc(appid),
        enc(redirect_uri),
        scope.as_str(),
        enc(state),
    )
}

/// What the code exchange returns.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OauthToken {
    /// The visitor's 网页授权 access_token (for `/sns/userinfo`); never logged.
    pub access_token: String,
    /// Its lifetime in seconds (7200).
    pub expires_in: i64,
    /// Renews `access_token` for 30 days; never logged.
    pub refresh_token: String,
    /// The visitor's OpenID for this account.
    pub openid: String,
    /// The scope granted (`snsapi_base` or `snsapi_userinfo`).
    pub scope: String,
    /// The visitor's UnionID, when the account is bound to an open platform account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    /// 1 for a visitor on a 快照页 (snapshot page), who has not really signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_snapshotuser: Option<i64>,
}

impl fmt::Debug for OauthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OauthToken")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("openid", &self.openid)
            .field("scope", &self.scope)
            .field("unionid", &self.unionid)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// 网页授权 family; get one with [`WechatClient::oauth`].
#[derive(Debug, Clone, Copy)]
pub struct Oauth<'a> {
    client: &'a WechatClient,
}

impl WechatClient {
    /// 网页授权 (sign-in of web pages).
    pub fn oauth(&self) -> Oauth<'_> {
        Oauth { client: self }
    }
}

impl Oauth<'_> {
    /// The URL that signs the visitor in and comes back to `redirect_uri` with `code` and
    /// `state` (see [`authorize_url`]).
    pub fn authorize_url(&self, redirect_uri: &str, scope: Scope, state: &str) -> String {
        authorize_url(
            self.client.authorize_base(),
            self.client.appid(),
            redirect_uri,
            scope,
            state,
            self.client.component().map(|c| c.component_appid()),
        )
    }

    /// `sns/oauth2/access_token`: the visitor's openid (and token) for a `code`. Each code
    /// works once and for 5 minutes: 40163 when used, 40029 when unknown or expired. For an
    /// authorizer, `sns/oauth2/component/access_token` with the platform's token instead.
    pub async fn exchange(&self, code: &str) -> Result<OauthToken, ApiError> {
        let query = [("code", code), ("grant_type", "authorization_code")];
        let v = match self.client.component() {
            Some(component) => {
                self.client
                    .get_with_component_token(component.as_ref(), COMPONENT_EXCHANGE_PATH, &query)
                    .await?
            }
            None => {
                self.client
                    .get_with_credentials(EXCHANGE_PATH, &query)
                    .await?
            }
        };
        serde_json::from_value(v).map_err(|e| ApiError::InvalidJson {
            // The answer holds the visitor's tokens: say what was wrong, not what came.
            raw: "<sns/oauth2/access_token answer>".into(),
            reason: e.to_string(),
        })
    }

    /// `sns/userinfo`: the profile of a visitor who granted `snsapi_userinfo` (nickname,
    /// headimgurl, …), with their 网页授权 `access_token`. `lang` is `zh_CN`, `zh_TW` or `en`.
    pub async fn userinfo(
        &self,
        access_token: &str,
        openid: &str,
        lang: &str,
    ) -> Result<Value, ApiError> {
        self.client
            .get_with_token(
                USERINFO_PATH,
                access_token,
                &[("openid", openid), ("lang", lang)],
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_url_is_in_the_documented_order_and_escapes_the_redirect() {
        assert_eq!(
            authorize_url(
                "https://open.weixin.qq.com/",
                "wx520c15f417810387",
                "https://shop.example/oauth/callback?next=/orders&x=1",
                Scope::UserInfo,
                "abc123",
                None,
            ),
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx520c15f417810387\
             &redirect_uri=https%3A%2F%2Fshop.example%2Foauth%2Fcallback%3Fnext%3D%2Forders%26x%3D1\
             &response_type=code&scope=snsapi_userinfo&state=abc123#wechat_redirect"
        );
    }

    #[test]
    fn an_authorizers_url_names_the_platform_last() {
        assert_eq!(
            authorize_url(
                "https://open.weixin.qq.com",
                "wxauthorizer",
                "https://a.example/cb",
                Scope::Base,
                "s",
                Some("wxcomponent"),
            ),
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wxauthorizer\
             &redirect_uri=https%3A%2F%2Fa.example%2Fcb&response_type=code&scope=snsapi_base\
             &state=s&component_appid=wxcomponent#wechat_redirect"
        );
    }

    #[test]
    fn state_is_short_and_alphanumeric() {
        assert!(check_state("").is_ok());
        assert!(check_state(&"a".repeat(128)).is_ok());
        assert!(check_state(&"a".repeat(129)).is_err());
        assert!(check_state("a&b").is_err());
        assert!(check_state("中").is_err());
    }

    #[test]
    fn scopes_round_trip_and_tokens_stay_out_of_debug() {
        for s in [Scope::Base, Scope::UserInfo] {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("snsapi_login"), None);
        let t: OauthToken = serde_json::from_value(serde_json::json!({
            "access_token": "SECRET_AT", "expires_in": 7200, "refresh_token": "SECRET_RT",
            "openid": "oX", "scope": "snsapi_base", "is_snapshotuser": 1, "unionid": "uX"
        }))
        .unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("oX"));
    }
}
