//! The fake's 网页授权 (OAuth2 sign-in), as [`crate::api::oauth`] and a browser use it: the
//! sign-in page `GET /connect/oauth2/authorize`, which signs in the fake's current user at
//! once (no page to click through) and redirects back with a fresh code and the state; the
//! code exchange `/sns/oauth2/access_token` (each code works once and for 5 minutes: 40163
//! when reused, 40029 when unknown or expired); and `/sns/userinfo` with the visitor's token.
//! None of these take the account's access_token.
//!
//! An authorizer of the fake's open platform signs visitors in through the platform: the
//! sign-in page takes its appid with the platform's `component_appid`, and its codes are
//! exchanged at `/sns/oauth2/component/access_token` (renewed at
//! `/sns/oauth2/component/refresh_token`) with the component_access_token, not a secret: a
//! foreign component_appid gets 40013, the token 41001/40001/42001 as the other component
//! endpoints, an account that did not authorize the platform 61003. Codes belong to the
//! appid they were issued for.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::component::{check_token, is_authorizer, own_platform};
use super::state::FakeState;
use super::FakeWechat;
use crate::api::oauth::{
    AUTHORIZE_PATH, COMPONENT_EXCHANGE_PATH, COMPONENT_REFRESH_PATH, EXCHANGE_PATH, USERINFO_PATH,
};

/// Who the sign-in page signs in until told otherwise.
pub const DEFAULT_OAUTH_USER: &str = "o_fake_web_user";
/// How long a code can be exchanged (as on WeChat).
const CODE_TTL: Duration = Duration::from_secs(300);
/// How long a visitor's access_token lives (as on WeChat).
const USER_TOKEN_TTL: Duration = Duration::from_secs(7200);

/// A code the sign-in page handed out.
#[derive(Debug, Clone)]
struct CodeRec {
    /// The account the visitor signed in to (the only one that can exchange it).
    appid: String,
    openid: String,
    scope: String,
    issued: Instant,
    used: bool,
}

/// A visitor's 网页授权 access_token.
#[derive(Debug, Clone)]
struct UserToken {
    openid: String,
    scope: String,
    expires: Instant,
}

/// What the fake keeps for 网页授权.
#[derive(Debug)]
pub(super) struct OauthState {
    /// The visitor the sign-in page signs in (`chat` sets its current user).
    user: String,
    codes: HashMap<String, CodeRec>,
    tokens: HashMap<String, UserToken>,
    /// Refresh tokens handed out with visitors' tokens: → (appid, openid, scope).
    refresh_tokens: HashMap<String, (String, String, String)>,
}

impl Default for OauthState {
    fn default() -> Self {
        OauthState {
            user: DEFAULT_OAUTH_USER.to_string(),
            codes: HashMap::new(),
            tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
        }
    }
}

impl FakeWechat {
    /// Signs `openid` in on the fake sign-in page from now on.
    pub fn set_oauth_user(&self, openid: &str) {
        self.lock().oauth.user = openid.to_string();
    }

    /// The visitor the fake sign-in page signs in.
    pub fn oauth_user(&self) -> String {
        self.lock().oauth.user.clone()
    }

    /// A code for `openid` with `scope`, as the sign-in page would hand out (for tests that
    /// skip the browser).
    pub fn issue_oauth_code(&self, openid: &str, scope: &str) -> String {
        let mut s = self.lock();
        let appid = s.appid.clone();
        issue_code(&mut s, &appid, openid, scope)
    }

    /// A code for `openid` signing in to the authorizer `appid` of the open platform (for
    /// tests that skip the browser).
    pub fn issue_component_oauth_code(&self, appid: &str, openid: &str, scope: &str) -> String {
        issue_code(&mut self.lock(), appid, openid, scope)
    }
}

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route(AUTHORIZE_PATH, get(authorize))
        .route(EXCHANGE_PATH, get(exchange))
        .route(COMPONENT_EXCHANGE_PATH, get(component_exchange))
        .route(COMPONENT_REFRESH_PATH, get(component_refresh))
        .route(USERINFO_PATH, get(userinfo))
}

fn issue_code(s: &mut FakeState, appid: &str, openid: &str, scope: &str) -> String {
    let code = format!("FAKECODE{:x}", s.next_serial());
    s.oauth.codes.insert(
        code.clone(),
        CodeRec {
            appid: appid.to_string(),
            openid: openid.to_string(),
            scope: scope.to_string(),
            issued: Instant::now(),
            used: false,
        },
    );
    code
}

/// A sign-in page refusal: WeChat shows an error page with a code, not JSON.
fn refusal(code: i64, what: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        format!("fake WeChat sign-in refused the request ({code}): {what}\n"),
    )
        .into_response()
}

/// `GET /connect/oauth2/authorize`: checks the parameters as WeChat's page does, then
/// redirects (302) to `redirect_uri` with `code` and `state` added to its query.
async fn authorize(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let q = |name: &str| q.get(name).map(String::as_str).unwrap_or_default();
    let mut s = fake.lock();
    if q("appid").is_empty() {
        return refusal(10012, "appid is empty");
    }
    if q("component_appid").is_empty() {
        if q("appid") != s.appid {
            return refusal(40013, "invalid appid");
        }
    } else {
        if !own_platform(&s, &json!({"component_appid": q("component_appid")})) {
            return refusal(40013, "invalid component_appid");
        }
        if !is_authorizer(&s, q("appid")) {
            return refusal(61003, "the account has not authorized the platform");
        }
    }
    if q("response_type") != "code" {
        return refusal(10003, "response_type must be code");
    }
    let scope = q("scope");
    if scope.is_empty() {
        return refusal(10010, "scope is empty");
    }
    if crate::api::oauth::Scope::parse(scope).is_none() {
        return refusal(10005, "the account has no such scope");
    }
    let mut target = match url::Url::parse(q("redirect_uri")) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ if q("redirect_uri").is_empty() => return refusal(10011, "redirect_uri is empty"),
        _ => return refusal(10003, "redirect_uri is not an http(s) URL"),
    };
    let user = s.oauth.user.clone();
    let code = issue_code(&mut s, q("appid"), &user, scope);
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", q("state"));
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// `GET /sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code`.
async fn exchange(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let q = |name: &str| q.get(name).map(String::as_str).unwrap_or_default();
    let mut s = fake.lock();
    if q("appid") != s.appid {
        return Json(s.err(40013));
    }
    if q("secret") != s.secret {
        return Json(s.err(40125));
    }
    if q("grant_type") != "authorization_code" {
        return Json(s.err(40002));
    }
    let appid = s.appid.clone();
    Json(redeem(&mut s, &appid, q("code")))
}

/// The code `code` for `appid` exchanged: 40163 when it was used, 40029 when unknown,
/// expired or issued for another account; else a visitor's token.
fn redeem(s: &mut FakeState, appid: &str, code: &str) -> Value {
    let rec = match s.oauth.codes.get_mut(code) {
        Some(rec) if rec.appid != appid => return s.err(40029),
        Some(rec) if rec.used => return s.err(40163),
        Some(rec) if rec.issued.elapsed() <= CODE_TTL => {
            rec.used = true;
            rec.clone()
        }
        _ => return s.err(40029),
    };
    let refresh_token = format!("FAKE_OAUTH_REFRESH_{:x}", s.next_serial());
    s.oauth.refresh_tokens.insert(
        refresh_token.clone(),
        (rec.appid.clone(), rec.openid.clone(), rec.scope.clone()),
    );
    grant(s, &rec.openid, &rec.scope, &refresh_token)
}

/// A new visitor's token for `openid`, as the exchange and the renewal answer.
fn grant(s: &mut FakeState, openid: &str, scope: &str, refresh_token: &str) -> Value {
    let serial = s.next_serial();
    let token = format!("FAKE_OAUTH_TOKEN_{serial:x}");
    s.oauth.tokens.insert(
        token.clone(),
        UserToken {
            openid: openid.to_string(),
            scope: scope.to_string(),
            expires: Instant::now() + USER_TOKEN_TTL,
        },
    );
    json!({
        "access_token": token,
        "expires_in": USER_TOKEN_TTL.as_secs(),
        "refresh_token": refresh_token,
        "openid": openid,
        "scope": scope,
    })
}

/// WeChat's refusal of a component 网页授权 call's platform, token or authorizer, if any.
fn component_refusal(s: &FakeState, q: &dyn Fn(&str) -> String) -> Option<Value> {
    if !own_platform(s, &json!({"component_appid": q("component_appid")})) {
        return Some(s.err(40013));
    }
    let token = q("component_access_token");
    if let Some(refusal) = check_token(s, Some(token.as_str())) {
        return Some(refusal);
    }
    if !is_authorizer(s, &q("appid")) {
        return Some(s.err(61003));
    }
    None
}

/// `GET /sns/oauth2/component/access_token?appid&code&grant_type=authorization_code
/// &component_appid&component_access_token`: an authorizer's code exchange (no secret).
async fn component_exchange(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let q = |name: &str| q.get(name).cloned().unwrap_or_default();
    let mut s = fake.lock();
    if let Some(refusal) = component_refusal(&s, &q) {
        return Json(refusal);
    }
    if q("grant_type") != "authorization_code" {
        return Json(s.err(40002));
    }
    Json(redeem(&mut s, &q("appid"), &q("code")))
}

/// `GET /sns/oauth2/component/refresh_token?appid&grant_type=refresh_token&component_appid
/// &component_access_token&refresh_token`: a new visitor's token of an authorizer; 40030
/// for a refresh token unknown or of another account.
async fn component_refresh(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let q = |name: &str| q.get(name).cloned().unwrap_or_default();
    let mut s = fake.lock();
    if let Some(refusal) = component_refusal(&s, &q) {
        return Json(refusal);
    }
    if q("grant_type") != "refresh_token" {
        return Json(s.err(40002));
    }
    let refresh_token = q("refresh_token");
    let Some((appid, openid, scope)) = s.oauth.refresh_tokens.get(&refresh_token).cloned() else {
        return Json(s.err(40030));
    };
    if appid != q("appid") {
        return Json(s.err(40030));
    }
    Json(grant(&mut s, &openid, &scope, &refresh_token))
}

/// `GET /sns/userinfo?access_token&openid&lang`: 40001 for an unknown token, 42001 for an
/// expired one, 40003 for another visitor's openid, 48001 when only `snsapi_base` was granted.
async fn userinfo(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let q = |name: &str| q.get(name).map(String::as_str).unwrap_or_default();
    let s = fake.lock();
    let Some(t) = s.oauth.tokens.get(q("access_token")) else {
        return Json(s.err(40001));
    };
    if t.expires <= Instant::now() {
        return Json(s.err(42001));
    }
    if t.openid != q("openid") {
        return Json(s.err(40003));
    }
    if t.scope != "snsapi_userinfo" {
        return Json(s.err(48001));
    }
    Json(json!({
        "openid": t.openid,
        "nickname": format!("Fake {}", t.openid),
        "sex": 0,
        "province": "", "city": "", "country": "",
        "headimgurl": "",
        "privilege": [],
    }))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn exchange(app: &Router, fake: &FakeWechat, code: &str) -> Value {
        let uri = format!(
            "{EXCHANGE_PATH}?appid={}&secret={}&code={code}&grant_type=authorization_code",
            fake.appid(),
            fake.secret()
        );
        let resp = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn codes_expire_after_five_minutes() {
        let fake = FakeWechat::default();
        let app = fake.router();
        let code = fake.issue_oauth_code("oA", "snsapi_base");
        tokio::time::advance(CODE_TTL + Duration::from_secs(1)).await;
        assert_eq!(exchange(&app, &fake, &code).await["errcode"], 40029);
        let code = fake.issue_oauth_code("oA", "snsapi_base");
        tokio::time::advance(CODE_TTL - Duration::from_secs(1)).await;
        assert_eq!(exchange(&app, &fake, &code).await["openid"], "oA");
    }

    async fn get_json(app: &Router, uri: &str) -> Value {
        let resp = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    #[tokio::test]
    async fn an_authorizers_codes_go_through_the_platform_and_work_once() {
        let fake = FakeWechat::default();
        fake.component_setup("wxcomp", "csecret", "ctoken", &"k".repeat(43));
        let app = fake.router();
        let ticket = fake.component_issue_ticket();
        let resp = app
            .clone()
            .oneshot(
                Request::post(crate::api::component::COMPONENT_TOKEN_PATH)
                    .header("content-type", "application/json")
                    .body(Body::from(
                        json!({"component_appid": "wxcomp", "component_appsecret": "csecret", "component_verify_ticket": ticket}).to_string(),
                    ))
                    .unwrap(),
            )
            .await
            .unwrap();
        let v: Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let token = v["component_access_token"].as_str().unwrap().to_string();
        fake.component_authorize("wxauth");

        let ask = |appid: &str, code: &str, component: &str, token: &str| {
            format!("{COMPONENT_EXCHANGE_PATH}?appid={appid}&code={code}&grant_type=authorization_code&component_appid={component}&component_access_token={token}")
        };
        let code = fake.issue_component_oauth_code("wxauth", "oV", "snsapi_base");
        for (uri, errcode) in [
            (ask("wxauth", &code, "wxother", &token), 40013),
            (ask("wxauth", &code, "wxcomp", "FORGED"), 40001),
            (ask("wxauth", &code, "wxcomp", ""), 41001),
            (ask("wxnever", &code, "wxcomp", &token), 61003),
        ] {
            assert_eq!(get_json(&app, &uri).await["errcode"], errcode, "{uri}");
        }
        // The account's own code is not the authorizer's, nor the other way round.
        let own = fake.issue_oauth_code("oV", "snsapi_base");
        assert_eq!(
            get_json(&app, &ask("wxauth", &own, "wxcomp", &token)).await["errcode"],
            40029
        );
        assert_eq!(exchange(&app, &fake, &code).await["errcode"], 40029);

        let granted = get_json(&app, &ask("wxauth", &code, "wxcomp", &token)).await;
        assert_eq!(granted["openid"], "oV", "{granted}");
        assert_eq!(
            get_json(&app, &ask("wxauth", &code, "wxcomp", &token)).await["errcode"],
            40163,
            "a code works once"
        );

        let refresh = |appid: &str, rt: &str| {
            format!("{COMPONENT_REFRESH_PATH}?appid={appid}&grant_type=refresh_token&component_appid=wxcomp&component_access_token={token}&refresh_token={rt}")
        };
        let rt = granted["refresh_token"].as_str().unwrap();
        let renewed = get_json(&app, &refresh("wxauth", rt)).await;
        assert_eq!(renewed["openid"], "oV", "{renewed}");
        assert_ne!(renewed["access_token"], granted["access_token"]);
        assert_eq!(
            get_json(&app, &refresh("wxauth", "nope")).await["errcode"],
            40030
        );

        fake.component_expire_tokens();
        assert_eq!(
            get_json(&app, &refresh("wxauth", rt)).await["errcode"],
            42001
        );
    }
}
