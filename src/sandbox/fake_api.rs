//! A fake WeChat API server (api.weixin.qq.com) for tests and the local simulator.
//!
//! It answers the endpoints the [`crate::api`] module uses with the JSON shapes and errcodes
//! of the WeChat documentation, issues access_tokens with `expires_in`, records every call
//! (method, path, query without the access_token, JSON body or multipart parts), and can be
//! told to misbehave: fail the next N calls of a path with an errcode, invalidate or expire
//! tokens, or answer slowly.
//!
//! Token semantics follow the documentation: `GET /cgi-bin/token` issues a new token on every
//! call (the previous one stays valid for 5 more minutes); `POST /cgi-bin/stable_token` in
//! normal mode hands back the current token until less than 5 minutes remain, and with
//! `force_refresh: true` always issues a new one and revokes the previous one. Calls with no token get 41001, an unknown
//! or invalidated token 40001, an expired token 42001. Unknown paths get HTTP 404 with
//! errcode 40066 ("invalid url").
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use wechat_lua::sandbox::fake_api::FakeWechat;
//! let (fake, base_url) = FakeWechat::start().await?;
//! fake.fail_next("/cgi-bin/message/custom/send", -1, 1);
//! // point a WechatClient at base_url with fake.appid() / fake.secret() ...
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// AppID the fake accepts by default.
pub const FAKE_APPID: &str = "wx0000000000fake01";
/// AppSecret the fake accepts by default.
pub const FAKE_SECRET: &str = "fakesecret0000000000000000000000";
/// How long an issued token lives by default (as on WeChat).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(7200);
/// How long a replaced token keeps working (as on WeChat).
const GRACE: Duration = Duration::from_secs(300);
/// OpenIDs per `user/get` page (as on WeChat).
const USER_PAGE: usize = 10_000;

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

#[derive(Debug, Clone)]
struct TokenRec {
    expires: Instant,
    revoked: bool,
    /// Invalidated, yet stable_token's normal mode still returns it (force_refresh needed).
    sticky: bool,
}

#[derive(Debug, Clone)]
struct StoredMedia {
    kind: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

#[derive(Debug)]
struct FakeState {
    appid: String,
    secret: String,
    caller_ip: String,
    token_ttl: Duration,
    tokens: HashMap<String, TokenRec>,
    current: Option<String>,
    token_fetches: u64,
    serial: u64,
    calls: Vec<RecordedCall>,
    fail: HashMap<String, (i64, u32)>,
    delays: HashMap<String, Duration>,
    clientmsgids: HashMap<String, i64>,
    mass_speed: i64,
    menu: Option<Value>,
    industry: Option<(String, String)>,
    templates: Vec<Value>,
    tags: BTreeMap<i64, String>,
    user_tags: HashMap<String, Vec<i64>>,
    followers: Vec<String>,
    media: HashMap<String, StoredMedia>,
}

/// Handle on a running (or routable) fake WeChat API; clones share state.
#[derive(Debug, Clone)]
pub struct FakeWechat {
    state: Arc<Mutex<FakeState>>,
}

impl Default for FakeWechat {
    fn default() -> Self {
        FakeWechat::new(FAKE_APPID, FAKE_SECRET)
    }
}

impl FakeWechat {
    /// A fake that accepts the given credentials.
    pub fn new(appid: &str, secret: &str) -> FakeWechat {
        FakeWechat {
            state: Arc::new(Mutex::new(FakeState {
                appid: appid.to_string(),
                secret: secret.to_string(),
                caller_ip: "203.0.113.7".into(),
                token_ttl: DEFAULT_TOKEN_TTL,
                tokens: HashMap::new(),
                current: None,
                token_fetches: 0,
                serial: 1_000_000,
                calls: Vec::new(),
                fail: HashMap::new(),
                delays: HashMap::new(),
                clientmsgids: HashMap::new(),
                mass_speed: 0,
                menu: None,
                industry: None,
                templates: Vec::new(),
                tags: BTreeMap::new(),
                user_tags: HashMap::new(),
                followers: Vec::new(),
                media: HashMap::new(),
            })),
        }
    }

    /// Start a fake with the default credentials on `127.0.0.1:0`; returns it and its base URL.
    pub async fn start() -> std::io::Result<(FakeWechat, String)> {
        let fake = FakeWechat::default();
        let base = fake.serve("127.0.0.1:0").await?;
        Ok((fake, base))
    }

    /// Serve this fake on `addr` in a background task; returns the base URL (`http://ip:port`).
    pub async fn serve(&self, addr: &str) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let app = self.router();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("fake WeChat API stopped: {e}");
            }
        });
        Ok(format!("http://{local}"))
    }

    /// The fake as an axum `Router`, for in-process tests.
    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A panicking test thread must not wedge every later call.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The AppID this fake accepts.
    pub fn appid(&self) -> String {
        self.lock().appid.clone()
    }

    /// The AppSecret this fake accepts.
    pub fn secret(&self) -> String {
        self.lock().secret.clone()
    }

    /// Every call received so far, oldest first.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.lock().calls.clone()
    }

    /// The calls received for one path.
    pub fn calls_to(&self, path: &str) -> Vec<RecordedCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }

    /// Forget the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// How many tokens were handed out (`/cgi-bin/token` and `/cgi-bin/stable_token` calls that succeeded).
    pub fn token_fetches(&self) -> u64 {
        self.lock().token_fetches
    }

    /// The token most recently issued.
    pub fn current_token(&self) -> Option<String> {
        self.lock().current.clone()
    }

    /// Answer the next `n` calls of `path` with `errcode` (and its documented errmsg).
    pub fn fail_next(&self, path: &str, errcode: i64, n: u32) {
        self.lock().fail.insert(path.to_string(), (errcode, n));
    }

    /// Wait `dur` before answering each call of `path`.
    pub fn delay(&self, path: &str, dur: Duration) {
        self.lock().delays.insert(path.to_string(), dur);
    }

    /// Reject every token issued so far with 40001; the next fetch of any kind issues a new one.
    pub fn invalidate_token(&self) {
        for t in self.lock().tokens.values_mut() {
            t.revoked = true;
        }
    }

    /// Reject the current token with 40001, but let stable_token's normal mode keep handing it
    /// back (only `force_refresh: true` gets a new one) — the case the client must detect.
    pub fn invalidate_token_sticky(&self) {
        let mut s = self.lock();
        if let Some(cur) = s.current.clone() {
            if let Some(t) = s.tokens.get_mut(&cur) {
                t.revoked = true;
                t.sticky = true;
            }
        }
    }

    /// Make every token issued so far expired (calls get 42001).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for t in self.lock().tokens.values_mut() {
            t.expires = now;
        }
    }

    /// Lifetime (`expires_in`) of tokens issued from now on.
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.lock().token_ttl = ttl;
    }

    /// The caller IP reported in 40164 errmsgs.
    pub fn set_caller_ip(&self, ip: &str) {
        self.lock().caller_ip = ip.to_string();
    }

    /// Add `n` followers (for `user/get` and `user/info`); returns their OpenIDs.
    pub fn add_followers(&self, n: usize) -> Vec<String> {
        let mut s = self.lock();
        let start = s.followers.len();
        let new: Vec<String> = (start..start + n)
            .map(|i| format!("oFAKE{i:023}"))
            .collect();
        s.followers.extend(new.iter().cloned());
        new
    }
}

/// The documented errmsg for an errcode.
fn errmsg_for(code: i64, caller_ip: &str) -> String {
    let m = match code {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40003 => "invalid openid",
        40004 => "invalid media type",
        40007 => "invalid media_id",
        40008 => "invalid message type",
        40013 => "invalid appid",
        40014 => "invalid access_token",
        40016 => "invalid button size",
        40037 => "invalid template_id",
        40066 => "invalid url",
        40125 => "invalid appsecret",
        40130 => "invalid openid list size, at least two openid",
        40164 => {
            return format!("invalid ip {caller_ip} ipv6 ::ffff:{caller_ip}, not in whitelist")
        }
        41001 => "access_token missing",
        41005 => "media data missing",
        42001 => "access_token expired",
        43004 => "require subscribe",
        44002 => "empty post data",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit  mustslower  retry next minute",
        45015 => "response out of time limit or subscription is canceled",
        45047 => "out of response count limit",
        45065 => "clientmsgid exist",
        45066 => "clientmsgid retry too fast, please retry after 1 minute",
        45157 => "invalid tag name",
        45159 => "invalid tag id",
        46003 => "menu no exist",
        46004 => "user not exist",
        47001 => "data format error",
        _ => "fake error",
    };
    m.to_string()
}

fn err(code: i64, s: &FakeState) -> Value {
    json!({"errcode": code, "errmsg": format!("{} rid: {:x}", errmsg_for(code, &s.caller_ip), s.serial)})
}

fn ok() -> Value {
    json!({"errcode": 0, "errmsg": "ok"})
}

/// One multipart part parsed from a request body.
fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<RecordedPart> {
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

fn parse_query(uri: &Uri) -> Vec<(String, String)> {
    let Some(q) = uri.query() else {
        return Vec::new();
    };
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a route answers.
enum Answer {
    Json(StatusCode, Value),
    File(StoredMedia),
}

async fn handle(
    State(fake): State<FakeWechat>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = parse_query(&uri);
    let token = query
        .iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.clone());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let parts = if content_type.starts_with("multipart/form-data") {
        parse_multipart(&content_type, &body)
    } else {
        Vec::new()
    };
    let json_body: Option<Value> = if parts.is_empty() && !body.is_empty() {
        serde_json::from_slice(&body).ok()
    } else {
        None
    };
    let delay = {
        let mut s = fake.lock();
        s.serial += 1;
        let recorded_query = query
            .iter()
            .filter(|(k, _)| k != "access_token")
            .map(|(k, v)| {
                let v = if k == "secret" {
                    "<secret>".into()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect();
        let mut recorded_body = json_body.clone();
        if let Some(Value::Object(o)) = recorded_body.as_mut() {
            if o.contains_key("secret") {
                o.insert("secret".into(), Value::from("<secret>"));
            }
        }
        s.calls.push(RecordedCall {
            method: method.to_string(),
            path: path.clone(),
            query: recorded_query,
            body: recorded_body,
            parts: parts.clone(),
        });
        s.delays.get(&path).copied()
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let answer = {
        let mut s = fake.lock();
        respond(
            &mut s,
            &method,
            &path,
            &query,
            token.as_deref(),
            json_body,
            &parts,
            !body.is_empty(),
        )
    };
    match answer {
        Answer::Json(status, v) => (status, axum::Json(v)).into_response(),
        Answer::File(m) => {
            let ct = m
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into());
            let disp = format!(
                "attachment; filename=\"{}\"",
                m.filename.clone().unwrap_or_else(|| "media".into())
            );
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, ct),
                    (header::CONTENT_DISPOSITION, disp),
                ],
                m.data,
            )
                .into_response()
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn respond(
    s: &mut FakeState,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    token: Option<&str>,
    body: Option<Value>,
    parts: &[RecordedPart],
    had_body: bool,
) -> Answer {
    let j = |v: Value| Answer::Json(StatusCode::OK, v);
    if let Some((code, n)) = s.fail.get_mut(path) {
        if *n > 0 {
            *n -= 1;
            let code = *code;
            return j(err(code, s));
        }
    }
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match path {
        "/cgi-bin/token" => {
            if q("grant_type") != Some("client_credential") {
                return j(err(40002, s));
            }
            if let Some(e) = check_creds(s, q("appid"), q("secret")) {
                return j(e);
            }
            return j(issue_token(s, true));
        }
        "/cgi-bin/stable_token" => {
            let b = body.unwrap_or(Value::Null);
            if b["grant_type"] != "client_credential" {
                return j(err(40002, s));
            }
            if let Some(e) = check_creds(s, b["appid"].as_str(), b["secret"].as_str()) {
                return j(e);
            }
            let force = b["force_refresh"].as_bool().unwrap_or(false);
            if !force {
                if let Some(cur) = s.current.clone() {
                    if let Some(t) = s.tokens.get(&cur) {
                        let remaining = t.expires.saturating_duration_since(Instant::now());
                        if remaining > GRACE && (!t.revoked || t.sticky) {
                            s.token_fetches += 1;
                            return j(
                                json!({"access_token": cur, "expires_in": remaining.as_secs()}),
                            );
                        }
                    }
                }
            }
            return j(issue_token(s, !force));
        }
        _ => {}
    }
    if !KNOWN_PATHS.contains(&path) {
        return Answer::Json(StatusCode::NOT_FOUND, err(40066, s));
    }
    // Every other endpoint needs a valid access_token.
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return j(err(41001, s));
    };
    match s.tokens.get(token) {
        None => return j(err(40001, s)),
        Some(t) if t.revoked => return j(err(40001, s)),
        Some(t) if t.expires <= Instant::now() => return j(err(42001, s)),
        Some(_) => {}
    }
    if *method == Method::POST && !had_body && !path.starts_with("/cgi-bin/menu/delete") {
        return j(err(44002, s));
    }
    let b = body.unwrap_or(Value::Null);
    let v = match path {
        "/cgi-bin/message/custom/send" => custom_send(s, &b),
        "/cgi-bin/message/custom/typing" => {
            if b["touser"].as_str().is_none_or(str::is_empty) {
                err(40003, s)
            } else if !matches!(b["command"].as_str(), Some("Typing" | "CancelTyping")) {
                err(47001, s)
            } else {
                ok()
            }
        }
        "/cgi-bin/message/mass/sendall" => {
            if !b["filter"].is_object() {
                err(47001, s)
            } else {
                mass_send(s, &b)
            }
        }
        "/cgi-bin/message/mass/send" => match b["touser"].as_array() {
            Some(list) if (2..=10_000).contains(&list.len()) => mass_send(s, &b),
            _ => err(40130, s),
        },
        "/cgi-bin/message/mass/preview" => {
            if b["touser"].is_string() || b["towxname"].is_string() {
                s.serial += 1;
                json!({"errcode": 0, "errmsg": "preview success", "msg_id": s.serial})
            } else {
                err(40003, s)
            }
        }
        "/cgi-bin/message/mass/delete" => {
            if b["msg_id"].is_null() && b["url"].is_null() {
                err(47001, s)
            } else {
                ok()
            }
        }
        "/cgi-bin/message/mass/get" => {
            json!({"msg_id": b["msg_id"].clone(), "msg_status": "SEND_SUCCESS"})
        }
        "/cgi-bin/message/mass/speed/get" => {
            let real = [80, 60, 45, 30, 10];
            let speed = s.mass_speed;
            json!({"speed": speed, "realspeed": real[speed.clamp(0, 4) as usize]})
        }
        "/cgi-bin/message/mass/speed/set" => match b["speed"].as_i64() {
            Some(n) if (0..=4).contains(&n) => {
                s.mass_speed = n;
                ok()
            }
            _ => err(47001, s),
        },
        "/cgi-bin/media/uploadnews" => match b["articles"].as_array() {
            Some(a) if !a.is_empty() && a.len() <= 8 => {
                let id = new_media_id(s, "news", None, None, Vec::new());
                json!({"type": "news", "media_id": id, "created_at": crate::clock::unix_secs()})
            }
            _ => err(47001, s),
        },
        "/cgi-bin/template/api_set_industry" => {
            match (b["industry_id1"].as_str(), b["industry_id2"].as_str()) {
                (Some(a), Some(c)) => {
                    s.industry = Some((a.to_string(), c.to_string()));
                    ok()
                }
                _ => err(47001, s),
            }
        }
        "/cgi-bin/template/get_industry" => {
            let (a, c) = s.industry.clone().unwrap_or_default();
            json!({
                "primary_industry": {"first_class": "IT科技", "second_class": format!("industry {a}")},
                "secondary_industry": {"first_class": "IT科技", "second_class": format!("industry {c}")}
            })
        }
        "/cgi-bin/template/api_add_template" => match b["template_id_short"].as_str() {
            Some(short) if !short.is_empty() => {
                s.serial += 1;
                let id = format!("tpl{}{}", short, s.serial);
                s.templates.push(json!({
                    "template_id": id, "title": format!("template {short}"),
                    "primary_industry": "IT科技", "deputy_industry": "互联网|电子商务",
                    "content": "{{first.DATA}}\n{{keyword1.DATA}}\n{{remark.DATA}}", "example": ""
                }));
                json!({"errcode": 0, "errmsg": "ok", "template_id": id})
            }
            _ => err(47001, s),
        },
        "/cgi-bin/template/get_all_private_template" => json!({"template_list": s.templates}),
        "/cgi-bin/template/del_private_template" => {
            let before = s.templates.len();
            s.templates.retain(|t| t["template_id"] != b["template_id"]);
            if s.templates.len() < before {
                ok()
            } else {
                err(40037, s)
            }
        }
        "/cgi-bin/message/template/send" => {
            let known = s
                .templates
                .iter()
                .any(|t| t["template_id"] == b["template_id"]);
            if b["touser"].as_str().is_none_or(str::is_empty) {
                err(40003, s)
            } else if !known {
                err(40037, s)
            } else if !b["data"].is_object() {
                err(47001, s)
            } else {
                s.serial += 1;
                json!({"errcode": 0, "errmsg": "ok", "msgid": s.serial})
            }
        }
        "/cgi-bin/menu/create" => match b["button"].as_array() {
            Some(btns) if (1..=3).contains(&btns.len()) => {
                s.menu = Some(b.clone());
                ok()
            }
            _ => err(40016, s),
        },
        "/cgi-bin/menu/get" => match &s.menu {
            Some(m) => json!({"menu": m}),
            None => err(46003, s),
        },
        "/cgi-bin/menu/delete" => {
            s.menu = None;
            ok()
        }
        "/cgi-bin/get_current_selfmenu_info" => match &s.menu {
            Some(m) => json!({"is_menu_open": 1, "selfmenu_info": m}),
            None => json!({"is_menu_open": 0}),
        },
        "/cgi-bin/user/info" => match q("openid") {
            Some(o) if !o.is_empty() => user_info(s, o, q("lang").unwrap_or("zh_CN")),
            _ => err(40003, s),
        },
        "/cgi-bin/user/info/batchget" => match b["user_list"].as_array() {
            Some(list) if !list.is_empty() && list.len() <= 100 => {
                let infos: Vec<Value> = list
                    .iter()
                    .map(|u| {
                        user_info(
                            s,
                            u["openid"].as_str().unwrap_or_default(),
                            u["lang"].as_str().unwrap_or("zh_CN"),
                        )
                    })
                    .collect();
                json!({"user_info_list": infos})
            }
            _ => err(47001, s),
        },
        "/cgi-bin/user/get" => {
            let start = match q("next_openid").filter(|n| !n.is_empty()) {
                Some(n) => match s.followers.iter().position(|f| f == n) {
                    Some(i) => i + 1,
                    None => return j(err(40003, s)),
                },
                None => 0,
            };
            let page: Vec<String> = s
                .followers
                .iter()
                .skip(start)
                .take(USER_PAGE)
                .cloned()
                .collect();
            let next = page.last().cloned().unwrap_or_default();
            let mut v =
                json!({"total": s.followers.len(), "count": page.len(), "next_openid": next});
            if !page.is_empty() {
                v["data"] = json!({"openid": page});
            }
            v
        }
        "/cgi-bin/tags/create" => match b["tag"]["name"].as_str() {
            Some(n)
                if !n.is_empty() && n.chars().count() <= 30 && !s.tags.values().any(|t| t == n) =>
            {
                let id = s.tags.keys().next_back().map_or(100, |k| k + 1);
                s.tags.insert(id, n.to_string());
                json!({"tag": {"id": id, "name": n}})
            }
            _ => err(45157, s),
        },
        "/cgi-bin/tags/get" => {
            let tags: Vec<Value> = s
                .tags
                .iter()
                .map(|(id, name)| {
                    let count = s.user_tags.values().filter(|t| t.contains(id)).count();
                    json!({"id": id, "name": name, "count": count})
                })
                .collect();
            json!({"tags": tags})
        }
        "/cgi-bin/tags/update" => match (b["tag"]["id"].as_i64(), b["tag"]["name"].as_str()) {
            (Some(id), Some(n)) if s.tags.contains_key(&id) => {
                s.tags.insert(id, n.to_string());
                ok()
            }
            _ => err(45159, s),
        },
        "/cgi-bin/tags/delete" => match b["tag"]["id"].as_i64() {
            Some(id) if s.tags.remove(&id).is_some() => {
                for t in s.user_tags.values_mut() {
                    t.retain(|x| *x != id);
                }
                ok()
            }
            _ => err(45159, s),
        },
        "/cgi-bin/tags/members/batchtagging" | "/cgi-bin/tags/members/batchuntagging" => {
            let tag = b["tagid"].as_i64().filter(|id| s.tags.contains_key(id));
            match (tag, b["openid_list"].as_array()) {
                (Some(tag), Some(list)) if !list.is_empty() && list.len() <= 50 => {
                    let tagging = path.ends_with("/batchtagging");
                    for o in list.iter().filter_map(Value::as_str) {
                        let entry = s.user_tags.entry(o.to_string()).or_default();
                        entry.retain(|x| *x != tag);
                        if tagging {
                            entry.push(tag);
                        }
                    }
                    ok()
                }
                (None, _) => err(45159, s),
                _ => err(40003, s),
            }
        }
        "/cgi-bin/tags/getidlist" => match b["openid"].as_str() {
            Some(o) if !o.is_empty() => {
                json!({"tagid_list": s.user_tags.get(o).cloned().unwrap_or_default()})
            }
            _ => err(40003, s),
        },
        "/cgi-bin/media/upload" | "/cgi-bin/material/add_material" => {
            let kind = q("type").unwrap_or_default().to_string();
            if !matches!(kind.as_str(), "image" | "voice" | "video" | "thumb") {
                return j(err(40004, s));
            }
            let Some(media) = parts.iter().find(|p| p.name == "media") else {
                return j(err(41005, s));
            };
            if path == "/cgi-bin/material/add_material"
                && kind == "video"
                && !parts.iter().any(|p| p.name == "description")
            {
                return j(err(47001, s));
            }
            let id = new_media_id(
                s,
                &kind,
                media.filename.clone(),
                media.content_type.clone(),
                media.data.clone(),
            );
            if path == "/cgi-bin/media/upload" {
                let key = if kind == "thumb" {
                    "thumb_media_id"
                } else {
                    "media_id"
                };
                json!({"type": kind, key: id, "created_at": crate::clock::unix_secs()})
            } else if kind == "image" {
                json!({"media_id": id, "url": format!("http://mmbiz.qpic.cn/fake/{id}/0")})
            } else {
                json!({"media_id": id})
            }
        }
        "/cgi-bin/media/get" => match q("media_id").and_then(|id| s.media.get(id)) {
            Some(m) if m.kind == "video" => {
                json!({"video_url": format!("http://mmbiz.qpic.cn/fake/video/{}", q("media_id").unwrap_or_default())})
            }
            Some(m) => return Answer::File(m.clone()),
            None => err(40007, s),
        },
        "/cgi-bin/qrcode/create" => qrcode_create(s, &b),
        _ => return Answer::Json(StatusCode::NOT_FOUND, err(40066, s)),
    };
    j(v)
}

/// Every endpoint the fake implements besides the two token endpoints.
const KNOWN_PATHS: &[&str] = &[
    "/cgi-bin/message/custom/send",
    "/cgi-bin/message/custom/typing",
    "/cgi-bin/message/mass/sendall",
    "/cgi-bin/message/mass/send",
    "/cgi-bin/message/mass/preview",
    "/cgi-bin/message/mass/delete",
    "/cgi-bin/message/mass/get",
    "/cgi-bin/message/mass/speed/get",
    "/cgi-bin/message/mass/speed/set",
    "/cgi-bin/media/uploadnews",
    "/cgi-bin/template/api_set_industry",
    "/cgi-bin/template/get_industry",
    "/cgi-bin/template/api_add_template",
    "/cgi-bin/template/get_all_private_template",
    "/cgi-bin/template/del_private_template",
    "/cgi-bin/message/template/send",
    "/cgi-bin/menu/create",
    "/cgi-bin/menu/get",
    "/cgi-bin/menu/delete",
    "/cgi-bin/get_current_selfmenu_info",
    "/cgi-bin/user/info",
    "/cgi-bin/user/info/batchget",
    "/cgi-bin/user/get",
    "/cgi-bin/tags/create",
    "/cgi-bin/tags/get",
    "/cgi-bin/tags/update",
    "/cgi-bin/tags/delete",
    "/cgi-bin/tags/members/batchtagging",
    "/cgi-bin/tags/members/batchuntagging",
    "/cgi-bin/tags/getidlist",
    "/cgi-bin/media/upload",
    "/cgi-bin/media/get",
    "/cgi-bin/material/add_material",
    "/cgi-bin/qrcode/create",
];

fn check_creds(s: &FakeState, appid: Option<&str>, secret: Option<&str>) -> Option<Value> {
    if appid != Some(s.appid.as_str()) {
        Some(err(40013, s))
    } else if secret != Some(s.secret.as_str()) {
        Some(err(40125, s))
    } else {
        None
    }
}

/// Issue a new token; with `grace` the previous one keeps working for 5 minutes.
fn issue_token(s: &mut FakeState, grace: bool) -> Value {
    s.serial += 1;
    s.token_fetches += 1;
    let now = Instant::now();
    if let Some(prev) = s.current.clone() {
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
        },
    );
    s.current = Some(token.clone());
    json!({"access_token": token, "expires_in": s.token_ttl.as_secs()})
}

fn new_media_id(
    s: &mut FakeState,
    kind: &str,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
) -> String {
    s.serial += 1;
    let id = format!("FAKE_MEDIA_{kind}_{}", s.serial);
    s.media.insert(
        id.clone(),
        StoredMedia {
            kind: kind.to_string(),
            filename,
            content_type,
            data,
        },
    );
    id
}

const KF_TYPES: &[&str] = &[
    "text",
    "image",
    "voice",
    "video",
    "music",
    "news",
    "mpnews",
    "mpnewsarticle",
    "msgmenu",
    "wxcard",
    "miniprogrampage",
];

fn custom_send(s: &mut FakeState, b: &Value) -> Value {
    if b["touser"].as_str().is_none_or(str::is_empty) {
        return err(40003, s);
    }
    match b["msgtype"].as_str() {
        Some(t) if KF_TYPES.contains(&t) && b[t].is_object() => ok(),
        _ => err(40008, s),
    }
}

const MASS_TYPES: &[(&str, &str)] = &[
    ("mpnews", "mpnews"),
    ("text", "text"),
    ("voice", "voice"),
    ("image", "images"),
    ("mpvideo", "mpvideo"),
    ("wxcard", "wxcard"),
];

fn mass_send(s: &mut FakeState, b: &Value) -> Value {
    let Some(key) = b["msgtype"]
        .as_str()
        .and_then(|t| MASS_TYPES.iter().find(|(m, _)| *m == t))
        .map(|(_, k)| *k)
    else {
        return err(40008, s);
    };
    if !b[key].is_object() {
        return err(40008, s);
    }
    if let Some(cid) = b["clientmsgid"].as_str() {
        if let Some(&msg_id) = s.clientmsgids.get(cid) {
            let mut e = err(45065, s);
            e["msg_id"] = json!(msg_id);
            return e;
        }
    }
    s.serial += 1;
    let msg_id = s.serial;
    if let Some(cid) = b["clientmsgid"].as_str() {
        s.clientmsgids.insert(cid.to_string(), msg_id as i64);
    }
    let mut v = json!({"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id});
    if key == "mpnews" {
        v["msg_data_id"] = json!(msg_id * 10 + 1);
    }
    v
}

fn user_info(s: &FakeState, openid: &str, lang: &str) -> Value {
    if openid.is_empty() {
        return err(40003, s);
    }
    if s.followers.iter().any(|f| f == openid) {
        json!({
            "subscribe": 1, "openid": openid, "language": lang,
            "subscribe_time": 1_700_000_000, "remark": "", "groupid": 0,
            "tagid_list": s.user_tags.get(openid).cloned().unwrap_or_default(),
            "subscribe_scene": "ADD_SCENE_QR_CODE", "qr_scene": 0, "qr_scene_str": ""
        })
    } else {
        json!({"subscribe": 0, "openid": openid})
    }
}

fn qrcode_create(s: &mut FakeState, b: &Value) -> Value {
    let scene = &b["action_info"]["scene"];
    let action = b["action_name"].as_str().unwrap_or_default();
    let valid = match action {
        "QR_SCENE" => scene["scene_id"].as_u64().is_some_and(|id| id > 0),
        "QR_LIMIT_SCENE" => scene["scene_id"]
            .as_u64()
            .is_some_and(|id| (1..=100_000).contains(&id)),
        "QR_STR_SCENE" | "QR_LIMIT_STR_SCENE" => scene["scene_str"]
            .as_str()
            .is_some_and(|x| !x.is_empty() && x.len() <= 64),
        _ => false,
    };
    if !valid {
        return err(47001, s);
    }
    s.serial += 1;
    let ticket = format!("gQFAKE{}", s.serial);
    let url = format!("http://weixin.qq.com/q/fake{}", s.serial);
    if action.starts_with("QR_LIMIT") {
        json!({"ticket": ticket, "url": url})
    } else {
        let expire = b["expire_seconds"]
            .as_u64()
            .unwrap_or(60)
            .clamp(60, 2_592_000);
        json!({"ticket": ticket, "expire_seconds": expire, "url": url})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_is_parsed() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\nJPEGDATA\r\n--XyZ\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n{\"title\":\"t\"}\r\n--XyZ--\r\n";
        let parts = parse_multipart("multipart/form-data; boundary=XyZ", body);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "media");
        assert_eq!(parts[0].filename.as_deref(), Some("a.jpg"));
        assert_eq!(parts[0].content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(parts[0].data, b"JPEGDATA");
        assert_eq!(parts[1].name, "description");
        assert_eq!(parts[1].data, b"{\"title\":\"t\"}");
    }

    #[test]
    fn query_is_decoded() {
        let uri: Uri = "/x?a=1&b=%E4%B8%AD+x&c".parse().unwrap();
        let q = parse_query(&uri);
        assert_eq!(q[1], ("b".into(), "中 x".into()));
        assert_eq!(q[2], ("c".into(), "".into()));
    }

    async fn call(app: &Router, req: axum::http::Request<axum::body::Body>) -> (StatusCode, Value) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn usable_in_process_as_a_router() {
        use axum::body::Body;
        use axum::http::Request;
        let fake = FakeWechat::default();
        let app = fake.router();
        let token_req = |force: bool| {
            Request::post("/cgi-bin/stable_token")
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"grant_type":"client_credential","appid":FAKE_APPID,
                           "secret":FAKE_SECRET,"force_refresh":force})
                    .to_string(),
                ))
                .unwrap()
        };
        let (_, v) = call(&app, token_req(false)).await;
        let t1 = v["access_token"].as_str().unwrap().to_string();
        assert_eq!(v["expires_in"], 7200);
        // Normal mode hands back the same token; force_refresh issues a new one.
        let (_, v) = call(&app, token_req(false)).await;
        assert_eq!(v["access_token"], t1.as_str());
        let (_, v) = call(&app, token_req(true)).await;
        let t2 = v["access_token"].as_str().unwrap().to_string();
        assert_ne!(t1, t2);
        assert_eq!(fake.token_fetches(), 3);

        let get = |path: String| Request::get(path).body(Body::empty()).unwrap();
        let (_, v) = call(&app, get(format!("/cgi-bin/menu/get?access_token={t1}"))).await;
        assert_eq!(
            v["errcode"], 40001,
            "force_refresh revoked the previous token"
        );
        let (_, v) = call(&app, get(format!("/cgi-bin/menu/get?access_token={t2}"))).await;
        assert_eq!(v["errcode"], 46003);
        fake.expire_tokens();
        let (_, v) = call(&app, get(format!("/cgi-bin/menu/get?access_token={t2}"))).await;
        assert_eq!(v["errcode"], 42001);
        let (status, v) = call(&app, get(format!("/cgi-bin/nope?access_token={t2}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["errcode"], 40066);

        let bad = Request::post("/cgi-bin/stable_token")
            .body(Body::from(
                json!({"grant_type":"client_credential","appid":FAKE_APPID,"secret":"x"})
                    .to_string(),
            ))
            .unwrap();
        let (_, v) = call(&app, bad).await;
        assert_eq!(v["errcode"], 40125);
        assert_eq!(fake.calls().len(), 8);
    }

    #[test]
    fn every_known_path_has_a_handler() {
        let fake = FakeWechat::default();
        let mut s = fake.lock();
        let token = issue_token(&mut s, true)["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        for path in KNOWN_PATHS {
            let a = respond(
                &mut s,
                &Method::GET,
                path,
                &[],
                Some(&token),
                None,
                &[],
                false,
            );
            if let Answer::Json(status, v) = a {
                assert_ne!(status, StatusCode::NOT_FOUND, "{path}: {v}");
            }
        }
    }

    #[test]
    fn errmsg_40164_names_the_ip() {
        assert!(errmsg_for(40164, "198.51.100.9").contains("invalid ip 198.51.100.9"));
    }
}
