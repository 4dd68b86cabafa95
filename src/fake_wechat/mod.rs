//! A fake WeChat API server (api.weixin.qq.com) for tests, `chat` and local prototyping,
//! laid out like [`crate::api`]: one file per API family, each adding its endpoints as axum
//! routes, over the shared state and request pipeline of [`state`].
//!
//! It answers the endpoints the [`crate::api`] module uses with the JSON shapes and errcodes
//! of the WeChat documentation, issues access_tokens with `expires_in`, records every call
//! (method, path, query without the access_token, JSON body or multipart parts) with the
//! answer it got, and every message that reached a user, and can be told to misbehave: fail
//! the next N calls of a path with an errcode, invalidate or expire tokens, handle calls
//! slowly, or handle them at once and answer late (the ambiguous failure: delivered, yet the
//! caller timed out).
//!
//! Idempotency keys work as WeChat documents them: a template send repeating an openid and
//! `client_msg_id` within 10 minutes is not delivered again (WeChat does not document the
//! answer; the fake answers ok with the first send's msgid), and a mass send repeating a
//! `clientmsgid` within 24 hours is refused with 45065 and the first send's msg_id.
//!
//! Token semantics follow the documentation: `GET /cgi-bin/token` issues a new token on every
//! call (the previous one stays valid for 5 more minutes); `POST /cgi-bin/stable_token` in
//! normal mode hands back the current token until less than 5 minutes remain, and with
//! `force_refresh: true` always issues a new one and revokes the previous one. Calls with no
//! token get 41001, an unknown or invalidated token 40001, an expired token 42001. Unknown
//! paths get HTTP 404 with errcode 40066 ("invalid url"). Token lifetimes are measured on
//! tokio's clock, so a test with paused time can let tokens expire without waiting.
//!
//! It also serves WeChat's 网页授权 sign-in page (`/connect/oauth2/authorize`, on
//! open.weixin.qq.com for real), which signs in its current user
//! ([`FakeWechat::set_oauth_user`]; `chat` sets its own) without asking and redirects back
//! with a single-use code, so pages can be developed without an account.
//!
//! As an open platform (第三方平台, [`FakeWechat::component_setup`]) it serves the component
//! endpoints with rotating refresh tokens and the authorization page, and pushes tickets and
//! authorization events to a host as WeChat does (see `component.rs`).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use wechat_lua::fake_wechat::FakeWechat;
//! let (fake, base_url) = FakeWechat::start().await?;
//! fake.fail_next("/cgi-bin/message/custom/send", -1, 1);
//! // point a WechatClient at base_url with fake.appid() / fake.secret() ...
//! # Ok(()) }
//! ```

mod component;
mod kf;
mod mass;
mod material;
mod media;
mod menu;
mod oauth;
mod qrcode;
mod state;
mod subscribe;
mod tags;
mod template;
mod ticket;
mod token;
mod user;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::middleware;
use axum::Router;
use tokio::time::Instant;

pub use component::DEFAULT_AUTHORIZER;
pub use oauth::DEFAULT_OAUTH_USER;
use state::FakeState;
pub use state::{RecordedAnswer, RecordedCall, RecordedPart};

/// AppID the fake accepts by default.
pub const FAKE_APPID: &str = "wx0000000000fake01";
/// AppSecret the fake accepts by default.
pub const FAKE_SECRET: &str = "fakesecret0000000000000000000000";
/// How many answered calls a [`FakeWechat::watch_calls`] watcher may fall behind.
const CALL_WATCH_CAPACITY: usize = 1024;
/// How long an issued token lives by default (as on WeChat).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(7200);

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
            state: Arc::new(Mutex::new(FakeState::new(appid, secret))),
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

    /// The fake as an axum `Router`, for in-process tests. Every call is recorded (and delayed
    /// or failed when told to); every endpoint but the two token endpoints and 网页授权's
    /// wants a valid access_token; a path no family routes answers 40066.
    pub fn router(&self) -> Router {
        let with_token = Router::new()
            .merge(kf::routes())
            .merge(mass::routes())
            .merge(template::routes())
            .merge(media::routes())
            .merge(material::routes())
            .merge(menu::routes())
            .merge(user::routes())
            .merge(tags::routes())
            .merge(qrcode::routes())
            .merge(ticket::routes())
            .merge(subscribe::routes())
            .route_layer(middleware::from_fn_with_state(
                self.clone(),
                state::require_token,
            ));
        Router::new()
            .merge(token::routes())
            .merge(oauth::routes())
            .merge(component::routes())
            .merge(with_token)
            .fallback(state::unknown_path)
            .layer(middleware::from_fn_with_state(self.clone(), state::record))
            .with_state(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A panicking test thread must not wedge every later call.
        crate::sync::lock(&self.state)
    }

    /// The AppID this fake accepts.
    pub fn appid(&self) -> String {
        self.lock().appid.clone()
    }

    /// The AppSecret this fake accepts.
    pub fn secret(&self) -> String {
        self.lock().secret.clone()
    }

    /// Serves one more account, `appid` with `secret`: its tokens are its own, everything
    /// else is shared with the fake's first account. Each recorded call names the appid its
    /// token was issued to ([`RecordedCall::appid`]).
    pub fn add_app(&self, appid: &str, secret: &str) {
        self.lock()
            .other_apps
            .insert(appid.to_string(), secret.to_string());
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

    /// How many calls were received since the fake started (forgotten ones included).
    pub fn call_count(&self) -> usize {
        let s = self.lock();
        s.cleared_calls + s.calls.len()
    }

    /// Every call from now on, sent once answered (with [`RecordedCall::answer`] set). A
    /// watcher that falls more than `capacity` calls behind is told it lagged
    /// (`RecvError::Lagged`) and can catch up from [`FakeWechat::calls`].
    pub fn watch_calls(&self) -> tokio::sync::broadcast::Receiver<RecordedCall> {
        let mut s = self.lock();
        match &s.call_watchers {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = tokio::sync::broadcast::channel(CALL_WATCH_CAPACITY);
                s.call_watchers = Some(sender);
                receiver
            }
        }
    }

    /// A temporary media file or material the fake keeps: its content type (when sent) and
    /// bytes, as `media/get` would hand them back.
    pub fn media_file(&self, media_id: &str) -> Option<(Option<String>, Vec<u8>)> {
        self.lock()
            .media
            .get(media_id)
            .map(|m| (m.content_type.clone(), m.data.clone()))
    }

    /// The tag ids `openid` carries (`tags/members/batchtagging`), for whom a mass send by
    /// tag reaches.
    pub fn tags_of(&self, openid: &str) -> Vec<i64> {
        self.lock()
            .user_tags
            .get(openid)
            .cloned()
            .unwrap_or_default()
    }

    /// Forget the recorded calls.
    pub fn clear_calls(&self) {
        let mut s = self.lock();
        s.cleared_calls += s.calls.len();
        s.calls.clear();
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

    /// Wait `dur` before handling each call of `path` (a caller that gives up first leaves it
    /// unhandled).
    pub fn delay(&self, path: &str, dur: Duration) {
        self.lock().delays.insert(path.to_string(), dur);
    }

    /// Handle each call of `path` at once but hold its answer back for `dur` (`Duration::ZERO`
    /// to stop): a send that is delivered although the caller times out waiting, the ambiguous
    /// failure WeChat shows when it is slow.
    pub fn delay_answer(&self, path: &str, dur: Duration) {
        let mut s = self.lock();
        if dur.is_zero() {
            s.answer_delays.remove(path);
        } else {
            s.answer_delays.insert(path.to_string(), dur);
        }
    }

    /// The bodies of the messages sent to `path` that reached their users: customer-service
    /// messages WeChat accepted, template and mass sends not deduplicated by their key.
    pub fn delivered(&self, path: &str) -> Vec<serde_json::Value> {
        self.lock()
            .delivered
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, body)| body.clone())
            .collect()
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

    /// Keep a temporary media file as if a user had sent it (the `MediaId` of an image or
    /// voice message), so `media/get` hands back these bytes; returns its media_id.
    pub fn add_media(&self, kind: &str, filename: &str, content_type: &str, data: &[u8]) -> String {
        media::new_media_id(
            &mut self.lock(),
            kind,
            Some(filename.to_string()),
            Some(content_type.to_string()),
            data.to_vec(),
        )
    }

    /// Keep a temporary media file under `media_id`, the `MediaId` a message from a user
    /// carries (the chat makes its own), so `media/get` hands back these bytes as WeChat
    /// does for three days.
    pub fn add_media_as(
        &self,
        media_id: &str,
        kind: &str,
        filename: &str,
        content_type: &str,
        data: &[u8],
    ) {
        media::keep_media_as(
            &mut self.lock(),
            media_id,
            kind,
            Some(filename.to_string()),
            Some(content_type.to_string()),
            data.to_vec(),
        );
    }

    /// `openid` follows the account (as after a `subscribe` event): `user/info` answers
    /// `subscribe: 1` for it.
    pub fn follow(&self, openid: &str) {
        let mut s = self.lock();
        if !s.followers.iter().any(|f| f == openid) {
            s.followers.push(openid.to_string());
        }
    }

    /// `openid` stops following (as after an `unsubscribe` event): `user/info` answers
    /// `subscribe: 0`, and its tags are dropped as WeChat drops them.
    pub fn unfollow(&self, openid: &str) {
        let mut s = self.lock();
        s.followers.retain(|f| f != openid);
        s.user_tags.remove(openid);
    }

    /// Whether `openid` follows the account.
    pub fn is_follower(&self, openid: &str) -> bool {
        self.lock().followers.iter().any(|f| f == openid)
    }

    /// Adds a template with exactly this `template_id` (as if added in the 公众平台 console),
    /// so `message/template/send` accepts it; `false` when it was there already.
    pub fn add_template(&self, template_id: &str, title: &str) -> bool {
        let mut s = self.lock();
        if s.templates.iter().any(|t| t["template_id"] == template_id) {
            return false;
        }
        s.templates.push(serde_json::json!({
            "template_id": template_id, "title": title,
            "primary_industry": "IT科技", "deputy_industry": "互联网|电子商务",
            "content": "{{first.DATA}}\n{{keyword1.DATA}}\n{{remark.DATA}}", "example": ""
        }));
        true
    }

    /// The template_ids of the account's templates, with their titles, in the order added.
    pub fn templates(&self) -> Vec<(String, String)> {
        self.lock()
            .templates
            .iter()
            .map(|t| {
                let field = |k: &str| t[k].as_str().unwrap_or_default().to_string();
                (field("template_id"), field("title"))
            })
            .collect()
    }

    /// Sets the menu as `menu/create` would (without checking it).
    pub fn set_menu(&self, menu: serde_json::Value) {
        self.lock().menu = Some(menu);
    }

    /// The menu the account has, as `menu/create` took it.
    pub fn menu(&self) -> Option<serde_json::Value> {
        self.lock().menu.clone()
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

#[cfg(test)]
mod tests;
