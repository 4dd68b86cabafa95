//! One message to one answer, whatever carried it in: [`Dispatcher::handle`] takes a parsed
//! [`InboundMessage`] and returns the plaintext reply XML, or `None` for `success`. It knows
//! nothing of HTTP or envelopes, so the callback, a second account's callback and the routes
//! of scripts can all hand it messages.
//!
//! The steps, in order:
//! - the customer-service window is noted (a message or a menu click opens it) and the message
//!   is counted in the metrics;
//! - [`dedup`]: the message is claimed, so WeChat's retries run nothing twice and get the first
//!   answer;
//! - [`deadline`]: the Lua handler runs, given until the reply deadline; past it, `success` is
//!   answered and the handler's reply goes out late through a [`LateReplies`] sink ([`late`]),
//!   a refusal for good going back to the scripts' `late_reply_failed` handlers;
//! - the reply is rendered, remembered for retries and returned.

pub mod deadline;
pub mod dedup;
pub mod late;

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::api::KfWindowTracker;
use crate::config::Config;
use crate::protocol::message::{EventType, InboundMessage, MsgType};
use crate::protocol::signature;
use crate::script::error::public_summary;
use crate::script::{LuaPool, Services};

pub use deadline::{LateReplies, LogLateReplies};
pub use dedup::Answer;
use dedup::{Claim, Dedup};

/// Name of the `success` answer in metrics and logs.
const SUCCESS: &str = "success";

/// Handles messages for one set of scripts: dedup, the deadline, late replies, the
/// customer-service window and metrics.
pub struct Dispatcher {
    /// The Lua states handlers run on.
    scripts: Arc<LuaPool>,
    /// Retries of messages already handled or being handled.
    dedup: Arc<Dedup>,
    /// How long a handler may take before `success` is sent for it.
    reply_timeout: Duration,
    /// Where replies that missed the deadline go.
    late: Arc<dyn LateReplies>,
    /// When each user last interacted, which opens the customer-service window.
    kf_window: Arc<KfWindowTracker>,
}

/// The scripts' reload state as `/healthz` shows it: no source text, the file relative to the
/// scripts directory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScriptHealth {
    /// Generation in service.
    pub generation: u64,
    /// Reloads that succeeded.
    pub reloads_ok: u64,
    /// Reloads that were rejected.
    pub reloads_failed: u64,
    /// `file:line` of the last rejected reload, if the last attempt failed.
    pub last_error: Option<String>,
}

impl Dispatcher {
    /// A dispatcher for `scripts` with the settings' deadline and retry cache; late replies go
    /// through customer service when `services` has the WeChat API, to the log otherwise.
    pub fn new(config: &Config, scripts: Arc<LuaPool>, services: &Services) -> Dispatcher {
        Dispatcher {
            scripts,
            dedup: Dedup::new(
                config.store_is_shared().then(|| services.store.clone()),
                config.reply_timeout,
                config.retry_cache_bytes,
            ),
            reply_timeout: config.reply_timeout,
            late: late::for_services(services),
            kf_window: services.kf_window.clone(),
        }
    }

    /// The same dispatcher with its late-reply sink replaced by `wrap(current sink)`, so the
    /// sink can be observed or swapped (`chat` counts late replies still on their way).
    pub fn map_late_replies(
        mut self,
        wrap: impl FnOnce(Arc<dyn LateReplies>) -> Arc<dyn LateReplies>,
    ) -> Dispatcher {
        self.late = wrap(self.late);
        self
    }

    /// The answer to one message: the reply XML, or `None` for `success`. Never fails: a
    /// script error is logged and answered with `success`.
    pub async fn handle(&self, msg: InboundMessage) -> Answer {
        self.note_window(&msg);
        crate::metrics::metrics().message(&msg);
        let span = tracing::info_span!(
            "message",
            msg_type = msg.msg_type(),
            event = msg.event().unwrap_or(""),
            openid = %openid_hash(&msg.from_user),
            handler = tracing::field::Empty,
            outcome = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        );
        self.answer(msg).instrument(span).await
    }

    /// Dedup, the handler within the deadline, and rendering.
    async fn answer(&self, msg: InboundMessage) -> Answer {
        let metrics = crate::metrics::metrics();
        let span = tracing::Span::current();
        let guard = match self.dedup.claim(&msg.dedup_key()).await {
            Claim::First(guard) => guard,
            Claim::Duplicate(answer) => {
                metrics.retry_deduplicated();
                span.record("outcome", "retry");
                tracing::info!("retry of a message already handled: same answer again");
                return answer;
            }
            Claim::StillRunning => {
                metrics.retry_deduplicated();
                span.record("outcome", "retry-while-running");
                tracing::info!("retry while the first delivery still runs: success");
                return None;
            }
        };

        let (to, from) = (msg.from_user.clone(), msg.to_user.clone());
        let started = std::time::Instant::now();
        let handled =
            deadline::handle_within(&self.scripts, &self.late, self.reply_timeout, msg).await;
        let reply = match handled {
            Ok(handled) => {
                span.record("handler", handled.handler.as_deref().unwrap_or("-"));
                handled.reply
            }
            Err(e) => {
                metrics.script_error();
                span.record("outcome", "script-error");
                tracing::error!("script error, answered success: {e}");
                None
            }
        };
        let elapsed = started.elapsed();
        metrics.handled(elapsed);
        let kind = reply.as_ref().map(|r| r.kind()).unwrap_or(SUCCESS);
        metrics.reply(kind);
        span.record("duration_us", elapsed.as_micros() as u64);
        tracing::debug!(reply = kind, "message handled");
        let answer: Answer =
            reply.map(|reply| Arc::from(reply.render(&to, &from, crate::clock::unix_secs())));
        guard.finish(answer.clone()).await;
        answer
    }

    /// Records when the user last interacted, which opens the customer-service window: a
    /// message allows 5 sends within 48 hours; a menu click, subscribe or QR scan, 3 within a
    /// minute. Other events (unsubscribe, location reports, job results…) open nothing.
    fn note_window(&self, msg: &InboundMessage) {
        let now = crate::clock::unix_secs();
        match &msg.kind {
            MsgType::Event(
                EventType::Click
                | EventType::Subscribe
                | EventType::Scan
                | EventType::View
                | EventType::ScancodePush
                | EventType::ScancodeWaitmsg,
            ) => self.kf_window.note_event(&msg.from_user, now),
            MsgType::Event(_) => {}
            _ => self.kf_window.note_message(&msg.from_user, now),
        }
    }

    /// The Lua states this dispatcher runs handlers on (web routes run on the same ones).
    pub fn scripts(&self) -> &Arc<LuaPool> {
        &self.scripts
    }

    /// The scripts' reload state, for `/healthz`.
    pub fn script_health(&self) -> ScriptHealth {
        let status = self.scripts.status();
        ScriptHealth {
            generation: status.generation,
            reloads_ok: status.reloads_ok,
            reloads_failed: status.reloads_failed,
            last_error: status
                .last_error
                .map(|e| public_summary(&e, self.scripts.location())),
        }
    }
}

/// A short, stable, non-reversible tag of an OpenID, so logs can follow one user without
/// holding their identity.
fn openid_hash(openid: &str) -> String {
    signature::sign(&["wechat-lua-log", openid])[..12].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kf_window::{EVENT_WINDOW_QUOTA, MESSAGE_WINDOW_QUOTA};
    use crate::config::Overrides;
    use crate::script::RuntimeOptions;

    fn dispatcher(main: &str) -> (tempfile::TempDir, Dispatcher, Services) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.lua"), main).unwrap();
        let services = Services::in_memory().unwrap();
        let scripts =
            LuaPool::start(dir.path(), RuntimeOptions::default(), 1, services.clone()).unwrap();
        let config = Config::load_with_env(&Overrides::default(), &Default::default()).unwrap();
        let dispatcher = Dispatcher::new(&config, scripts, &services);
        (dir, dispatcher, services)
    }

    fn message(from: &str, kind: &str) -> InboundMessage {
        let body = match kind {
            "text" => "<MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId>".to_string(),
            event => format!("<MsgType>event</MsgType><Event>{event}</Event>"),
        };
        let xml = format!(
            "<xml><ToUserName>gh</ToUserName><FromUserName>{from}</FromUserName><CreateTime>1700000000</CreateTime>{body}</xml>"
        );
        InboundMessage::parse(xml.as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn a_message_or_a_click_opens_the_window_and_other_events_do_not() {
        let (_dir, dispatcher, services) = dispatcher("");
        for (from, kind) in [
            ("u_text", "text"),
            ("u_click", "CLICK"),
            ("u_scan", "SCAN"),
            ("u_gone", "unsubscribe"),
            ("u_where", "LOCATION"),
        ] {
            dispatcher.handle(message(from, kind)).await;
        }
        let remaining = |openid: &str| {
            services
                .kf_window
                .window(openid, crate::clock::unix_secs())
                .remaining
        };
        assert_eq!(remaining("u_text"), MESSAGE_WINDOW_QUOTA);
        assert_eq!(remaining("u_click"), EVENT_WINDOW_QUOTA);
        assert_eq!(remaining("u_scan"), EVENT_WINDOW_QUOTA);
        assert_eq!(remaining("u_gone"), 0);
        assert_eq!(remaining("u_where"), 0);
    }

    #[tokio::test]
    async fn a_retry_gets_the_first_answer_without_running_the_handler_again() {
        let (_dir, dispatcher, _) =
            dispatcher("wx.on('text', function(msg) return 'run ' .. wx.store.incr('runs') end)\n");
        let first = dispatcher.handle(message("u", "text")).await.unwrap();
        let retry = dispatcher.handle(message("u", "text")).await.unwrap();
        assert!(first.contains("run 1"), "{first}");
        assert_eq!(first, retry);
    }
}
