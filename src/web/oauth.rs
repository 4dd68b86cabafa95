//! Sign-in with WeChat (网页授权), built in: `GET /oauth/login?next=/path` sends the visitor
//! to WeChat's sign-in page with a random `state` that a short-lived signed cookie binds to
//! this browser (so a callback started elsewhere — CSRF, a link someone was sent — is
//! refused), and `GET /oauth/callback?code=&state=` checks that state, exchanges the code for
//! the visitor's openid ([`crate::api::oauth`]), sets the session cookie and goes back to
//! `next`. [`SignIn`] is also the [`Sessions`] reader that turns that cookie into
//! `req.openid`.
//!
//! Cookies are signed with HMAC-SHA256 (the `cookie` crate's signed jar) under a key derived
//! from `[oauth] cookie_secret`; a cookie whose signature does not verify, or whose session
//! has expired, is simply no session. `next` is only ever a same-origin path (`/orders`),
//! never an absolute URL or `//host`, so sign-in cannot be used as an open redirect.
//! Failures are short readable pages (a code that expired or was used already is a 400 with a
//! link to sign in again), never a 500; codes and tokens never reach a log line.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cookie::{Cookie, CookieJar, Key, SameSite};
use serde::Deserialize;

use super::session::{Sessions, Visitor};
use crate::api::oauth::{Scope, CODE_USED, INVALID_CODE};
use crate::api::{ApiError, WechatClient};
use crate::config::{OauthConfig, Secret};
use crate::script::bindings::web::{escape_html, HTML};
pub use crate::script::routes::LOGIN_PATH;

/// Where WeChat sends the visitor back with `code` and `state`.
pub const CALLBACK_PATH: &str = "/oauth/callback";
/// The session cookie: the visitor's openid (and unionid) and when the session ends, signed.
pub const SESSION_COOKIE: &str = "wl_session";
/// The sign-in's state and `next`, signed; lives only while the visitor is at WeChat.
pub const STATE_COOKIE: &str = "wl_oauth_state";
/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a visitor may take on WeChat's sign-in page (a code itself lives 5 minutes).
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// Length of the random `state` (letters and digits, as WeChat accepts).
const STATE_LEN: usize = 32;

/// Sign-in with WeChat: what the two paths and the session reader share.
pub struct SignIn {
    /// Exchanges codes and builds the authorize URL (WeChat's page, or the fake's).
    api: WechatClient,
    /// What visitors are asked to grant.
    scope: Scope,
    /// `<public_url>/oauth/callback`: the `redirect_uri` WeChat sends visitors back to.
    redirect_uri: String,
    /// Signs and verifies both cookies.
    key: Key,
    /// Cookies are `Secure` when the site is https (a browser would drop them on http).
    secure: bool,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("scope", &self.scope)
            .field("redirect_uri", &self.redirect_uri)
            .field("key", &"<redacted>")
            .field("secure", &self.secure)
            .finish()
    }
}

impl SignIn {
    /// Sign-in as `[oauth]` describes it, with cookies signed under `cookie_secret` (at least
    /// [`crate::config::MIN_COOKIE_SECRET_LEN`] bytes; config checks that) and codes
    /// exchanged through `api`.
    pub fn new(oauth: &OauthConfig, cookie_secret: &Secret, api: WechatClient) -> SignIn {
        SignIn {
            api,
            scope: oauth.scope,
            redirect_uri: format!("{}{CALLBACK_PATH}", oauth.public_url),
            key: signing_key(cookie_secret.expose()),
            secure: oauth.is_https(),
        }
    }

    /// The session cookie for `visitor`, valid for [`SESSION_TTL`] from `now` (Unix seconds).
    fn session_cookie(&self, visitor: &Visitor, now: i64) -> Option<Cookie<'static>> {
        let value = session_value(visitor, now + SESSION_TTL.as_secs() as i64)?;
        let cookie = self.cookie(SESSION_COOKIE, value, "/", SESSION_TTL);
        Some(self.signed(cookie))
    }

    /// A cookie with this site's attributes: `HttpOnly`, `SameSite=Lax` (sent on the
    /// top-level navigation back from WeChat, not on cross-site subrequests), `Secure` on https.
    fn cookie(
        &self,
        name: &'static str,
        value: String,
        path: &'static str,
        ttl: Duration,
    ) -> Cookie<'static> {
        Cookie::build((name, value))
            .path(path)
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(ttl.as_secs() as i64))
            .build()
    }

    /// `cookie` with its value signed.
    fn signed(&self, cookie: Cookie<'static>) -> Cookie<'static> {
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key).add(cookie.clone());
        jar.get(cookie.name()).cloned().unwrap_or(cookie)
    }

    /// The verified value of the cookie `name` among the request's cookies; `None` when it is
    /// missing or its signature does not verify.
    fn verified(&self, headers: &HeaderMap, name: &str) -> Option<String> {
        let mut jar = CookieJar::new();
        for cookie in headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(Cookie::split_parse_encoded)
            .filter_map(Result::ok)
            .filter(|c| c.name() == name)
        {
            // The first one that verifies: a second cookie of the same name (set by a
            // sibling subdomain) cannot push a valid one out.
            jar.add_original(cookie.into_owned());
            if let Some(verified) = jar.signed(&self.key).get(name) {
                return Some(verified.value().to_string());
            }
            jar = CookieJar::new();
        }
        None
    }

    /// The visitor the request's session cookie names, if it verifies and has not expired at
    /// `now` (Unix seconds).
    fn visitor_at(&self, headers: &HeaderMap, now: i64) -> Option<Visitor> {
        let value = self.verified(headers, SESSION_COOKIE)?;
        let (visitor, expires) = parse_session_value(&value)?;
        (now < expires).then_some(visitor)
    }
}

impl Sessions for SignIn {
    fn visitor(&self, request: &Parts) -> Option<Visitor> {
        self.visitor_at(&request.headers, crate::clock::unix_secs())
    }
}

/// The cookie signing key, derived (HKDF) from the secret. `Key::derive_from` wants at least
/// 32 bytes and panics on fewer: config refuses shorter secrets, and one that reaches here
/// anyway is hashed to 32 bytes first rather than take the host down.
fn signing_key(secret: &str) -> Key {
    use sha2::{Digest, Sha256};
    if secret.len() >= crate::config::MIN_COOKIE_SECRET_LEN {
        Key::derive_from(secret.as_bytes())
    } else {
        Key::derive_from(&Sha256::digest(secret.as_bytes()))
    }
}

/// `<expires>|<openid>|<unionid>`: openids and unionids are letters, digits, `-` and `_`,
/// so `|` separates them; `None` for an id with anything else (never from WeChat).
fn session_value(visitor: &Visitor, expires: i64) -> Option<String> {
    let plain = |id: &str| {
        !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !plain(&visitor.openid) || !visitor.unionid.as_deref().is_none_or(plain) {
        return None;
    }
    Some(format!(
        "{expires}|{}|{}",
        visitor.openid,
        visitor.unionid.as_deref().unwrap_or("")
    ))
}

fn parse_session_value(value: &str) -> Option<(Visitor, i64)> {
    let mut parts = value.split('|');
    let expires = parts.next()?.parse().ok()?;
    let openid = parts.next().filter(|o| !o.is_empty())?.to_string();
    let unionid = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let unionid = (!unionid.is_empty()).then(|| unionid.to_string());
    Some((Visitor { openid, unionid }, expires))
}

/// `next` when it is a path on this site to go back to after sign-in: it starts with one `/`
/// (not `//host`, nor `/\host`, which browsers read as `//host`), and has no backslash,
/// control character or space. Anything else could send the visitor to another site.
pub fn safe_next(next: &str) -> Option<&str> {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 2048
        && !next
            .bytes()
            .any(|b| b == b'\\' || b.is_ascii_control() || b == b' ' || b >= 0x80);
    local.then_some(next)
}

/// The two paths, served when `[oauth]` is configured.
pub fn routes(sign_in: Arc<SignIn>) -> Router {
    Router::new()
        .route(LOGIN_PATH, get(login))
        .route(CALLBACK_PATH, get(callback))
        .method_not_allowed_fallback(|| async {
            (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .with_state(sign_in)
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// `GET /oauth/login?next=/path`: to WeChat's sign-in page, with a fresh state bound to this
/// browser. A `next` that is not a path on this site is ignored (back to `/`), and logged.
async fn login(
    State(sign_in): State<Arc<SignIn>>,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let wanted = query.ok().and_then(|Query(q)| q.next);
    let next = match wanted.as_deref() {
        None => "/",
        Some(next) => safe_next(next).unwrap_or_else(|| {
            tracing::warn!(
                next = %next,
                "sign-in: `next` is not a path on this site; going back to / instead"
            );
            "/"
        }),
    };
    let state = {
        use rand::distr::{Alphanumeric, SampleString};
        Alphanumeric.sample_string(&mut rand::rng(), STATE_LEN)
    };
    let cookie = sign_in.signed(sign_in.cookie(
        STATE_COOKIE,
        format!("{state}|{next}"),
        "/oauth",
        STATE_TTL,
    ));
    let target = sign_in
        .api
        .oauth()
        .authorize_url(&sign_in.redirect_uri, sign_in.scope, &state);
    redirect(&target, &[cookie])
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// `GET /oauth/callback?code=&state=`: the state must be the one this browser was given;
/// then the code is exchanged, the session set, and the visitor sent back to `next`.
async fn callback(
    State(sign_in): State<Arc<SignIn>>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The sign-in link is malformed.",
            None,
        );
    };
    let expected = sign_in.verified(&headers, STATE_COOKIE);
    let Some((expected_state, next)) = expected.as_deref().and_then(|v| v.split_once('|')) else {
        tracing::warn!(
            "sign-in refused: no sign-in was started in this browser (or it took over 10 minutes)"
        );
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "This sign-in was not started in this browser, or it took too long.",
            Some("/"),
        );
    };
    let next = safe_next(next).unwrap_or("/").to_string();
    let state_matches = query.state.as_deref().is_some_and(|given| {
        use subtle::ConstantTimeEq;
        given.len() == expected_state.len()
            && bool::from(given.as_bytes().ct_eq(expected_state.as_bytes()))
    });
    if !state_matches {
        tracing::warn!("sign-in refused: the state does not match the one given to this browser");
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "This sign-in was not started in this browser.",
            Some(&next),
        );
    }
    let clear_state = sign_in.cookie(STATE_COOKIE, String::new(), "/oauth", Duration::ZERO);
    let Some(code) = query.code.filter(|c| !c.is_empty()) else {
        // WeChat comes back without a code when the visitor declines snsapi_userinfo.
        tracing::info!("sign-in declined: no code came back");
        return with_cookies(
            page(
                StatusCode::FORBIDDEN,
                "Not signed in",
                "Sign-in was declined.",
                Some(&next),
            ),
            &[clear_state],
        );
    };
    let token = match sign_in.api.oauth().exchange(&code).await {
        Ok(token) => token,
        Err(e) => {
            let (status, text) = match &e {
                ApiError::Api { errcode, .. } if *errcode == CODE_USED => (
                    StatusCode::BAD_REQUEST,
                    "This sign-in link was used already.",
                ),
                ApiError::Api { errcode, .. } if *errcode == INVALID_CODE => {
                    (StatusCode::BAD_REQUEST, "This sign-in link has expired.")
                }
                _ => (
                    StatusCode::BAD_GATEWAY,
                    "WeChat could not complete the sign-in just now.",
                ),
            };
            tracing::warn!(
                status = status.as_u16(),
                "sign-in failed: code exchange: {e}"
            );
            return with_cookies(
                page(status, "Sign-in failed", text, Some(&next)),
                &[clear_state],
            );
        }
    };
    let visitor = Visitor {
        openid: token.openid,
        unionid: token.unionid.filter(|u| !u.is_empty()),
    };
    let Some(session) = sign_in.session_cookie(&visitor, crate::clock::unix_secs()) else {
        tracing::error!(
            "sign-in failed: WeChat returned an openid that cannot be kept in a cookie"
        );
        return with_cookies(
            page(
                StatusCode::BAD_GATEWAY,
                "Sign-in failed",
                "WeChat's answer could not be used.",
                None,
            ),
            &[clear_state],
        );
    };
    tracing::info!(
        openid = %crate::logging::openid_tag(&visitor.openid),
        "signed in with WeChat"
    );
    redirect(&next, &[clear_state, session])
}

/// A 302 to `target` setting `cookies`, never cached.
fn redirect(target: &str, cookies: &[Cookie<'static>]) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    match HeaderValue::from_str(target) {
        Ok(location) => {
            response.headers_mut().insert(LOCATION, location);
        }
        // Every target is a checked path or a URL we built; refuse rather than panic.
        Err(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                "Bad address.",
                None,
            )
        }
    }
    with_cookies(response, cookies)
}

fn with_cookies(mut response: Response, cookies: &[Cookie<'static>]) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie.encoded().to_string()) {
            headers.append(SET_COOKIE, value);
        }
    }
    response
}

/// A short readable page: a title, one sentence and, when there is a page to go back to, a
/// link that signs in again and returns there.
fn page(status: StatusCode, title: &str, text: &str, retry_next: Option<&str>) -> Response {
    let retry = retry_next
        .map(|next| {
            let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
            format!(
                "<p><a href=\"{}\">Sign in again</a></p>",
                escape_html(&format!("{LOGIN_PATH}?next={next}"))
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head><body><h1>{title}</h1><p>{text}</p>{retry}</body></html>\n",
        title = escape_html(title),
        text = escape_html(text),
    );
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(HTML));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::api::ClientConfig;
    use crate::fake_wechat::FakeWechat;

    const PUBLIC: &str = "https://shop.example";

    async fn sign_in() -> (FakeWechat, Arc<SignIn>) {
        let (fake, base) = FakeWechat::start().await.unwrap();
        let api =
            WechatClient::new(ClientConfig::new(fake.appid(), fake.secret()).with_base_url(base))
                .unwrap();
        let oauth = OauthConfig {
            scope: Scope::Base,
            cookie_secret: None,
            public_url: PUBLIC.into(),
        };
        let secret = Secret::new("s".repeat(40));
        (fake, Arc::new(SignIn::new(&oauth, &secret, api)))
    }

    async fn get(sign_in: &Arc<SignIn>, uri: &str, cookies: &[String]) -> Response {
        let mut request = Request::get(uri);
        for cookie in cookies {
            request = request.header(COOKIE, cookie);
        }
        routes(sign_in.clone())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn set_cookies(response: &Response) -> Vec<Cookie<'static>> {
        response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| Cookie::parse_encoded(v.to_str().unwrap().to_string()).unwrap())
            .collect()
    }

    fn location(response: &Response) -> String {
        response.headers()[LOCATION].to_str().unwrap().to_string()
    }

    async fn text(response: Response) -> String {
        String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap()
    }

    /// `/oauth/login?next=…`: the state it sent to WeChat, and the state cookie as the
    /// browser sends it back.
    async fn login(sign_in: &Arc<SignIn>, next: &str) -> (String, String) {
        let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
        let response = get(sign_in, &format!("{LOGIN_PATH}?next={next}"), &[]).await;
        assert_eq!(response.status(), StatusCode::FOUND);
        let target = url::Url::parse(&location(&response)).unwrap();
        assert_eq!(target.path(), crate::api::oauth::AUTHORIZE_PATH);
        let query: std::collections::HashMap<_, _> = target.query_pairs().into_owned().collect();
        assert_eq!(query["redirect_uri"], format!("{PUBLIC}{CALLBACK_PATH}"));
        assert_eq!(query["scope"], "snsapi_base");
        let cookie = set_cookies(&response)
            .into_iter()
            .find(|c| c.name() == STATE_COOKIE)
            .unwrap();
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(SameSite::Lax));
        assert_eq!(cookie.secure(), Some(true), "https public_url");
        (
            query["state"].clone(),
            cookie.stripped().encoded().to_string(),
        )
    }

    /// What the state cookie says `next` is.
    fn next_in(sign_in: &SignIn, state_cookie: &str) -> String {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(state_cookie).unwrap());
        let value = sign_in.verified(&headers, STATE_COOKIE).unwrap();
        value.split_once('|').unwrap().1.to_string()
    }

    #[tokio::test]
    async fn a_sign_in_sets_a_signed_session_and_returns_to_next() {
        let (fake, sign_in) = sign_in().await;
        let (state, state_cookie) = login(&sign_in, "/orders?tab=open").await;
        let code = fake.issue_oauth_code("o_buyer", "snsapi_base");
        let response = get(
            &sign_in,
            &format!("{CALLBACK_PATH}?code={code}&state={state}"),
            &[state_cookie],
        )
        .await;
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(location(&response), "/orders?tab=open");
        let cookies = set_cookies(&response);
        let session = cookies.iter().find(|c| c.name() == SESSION_COOKIE).unwrap();
        assert_eq!(session.http_only(), Some(true));
        assert_eq!(session.same_site(), Some(SameSite::Lax));
        assert_eq!(session.secure(), Some(true));
        assert_eq!(session.path(), Some("/"));
        assert!(
            cookies
                .iter()
                .any(|c| c.name() == STATE_COOKIE
                    && c.max_age() == Some(cookie::time::Duration::ZERO)),
            "the state is used up"
        );
        let mut headers = HeaderMap::new();
        let sent = session.stripped().encoded().to_string();
        headers.insert(COOKIE, HeaderValue::from_str(&sent).unwrap());
        let now = crate::clock::unix_secs();
        assert_eq!(
            sign_in.visitor_at(&headers, now),
            Some(Visitor {
                openid: "o_buyer".into(),
                unionid: None
            })
        );
        assert_eq!(
            sign_in.visitor_at(&headers, now + SESSION_TTL.as_secs() as i64 + 1),
            None,
            "a session ends"
        );
    }

    #[tokio::test]
    async fn a_tampered_session_cookie_is_signed_out() {
        let (_fake, sign_in) = sign_in().await;
        let visitor = Visitor {
            openid: "o_alice".into(),
            unionid: Some("u_alice".into()),
        };
        let now = crate::clock::unix_secs();
        let good = sign_in.session_cookie(&visitor, now).unwrap();
        let sent = good.stripped().encoded().to_string();
        let read = |cookie: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(COOKIE, HeaderValue::from_str(cookie).unwrap());
            sign_in.visitor_at(&headers, now)
        };
        assert_eq!(read(&sent), Some(visitor.clone()));
        // Another visitor's openid with the signature kept.
        let forged = sent.replace("o_alice", "o_mallory");
        assert_ne!(forged, sent);
        assert_eq!(read(&forged), None);
        // A later expiry with the signature kept.
        let value = good.value().to_string();
        let (mac, plain) = value.split_at(44);
        let longer = plain.replacen(|c: char| c.is_ascii_digit(), "9", 1);
        assert_eq!(read(&format!("{SESSION_COOKIE}={mac}{longer}")), None);
        // Unsigned, and signed with another secret.
        assert_eq!(read(&format!("{SESSION_COOKIE}={plain}")), None);
        let (_fake, other) = {
            let (fake, base) = FakeWechat::start().await.unwrap();
            let api = WechatClient::new(
                ClientConfig::new(fake.appid(), fake.secret()).with_base_url(base),
            )
            .unwrap();
            let oauth = OauthConfig {
                scope: Scope::Base,
                cookie_secret: None,
                public_url: PUBLIC.into(),
            };
            (fake, SignIn::new(&oauth, &Secret::new("t".repeat(40)), api))
        };
        let foreign = other.session_cookie(&visitor, now).unwrap();
        assert_eq!(read(&foreign.stripped().encoded().to_string()), None);
        // A bad cookie first does not hide a good one after it.
        assert_eq!(
            read(&format!("{SESSION_COOKIE}=junk; {sent}")),
            Some(visitor)
        );
    }

    #[tokio::test]
    async fn a_state_that_does_not_match_this_browser_is_refused_with_400() {
        let (fake, sign_in) = sign_in().await;
        let (state, state_cookie) = login(&sign_in, "/orders").await;
        let code = fake.issue_oauth_code("o_buyer", "snsapi_base");
        // Another state (an attacker's callback link), the right cookie.
        let response = get(
            &sign_in,
            &format!("{CALLBACK_PATH}?code={code}&state=attacker0state"),
            std::slice::from_ref(&state_cookie),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(set_cookies(&response)
            .iter()
            .all(|c| c.name() != SESSION_COOKIE));
        // The right state, but no sign-in started in this browser.
        let response = get(
            &sign_in,
            &format!("{CALLBACK_PATH}?code={code}&state={state}"),
            &[],
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(text(response).await.contains("not started in this browser"));
        // A state cookie that was not signed here.
        let response = get(
            &sign_in,
            &format!("{CALLBACK_PATH}?code={code}&state={state}"),
            &[format!("{STATE_COOKIE}={state}%7C%2F")],
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(
            fake.calls_to(crate::api::oauth::EXCHANGE_PATH).is_empty(),
            "no code was exchanged"
        );
    }

    #[tokio::test]
    async fn next_outside_this_site_is_ignored() {
        let (_fake, sign_in) = sign_in().await;
        for evil in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "evil.example",
            "javascript:alert(1)",
            "/\t/evil.example",
        ] {
            let (_, cookie) = login(&sign_in, evil).await;
            assert_eq!(next_in(&sign_in, &cookie), "/", "{evil}");
        }
        let (_, cookie) = login(&sign_in, "/orders/42?x=a;b,c").await;
        assert_eq!(next_in(&sign_in, &cookie), "/orders/42?x=a;b,c");
    }

    #[tokio::test]
    async fn an_expired_or_used_code_is_a_readable_page_not_a_500() {
        let (fake, sign_in) = sign_in().await;
        let (state, state_cookie) = login(&sign_in, "/orders").await;
        // Unknown or expired: 40029.
        let response = get(
            &sign_in,
            &format!("{CALLBACK_PATH}?code=NOSUCHCODE&state={state}"),
            std::slice::from_ref(&state_cookie),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[CONTENT_TYPE], HTML);
        let page = text(response).await;
        assert!(page.contains("has expired"), "{page}");
        assert!(page.contains("/oauth/login?next=%2Forders"), "{page}");
        // Used already: 40163.
        let code = fake.issue_oauth_code("o_buyer", "snsapi_base");
        let uri = format!("{CALLBACK_PATH}?code={code}&state={state}");
        let first = get(&sign_in, &uri, std::slice::from_ref(&state_cookie)).await;
        assert_eq!(first.status(), StatusCode::FOUND);
        let again = get(&sign_in, &uri, std::slice::from_ref(&state_cookie)).await;
        assert_eq!(again.status(), StatusCode::BAD_REQUEST);
        let page = text(again).await;
        assert!(page.contains("used already"), "{page}");
        assert!(!page.contains(&code), "the code stays out of the page");
    }

    #[test]
    fn a_short_secret_still_gives_a_key_instead_of_a_panic() {
        let short = signing_key("short");
        let long = signing_key(&"x".repeat(40));
        assert_ne!(short.signing(), long.signing());
    }

    #[test]
    fn safe_next_takes_only_paths_on_this_site() {
        assert_eq!(safe_next("/"), Some("/"));
        assert_eq!(safe_next("/orders?id=1#top"), Some("/orders?id=1#top"));
        for bad in [
            "",
            "orders",
            "//x",
            "/\\x",
            "https://x/",
            "/a b",
            "/é",
            "/a\nb",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }
}
