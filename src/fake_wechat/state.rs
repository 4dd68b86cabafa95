//! What the fake's families share: the account's state, the documented errmsgs, and the
//! request pipeline every call goes through — recorded, delayed (before or after being
//! handled) or failed on request
//! ([`record`]), refused without a valid access_token ([`require_token`]), or answered 40066
//! when no family routes its path ([`unknown_path`]).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{menu, FakeWechat, DEFAULT_TOKEN_TTL};

/// The largest request body the fake reads: above WeChat's largest upload (10 MB), so a file
/// over a media type's size gets WeChat's errcode rather than a refused body.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One call the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    /// HTTP method.
    pub method: String,
    /// Path, e.g. `/cgi-bin/message/custom/send`.
    pub path: String,
    /// Query parameters in order, with `access_token` removed (and `secret` masked).
    pub query: Vec<(String, String)>,
    /// The JSON body, when there was one.
    pub body: Option<Value>,
    /// The multipart parts, when the body was multipart.
    pub parts: Vec<RecordedPart>,
    /// The appid whose access_token the call carried (`None` without a known token): which
    /// account a call was made for, on a host serving several.
    pub appid: Option<String>,
    /// What the fake answered; `None` while the call is still being answered.
    pub answer: Option<RecordedAnswer>,
}

/// The fake's answer to a recorded call, so a viewer (`chat`) can tell a refused call from a
/// delivered one.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body, when the answer was JSON (media downloads are not).
    pub json: Option<Value>,
}

impl RecordedAnswer {
    /// WeChat's errcode and errmsg (without the ` rid: …` suffix) when the call was refused;
    /// `None` when it worked (no errcode, or 0).
    pub fn refusal(&self) -> Option<(i64, String)> {
        let json = self.json.as_ref()?;
        let code = json.get("errcode").and_then(Value::as_i64)?;
        if code == 0 {
            return None;
        }
        let errmsg = json.get("errmsg").and_then(Value::as_str).unwrap_or("");
        let errmsg = errmsg.split(" rid: ").next().unwrap_or(errmsg).trim();
        Some((code, errmsg.to_string()))
    }
}

impl RecordedCall {
    /// A query parameter's value.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One part of a recorded multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPart {
    /// Form field name.
    pub name: String,
    /// File name, when sent.
    pub filename: Option<String>,
    /// Content type, when sent.
    pub content_type: Option<String>,
    /// The bytes.
    pub data: Vec<u8>,
}

/// An issued access_token.
#[derive(Debug, Clone)]
pub(super) struct TokenRec {
    /// When WeChat stops accepting it (tokio's clock, so tests can pause time).
    pub(super) expires: Instant,
    pub(super) revoked: bool,
    /// Invalidated, yet stable_token's normal mode still returns it (force_refresh needed).
    pub(super) sticky: bool,
    /// The account it was issued to.
    pub(super) appid: String,
}

/// An uploaded file, as `media/get` or `material/get_material` hands it back.
#[derive(Debug, Clone)]
pub(super) struct StoredMedia {
    pub(super) kind: String,
    pub(super) filename: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) data: Vec<u8>,
    /// Material (`add_material`, until deleted) rather than temporary media: each of the
    /// two download endpoints knows only its own.
    pub(super) permanent: bool,
    /// A permanent video's title and introduction.
    pub(super) description: Option<(String, String)>,
    /// When it was added, for the library's newest-first listing.
    pub(super) serial: u64,
    /// Unix seconds of the upload (`update_time` in listings).
    pub(super) update_time: i64,
}

/// The fake account: credentials, tokens, what each family keeps, the recorded calls and
/// the misbehaviour it was told to show.
#[derive(Debug)]
pub(super) struct FakeState {
    pub(super) appid: String,
    pub(super) secret: String,
    pub(super) caller_ip: String,
    pub(super) token_ttl: Duration,
    pub(super) tokens: HashMap<String, TokenRec>,
    pub(super) current: Option<String>,
    /// More accounts the fake serves (appid → secret), for hosts with several: they share
    /// everything but their credentials and tokens.
    pub(super) other_apps: HashMap<String, String>,
    /// The current token of each of [`FakeState::other_apps`].
    pub(super) other_current: HashMap<String, String>,
    pub(super) token_fetches: u64,
    /// Grows with every call and every id handed out; ids and `rid`s are made from it.
    pub(super) serial: u64,
    pub(super) calls: Vec<RecordedCall>,
    /// Calls forgotten by `clear_calls`, so an answer still finds its call by number.
    pub(super) cleared_calls: usize,
    pub(super) fail: HashMap<String, (i64, u32)>,
    pub(super) delays: HashMap<String, Duration>,
    /// Paths whose calls are handled at once and answered only after the delay: WeChat acting
    /// on a request whose answer comes too late (or never, when the caller gives up).
    pub(super) answer_delays: HashMap<String, Duration>,
    /// Messages that reached a user (customer-service, template and mass sends), by path.
    pub(super) delivered: Vec<(String, Value)>,
    /// Mass sends by clientmsgid: their msg_id and when WeChat stops checking the key.
    pub(super) clientmsgids: HashMap<String, (i64, Instant)>,
    /// Template sends by (openid, client_msg_id): their msgid and when the key lapses.
    pub(super) template_keys: HashMap<(String, String), (u64, Instant)>,
    pub(super) mass_speed: i64,
    pub(super) menu: Option<Value>,
    pub(super) industry: Option<(String, String)>,
    pub(super) templates: Vec<Value>,
    pub(super) tags: BTreeMap<i64, String>,
    pub(super) user_tags: HashMap<String, Vec<i64>>,
    pub(super) followers: Vec<String>,
    pub(super) media: HashMap<String, StoredMedia>,
    pub(super) oauth: super::oauth::OauthState,
    pub(super) ticket: super::ticket::TicketState,
    pub(super) subscribe: super::subscribe::SubscribeState,
    /// Told of every call once it is answered (the playground's feed); `None` until someone
    /// watches.
    pub(super) call_watchers: Option<tokio::sync::broadcast::Sender<RecordedCall>>,
    pub(super) component: super::component::ComponentState,
}

impl FakeState {
    pub(super) fn new(appid: &str, secret: &str) -> FakeState {
        FakeState {
            appid: appid.to_string(),
            secret: secret.to_string(),
            caller_ip: "203.0.113.7".into(),
            token_ttl: DEFAULT_TOKEN_TTL,
            tokens: HashMap::new(),
            current: None,
            other_apps: HashMap::new(),
            other_current: HashMap::new(),
            token_fetches: 0,
            serial: 1_000_000,
            calls: Vec::new(),
            cleared_calls: 0,
            fail: HashMap::new(),
            delays: HashMap::new(),
            answer_delays: HashMap::new(),
            delivered: Vec::new(),
            clientmsgids: HashMap::new(),
            template_keys: HashMap::new(),
            mass_speed: 0,
            menu: None,
            industry: None,
            templates: Vec::new(),
            tags: BTreeMap::new(),
            user_tags: HashMap::new(),
            followers: Vec::new(),
            media: HashMap::new(),
            oauth: Default::default(),
            ticket: Default::default(),
            subscribe: Default::default(),
            call_watchers: None,
            component: Default::default(),
        }
    }

    /// The current token of `appid`.
    pub(super) fn current_of(&self, appid: &str) -> Option<String> {
        if appid == self.appid {
            self.current.clone()
        } else {
            self.other_current.get(appid).cloned()
        }
    }

    /// WeChat's error answer for `code`, with a request id as WeChat appends one.
    pub(super) fn err(&self, code: i64) -> Value {
        json!({"errcode": code, "errmsg": format!("{} rid: {:x}", errmsg_for(code, &self.caller_ip), self.serial)})
    }

    /// Records a message that reached its user.
    pub(super) fn deliver(&mut self, path: &str, body: &Value) {
        self.delivered.push((path.to_string(), body.clone()));
    }

    /// The next serial number, for ids.
    pub(super) fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }
}

/// WeChat's answer to a call that worked and returns nothing else.
pub(super) fn ok() -> Value {
    json!({"errcode": 0, "errmsg": "ok"})
}

/// The documented errmsg for an errcode.
pub(super) fn errmsg_for(code: i64, caller_ip: &str) -> String {
    let m = match code {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40003 => "invalid openid",
        40004 => "invalid media type",
        40005 => "invalid file type",
        40007 => "invalid media_id",
        40008 => "invalid message type",
        40009 => "invalid image size",
        40010 => "invalid voice size",
        40011 => "invalid video size",
        40012 => "invalid thumb size",
        40013 => "invalid appid",
        40014 => "invalid access_token",
        40016 => "invalid button size",
        40029 => "invalid code",
        40030 => "invalid refresh_token",
        40037 => "invalid template_id",
        40066 => "invalid url",
        40125 => "invalid appsecret",
        40097 => "invalid args",
        40130 => "invalid openid list size, at least two openid",
        40163 => "code been used",
        40164 => {
            return format!("invalid ip {caller_ip} ipv6 ::ffff:{caller_ip}, not in whitelist")
        }
        41001 => "access_token missing",
        41005 => "media data missing",
        42001 => "access_token expired",
        43004 => "require subscribe",
        44001 => "empty media data",
        43101 => "user refuse to accept the msg",
        44002 => "empty post data",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit  mustslower  retry next minute",
        45015 => "response out of time limit or subscription is canceled",
        45026 => "template num exceeds limit",
        45047 => "out of response count limit",
        45065 => "clientmsgid exist",
        45066 => "clientmsgid retry too fast, please retry after 1 minute",
        45157 => "invalid tag name",
        45159 => "invalid tag id",
        46003 => "menu no exist",
        46004 => "user not exist",
        47001 => "data format error",
        47003 => "argument invalid! data.value is invalid",
        48001 => "api unauthorized",
        61003 => "component is not authorized by this account",
        61005 => "component ticket is expired",
        61006 => "component ticket is invalid",
        61009 => "code is invalid",
        61010 => "code is expired",
        61023 => "refresh_token is invalid",
        _ => "fake error",
    };
    m.to_string()
}

/// The body of a call as the pipeline read it, for the handlers after it.
#[derive(Debug, Clone, Default)]
struct Received {
    /// The JSON body, when the body was JSON.
    json: Option<Value>,
    /// The parts, when the body was multipart.
    parts: Vec<RecordedPart>,
    /// Whether any body came (WeChat answers 44002 to a POST without one).
    had_body: bool,
}

/// The call's JSON body, `null` when there was none or it was not JSON (each endpoint
/// answers that with its own errcode, as WeChat does).
pub(super) struct JsonBody(pub(super) Value);

impl<S: Send + Sync> FromRequestParts<S> for JsonBody {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let received = parts.extensions.get::<Arc<Received>>();
        Ok(JsonBody(
            received.and_then(|r| r.json.clone()).unwrap_or(Value::Null),
        ))
    }
}

/// The call's multipart parts (none unless the body was multipart).
pub(super) struct Uploaded(pub(super) Vec<RecordedPart>);

impl<S: Send + Sync> FromRequestParts<S> for Uploaded {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let received = parts.extensions.get::<Arc<Received>>();
        Ok(Uploaded(
            received.map(|r| r.parts.clone()).unwrap_or_default(),
        ))
    }
}

/// Every call, routed or not: recorded (without the access_token, the secret masked),
/// delayed and failed as the test asked, then handed on with its body read.
pub(super) async fn record(
    State(fake): State<FakeWechat>,
    request: Request,
    next: Next,
) -> Response {
    let (mut head, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let Query(query) =
        Query::<Vec<(String, String)>>::try_from_uri(&head.uri).unwrap_or(Query(Vec::new()));
    let content_type = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let parts = if content_type.starts_with("multipart/form-data") {
        parse_multipart(content_type, &body)
    } else {
        Vec::new()
    };
    let json_body: Option<Value> = if parts.is_empty() && !body.is_empty() {
        serde_json::from_slice(&body).ok()
    } else {
        None
    };
    let path = head.uri.path().to_string();
    let (number, delay, answer_delay) = {
        let mut s = fake.lock();
        s.serial += 1;
        let appid = query
            .iter()
            .find(|(k, _)| k == "access_token")
            .and_then(|(_, token)| s.tokens.get(token))
            .map(|t| t.appid.clone());
        let recorded_query = query
            .into_iter()
            .filter(|(k, _)| k != "access_token" && k != "component_access_token")
            .map(|(k, v)| {
                let v = if k == "secret" { "<secret>".into() } else { v };
                (k, v)
            })
            .collect();
        let mut recorded_body = json_body.clone();
        if let Some(Value::Object(o)) = recorded_body.as_mut() {
            for secret in [
                "secret",
                "component_appsecret",
                "component_verify_ticket",
                "authorizer_refresh_token",
            ] {
                if o.contains_key(secret) {
                    o.insert(secret.into(), Value::from("<secret>"));
                }
            }
        }
        s.calls.push(RecordedCall {
            appid,
            method: head.method.to_string(),
            path: path.clone(),
            query: recorded_query,
            body: recorded_body,
            parts: parts.clone(),
            answer: None,
        });
        (
            s.cleared_calls + s.calls.len() - 1,
            s.delays.get(&path).copied(),
            s.answer_delays.get(&path).copied(),
        )
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let injected = {
        let mut s = fake.lock();
        match s.fail.get_mut(&path) {
            Some((code, n)) if *n > 0 => {
                *n -= 1;
                let code = *code;
                Some(s.err(code))
            }
            _ => None,
        }
    };
    if let Some(answer) = injected {
        return remember_answer(&fake, number, Json(answer).into_response()).await;
    }
    head.extensions.insert(Arc::new(Received {
        json: json_body,
        parts,
        had_body: !body.is_empty(),
    }));
    let response = next.run(Request::from_parts(head, Body::empty())).await;
    let answer = remember_answer(&fake, number, response).await;
    if let Some(d) = answer_delay {
        // Handled already: a caller that gives up now leaves the call done, not undone.
        tokio::time::sleep(d).await;
    }
    answer
}

/// Keeps the answer to call `number` (counted since the fake started) beside the call, and
/// hands the response on unchanged. Only JSON bodies are read; others (media) stream on.
async fn remember_answer(fake: &FakeWechat, number: usize, response: Response) -> Response {
    let status = response.status().as_u16();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let (response, json) = if is_json {
        let (head, body) = response.into_parts();
        match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(bytes) => {
                let json = serde_json::from_slice(&bytes).ok();
                (Response::from_parts(head, Body::from(bytes)), json)
            }
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR.into_response(), None),
        }
    } else {
        (response, None)
    };
    let mut guard = fake.lock();
    let s = &mut *guard;
    if let Some(index) = number.checked_sub(s.cleared_calls) {
        if let Some(call) = s.calls.get_mut(index) {
            call.answer = Some(RecordedAnswer { status, json });
            if let Some(watchers) = &s.call_watchers {
                // No watcher left is not an error: the calls are still recorded.
                let _ = watchers.send(call.clone());
            }
        }
    }
    response
}

/// The `access_token` query parameter every endpoint but the token endpoints wants.
#[derive(serde::Deserialize)]
pub(super) struct AccessToken {
    access_token: Option<String>,
}

/// Refuses a call without a valid access_token (41001, 40001, 42001), and a POST without a
/// body (44002) except to `menu/delete`, which takes none.
pub(super) async fn require_token(
    State(fake): State<FakeWechat>,
    Query(AccessToken { access_token }): Query<AccessToken>,
    request: Request,
    next: Next,
) -> Response {
    let had_body = request
        .extensions()
        .get::<Arc<Received>>()
        .is_some_and(|r| r.had_body);
    let refusal = {
        let s = fake.lock();
        match access_token.filter(|t| !t.is_empty()) {
            None => Some(41001),
            Some(token) => match s.tokens.get(&token) {
                None => Some(40001),
                Some(t) if t.revoked => Some(40001),
                Some(t) if t.expires <= Instant::now() => Some(42001),
                Some(_) => None,
            },
        }
        .or_else(|| {
            let needs_body =
                request.method() == Method::POST && request.uri().path() != menu::DELETE;
            (needs_body && !had_body).then_some(44002)
        })
        .map(|code| s.err(code))
    };
    match refusal {
        Some(answer) => Json(answer).into_response(),
        None => next.run(request).await,
    }
}

/// A path no family routes: HTTP 404 with errcode 40066, as WeChat answers.
pub(super) async fn unknown_path(State(fake): State<FakeWechat>) -> Response {
    let answer = fake.lock().err(40066);
    (StatusCode::NOT_FOUND, Json(answer)).into_response()
}

/// The parts of a multipart body.
pub(super) fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<RecordedPart> {
    let Some(boundary) = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
    else {
        return Vec::new();
    };
    let delim = format!("--{}", boundary.trim_matches('"')).into_bytes();
    let mut parts = Vec::new();
    let mut pos = match find(body, &delim, 0) {
        Some(p) => p + delim.len(),
        None => return parts,
    };
    while let Some(next) = find(body, &delim, pos) {
        let chunk = &body[pos..next];
        pos = next + delim.len();
        let chunk = chunk.strip_prefix(b"\r\n").unwrap_or(chunk);
        let chunk = chunk.strip_suffix(b"\r\n").unwrap_or(chunk);
        let Some(split) = find(chunk, b"\r\n\r\n", 0) else {
            continue;
        };
        let head = String::from_utf8_lossy(&chunk[..split]);
        let data = chunk[split + 4..].to_vec();
        let mut part = RecordedPart {
            name: String::new(),
            filename: None,
            content_type: None,
            data,
        };
        for line in head.lines() {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("content-disposition:") {
                part.name = disposition_param(line, "name").unwrap_or_default();
                part.filename = disposition_param(line, "filename");
            } else if lower.starts_with("content-type:") {
                part.content_type = line.split_once(':').map(|(_, v)| v.trim().to_string());
            }
        }
        parts.push(part);
    }
    parts
}

fn disposition_param(line: &str, key: &str) -> Option<String> {
    line.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}
