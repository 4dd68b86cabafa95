//! `wx.on(kind, [filter], fn)`: handler registration. Handlers are registered while the scripts
//! load and fixed afterwards, so every message of one load sees the same list.

use mlua::{Function, Lua, Result as LuaResult, Table, Value};

use super::{caller_location, error_at};
use crate::protocol::message::InboundMessage;

/// Message types WeChat sends (MsgType, lowercase).
pub const MESSAGE_KINDS: &[&str] = &[
    "text",
    "image",
    "voice",
    "video",
    "shortvideo",
    "location",
    "link",
    "miniprogrampage",
    "file",
];

/// Events WeChat sends (Event, lowercase), usable as `event.<name>`.
pub const EVENT_KINDS: &[&str] = &[
    "subscribe",
    "unsubscribe",
    "scan",
    "location",
    "click",
    "view",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
    "view_miniprogram",
    "masssendjobfinish",
    "templatesendjobfinish",
    "publishjobfinish",
    "subscribe_msg_popup_event",
    "subscribe_msg_change_event",
    "subscribe_msg_sent_event",
    "kf_create_session",
    "kf_close_session",
    "kf_switch_session",
];

/// Which messages a handler is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `*`: every message.
    Any,
    /// `event`: every event.
    AnyEvent,
    /// `event.<name>`: one event (lowercase).
    Event(String),
    /// A MsgType (lowercase).
    Message(String),
    /// `late_reply_failed`: a reply that missed the deadline could not be delivered later.
    LateReplyFailed,
}

impl Selector {
    fn parse(kind: &str) -> Selector {
        let kind = kind.to_ascii_lowercase();
        match kind.as_str() {
            "*" => Selector::Any,
            "late_reply_failed" => Selector::LateReplyFailed,
            "event" => Selector::AnyEvent,
            _ => match kind.strip_prefix("event.") {
                Some(event) => Selector::Event(event.to_string()),
                None => Selector::Message(kind),
            },
        }
    }

    /// Whether WeChat ever sends this kind; unknown kinds are allowed (WeChat adds types) but
    /// warned about, since `txt` for `text` is the likelier cause.
    pub fn is_known(&self) -> bool {
        match self {
            Selector::Any | Selector::AnyEvent | Selector::LateReplyFailed => true,
            Selector::Event(e) => EVENT_KINDS.contains(&e.as_str()),
            Selector::Message(m) => MESSAGE_KINDS.contains(&m.as_str()),
        }
    }

    /// Whether a message is of this kind.
    pub fn matches(&self, msg: &InboundMessage) -> bool {
        match self {
            Selector::Any => true,
            Selector::AnyEvent => msg.msg_type() == "event",
            Selector::Event(e) => msg.msg_type() == "event" && msg.event() == Some(e.as_str()),
            Selector::Message(m) => msg.msg_type() == m,
            Selector::LateReplyFailed => false,
        }
    }

    fn takes_key(&self) -> bool {
        matches!(self, Selector::AnyEvent | Selector::Event(_))
    }
}

/// What, beyond its kind, a message must have for a handler to take it.
#[derive(Debug, Clone)]
pub enum Filter {
    /// A Lua pattern on a text message's Content; its captures become extra arguments.
    Pattern(mlua::LuaString),
    /// An exact EventKey.
    Key(String),
}

/// One registered handler.
#[derive(Debug, Clone)]
pub struct Handler {
    /// The kind as the script wrote it.
    pub kind: String,
    /// Parsed kind.
    pub selector: Selector,
    /// Optional pattern or key.
    pub filter: Option<Filter>,
    /// The Lua function.
    pub func: Function,
    /// `file:line` of the `wx.on` call, for logs and errors.
    pub origin: String,
}

/// The handlers of one Lua state, in registration order.
#[derive(Debug, Default)]
pub struct HandlerRegistry {
    /// Registered handlers.
    pub handlers: Vec<Handler>,
    /// Set once loading finished; later `wx.on` calls are refused.
    pub sealed: bool,
    /// Doubtful registrations (unknown kinds), for `check` and the log.
    pub warnings: Vec<String>,
}

/// Adds `wx.on`.
pub fn register(lua: &Lua, wx: &Table) -> LuaResult<()> {
    lua.set_app_data(HandlerRegistry::default());
    let on = lua.create_function(|lua, (kind, second, third): (Value, Value, Value)| {
        let kind = match kind {
            Value::String(s) => s.to_str()?.to_string(),
            other => {
                return Err(error_at(
                    lua,
                    format!(
                        "wx.on: the first argument is a kind such as \"text\" or \"event.click\", not a {}",
                        other.type_name()
                    ),
                ))
            }
        };
        let (filter, func) = match (second, third) {
            (Value::Function(f), Value::Nil) => (None, f),
            (Value::String(s), Value::Function(f)) => (Some(s), f),
            (a, b) => {
                return Err(error_at(
                    lua,
                    format!(
                        "wx.on(\"{kind}\", ...): expected a function, or a filter string then a function (got {} and {})",
                        a.type_name(),
                        b.type_name()
                    ),
                ))
            }
        };
        let selector = Selector::parse(&kind);
        let filter = match filter {
            None => None,
            Some(text) if selector == Selector::Message("text".into()) => Some(Filter::Pattern(text)),
            Some(key) if selector.takes_key() => Some(Filter::Key(key.to_str()?.to_string())),
            Some(_) => {
                return Err(error_at(
                    lua,
                    format!(
                        "wx.on(\"{kind}\", filter, fn): a filter applies to \"text\" (a Lua pattern on the content) and to events (an exact EventKey) only"
                    ),
                ))
            }
        };
        let origin = caller_location(lua, 1).unwrap_or_else(|| "?".into());
        let mut registry = lua
            .app_data_mut::<HandlerRegistry>()
            .ok_or_else(|| mlua::Error::RuntimeError("handler registry missing".into()))?;
        if registry.sealed {
            return Err(error_at(
                lua,
                "wx.on can only be called while the scripts load (at the top level of a script)",
            ));
        }
        if !selector.is_known() {
            let warning = format!(
                "{origin}: wx.on(\"{kind}\"): WeChat sends no message of this kind (did you mean one of {}, or event.<{}>?)",
                MESSAGE_KINDS.join(", "),
                EVENT_KINDS.join("|")
            );
            tracing::warn!(target: "script", "{warning}");
            registry.warnings.push(warning);
        }
        registry.handlers.push(Handler {
            kind,
            selector,
            filter,
            func,
            origin,
        });
        Ok(())
    })?;
    wx.set("on", on)
}
