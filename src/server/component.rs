//! The open platform's HTTP side (with `[component]` only): the checks every request of
//! WeChat's passes (the platform token's signature, the timestamp window, single use, the
//! platform's envelope), then [`crate::component::Platform`] for what they mean.
//!
//! - `POST /component/events`: tickets and authorization events, answered `success`; a bad
//!   signature or another platform's push is refused (4xx) and nothing is stored.
//! - `GET /component/authorize?next=`: a pre_auth_code and a redirect to the authorization page.
//! - `GET /component/authorized?auth_code=…&next=`: the page's redirect back.
//! - `POST /component/{appid}/callback`: an authorizer's messages, answered by the scripts
//!   (after the release test's built-in answers); an account that never authorized the
//!   platform gets 404 with `success` and a log line.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::connection::Arrived;
use super::inbound::Seal;
use super::verify::check_query;
use super::{AppError, AppState};
use crate::component::release_test::{self, Expected};
use crate::component::{Platform, PushError};

/// The answer WeChat expects to every push.
const SUCCESS: &str = "success";

/// The platform of a host that serves `/component/…` (routes exist only with one, so a
/// missing one is a 404 as any unknown path).
macro_rules! platform_or_404 {
    ($state:expr) => {
        match $state.platform.as_ref() {
            Some(platform) => platform.clone(),
            None => return StatusCode::NOT_FOUND.into_response(),
        }
    };
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.into(),
    )
        .into_response()
}

/// A request WeChat signed with the platform's token: its verified timestamp and nonce, the
/// rest of its query, and its body.
struct SignedPush {
    timestamp: String,
    nonce: String,
    query: super::verify::CallbackQuery<'static>,
    body: axum::body::Bytes,
}

/// Checks `request`'s query against the platform's token, then reads its body (under the
/// callback's limit): the signature first, so nothing of an unsigned request is read.
async fn signed_push(
    state: &AppState,
    platform: &Platform,
    request: Request,
) -> Result<SignedPush, AppError> {
    let (parts, body) = request.into_parts();
    let checked = check_query(
        state,
        platform.token(),
        parts.uri.query().unwrap_or_default(),
    )
    .await?;
    let body = super::inbound::read_body(body, super::BODY_LIMIT).await?;
    Ok(SignedPush {
        timestamp: checked.timestamp.into_owned(),
        nonce: checked.nonce.into_owned(),
        query: checked.query.into_owned(),
        body,
    })
}

/// `POST /component/events`.
pub async fn events(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let platform = platform_or_404!(state);
    let SignedPush {
        timestamp,
        nonce,
        query,
        body,
    } = match signed_push(&state, &platform, request).await {
        Ok(push) => push,
        Err(e) => return e.into_response(),
    };
    match platform
        .take_push(&body, &timestamp, &nonce, query.msg_signature.as_deref())
        .await
    {
        Ok(()) => plain(StatusCode::OK, SUCCESS),
        Err(PushError::Open(e)) => AppError::from(e).into_response(),
        Err(e @ PushError::ForeignPlatform) => {
            tracing::warn!(status = 403, "refused platform push: {e}");
            plain(StatusCode::FORBIDDEN, e.to_string())
        }
        Err(e @ PushError::MissingField(_)) => {
            tracing::warn!(status = 400, "refused platform push: {e}");
            plain(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e @ PushError::Store(_)) => {
            // WeChat pushes again when it is not answered `success`.
            tracing::error!("platform push not kept: {e}");
            plain(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}

/// A `next` that stays on this site: a path, not `//host` or a URL; `Err` for any other.
fn local_path(next: Option<&String>) -> Result<Option<&str>, ()> {
    match next.map(String::as_str) {
        None | Some("") => Ok(None),
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => Ok(Some(p)),
        Some(_) => Err(()),
    }
}

/// The answer to a `next` that would leave the site (an open redirect).
fn foreign_next() -> Response {
    tracing::warn!(
        status = 400,
        "refused authorization: next is not a local path"
    );
    plain(StatusCode::BAD_REQUEST, "next must be a path on this site")
}

/// `GET /component/authorize?next=`.
pub async fn authorize(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let platform = platform_or_404!(state);
    let Ok(next) = local_path(q.get("next")) else {
        return foreign_next();
    };
    match platform.authorize_url(next).await {
        Ok(url) => (StatusCode::FOUND, [(header::LOCATION, url)]).into_response(),
        Err(e) => {
            tracing::error!(errcode = e.errcode(), "cannot start an authorization: {e}");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the platform cannot start an authorization now: {e}"),
            )
        }
    }
}

/// `GET /component/authorized?auth_code=…&expires_in=…&next=`.
pub async fn authorized(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let platform = platform_or_404!(state);
    let Ok(next) = local_path(q.get("next")) else {
        return foreign_next();
    };
    let Some(code) = q.get("auth_code").filter(|c| !c.is_empty()) else {
        return AppError::MissingParameter("auth_code").into_response();
    };
    match platform.take_auth_code(code).await {
        Ok(appid) => match next {
            Some(next) => {
                (StatusCode::FOUND, [(header::LOCATION, next.to_string())]).into_response()
            }
            None => plain(
                StatusCode::OK,
                match appid {
                    Some(appid) => format!("authorized: {appid}\n"),
                    None => "authorized\n".to_string(),
                },
            ),
        },
        Err(e) => {
            let status = match e.errcode() {
                crate::api::component::AUTH_CODE_INVALID
                | crate::api::component::AUTH_CODE_EXPIRED => StatusCode::BAD_REQUEST,
                _ => StatusCode::BAD_GATEWAY,
            };
            tracing::warn!(
                status = status.as_u16(),
                errcode = e.errcode(),
                "authorization not completed: {e}"
            );
            plain(status, format!("authorization not completed: {e}"))
        }
    }
}

/// Whether `appid` can be an AppID (so it can be logged and used in store keys as it is).
fn plausible_appid(appid: &str) -> bool {
    (1..=32).contains(&appid.len())
        && appid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `POST /component/{appid}/callback`.
pub async fn callback(
    State(state): State<Arc<AppState>>,
    Arrived(arrived): Arrived,
    Path(appid): Path<String>,
    request: Request,
) -> Response {
    let platform = platform_or_404!(state);
    if !plausible_appid(&appid) {
        return AppError::UnknownAccount.into_response();
    }
    let SignedPush {
        timestamp,
        nonce,
        query,
        body,
    } = match signed_push(&state, &platform, request).await {
        Ok(push) => push,
        Err(e) => return e.into_response(),
    };
    if query.encrypt_type.as_deref() != Some("aes") {
        // WeChat encrypts every message it sends a platform.
        return AppError::PlaintextRefused.into_response();
    }
    let envelope = platform.envelope().clone();
    let message =
        match envelope.open_request(&body, &timestamp, &nonce, query.msg_signature.as_deref()) {
            Ok(message) => message,
            Err(e) => return AppError::from(e).into_response(),
        };
    let seal = Seal::Envelope { envelope, nonce };
    match release_test::expected(&appid, &message) {
        Some(Expected::Reply(reply)) => {
            tracing::info!(authorizer = %appid, "release test message answered");
            let xml = reply.render(
                &message.from_user,
                &message.to_user,
                crate::clock::unix_secs(),
            );
            return seal.respond(Some(Arc::from(xml)));
        }
        Some(Expected::QueryAuth { code, openid }) => {
            tracing::info!(authorizer = %appid, "release test: answering through the API");
            tokio::spawn(answer_query_auth(platform, appid, code, openid));
            return plain(StatusCode::OK, "");
        }
        None => {}
    }
    match platform.authorizer(&appid).await {
        Ok(Some(account)) => {
            let answer = account.dispatcher.handle_arrived(message, arrived).await;
            seal.respond(answer)
        }
        Ok(None) => {
            tracing::warn!(
                status = 404,
                authorizer = %appid,
                "refused message: this account never authorized the platform (or withdrew)"
            );
            plain(StatusCode::NOT_FOUND, SUCCESS)
        }
        Err(e @ crate::component::ServeError::Store(_)) => {
            tracing::error!(authorizer = %appid, "cannot tell whether the account authorized the platform: {e}");
            plain(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
        Err(e) => {
            tracing::error!(authorizer = %appid, "{e}");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot serve this account",
            )
        }
    }
}

/// The release test's `QUERY_AUTH_CODE:` case: the code exchanged, then `<code>_from_api`
/// sent as a customer-service text with the authorizer token it gave.
async fn answer_query_auth(platform: Arc<Platform>, appid: String, code: String, openid: String) {
    if let Err(e) = platform.take_auth_code(&code).await {
        tracing::error!(authorizer = %appid, "release test: cannot exchange the code: {e}");
        return;
    }
    let text = crate::api::KfMessage::Text {
        content: format!("{code}{}", release_test::FROM_API_SUFFIX),
    };
    let sent = match platform.authorizer_api(&appid) {
        Ok(api) => api.kf().send(&openid, &text).await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(()) => tracing::info!(authorizer = %appid, "release test: customer-service answer sent"),
        Err(e) => {
            tracing::error!(authorizer = %appid, "release test: customer-service answer failed: {e}")
        }
    }
}
