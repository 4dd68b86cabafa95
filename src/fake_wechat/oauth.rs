//! The fake's 网页授权 (OAuth2 sign-in), as [`crate::api::oauth`] and a browser use it: the
//! sign-in page `GET /connect/oauth2/authorize`, which signs in the fake's current user at
//! once (no page to click through) and redirects back with a fresh code and the state; the
//! code exchange `/sns/oauth2/access_token` (each code works once and for 5 minutes: 40163
//! when reused, 40029 when unknown or expired); and `/sns/userinfo` with the visitor's token.
//! None of these take the account's access_token.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::state::FakeState;
use super::FakeWechat;
use crate::api::oauth::{AUTHORIZE_PATH, EXCHANGE_PATH, USERINFO_PATH};

/// Who the sign-in page signs in until told otherwise.
pub const DEFAULT_OAUTH_USER: &str = "o_fake_web_user";
/// How long a code can be exchanged (as on WeChat).
const CODE_TTL: Duration = Duration::from_secs(300);
/// How long a visitor's access_token lives (as on WeChat).
const USER_TOKEN_TTL: Duration = Duration::from_secs(7200);

/// A code the sign-in page handed out.
#[derive(Debug, Clone)]
struct CodeRec {
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
}

impl Default for OauthState {
    fn default() -> Self {
        OauthState {
            user: DEFAULT_OAUTH_USER.to_string(),
            codes: HashMap::new(),
            tokens: HashMap::new(),
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
        issue_code(&mut self.lock(), openid, scope)
    }
}

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route(AUTHORIZE_PATH, get(authorize))
        .route(EXCHANGE_PATH, get(exchange))
        .route(USERINFO_PATH, get(userinfo))
}

fn issue_code(s: &mut FakeState, openid: &str, scope: &str) -> String {
    let code = format!("FAKECODE{:x}", s.next_serial());
    s.oauth.codes.insert(
        code.clone(),
        CodeRec {
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
    if q("appid") != s.appid {
        return refusal(40013, "invalid appid");
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
    let code = issue_code(&mut s, &user, scope);
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
    let rec = match s.oauth.codes.get_mut(q("code")) {
        Some(rec) if rec.used => return Json(s.err(40163)),
        Some(rec) if rec.issued.elapsed() <= CODE_TTL => {
            rec.used = true;
            rec.clone()
        }
        _ => return Json(s.err(40029)),
    };
    let serial = s.next_serial();
    let token = format!("FAKE_OAUTH_TOKEN_{serial:x}");
    s.oauth.tokens.insert(
        token.clone(),
        UserToken {
            openid: rec.openid.clone(),
            scope: rec.scope.clone(),
            expires: Instant::now() + USER_TOKEN_TTL,
        },
    );
    Json(json!({
        "access_token": token,
        "expires_in": USER_TOKEN_TTL.as_secs(),
        "refresh_token": format!("FAKE_OAUTH_REFRESH_{serial:x}"),
        "openid": rec.openid,
        "scope": rec.scope,
    }))
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
}
