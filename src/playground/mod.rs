//! The browser playground (`wechat-lua play`): a page that looks like the WeChat chat window,
//! driven by the real host and the built-in fake WeChat API that `chat` uses
//! ([`crate::commands::chat::Simulator`]).
//!
//! It owns the embedded page (`assets/`, plain HTML, CSS and JS, no build step), the
//! endpoints the page calls under `/play/` on its own listener, and the events the page is
//! pushed ([`feed`]): the simulated users' messages and the account's replies, every call the
//! scripts make to the fake API (and what it means to a user: a customer-service message, the
//! typing indicator, a template or subscription notice, a mass send, a new menu), `wx.http`
//! requests, log lines, reloads and reload errors.
//!
//! One message: the page POSTs `/play/send` → the message XML is built as WeChat builds it
//! ([`crate::commands::chat::slash::Inbound`]), signed (and sealed when encrypted) and POSTed
//! to the host's real callback ([`crate::commands::chat::Wire`]) → the user's message and the
//! reply go into the feed, with the XML exchanged, and back to the page.
//!
//! Beside this file: `outgoing` checks what a simulated user sends and builds it, `calls`
//! turns each call the fake answered into what the page shows, [`reply`] reads replies into
//! one shape the page draws, [`feed`] numbers and keeps the events, [`logs`] brings log lines.

mod calls;
pub mod feed;
pub mod logs;
mod outgoing;
pub mod reply;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::commands::chat::slash::{self, Inbound};
use crate::commands::chat::{Clock, Wire, ACCOUNT};
use crate::fake_wechat::FakeWechat;
use crate::server::AppState;
use crate::sync::lock;
use feed::{Event, EventBody, Feed, Raw, Resume, INITIAL_EVENTS};
pub use outgoing::Outgoing;
use outgoing::{check_len, check_openid};

/// The page.
const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its script.
const PLAY_JS: &str = include_str!("assets/play.js");
/// Its style sheet.
const PLAY_CSS: &str = include_str!("assets/play.css");

/// What the page may load and run: its own script and style only (nothing inline, so text
/// from a message can never run even if it reached the markup); pictures, media and the
/// phone browser's pages from anywhere, as links in messages point anywhere.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: http: https:; media-src 'self' http: https:; \
    frame-src http: https:; connect-src 'self'; object-src 'none'; base-uri 'none'";

/// The largest `/play/send` body: far above any message a user can type.
const MAX_SEND_BODY: usize = 64 * 1024;
/// The largest picture a simulated user sends (WeChat's image limit).
const MAX_PICTURE: usize = 10 * 1024 * 1024;
/// The longest text message (characters); WeChat's input box stops well before.
pub const MAX_TEXT_CHARS: usize = 8000;
/// The longest menu key, scene, label or title (bytes, as WeChat counts menu keys).
const MAX_SHORT: usize = 256;
/// The longest URL.
const MAX_URL: usize = 2048;
/// Most simulated users at once.
const MAX_USERS: usize = 50;
/// Most events one page-back request returns.
const MAX_PAGE: usize = 500;
/// Most pictures a menu's picture button sends (WeChat's limit).
const MAX_PICS: u32 = 9;
/// How soon a page's EventSource tries again after the connection dropped.
const RECONNECT_AFTER: std::time::Duration = std::time::Duration::from_millis(500);
/// The OpenID of the first simulated user.
pub const FIRST_USER: &str = "o_play_user_1";

/// One simulated user.
#[derive(Debug, Clone, Serialize)]
pub struct SimUser {
    /// Their OpenID.
    pub openid: String,
    /// Whether they follow the account.
    pub following: bool,
}

/// The playground: the feed, and what it drives.
pub struct Playground {
    /// What the page is shown.
    pub feed: Arc<Feed>,
    fake: FakeWechat,
    wire: Wire,
    /// The host's state: the scripts' generation.
    state: Arc<AppState>,
    /// The name the page shows for the account.
    account_name: String,
    /// Where the host serves the scripts' pages (the phone browser's start page).
    host_url: String,
    /// Where the page is served: media sent by users are linked from here.
    self_url: String,
    /// The bot's public address in its settings (`[oauth] public_url`), if any: links to it
    /// open the host's local pages instead.
    site_url: Option<String>,
    /// The simulated users, in the order added.
    users: Mutex<Vec<SimUser>>,
    /// CreateTime and MsgId of each message.
    clock: Clock,
    /// Pairs each message with its reply.
    exchanges: AtomicU64,
}

/// Why the page's request was refused; always a 4xx with a JSON `error` the page shows.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    /// The request is malformed or out of bounds.
    #[error("{0}")]
    BadRequest(String),
    /// The body could not be read as asked (too large, wrong content type, not JSON).
    #[error("{message}")]
    Body {
        /// The status the body extractor chose (413, 415, 400, 422).
        status: StatusCode,
        /// What it said.
        message: String,
    },
    /// No such media or user.
    #[error("{0}")]
    NotFound(String),
}

impl From<JsonRejection> for PlayError {
    fn from(rejection: JsonRejection) -> Self {
        PlayError::Body {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

impl From<BytesRejection> for PlayError {
    fn from(rejection: BytesRejection) -> Self {
        PlayError::Body {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

impl IntoResponse for PlayError {
    fn into_response(self) -> Response {
        let status = match &self {
            PlayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PlayError::Body { status, .. } => *status,
            PlayError::NotFound(_) => StatusCode::NOT_FOUND,
        };
        let message = self.to_string();
        tracing::warn!(
            status = status.as_u16(),
            "playground refused a request: {message}"
        );
        (status, Json(json!({ "error": message }))).into_response()
    }
}

fn bad(message: impl Into<String>) -> PlayError {
    PlayError::BadRequest(message.into())
}

/// `/play/send`'s body.
#[derive(Debug, Deserialize)]
pub struct SendRequest {
    /// The simulated user's OpenID.
    pub user: String,
    /// What they send.
    #[serde(flatten)]
    pub message: Outgoing,
}

/// What `/play/send` answers: the user's message and the reply, as the feed has them.
#[derive(Debug, Serialize)]
pub struct SendAnswer {
    /// The user's message.
    pub sent: Event,
    /// The account's passive reply, or why there is none.
    pub reply: Event,
}

impl Playground {
    /// A playground over a started simulator: `wire` sends to its host, `fake` is its API,
    /// `address` is where the page is served. `first_user` is the first simulated user.
    pub fn new(
        feed: Arc<Feed>,
        sim: &crate::commands::chat::Simulator,
        address: SocketAddr,
        account_name: String,
        first_user: &str,
    ) -> Playground {
        Playground::with_site(feed, sim, address, account_name, first_user, None)
    }

    /// [`Playground::new`], with the bot's configured public address (`[oauth] public_url`),
    /// whose links the page opens on the local host.
    pub fn with_site(
        feed: Arc<Feed>,
        sim: &crate::commands::chat::Simulator,
        address: SocketAddr,
        account_name: String,
        first_user: &str,
        site_url: Option<String>,
    ) -> Playground {
        Playground {
            feed,
            fake: sim.fake.clone(),
            wire: sim.wire.clone(),
            state: sim.host.state.clone(),
            account_name,
            host_url: format!("http://{}", sim.address),
            self_url: format!("http://{address}"),
            site_url: site_url.map(|url| url.trim_end_matches('/').to_string()),
            users: Mutex::new(vec![SimUser {
                openid: first_user.to_string(),
                following: sim.fake.is_follower(first_user),
            }]),
            clock: Clock::default(),
            exchanges: AtomicU64::new(1),
        }
    }

    /// The page's routes.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/", get(index))
            .route("/play/assets/play.js", get(script))
            .route("/play/assets/play.css", get(style))
            // Browsers ask for it; an answer keeps a refusal out of the panel.
            .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
            .route("/play/state", get(state))
            .route("/play/events", get(events))
            .route("/play/feed", get(page_back))
            .route(
                "/play/send",
                post(send).layer(DefaultBodyLimit::max(MAX_SEND_BODY)),
            )
            .route(
                "/play/picture",
                post(picture).layer(DefaultBodyLimit::max(MAX_PICTURE)),
            )
            .route(
                "/play/users",
                post(add_user).layer(DefaultBodyLimit::max(MAX_SEND_BODY)),
            )
            .route(
                "/play/select",
                post(select_user).layer(DefaultBodyLimit::max(MAX_SEND_BODY)),
            )
            .route("/play/media/{media_id}", get(media))
            .fallback(|| async { PlayError::NotFound("no such playground page".into()) })
            .with_state(self)
    }

    /// What a page needs to draw itself from nothing.
    pub fn snapshot(&self) -> Value {
        json!({
            "boot": self.feed.boot.to_string(),
            "account": self.account_name,
            "host_url": self.host_url,
            "site_url": self.site_url,
            "generation": self.state.dispatcher.scripts().generation(),
            "users": *lock(&self.users),
            "menu": self.fake.menu(),
            "last_seq": self.feed.last_seq(),
        })
    }

    fn set_following(&self, openid: &str, following: bool) {
        if following {
            self.fake.follow(openid);
        } else {
            self.fake.unfollow(openid);
        }
        let mut users = lock(&self.users);
        if let Some(user) = users.iter_mut().find(|u| u.openid == openid) {
            user.following = following;
        }
        drop(users);
        self.feed.push(EventBody::UserState {
            user: openid.to_string(),
            following,
        });
    }

    fn known_user(&self, openid: &str) -> Result<(), PlayError> {
        check_openid(openid)?;
        if lock(&self.users).iter().any(|u| u.openid == openid) {
            Ok(())
        } else {
            Err(PlayError::NotFound(format!(
                "no simulated user {openid}: add them first"
            )))
        }
    }

    /// Adds a simulated user (who follows the account, as someone writing to it does);
    /// `None` picks the next free `o_play_user_N`.
    pub fn add_user(&self, openid: Option<String>) -> Result<SimUser, PlayError> {
        let openid = {
            let users = lock(&self.users);
            if users.len() >= MAX_USERS {
                return Err(bad(format!("at most {MAX_USERS} simulated users")));
            }
            let openid = match openid.filter(|o| !o.is_empty()) {
                Some(openid) => openid,
                None => (users.len() + 1..)
                    .map(|n| format!("o_play_user_{n}"))
                    .find(|o| !users.iter().any(|u| &u.openid == o))
                    .unwrap_or_default(),
            };
            check_openid(&openid)?;
            if users.iter().any(|u| u.openid == openid) {
                return Err(bad(format!("{openid} is there already")));
            }
            openid
        };
        lock(&self.users).push(SimUser {
            openid: openid.clone(),
            following: true,
        });
        self.set_following(&openid, true);
        Ok(SimUser {
            openid,
            following: true,
        })
    }

    /// Sends one message as `user`, as WeChat would, and puts it and its reply in the feed.
    /// `media` is the file a picture, voice or video message carries (kept in the fake under
    /// the message's MediaId so `wx.media.get` finds it).
    async fn deliver(
        &self,
        user: &str,
        mut inbound: Inbound,
        mut shown: Value,
        media: Option<(&str, String, String, Vec<u8>)>,
    ) -> SendAnswer {
        // WeChat counts a user in or out before it tells the bot, so `wx.user.info` in the
        // handler already agrees with the event.
        match &inbound {
            Inbound::Subscribe(_) => self.set_following(user, true),
            Inbound::Unsubscribe => self.set_following(user, false),
            _ => {}
        }
        // Pages the user opens from here are signed in as them.
        self.fake.set_oauth_user(user);
        let (create_time, msg_id) = self.clock.next();
        if let Inbound::Image(pic_url) = &mut inbound {
            if pic_url.is_empty() {
                *pic_url = format!("{}/play/media/{}", self.self_url, slash::media_id(msg_id));
            }
        }
        let media = media.or_else(|| {
            inbound
                .sent_media()
                .map(|(kind, name, content_type, bytes)| {
                    (
                        kind,
                        name.to_string(),
                        content_type.to_string(),
                        bytes.to_vec(),
                    )
                })
        });
        if let Some((kind, name, content_type, bytes)) = media {
            let media_id = slash::media_id(msg_id);
            self.fake
                .add_media_as(&media_id, kind, &name, &content_type, &bytes);
            if let Value::Object(map) = &mut shown {
                map.insert("media_id".into(), Value::from(media_id));
            }
        }
        let message = inbound.to_xml(user, ACCOUNT, create_time, msg_id);
        let exchange = self.exchanges.fetch_add(1, Ordering::SeqCst);
        let sent = self.feed.push(EventBody::User {
            user: user.to_string(),
            message: shown,
            exchange,
        });
        let reply = match self.wire.exchange(&message).await {
            Ok(answer) => self.feed.push(EventBody::Reply {
                user: user.to_string(),
                reply: reply::from_reply_xml(&answer.reply),
                via: "passive",
                exchange: Some(exchange),
                raw: Some(Raw {
                    message,
                    query: answer.query,
                    request_body: answer.request_body,
                    response_body: answer.response_body,
                    reply: answer.reply,
                }),
            }),
            Err(e) => self.feed.push(EventBody::Failed {
                user: user.to_string(),
                error: e.to_string(),
                exchange,
            }),
        };
        SendAnswer {
            sent: (*sent).clone(),
            reply: (*reply).clone(),
        }
    }
}

fn with_type(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    let mut response = with_type("text/html; charset=utf-8", INDEX_HTML);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn script() -> Response {
    with_type("text/javascript; charset=utf-8", PLAY_JS)
}

async fn style() -> Response {
    with_type("text/css; charset=utf-8", PLAY_CSS)
}

async fn state(State(pg): State<Arc<Playground>>) -> Json<Value> {
    Json(pg.snapshot())
}

#[derive(Deserialize)]
struct PageBack {
    before: Option<u64>,
    limit: Option<usize>,
}

async fn page_back(
    State(pg): State<Arc<Playground>>,
    query: Result<Query<PageBack>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Event>>, PlayError> {
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    let limit = query.limit.unwrap_or(100).min(MAX_PAGE);
    Ok(Json(
        pg.feed
            .before(query.before.unwrap_or(u64::MAX), limit)
            .iter()
            .map(|e| (**e).clone())
            .collect(),
    ))
}

async fn send(
    State(pg): State<Arc<Playground>>,
    request: Result<Json<SendRequest>, JsonRejection>,
) -> Result<Json<SendAnswer>, PlayError> {
    let Json(request) = request?;
    pg.known_user(&request.user)?;
    let (inbound, shown) = request.message.understand()?;
    Ok(Json(pg.deliver(&request.user, inbound, shown, None).await))
}

#[derive(Deserialize)]
struct PictureQuery {
    user: String,
    #[serde(default)]
    name: Option<String>,
}

async fn picture(
    State(pg): State<Arc<Playground>>,
    query: Result<Query<PictureQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SendAnswer>, PlayError> {
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    pg.known_user(&query.user)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !content_type.starts_with("image/") {
        return Err(PlayError::Body {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "a picture is sent with an image/* content type".into(),
        });
    }
    let body = body?;
    if body.is_empty() {
        return Err(bad("the picture is empty"));
    }
    let name = query.name.unwrap_or_else(|| "photo.jpg".into());
    check_len("the file name", &name, MAX_SHORT)?;
    // `deliver` fills in the PicUrl: the playground's copy of the fake's file.
    let inbound = Inbound::Image(String::new());
    let shown = json!({ "type": "image" });
    Ok(Json(
        pg.deliver(
            &query.user,
            inbound,
            shown,
            Some(("image", name, content_type, body.to_vec())),
        )
        .await,
    ))
}

#[derive(Deserialize)]
struct NewUser {
    #[serde(default)]
    openid: Option<String>,
}

#[derive(Deserialize)]
struct Selected {
    user: String,
}

/// The page switched to `user`: pages it opens from now on sign in as them.
async fn select_user(
    State(pg): State<Arc<Playground>>,
    request: Result<Json<Selected>, JsonRejection>,
) -> Result<StatusCode, PlayError> {
    let Json(request) = request?;
    pg.known_user(&request.user)?;
    pg.fake.set_oauth_user(&request.user);
    Ok(StatusCode::NO_CONTENT)
}

async fn add_user(
    State(pg): State<Arc<Playground>>,
    request: Result<Json<NewUser>, JsonRejection>,
) -> Result<Json<SimUser>, PlayError> {
    let Json(request) = request?;
    Ok(Json(pg.add_user(request.openid)?))
}

/// A file the fake keeps, served so the page can show it: only as a picture, sound or
/// video (anything else is a download), never as a page of this origin.
async fn media(
    State(pg): State<Arc<Playground>>,
    Path(media_id): Path<String>,
) -> Result<Response, PlayError> {
    let (content_type, bytes) = pg
        .fake
        .media_file(&media_id)
        .ok_or_else(|| PlayError::NotFound(format!("no media {media_id}")))?;
    let content_type = content_type
        .filter(|ct| {
            ["image/", "audio/", "video/"]
                .iter()
                .any(|p| ct.starts_with(p))
                && !ct.contains("svg")
        })
        .unwrap_or_else(|| "application/octet-stream".into());
    let content_type = HeaderValue::from_str(&content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox"),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
struct EventsQuery {
    /// The last event id the page has, when it reconnects by itself with a new EventSource
    /// (which sends no `Last-Event-ID`).
    after: Option<String>,
}

/// The stream a page listens to: first, when the page starts over, a `reset` with the whole
/// state and the newest events; otherwise the events it missed; then every event as it
/// happens.
async fn events(
    State(pg): State<Arc<Playground>>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(query.after);
    // Subscribed before the backlog is read: an event pushed in between is in both, and the
    // stream skips what it sent already.
    let live = pg.feed.subscribe();
    let mut stream = Live {
        pg: pg.clone(),
        live,
        pending: std::collections::VecDeque::new(),
        reset: None,
        last: 0,
    };
    stream.start_from(pg.feed.resume(last_event_id.as_deref()));
    let events = futures::stream::unfold(stream, |mut stream| async move {
        let event = stream.next().await?;
        Some((Ok(event), stream))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// One page's stream.
struct Live {
    pg: Arc<Playground>,
    live: tokio::sync::broadcast::Receiver<Arc<Event>>,
    /// Events to send before waiting for more.
    pending: std::collections::VecDeque<Arc<Event>>,
    /// A `reset` to send first.
    reset: Option<SseEvent>,
    /// The last event sent.
    last: u64,
}

impl Live {
    fn start_from(&mut self, resume: Resume) {
        match resume {
            Resume::After(seq) => {
                self.last = seq;
                self.pending.extend(self.pg.feed.after(seq));
            }
            Resume::Reset => {
                let latest = self.pg.feed.latest(INITIAL_EVENTS);
                self.last = latest
                    .first()
                    .map_or(self.pg.feed.last_seq(), |e| e.seq - 1);
                self.reset = Some(
                    SseEvent::default()
                        .event("reset")
                        // A page left open while `play` restarts is back within a second.
                        .retry(RECONNECT_AFTER)
                        .data(self.pg.snapshot().to_string()),
                );
                self.pending.clear();
                self.pending.extend(latest);
            }
        }
    }

    async fn next(&mut self) -> Option<SseEvent> {
        if let Some(reset) = self.reset.take() {
            return Some(reset);
        }
        loop {
            while let Some(event) = self.pending.pop_front() {
                if event.seq > self.last {
                    self.last = event.seq;
                    let data = serde_json::to_string(&*event).unwrap_or_default();
                    return Some(
                        SseEvent::default()
                            .id(self.pg.feed.event_id(event.seq))
                            .data(data),
                    );
                }
            }
            match self.live.recv().await {
                Ok(event) => self.pending.push_back(event),
                // Too slow a page (a script flooding sends): catch up from the ring, or start
                // over when even the ring moved on.
                Err(RecvError::Lagged(_)) => {
                    let id = self.pg.feed.event_id(self.last);
                    let resume = self.pg.feed.resume(Some(&id));
                    self.start_from(resume);
                    if let Some(reset) = self.reset.take() {
                        return Some(reset);
                    }
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
