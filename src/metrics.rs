//! Counters and histograms of what the host does, exposed at `GET /metrics` in the Prometheus
//! text format. One process-wide set ([`metrics()`]) so every module records without
//! threading a handle through; a process is one host.
//!
//! Label values come from closed sets the host defines, never from what a request carries:
//! each distinct value is a new series kept for the life of the process. The one exception,
//! the `host` of `wx.http` calls, comes from scripts (the operator's own code) and is capped
//! at [`MAX_HTTP_HOSTS`] values, later hosts counted as `other`.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::protocol::message::{EventType, InboundMessage, MsgType};
use crate::protocol::reply::Reply;

type Labels = Vec<(&'static str, String)>;
/// One label whose value is usually a `&'static str`: the families counted on every message
/// use it, so counting allocates nothing (a `Labels` key costs a `Vec` and a `String`).
type StaticLabel = [(&'static str, Cow<'static, str>); 1];

/// Every metric of the host.
pub struct Metrics {
    registry: Registry,
    messages: CountersBySlot,
    handler_seconds: Histogram,
    replies: CountersBySlot,
    script_errors: Counter,
    deadline_fallbacks: Counter,
    retries_deduplicated: Counter,
    reloads: Family<Labels, Counter>,
    api_calls: Family<Labels, Counter>,
    token_fetches: Counter,
    outbox_depth: Gauge,
    store_errors: Family<Labels, Counter>,
    sends_unknown_outcome: Family<Labels, Counter>,
    http_requests: Family<Labels, Counter>,
    http_seconds: Histogram,
    /// Hosts already used as a label, at most [`MAX_HTTP_HOSTS`].
    http_hosts: Mutex<HashSet<String>>,
    web_requests: Family<Labels, Counter>,
    /// Messages by account name (a closed set: the configured accounts).
    account_messages: Family<Labels, Counter>,
}

/// Distinct `host` label values of `http_requests`; later hosts are `other`.
pub const MAX_HTTP_HOSTS: usize = 100;

/// The `type` label of a message: its MsgType, or `event.<Event>`, when the host knows it by
/// name; `other` and `event.other` for the rest, whatever the sender wrote.
pub fn message_label(msg: &InboundMessage) -> Cow<'static, str> {
    Cow::Borrowed(message_labels()[message_slot(msg)])
}

/// Where a message's `type` label is in [`message_labels`]: the known message kinds, then the
/// known events, then `other`, `event` (an event without an Event) and `event.other`.
fn message_slot(msg: &InboundMessage) -> usize {
    let events = MsgType::MESSAGES.len();
    let other = events + EventType::ALL.len();
    match &msg.kind {
        MsgType::Event(_) if msg.event_type().is_none() => other + 1,
        MsgType::Event(event) => event.position().map_or(other + 2, |at| events + at),
        kind => kind.position().unwrap_or(other),
    }
}

/// Every `type` label in [`message_slot`]'s order, made once for the life of the process (the
/// names are a closed set), so labelling a message allocates nothing.
fn message_labels() -> &'static [&'static str] {
    static LABELS: OnceLock<Vec<&'static str>> = OnceLock::new();
    LABELS.get_or_init(|| {
        let events = EventType::NAMES
            .iter()
            .map(|name| &*Box::leak(format!("event.{name}").into_boxed_str()));
        MsgType::MESSAGE_NAMES
            .iter()
            .copied()
            .chain(events)
            .chain(["other", "event", "event.other"])
            .collect()
    })
}

/// Where a reply's `kind` label is among the replies' counters: [`Reply::KINDS`], then
/// `success` (no reply); past them for anything else, which is then looked up in the family.
fn reply_slot(kind: &str) -> usize {
    match Reply::KINDS.iter().position(|known| *known == kind) {
        Some(at) => at,
        None if kind == "success" => Reply::KINDS.len(),
        None => usize::MAX,
    }
}

/// The counters of a family with one label whose values are a closed set, found by the value's
/// place in that set: each is made in the family the first time it counts, then counting
/// hashes nothing and takes no lock (the family's own lookup does both).
struct CountersBySlot {
    family: Family<StaticLabel, Counter>,
    label: &'static str,
    slots: Box<[OnceLock<Counter>]>,
}

impl CountersBySlot {
    fn new(family: &Family<StaticLabel, Counter>, label: &'static str, values: usize) -> Self {
        CountersBySlot {
            family: family.clone(),
            label,
            slots: (0..values).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Counts one under `value`, whose place in the set is `slot`.
    fn inc(&self, slot: usize, value: &'static str) {
        match self.slots.get(slot) {
            Some(counter) => counter.get_or_init(|| self.counter(value)).inc(),
            None => self.counter(value).inc(),
        };
    }

    fn counter(&self, value: &'static str) -> Counter {
        self.family
            .get_or_create(&[(self.label, Cow::Borrowed(value))])
            .clone()
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("wechat_lua");
        let messages = Family::<StaticLabel, Counter>::default();
        registry.register(
            "messages",
            "Messages received, by type (events as event.<name>)",
            messages.clone(),
        );
        // 100 µs to ~13 s: handlers range from table lookups to slow API calls.
        let handler_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        registry.register(
            "handler_duration_seconds",
            "Time from dispatch to the handler's reply",
            handler_seconds.clone(),
        );
        let replies = Family::<StaticLabel, Counter>::default();
        registry.register(
            "replies",
            "Passive replies sent, by kind (success for none)",
            replies.clone(),
        );
        let script_errors = Counter::default();
        registry.register(
            "script_errors",
            "Handlers that raised an error or returned a bad reply",
            script_errors.clone(),
        );
        let deadline_fallbacks = Counter::default();
        registry.register(
            "deadline_fallbacks",
            "Handlers that missed the reply deadline (answered success, replied later)",
            deadline_fallbacks.clone(),
        );
        let retries_deduplicated = Counter::default();
        registry.register(
            "retries_deduplicated",
            "WeChat retries answered without running the handler again",
            retries_deduplicated.clone(),
        );
        let reloads = Family::<Labels, Counter>::default();
        registry.register(
            "reloads",
            "Script reloads, by outcome (ok, failed)",
            reloads.clone(),
        );
        let api_calls = Family::<Labels, Counter>::default();
        registry.register(
            "api_calls",
            "WeChat API calls, by endpoint and errcode (0 for success)",
            api_calls.clone(),
        );
        let token_fetches = Counter::default();
        registry.register(
            "token_fetches",
            "access_token fetches",
            token_fetches.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "outbox_depth",
            "Sends waiting in the outbox for a retry",
            outbox_depth.clone(),
        );
        let store_errors = Family::<Labels, Counter>::default();
        registry.register(
            "store_errors",
            "Store operations that failed or got no answer in time, by operation",
            store_errors.clone(),
        );
        let sends_unknown_outcome = Family::<Labels, Counter>::default();
        registry.register(
            "sends_unknown_outcome",
            "Sends that may or may not have been delivered and were not sent again (at most once), by endpoint and reason (answer_lost, in_flight_at_stop, key_expired)",
            sends_unknown_outcome.clone(),
        );
        let http_requests = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "wx.http requests, by host (at most 100, then other) and outcome (2xx..5xx or err.kind)",
            http_requests.clone(),
        );
        // 1 ms to ~65 s: loopback calls to the 60 s timeout.
        let http_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "http_request_duration_seconds",
            "Time a wx.http request took, waiting for a slot included",
            http_seconds.clone(),
        );
        let web_requests = Family::<Labels, Counter>::default();
        registry.register(
            "web_requests",
            "Requests to the scripts' wx.route pages, by status (404 when no route has the path)",
            web_requests.clone(),
        );
        let account_messages = Family::<Labels, Counter>::default();
        registry.register(
            "account_messages",
            "Messages received, by account (`default` or an [[accounts]] name)",
            account_messages.clone(),
        );
        Metrics {
            messages: CountersBySlot::new(&messages, "type", message_labels().len()),
            replies: CountersBySlot::new(&replies, "kind", Reply::KINDS.len() + 1),
            registry,
            account_messages,
            web_requests,
            http_requests,
            http_seconds,
            http_hosts: Mutex::new(HashSet::new()),
            handler_seconds,
            script_errors,
            deadline_fallbacks,
            retries_deduplicated,
            reloads,
            api_calls,
            token_fetches,
            outbox_depth,
            store_errors,
            sends_unknown_outcome,
        }
    }

    /// A message arrived; counted under [`message_label`], which it returns (the log line
    /// names the message by it, so the label is found once).
    pub fn message(&self, msg: &InboundMessage) -> &'static str {
        let slot = message_slot(msg);
        let label = message_labels()[slot];
        self.messages.inc(slot, label);
        label
    }

    /// The counter of messages for `account`, looked up once per account (a dispatcher keeps
    /// it), so counting a message allocates nothing.
    pub fn account_messages(&self, account: &str) -> Counter {
        self.account_messages
            .get_or_create(&vec![("account", account.to_string())])
            .clone()
    }

    /// A handler finished (or the deadline passed) after `elapsed`.
    pub fn handled(&self, elapsed: Duration) {
        self.handler_seconds.observe(elapsed.as_secs_f64());
    }

    /// A passive reply of `kind` (or `success`) went out.
    pub fn reply(&self, kind: &'static str) {
        self.replies.inc(reply_slot(kind), kind);
    }

    /// A handler failed.
    pub fn script_error(&self) {
        self.script_errors.inc();
    }

    /// A handler missed the deadline.
    pub fn deadline_fallback(&self) {
        self.deadline_fallbacks.inc();
    }

    /// A retry was answered from the first run.
    pub fn retry_deduplicated(&self) {
        self.retries_deduplicated.inc();
    }

    /// A reload finished.
    pub fn reload(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.reloads
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    /// An API call finished with `errcode` (0 for success).
    pub fn api_call(&self, endpoint: &str, errcode: i64) {
        self.api_calls
            .get_or_create(&vec![
                ("endpoint", endpoint.to_string()),
                ("errcode", errcode.to_string()),
            ])
            .inc();
    }

    /// An access_token was fetched.
    pub fn token_fetch(&self) {
        self.token_fetches.inc();
    }

    /// The outbox holds `depth` sends.
    pub fn set_outbox_depth(&self, depth: usize) {
        self.outbox_depth.set(depth as i64);
    }

    /// A store operation (`op`: `get`, `set_nx`, `outbox_push`…) failed or got no answer.
    pub fn store_error(&self, op: &'static str) {
        self.store_errors
            .get_or_create(&vec![("op", op.to_string())])
            .inc();
    }

    /// A send to `endpoint` may have been delivered and was not sent again, for `reason`
    /// (one of [`crate::api::outbox::unknown_reason`]).
    pub fn send_unknown_outcome(&self, endpoint: &str, reason: &'static str) {
        self.sends_unknown_outcome
            .get_or_create(&vec![
                ("endpoint", endpoint.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc();
    }

    /// A `wx.http` request to `host` ended with `outcome` after `elapsed`.
    pub fn http_request(&self, host: &str, outcome: &str, elapsed: Duration) {
        let host = {
            let mut seen = crate::sync::lock(&self.http_hosts);
            if seen.contains(host) || (seen.len() < MAX_HTTP_HOSTS && seen.insert(host.to_string()))
            {
                host.to_string()
            } else {
                "other".to_string()
            }
        };
        self.http_requests
            .get_or_create(&vec![("host", host), ("outcome", outcome.to_string())])
            .inc();
        self.http_seconds.observe(elapsed.as_secs_f64());
    }

    /// A request offered to the scripts' routes was answered with `status` (a number, so the
    /// label's values are a closed set).
    pub fn web_request(&self, status: u16) {
        self.web_requests
            .get_or_create(&vec![("status", status.to_string())])
            .inc();
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(msg_type: &str, event: Option<&str>) -> InboundMessage {
        let event = event
            .map(|e| format!("<Event><![CDATA[{e}]]></Event>"))
            .unwrap_or_default();
        let xml = format!(
            "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName>\
             <CreateTime>1</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{event}</xml>"
        );
        InboundMessage::parse(xml.as_bytes()).unwrap()
    }

    #[test]
    fn http_hosts_past_the_cap_are_counted_as_other() {
        let m = Metrics::new();
        for i in 0..MAX_HTTP_HOSTS + 5 {
            m.http_request(
                &format!("h{i}.example.com"),
                "2xx",
                Duration::from_millis(3),
            );
        }
        m.http_request("h0.example.com", "timeout", Duration::from_secs(1));
        let text = m.render();
        assert!(
            text.contains(r#"wechat_lua_http_requests_total{host="other",outcome="2xx"} 5"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{host="h0.example.com",outcome="timeout"} 1"#),
            "{text}"
        );
        assert!(!text.contains("h100.example.com"), "{text}");
        assert!(
            text.contains("wechat_lua_http_request_duration_seconds_count 106"),
            "{text}"
        );
    }

    #[test]
    fn messages_and_replies_are_counted_under_their_labels() {
        let m = Metrics::new();
        for (kind, event) in [
            ("text", None),
            ("TEXT", None),
            ("event", Some("click")),
            ("event", None),
            ("event", Some("x-made-up-9f3a")),
            ("x-made-up-9f3a", None),
        ] {
            m.message(&parsed(kind, event));
        }
        for kind in ["text", "success", "success", "transfer_customer_service"] {
            m.reply(kind);
        }
        let text = m.render();
        for line in [
            r#"wechat_lua_messages_total{type="text"} 2"#,
            r#"wechat_lua_messages_total{type="event.click"} 1"#,
            r#"wechat_lua_messages_total{type="event"} 1"#,
            r#"wechat_lua_messages_total{type="event.other"} 1"#,
            r#"wechat_lua_messages_total{type="other"} 1"#,
            r#"wechat_lua_replies_total{kind="text"} 1"#,
            r#"wechat_lua_replies_total{kind="success"} 2"#,
            r#"wechat_lua_replies_total{kind="transfer_customer_service"} 1"#,
        ] {
            assert!(text.contains(line), "no `{line}` in {text}");
        }
        assert!(
            !text.contains(r#"type="image""#),
            "no series before its first count"
        );
    }

    #[test]
    fn message_labels_are_known_names_or_other() {
        assert_eq!(message_label(&parsed("text", None)), "text");
        assert_eq!(message_label(&parsed("TEXT", None)), "text");
        assert_eq!(message_label(&parsed("x-made-up-9f3a", None)), "other");
        assert_eq!(
            message_label(&parsed("event", Some("subscribe"))),
            "event.subscribe"
        );
        assert_eq!(message_label(&parsed("event", Some("SCAN"))), "event.scan");
        assert_eq!(
            message_label(&parsed("event", Some("x-made-up-9f3a"))),
            "event.other"
        );
        assert_eq!(message_label(&parsed("event", None)), "event");
    }
}
