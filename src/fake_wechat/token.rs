//! The fake's token endpoints (`/cgi-bin/token`, `/cgi-bin/stable_token`), as the real
//! [`crate::api::token`] calls them.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::state::{FakeState, JsonBody, TokenRec};
use super::FakeWechat;

/// How long a replaced token keeps working (as on WeChat).
const GRACE: Duration = Duration::from_secs(300);

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route("/cgi-bin/token", any(classic))
        .route("/cgi-bin/stable_token", any(stable))
}

/// `GET /cgi-bin/token`: a new token every time; the previous one works 5 more minutes.
async fn classic(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let mut s = fake.lock();
    let q = |name: &str| q.get(name).map(String::as_str);
    if q("grant_type") != Some("client_credential") {
        return Json(s.err(40002));
    }
    let appid = match check_creds(&s, q("appid"), q("secret")) {
        Ok(appid) => appid,
        Err(e) => return Json(e),
    };
    Json(issue_token(&mut s, true, &appid))
}

/// `POST /cgi-bin/stable_token`: the current token until under 5 minutes remain, unless
/// `force_refresh` asks for a new one (which revokes the old at once).
async fn stable(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    if b["grant_type"] != "client_credential" {
        return Json(s.err(40002));
    }
    let appid = match check_creds(&s, b["appid"].as_str(), b["secret"].as_str()) {
        Ok(appid) => appid,
        Err(e) => return Json(e),
    };
    let force = b["force_refresh"].as_bool().unwrap_or(false);
    if !force {
        if let Some(cur) = s.current_of(&appid) {
            if let Some(t) = s.tokens.get(&cur) {
                let remaining = t.expires.saturating_duration_since(Instant::now());
                if remaining > GRACE && (!t.revoked || t.sticky) {
                    s.token_fetches += 1;
                    return Json(json!({"access_token": cur, "expires_in": remaining.as_secs()}));
                }
            }
        }
    }
    Json(issue_token(&mut s, !force, &appid))
}

/// The appid whose credentials these are (the fake's own, or one added with
/// [`FakeWechat::add_app`](super::FakeWechat::add_app)), or WeChat's refusal.
fn check_creds(s: &FakeState, appid: Option<&str>, secret: Option<&str>) -> Result<String, Value> {
    let expected = match appid {
        Some(appid) if appid == s.appid => Some(s.secret.as_str()),
        Some(appid) => s.other_apps.get(appid).map(String::as_str),
        None => None,
    };
    match (appid, expected) {
        (Some(appid), Some(expected)) if secret == Some(expected) => Ok(appid.to_string()),
        (_, Some(_)) => Err(s.err(40125)),
        _ => Err(s.err(40013)),
    }
}

/// Issue a new token for `appid`; with `grace` its previous one keeps working for 5 minutes.
fn issue_token(s: &mut FakeState, grace: bool, appid: &str) -> Value {
    s.serial += 1;
    s.token_fetches += 1;
    let now = Instant::now();
    if let Some(prev) = s.current_of(appid) {
        if let Some(t) = s.tokens.get_mut(&prev) {
            if grace {
                t.expires = t.expires.min(now + GRACE);
            } else {
                t.revoked = true;
            }
        }
    }
    let token = format!("FAKE_ACCESS_TOKEN_{}_{:x}", s.token_fetches, s.serial);
    s.tokens.insert(
        token.clone(),
        TokenRec {
            expires: now + s.token_ttl,
            revoked: false,
            sticky: false,
            appid: appid.to_string(),
        },
    );
    if appid == s.appid {
        s.current = Some(token.clone());
    } else {
        s.other_current.insert(appid.to_string(), token.clone());
    }
    json!({"access_token": token, "expires_in": s.token_ttl.as_secs()})
}
