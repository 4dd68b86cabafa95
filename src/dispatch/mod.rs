//! One message to one answer, whatever carried it in: [`Dispatcher::handle`] takes a parsed
//! [`InboundMessage`] and returns the plaintext reply XML, or `None` for `success`. It knows
//! nothing of HTTP or envelopes, so the callback, a second account's callback and the routes
//! of scripts can all hand it messages.
//!
//! The steps, in order:
//! - the customer-service window is noted (a message or a menu click opens it) and the message
//!   is counted in the metrics;
//! - [`dedup`]: the message is claimed, so WeChat's retries run nothing twice and get the first
//!   answer; a claim a stalled store does not confirm is skipped or run as configured;
//! - [`deadline`]: the Lua handler runs, given until the reply deadline (counted from the
//!   request's arrival, so the claim's time comes out of it); past it, `success` is
//!   answered and the handler's reply goes out late through a [`LateReplies`] sink ([`late`]),
//!   a refusal for good going back to the scripts' `late_reply_failed` handlers;
//! - the reply is rendered, remembered for retries and returned.

pub mod deadline;
pub mod dedup;
pub mod late;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::api::KfWindowTracker;
use crate::config::Config;
use crate::protocol::message::{EventType, InboundMessage, MsgType};
use crate::script::error::public_summary;
use crate::script::{LuaPool, Services};

pub use deadline::{LateReplies, LogLateReplies, RunningHandlers};
pub use dedup::Answer;
pub use dedup::Dedup;
use dedup::{Claim, SharedClaims};

/// Name of the `success` answer in metrics and logs.
const SUCCESS: &str = "success";

/// Handles messages for one set of scripts: dedup, the deadline, late replies, the
/// customer-service window and metrics.
pub struct Dispatcher {
    /// The Lua states handlers run on: the account's own, or the shared scripts' pool.
    scripts: Arc<LuaPool>,
    /// The account's services, handed to the pool with each message so the handler acts for
    /// this account whichever pool runs it.
    services: Arc<Services>,
    /// Retries of messages already handled or being handled.
    dedup: Arc<Dedup>,
    /// How long a handler may take before `success` is sent for it.
    reply_timeout: Duration,
    /// Where replies that missed the deadline go.
    late: Arc<dyn LateReplies>,
    /// When each user last interacted, which opens the customer-service window.
    kf_window: Arc<KfWindowTracker>,
    /// Handler runs not finished yet (late ones included), for a shutdown to wait for.
    running: Arc<RunningHandlers>,
    /// Put before every retry-cache key, so the same MsgId at two accounts is two messages
    /// (in the retry cache the accounts share, and in a store shared with other instances);
    /// empty for the `default` account, whose keys are as they were before accounts existed.
    dedup_namespace: String,
    /// The account's name, for the message's log line.
    account: Arc<str>,
    /// `wechat_lua_account_messages_total{account}` of this account.
    account_messages: prometheus_client::metrics::counter::Counter,
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
        Dispatcher::for_account(config, scripts, Arc::new(services.clone()))
    }

    /// A dispatcher answering the messages of the account `services` with `scripts` (its own
    /// pool, or the shared one the account shares with others).
    pub fn for_account(
        config: &Config,
        scripts: Arc<LuaPool>,
        services: Arc<Services>,
    ) -> Dispatcher {
        let dedup = retry_cache(config, &services.store);
        Dispatcher::sharing(config, scripts, services, dedup)
    }

    /// [`Dispatcher::for_account`] remembering answers in `dedup`, the retry cache it shares
    /// with the host's other accounts: keys carry the account's namespace, and
    /// `retry_cache_mb` bounds the instance, not each of a thousand accounts.
    pub fn sharing(
        config: &Config,
        scripts: Arc<LuaPool>,
        services: Arc<Services>,
        dedup: Arc<Dedup>,
    ) -> Dispatcher {
        Dispatcher {
            scripts,
            dedup,
            reply_timeout: config.reply_timeout,
            late: late::for_services(&services),
            kf_window: services.kf_window.clone(),
            running: Arc::default(),
            dedup_namespace: if services.account.is_default() {
                String::new()
            } else {
                format!("{}/", services.account.name)
            },
            account: services.account.name.clone(),
            account_messages: crate::metrics::metrics().account_messages(&services.account.name),
            services,
        }
    }

    /// The services of the account this dispatcher answers for.
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// The retry cache this dispatcher remembers answers in.
    pub fn retry_cache(&self) -> &Arc<Dedup> {
        &self.dedup
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

    /// The answer to one message that arrived just now; see [`Dispatcher::handle_arrived`].
    pub async fn handle(&self, msg: InboundMessage) -> Answer {
        self.handle_arrived(msg, Instant::now()).await
    }

    /// The answer to one message that arrived at `arrived`: the reply XML, or `None` for
    /// `success`, by `arrived` + `reply_timeout` whatever the store or the handler does.
    /// Never fails: a script error is logged and answered with `success`.
    pub async fn handle_arrived(&self, msg: InboundMessage, arrived: Instant) -> Answer {
        self.note_window(&msg);
        let label = crate::metrics::metrics().message(&msg);
        self.account_messages.inc();
        // The metrics label when the host knows the kind (no allocation), else what was sent.
        let kind = match label {
            label if !label.ends_with("other") && label != "event" => {
                std::borrow::Cow::Borrowed(label)
            }
            _ => std::borrow::Cow::Owned(match msg.event() {
                Some(event) => format!("event.{}", event.to_ascii_lowercase()),
                None => msg.msg_type().to_string(),
            }),
        };
        // The tag costs a hash and two strings: only made when a log line will show it.
        let logged = tracing::enabled!(tracing::Level::INFO)
            || tracing::enabled!(target: "wechat_lua::message", tracing::Level::INFO);
        let openid = if logged {
            crate::logging::openid_tag(&msg.from_user)
        } else {
            String::new()
        };
        let span = tracing::info_span!(
            "message",
            msg_type = msg.msg_type(),
            event = msg.event().unwrap_or(""),
            openid = %openid,
            handler = tracing::field::Empty,
            outcome = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let deadline = arrived + self.reply_timeout;
        let (answer, summary) = self.answer(msg, deadline).instrument(span).await;
        // One concise line per message at info, outside the span so it is not prefixed with
        // the span's fields again: what came, who took it, how it ended, how long it took.
        tracing::info!(
            target: "wechat_lua::message",
            parent: None,
            r#type = %kind,
            handler = %summary.handler.as_deref().unwrap_or("-"),
            outcome = %summary.outcome,
            ms = started.elapsed().as_millis() as u64,
            openid = %openid,
            account = %self.account,
            "message handled"
        );
        answer
    }

    /// Dedup, the handler within the deadline, and rendering; with what the log line says.
    async fn answer(&self, msg: InboundMessage, deadline: Instant) -> (Answer, Summary) {
        let metrics = crate::metrics::metrics();
        let span = tracing::Span::current();
        // Named accounts' keys are `<name>/<sender>|…` and names have no `/`; the default
        // account's are the bare key as before accounts existed, unless its sender has a `/`
        // (no real OpenID has): such a key could spell another account's, so it goes under
        // `default/`, a name no other account can have.
        let namespace = if self.dedup_namespace.is_empty() && msg.from_user.contains('/') {
            DEFAULT_ACCOUNT_NAMESPACE
        } else {
            &self.dedup_namespace
        };
        let key = NamespacedKey {
            namespace,
            key: msg.dedup_key_display(),
        };
        let guard = match self.dedup.claim(&key, deadline).await {
            Claim::First(guard) => guard,
            Claim::Duplicate(answer) => {
                metrics.retry_deduplicated();
                span.record("outcome", "retry");
                tracing::debug!("retry of a message already handled: same answer again");
                return (answer, Summary::new(Outcome::Retry, None));
            }
            Claim::StillRunning => {
                metrics.retry_deduplicated();
                span.record("outcome", "retry-while-running");
                tracing::debug!("retry while the first delivery still runs: success");
                return (None, Summary::new(Outcome::RetryWhileRunning, None));
            }
            Claim::Unconfirmed(e) => {
                span.record("outcome", "claim-unconfirmed");
                tracing::warn!(
                    "the shared store did not confirm the claim ({e}): answered success without running the handler; WeChat's retry will claim it (unconfirmed_claim = skip)"
                );
                return (None, Summary::new(Outcome::ClaimUnconfirmed, None));
            }
        };

        // Shared with the handler's task, which borrows it for the run and keeps it for a
        // late reply; the reply below is addressed from it (one allocation, no copies).
        let msg = Arc::new(msg);
        let started = std::time::Instant::now();
        let handled = deadline::handle_within(
            &self.scripts,
            &self.services,
            &self.late,
            &self.running,
            deadline,
            &msg,
        )
        .await;
        let elapsed = started.elapsed();
        let (reply, handler, failed) = match handled {
            Ok(handled) => {
                span.record("handler", handled.handler.as_deref().unwrap_or("-"));
                (handled.reply, handled.handler, false)
            }
            Err(e) => {
                metrics.script_error();
                span.record("outcome", "script-error");
                tracing::error!("script error, answered success: {e}");
                let handler = e.handler().map(str::to_string);
                if let Some(handler) = &handler {
                    span.record("handler", handler.as_str());
                }
                (None, handler, true)
            }
        };
        metrics.handled(elapsed);
        let kind = reply.as_ref().map(|r| r.kind()).unwrap_or(SUCCESS);
        metrics.reply(kind);
        span.record("duration_us", elapsed.as_micros() as u64);
        let outcome = if failed {
            Outcome::ScriptError
        } else if reply.is_none() && handler.is_none() && Instant::now() >= deadline {
            Outcome::Late
        } else if reply.is_none() && handler.is_none() {
            Outcome::NoHandler
        } else {
            Outcome::Reply(kind)
        };
        let answer: Answer = reply.map(|reply| {
            Arc::from(reply.render(&msg.from_user, &msg.to_user, crate::clock::unix_secs()))
        });
        guard.finish(answer.clone()).await;
        (answer, Summary { outcome, handler })
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

    /// Waits until every handler run has finished (late replies handed over) or `until`
    /// comes; returns how many still run then. A shutdown calls it after the server stopped.
    pub async fn wait_for_handlers(&self, until: Instant) -> usize {
        self.running.wait_idle(until).await
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

/// A retry cache under the settings' bounds (`retry_cache_mb`), its claims going through
/// `store` when instances share it (Redis).
pub fn retry_cache(config: &Config, store: &Arc<dyn crate::store::Store>) -> Arc<Dedup> {
    Dedup::new(
        config.store_is_shared().then(|| SharedClaims {
            store: store.clone(),
            op_timeout: config.claim_timeout,
            unconfirmed: config.unconfirmed_claim,
        }),
        config.retry_cache_bytes,
    )
}

/// The retry-cache namespace of a default-account message whose sender has a `/`.
const DEFAULT_ACCOUNT_NAMESPACE: &str = "default/";

/// A message's retry-cache key behind its account's namespace, written out (or hashed) without
/// being built.
struct NamespacedKey<'a> {
    namespace: &'a str,
    key: crate::protocol::message::DedupKey<'a>,
}

impl std::fmt::Display for NamespacedKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.namespace)?;
        self.key.fmt(f)
    }
}

/// How one message ended, for its log line.
struct Summary {
    outcome: Outcome,
    /// `file:line` of the handler that took it.
    handler: Option<String>,
}

impl Summary {
    fn new(outcome: Outcome, handler: Option<String>) -> Summary {
        Summary { outcome, handler }
    }
}

/// The `outcome` field of a message's log line (a value, so writing it allocates nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// `reply:<kind>`; `reply:success` when the handler returned nil.
    Reply(&'static str),
    NoHandler,
    Late,
    ScriptError,
    Retry,
    RetryWhileRunning,
    ClaimUnconfirmed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Reply(kind) => write!(f, "reply:{kind}"),
            Outcome::NoHandler => f.write_str("no-handler"),
            Outcome::Late => f.write_str("late"),
            Outcome::ScriptError => f.write_str("script-error"),
            Outcome::Retry => f.write_str("retry"),
            Outcome::RetryWhileRunning => f.write_str("retry-while-running"),
            Outcome::ClaimUnconfirmed => f.write_str("claim-unconfirmed"),
        }
    }
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

    /// A shared store that never answers, as a frozen Redis.
    struct Frozen;

    fn never<'a, T: Send + 'a>() -> crate::store::StoreFuture<'a, T> {
        Box::pin(std::future::pending())
    }

    impl crate::store::Store for Frozen {
        fn get(&self, _: &str) -> crate::store::StoreFuture<'_, Option<String>> {
            never()
        }
        fn set(&self, _: &str, _: &str, _: Option<Duration>) -> crate::store::StoreFuture<'_, ()> {
            never()
        }
        fn set_nx(
            &self,
            _: &str,
            _: &str,
            _: Option<Duration>,
        ) -> crate::store::StoreFuture<'_, bool> {
            never()
        }
        fn incr(&self, _: &str, _: i64) -> crate::store::StoreFuture<'_, i64> {
            never()
        }
        fn del(&self, _: &str) -> crate::store::StoreFuture<'_, bool> {
            never()
        }
        fn del_if_eq(&self, _: &str, _: &str) -> crate::store::StoreFuture<'_, bool> {
            never()
        }
        fn set_if_eq(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: Option<Duration>,
        ) -> crate::store::StoreFuture<'_, bool> {
            never()
        }
        fn outbox_push(&self, _: &crate::store::OutboxItem) -> crate::store::StoreFuture<'_, ()> {
            never()
        }
        fn outbox_take_due(
            &self,
            _: i64,
            _: usize,
            _: Duration,
        ) -> crate::store::StoreFuture<'_, Vec<crate::store::OutboxItem>> {
            never()
        }
        fn outbox_done(&self, _: &str) -> crate::store::StoreFuture<'_, ()> {
            never()
        }
        fn outbox_retry(
            &self,
            _: &str,
            _: i64,
            _: u32,
            _: &str,
        ) -> crate::store::StoreFuture<'_, ()> {
            never()
        }
        fn outbox_len(&self) -> crate::store::StoreFuture<'_, usize> {
            never()
        }
        fn outbox_oldest(&self) -> crate::store::StoreFuture<'_, Option<i64>> {
            never()
        }
    }

    /// A dispatcher whose shared store never answers, with `unconfirmed_claim = policy`.
    fn on_frozen_store(main: &str, policy: &str) -> (tempfile::TempDir, Dispatcher) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.lua"), main).unwrap();
        let services = Services::new(Arc::new(Frozen));
        let scripts =
            LuaPool::start(dir.path(), RuntimeOptions::default(), 1, services.clone()).unwrap();
        let env: std::collections::HashMap<String, String> = [
            ("WECHAT_STORE", "redis://127.0.0.1:1/0"),
            ("WECHAT_UNCONFIRMED_CLAIM", policy),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        let config = Config::load_with_env(&Overrides::default(), &env).unwrap();
        let dispatcher = Dispatcher::new(&config, scripts, &services);
        (dir, dispatcher)
    }

    /// `elapsed` is `expected`, give or take the timer's 1 ms resolution.
    fn about(elapsed: Duration, expected: Duration) -> bool {
        elapsed >= expected && elapsed <= expected + Duration::from_millis(2)
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_never_answers_costs_the_claim_timeout_not_the_answer() {
        let main = "wx.on('text', function() return 'ran' end)\n";
        let (_dir, skipping) = on_frozen_store(main, "skip");
        let started = Instant::now();
        assert_eq!(skipping.handle(message("u", "text")).await, None);
        assert!(
            about(started.elapsed(), Duration::from_secs(1)),
            "claim_timeout"
        );

        let (_dir, running) = on_frozen_store(main, "run");
        let started = Instant::now();
        let answer = running.handle(message("u", "text")).await.unwrap();
        assert!(answer.contains("ran"), "{answer}");
        assert!(
            about(started.elapsed(), Duration::from_secs(1)),
            "claim_timeout"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_arrival_and_bounds_the_claim() {
        let (_dir, dispatcher) = on_frozen_store(
            "wx.on('text', function() wx.sleep(10) return 'late' end)\n",
            "run",
        );
        // Arrived 4 s ago (a slow body, a slow replay check): 0.5 s are left of 4.5 s, less
        // than the claim's own 1 s bound, and the answer comes when they are up.
        let arrived = Instant::now() - Duration::from_secs(4);
        let answer = dispatcher
            .handle_arrived(message("u", "text"), arrived)
            .await;
        assert_eq!(answer, None);
        assert!(
            about(arrived.elapsed(), Duration::from_millis(4500)),
            "{:?}",
            arrived.elapsed()
        );
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
