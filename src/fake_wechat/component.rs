//! The fake's open platform (第三方平台), as [`crate::api::component`] and a browser use it,
//! plus the driver that plays WeChat's side of the pushes.
//!
//! Endpoints: `api_component_token` (only the latest pushed ticket works: an older one gets
//! 61005, an unknown one 61006; a wrong secret 40125), `api_create_preauthcode` (30 minutes,
//! single use), the authorization page `/cgi-bin/componentloginpage` (authorizes the
//! account [`FakeWechat::component_set_authorizer`] names at once and redirects back with an
//! `auth_code` valid 10 minutes), `api_query_auth` (61009 unknown code, 61010 expired) and
//! `api_authorizer_token`, whose refresh tokens rotate: every successful call hands out a
//! new one and the one used stops working (61023), as does every refresh token of an
//! account that withdrew its authorization. Component calls take `component_access_token`
//! (41001 missing, 40001 unknown, 42001 expired); authorizer access_tokens are ordinary
//! tokens of the authorizer's appid, so every other endpoint accepts them.
//!
//! The driver ([`FakeWechat::component_push_ticket`], `…_push_authorized`,
//! `…_push_unauthorized`, `…_send_message`) signs and encrypts as WeChat does, with the
//! platform's token and EncodingAESKey, and posts to the host.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::state::{FakeState, JsonBody, TokenRec};
use super::FakeWechat;
use crate::api::component::{
    AUTHORIZER_TOKEN_PATH, COMPONENT_TOKEN_PATH, LOGIN_PAGE_PATH, PRE_AUTH_CODE_PATH,
    QUERY_AUTH_PATH,
};
use crate::protocol::crypto::MessageCrypto;
use crate::protocol::envelope::Envelope;

/// The authorizer the fake's authorization page authorizes until told otherwise.
pub const DEFAULT_AUTHORIZER: &str = "wx00000000author01";
/// How long a pre_auth_code works (as on WeChat).
const PRE_AUTH_CODE_TTL: Duration = Duration::from_secs(1800);
/// How long an auth_code works (as on WeChat).
const AUTH_CODE_TTL: Duration = Duration::from_secs(600);

/// The platform the fake knows.
#[derive(Debug, Clone)]
struct Platform {
    appid: String,
    secret: String,
    /// The token pushes are signed with.
    token: String,
    /// The EncodingAESKey pushes are encrypted with.
    aes_key: String,
}

/// One account that authorized (or once authorized) the platform.
#[derive(Debug, Clone)]
struct AuthorizerRec {
    /// The only refresh token that works; `None` after the authorization was withdrawn.
    refresh_token: Option<String>,
    /// Its current access_token.
    access_token: Option<String>,
}

/// What the fake keeps for the open platform.
#[derive(Debug, Default)]
pub(super) struct ComponentState {
    platform: Option<Platform>,
    /// The latest pushed ticket, and every earlier one (expired).
    ticket: Option<String>,
    old_tickets: Vec<String>,
    /// Issued component_access_tokens and when they expire.
    tokens: HashMap<String, Instant>,
    pre_auth_codes: HashMap<String, Instant>,
    /// auth_code → (authorizer, issued).
    auth_codes: HashMap<String, (String, Instant)>,
    authorizers: HashMap<String, AuthorizerRec>,
    /// Who the authorization page authorizes.
    next_authorizer: Option<String>,
    component_token_fetches: u64,
    authorizer_token_fetches: u64,
}

impl FakeWechat {
    /// Makes the fake an open platform `appid` with `secret`, whose pushes are signed with
    /// `token` and encrypted with `aes_key` (43 characters).
    pub fn component_setup(&self, appid: &str, secret: &str, token: &str, aes_key: &str) {
        self.lock().component.platform = Some(Platform {
            appid: appid.into(),
            secret: secret.into(),
            token: token.into(),
            aes_key: aes_key.into(),
        });
    }

    /// The account the authorization page authorizes from now on.
    pub fn component_set_authorizer(&self, appid: &str) {
        self.lock().component.next_authorizer = Some(appid.to_string());
    }

    /// How many component_access_tokens were issued.
    pub fn component_token_fetches(&self) -> u64 {
        self.lock().component.component_token_fetches
    }

    /// How many authorizer access_tokens `api_authorizer_token` issued.
    pub fn authorizer_token_fetches(&self) -> u64 {
        self.lock().component.authorizer_token_fetches
    }

    /// The refresh token that works for `appid` now (`None` when not authorized).
    pub fn authorizer_refresh_token(&self, appid: &str) -> Option<String> {
        self.lock()
            .component
            .authorizers
            .get(appid)
            .and_then(|a| a.refresh_token.clone())
    }

    /// Authorizes `appid` as the authorization page does, without a browser; returns the
    /// auth_code the page would hand back.
    pub fn component_authorize(&self, appid: &str) -> String {
        authorize_account(&mut self.lock(), appid)
    }

    /// Makes every component_access_token issued so far expired (calls get 42001).
    pub fn component_expire_tokens(&self) {
        let now = Instant::now();
        for expires in self.lock().component.tokens.values_mut() {
            *expires = now;
        }
    }

    /// Makes every access_token of `appid` expired (an authorizer's, say: calls get 42001
    /// and the host must fetch with its refresh token).
    pub fn expire_tokens_of(&self, appid: &str) {
        let now = Instant::now();
        for t in self.lock().tokens.values_mut() {
            if t.appid == appid {
                t.expires = now;
            }
        }
    }

    /// Issues a new `component_verify_ticket` without pushing it (for tests that store it
    /// themselves); it becomes the only one that works.
    pub fn component_issue_ticket(&self) -> String {
        let mut s = self.lock();
        let serial = s.next_serial();
        let ticket = format!("ticket@@@FAKE{serial:x}");
        let c = &mut s.component;
        if let Some(old) = c.ticket.replace(ticket.clone()) {
            c.old_tickets.push(old);
        }
        ticket
    }

    /// Pushes a new `component_verify_ticket` to `events_url` as WeChat does every 10
    /// minutes; returns the host's status and body. The ticket becomes the only one that works.
    pub async fn component_push_ticket(&self, events_url: &str) -> (u16, String) {
        let ticket = self.component_issue_ticket();
        let (appid, xml) = {
            let s = self.lock();
            let appid = platform(&s).appid;
            let xml = format!(
                "<xml><AppId><![CDATA[{appid}]]></AppId><CreateTime>{}</CreateTime><InfoType><![CDATA[component_verify_ticket]]></InfoType><ComponentVerifyTicket><![CDATA[{ticket}]]></ComponentVerifyTicket></xml>",
                crate::clock::unix_secs()
            );
            (appid, xml)
        };
        self.component_push(events_url, &appid, &xml).await
    }

    /// Authorizes `appid` (as the page does) and pushes the `authorized` event with its
    /// auth_code to `events_url`.
    pub async fn component_push_authorized(&self, events_url: &str, appid: &str) -> (u16, String) {
        let (component, code) = {
            let mut s = self.lock();
            let code = authorize_account(&mut s, appid);
            (platform(&s).appid, code)
        };
        let xml = format!(
            "<xml><AppId><![CDATA[{component}]]></AppId><CreateTime>{now}</CreateTime><InfoType><![CDATA[authorized]]></InfoType><AuthorizerAppid><![CDATA[{appid}]]></AuthorizerAppid><AuthorizationCode><![CDATA[{code}]]></AuthorizationCode><AuthorizationCodeExpiredTime>{expires}</AuthorizationCodeExpiredTime><PreAuthCode><![CDATA[]]></PreAuthCode></xml>",
            now = crate::clock::unix_secs(),
            expires = crate::clock::unix_secs() + AUTH_CODE_TTL.as_secs() as i64,
        );
        self.component_push(events_url, &component, &xml).await
    }

    /// `appid` withdraws its authorization: its refresh token and access_tokens stop
    /// working, and the `unauthorized` event is pushed to `events_url`.
    pub async fn component_push_unauthorized(
        &self,
        events_url: &str,
        appid: &str,
    ) -> (u16, String) {
        let component = {
            let mut s = self.lock();
            if let Some(a) = s.component.authorizers.get_mut(appid) {
                a.refresh_token = None;
                a.access_token = None;
            }
            for t in s.tokens.values_mut() {
                if t.appid == appid {
                    t.revoked = true;
                }
            }
            platform(&s).appid
        };
        let xml = format!(
            "<xml><AppId><![CDATA[{component}]]></AppId><CreateTime>{}</CreateTime><InfoType><![CDATA[unauthorized]]></InfoType><AuthorizerAppid><![CDATA[{appid}]]></AuthorizerAppid></xml>",
            crate::clock::unix_secs()
        );
        self.component_push(events_url, &component, &xml).await
    }

    /// Posts `xml` to `url` as WeChat posts to a platform: signed with the platform's token,
    /// encrypted with its key and appid, `<AppId>` outside. Returns status and body.
    pub async fn component_push(&self, url: &str, outer_appid: &str, xml: &str) -> (u16, String) {
        let envelope = self.component_envelope();
        let timestamp = crate::clock::unix_secs().to_string();
        // Random, as WeChat's: two fakes pushing in the same second must not sign alike.
        let nonce = format!("{:x}", rand::random::<u64>());
        let sealed = envelope.seal_request(xml, outer_appid, &timestamp, &nonce);
        // A platform's pushes carry the platform's AppId where a message has ToUserName.
        let body = sealed.body.replacen("<ToUserName>", "<AppId>", 1).replacen(
            "</ToUserName>",
            "</AppId>",
            1,
        );
        let token = platform(&self.lock()).token;
        let signature = crate::protocol::signature::sign(&[&token, &timestamp, &nonce]);
        post_signed(
            url,
            &signature,
            &timestamp,
            &nonce,
            &sealed.msg_signature,
            body,
        )
        .await
    }

    /// Sends a user's message `xml` for the authorizer whose original ID is `to_user` to its
    /// callback `url` (`…/component/<appid>/callback`) as WeChat does for a platform: signed
    /// and encrypted with the platform's token and key. Returns the status and the reply
    /// XML, opened (or the plain body when it was not an encrypted reply).
    pub async fn component_send_message(
        &self,
        url: &str,
        to_user: &str,
        xml: &str,
    ) -> (u16, String) {
        let envelope = self.component_envelope();
        let timestamp = crate::clock::unix_secs().to_string();
        // Random, as WeChat's: two fakes pushing in the same second must not sign alike.
        let nonce = format!("{:x}", rand::random::<u64>());
        let sealed = envelope.seal_request(xml, to_user, &timestamp, &nonce);
        let token = platform(&self.lock()).token;
        let signature = crate::protocol::signature::sign(&[&token, &timestamp, &nonce]);
        let (status, body) = post_signed(
            url,
            &signature,
            &timestamp,
            &nonce,
            &sealed.msg_signature,
            sealed.body,
        )
        .await;
        match envelope.open_reply(&body) {
            Ok(reply) => (status, reply),
            Err(_) => (status, body),
        }
    }

    /// The platform's envelope (its token, key and appid).
    pub fn component_envelope(&self) -> Envelope {
        let p = platform(&self.lock());
        Envelope::new(
            &p.token,
            MessageCrypto::new(&p.aes_key, &p.appid).expect("the fake's platform key is valid"),
        )
    }
}

/// The platform the fake was set up as.
fn platform(s: &FakeState) -> Platform {
    s.component
        .platform
        .clone()
        .expect("call FakeWechat::component_setup first")
}

/// POSTs a signed, encrypted push; the host's status and body (599 when unreachable).
async fn post_signed(
    url: &str,
    signature: &str,
    timestamp: &str,
    nonce: &str,
    msg_signature: &str,
    body: String,
) -> (u16, String) {
    let client = reqwest::Client::new();
    let sent = client
        .post(url)
        .query(&[
            ("signature", signature),
            ("timestamp", timestamp),
            ("nonce", nonce),
            ("encrypt_type", "aes"),
            ("msg_signature", msg_signature),
        ])
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
        Err(e) => (599, e.to_string()),
    }
}

/// Authorizes `appid`: a new refresh token (any earlier one stops working, as after a
/// re-authorization) and a fresh auth_code, returned.
fn authorize_account(s: &mut FakeState, appid: &str) -> String {
    let serial = s.next_serial();
    let rec = s
        .component
        .authorizers
        .entry(appid.to_string())
        .or_insert(AuthorizerRec {
            refresh_token: None,
            access_token: None,
        });
    rec.refresh_token = Some(format!("refreshtoken@@@{appid}_{serial:x}"));
    let code = format!("queryauthcode@@@{serial:x}");
    s.component
        .auth_codes
        .insert(code.clone(), (appid.to_string(), Instant::now()));
    code
}

/// A new access_token of the authorizer `appid`, accepted by every endpoint; the previous
/// one keeps working 5 minutes, as a replaced token does on WeChat.
fn issue_authorizer_token(s: &mut FakeState, appid: &str) -> String {
    let serial = s.next_serial();
    let token = format!("FAKE_AUTHORIZER_TOKEN_{appid}_{serial:x}");
    let now = Instant::now();
    let ttl = s.token_ttl;
    let previous = s
        .component
        .authorizers
        .get_mut(appid)
        .and_then(|a| a.access_token.replace(token.clone()));
    if let Some(t) = previous.and_then(|p| s.tokens.get_mut(&p)) {
        t.expires = t.expires.min(now + Duration::from_secs(300));
    }
    s.tokens.insert(
        token.clone(),
        TokenRec {
            expires: now + ttl,
            revoked: false,
            sticky: false,
            appid: appid.to_string(),
        },
    );
    s.component.authorizer_token_fetches += 1;
    token
}

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route(COMPONENT_TOKEN_PATH, post(component_token))
        .route(PRE_AUTH_CODE_PATH, post(pre_auth_code))
        .route(QUERY_AUTH_PATH, post(query_auth))
        .route(AUTHORIZER_TOKEN_PATH, post(authorizer_token))
        .route(LOGIN_PAGE_PATH, get(login_page))
}

/// The component_access_token query parameter.
#[derive(serde::Deserialize)]
struct ComponentToken {
    component_access_token: Option<String>,
}

/// WeChat's refusal of a component call's token, if any.
pub(super) fn check_token(s: &FakeState, token: Option<&str>) -> Option<Value> {
    let code = match token.filter(|t| !t.is_empty()) {
        None => 41001,
        Some(t) => match s.component.tokens.get(t) {
            None => 40001,
            Some(expires) if *expires <= Instant::now() => 42001,
            Some(_) => return None,
        },
    };
    Some(s.err(code))
}

/// Whether `appid` authorized the platform and has not withdrawn.
pub(super) fn is_authorizer(s: &FakeState, appid: &str) -> bool {
    s.component
        .authorizers
        .get(appid)
        .is_some_and(|a| a.refresh_token.is_some())
}

/// Why a platform API call (token in the query, `component_appid` in the body) is refused:
/// its token first, then a platform other than the fake's (40013).
fn platform_call_refusal(s: &FakeState, q: &ComponentToken, body: &Value) -> Option<Value> {
    check_token(s, q.component_access_token.as_deref())
        .or_else(|| (!own_platform(s, body)).then(|| s.err(40013)))
}

/// Whether the body names the fake's platform.
pub(super) fn own_platform(s: &FakeState, body: &Value) -> bool {
    s.component
        .platform
        .as_ref()
        .is_some_and(|p| body["component_appid"] == p.appid.as_str())
}

/// `POST api_component_token {component_appid, component_appsecret, component_verify_ticket}`.
async fn component_token(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    let Some(p) = s.component.platform.clone() else {
        return Json(s.err(40013));
    };
    if b["component_appid"] != p.appid.as_str() {
        return Json(s.err(40013));
    }
    if b["component_appsecret"] != p.secret.as_str() {
        return Json(s.err(40125));
    }
    let ticket = b["component_verify_ticket"].as_str().unwrap_or_default();
    if s.component.ticket.as_deref() != Some(ticket) {
        let code = if s.component.old_tickets.iter().any(|t| t == ticket) {
            61005
        } else {
            61006
        };
        return Json(s.err(code));
    }
    let serial = s.next_serial();
    let token = format!("FAKE_COMPONENT_TOKEN_{serial:x}");
    let ttl = s.token_ttl;
    s.component
        .tokens
        .insert(token.clone(), Instant::now() + ttl);
    s.component.component_token_fetches += 1;
    Json(json!({"component_access_token": token, "expires_in": ttl.as_secs()}))
}

/// `POST api_create_preauthcode {component_appid}`.
async fn pre_auth_code(
    State(fake): State<FakeWechat>,
    Query(q): Query<ComponentToken>,
    JsonBody(b): JsonBody,
) -> Json<Value> {
    let mut s = fake.lock();
    if let Some(refusal) = platform_call_refusal(&s, &q, &b) {
        return Json(refusal);
    }
    let code = format!("preauthcode@@@{:x}", s.next_serial());
    s.component
        .pre_auth_codes
        .insert(code.clone(), Instant::now());
    Json(json!({"pre_auth_code": code, "expires_in": PRE_AUTH_CODE_TTL.as_secs()}))
}

/// `POST api_query_auth {component_appid, authorization_code}`.
async fn query_auth(
    State(fake): State<FakeWechat>,
    Query(q): Query<ComponentToken>,
    JsonBody(b): JsonBody,
) -> Json<Value> {
    let mut s = fake.lock();
    if let Some(refusal) = platform_call_refusal(&s, &q, &b) {
        return Json(refusal);
    }
    let code = b["authorization_code"].as_str().unwrap_or_default();
    let appid = match s.component.auth_codes.get(code) {
        None => return Json(s.err(61009)),
        Some((_, issued)) if issued.elapsed() > AUTH_CODE_TTL => return Json(s.err(61010)),
        Some((appid, _)) => appid.clone(),
    };
    let Some(refresh) = s
        .component
        .authorizers
        .get(&appid)
        .and_then(|a| a.refresh_token.clone())
    else {
        // Withdrawn since the code was issued.
        return Json(s.err(61009));
    };
    let token = issue_authorizer_token(&mut s, &appid);
    Json(json!({"authorization_info": {
        "authorizer_appid": appid,
        "authorizer_access_token": token,
        "expires_in": s.token_ttl.as_secs(),
        "authorizer_refresh_token": refresh,
        "func_info": [
            {"funcscope_category": {"id": 1}},
            {"funcscope_category": {"id": 2}},
        ],
    }}))
}

/// `POST api_authorizer_token {component_appid, authorizer_appid, authorizer_refresh_token}`:
/// a new access_token and a new refresh token; the one used stops working.
async fn authorizer_token(
    State(fake): State<FakeWechat>,
    Query(q): Query<ComponentToken>,
    JsonBody(b): JsonBody,
) -> Json<Value> {
    let mut s = fake.lock();
    if let Some(refusal) = platform_call_refusal(&s, &q, &b) {
        return Json(refusal);
    }
    let appid = b["authorizer_appid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let given = b["authorizer_refresh_token"].as_str().unwrap_or_default();
    let current = s
        .component
        .authorizers
        .get(&appid)
        .and_then(|a| a.refresh_token.clone());
    if current.as_deref() != Some(given) || given.is_empty() {
        return Json(s.err(61023));
    }
    let serial = s.next_serial();
    let rotated = format!("refreshtoken@@@{appid}_{serial:x}");
    if let Some(a) = s.component.authorizers.get_mut(&appid) {
        a.refresh_token = Some(rotated.clone());
    }
    let token = issue_authorizer_token(&mut s, &appid);
    Json(json!({
        "authorizer_access_token": token,
        "expires_in": s.token_ttl.as_secs(),
        "authorizer_refresh_token": rotated,
    }))
}

/// A refusal of the authorization page: WeChat shows an error page, not JSON.
fn page_refusal(what: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        format!("fake WeChat authorization page refused the request: {what}\n"),
    )
        .into_response()
}

/// `GET /cgi-bin/componentloginpage?component_appid&pre_auth_code&redirect_uri&auth_type`:
/// the administrator of the next authorizer agrees at once; redirects (302) to
/// `redirect_uri` with `auth_code` and `expires_in`.
async fn login_page(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let q = |name: &str| q.get(name).map(String::as_str).unwrap_or_default();
    let mut s = fake.lock();
    if !own_platform(&s, &json!({"component_appid": q("component_appid")})) {
        return page_refusal("unknown component_appid");
    }
    match s.component.pre_auth_codes.remove(q("pre_auth_code")) {
        Some(issued) if issued.elapsed() <= PRE_AUTH_CODE_TTL => {}
        _ => return page_refusal("pre_auth_code is invalid or expired"),
    }
    let mut target = match url::Url::parse(q("redirect_uri")) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ => return page_refusal("redirect_uri is not an http(s) URL"),
    };
    let appid = s
        .component
        .next_authorizer
        .clone()
        .unwrap_or_else(|| DEFAULT_AUTHORIZER.to_string());
    let code = authorize_account(&mut s, &appid);
    target
        .query_pairs_mut()
        .append_pair("auth_code", &code)
        .append_pair("expires_in", &AUTH_CODE_TTL.as_secs().to_string());
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    async fn post_json(app: &Router, uri: &str, body: Value) -> Value {
        let resp = app
            .clone()
            .oneshot(
                Request::post(uri)
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    #[tokio::test]
    async fn only_the_latest_ticket_and_the_current_refresh_token_work() {
        let fake = FakeWechat::default();
        fake.component_setup("wxcomp", "csecret", "ctoken", KEY);
        let app = fake.router();
        let ask = |ticket: &str| json!({"component_appid": "wxcomp", "component_appsecret": "csecret", "component_verify_ticket": ticket});
        assert_eq!(
            post_json(&app, COMPONENT_TOKEN_PATH, ask("nope")).await["errcode"],
            61006
        );
        {
            let mut s = fake.lock();
            s.component.ticket = Some("t1".into());
        }
        let token = post_json(&app, COMPONENT_TOKEN_PATH, ask("t1")).await;
        let token = token["component_access_token"]
            .as_str()
            .unwrap()
            .to_string();
        {
            let mut s = fake.lock();
            s.component.old_tickets.push("t1".into());
            s.component.ticket = Some("t2".into());
        }
        assert_eq!(
            post_json(&app, COMPONENT_TOKEN_PATH, ask("t1")).await["errcode"],
            61005
        );

        let code = fake.component_authorize("wxauth");
        let uri = format!("{QUERY_AUTH_PATH}?component_access_token={token}");
        let auth = post_json(
            &app,
            &uri,
            json!({"component_appid": "wxcomp", "authorization_code": code}),
        )
        .await;
        let r1 = auth["authorization_info"]["authorizer_refresh_token"]
            .as_str()
            .unwrap()
            .to_string();
        let uri = format!("{AUTHORIZER_TOKEN_PATH}?component_access_token={token}");
        let refresh = |rt: &str| json!({"component_appid": "wxcomp", "authorizer_appid": "wxauth", "authorizer_refresh_token": rt});
        let next = post_json(&app, &uri, refresh(&r1)).await;
        let r2 = next["authorizer_refresh_token"]
            .as_str()
            .unwrap()
            .to_string();
        assert_ne!(r1, r2, "rotated");
        assert_eq!(
            post_json(&app, &uri, refresh(&r1)).await["errcode"],
            61023,
            "the used one stops working"
        );
        assert!(post_json(&app, &uri, refresh(&r2)).await["authorizer_access_token"].is_string());
        assert_eq!(
            post_json(
                &app,
                QUERY_AUTH_PATH,
                json!({"component_appid": "wxcomp", "authorization_code": "x"})
            )
            .await["errcode"],
            41001
        );
    }
}
