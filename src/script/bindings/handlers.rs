//! `wx.on(kind, [filter], fn)` and `wx.on_start(fn)`: handler registration. Handlers are
//! registered while the scripts load and fixed afterwards, so every message of one load sees
//! the same list. Start-up functions run once per load of the script set, in a coroutine of
//! their own, so unlike the top level they may wait (store, API, HTTP).

use mlua::{Function, Lua, Result as LuaResult, Table, Value};

use super::{caller_location, caller_position, error_at};
use crate::protocol::message::{EventType, InboundMessage, MsgType};
use crate::script::suggest::closest;
use crate::script::LoadWarning;

/// Which messages a handler is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `*`: every message.
    Any,
    /// `event`: every event.
    AnyEvent,
    /// `event.<name>`: one event.
    Event(EventType),
    /// A MsgType other than `event`.
    Message(MsgType),
    /// `late_reply_failed`: a reply that missed the deadline could not be delivered later.
    LateReplyFailed,
    /// `component.authorized` / `component.unauthorized`: an account authorized the open
    /// platform (or changed what it grants), or withdrew; the name after `component.`.
    Component(&'static str),
}

/// The open platform's script events, as `wx.on` takes them.
pub const COMPONENT_EVENTS: [&str; 2] = ["component.authorized", "component.unauthorized"];

impl Selector {
    fn parse(kind: &str) -> Selector {
        let kind = kind.to_ascii_lowercase();
        match kind.as_str() {
            "*" => Selector::Any,
            "late_reply_failed" => Selector::LateReplyFailed,
            "component.authorized" => Selector::Component("authorized"),
            "component.unauthorized" => Selector::Component("unauthorized"),
            "event" => Selector::AnyEvent,
            _ => match kind.strip_prefix("event.") {
                Some(event) => Selector::Event(EventType::from_wire(event)),
                None => Selector::Message(MsgType::from_wire(&kind, None)),
            },
        }
    }

    /// Whether WeChat ever sends this kind; unknown kinds are allowed (WeChat adds types) but
    /// warned about, since `txt` for `text` is the likelier cause.
    pub fn is_known(&self) -> bool {
        match self {
            Selector::Any
            | Selector::AnyEvent
            | Selector::LateReplyFailed
            | Selector::Component(_) => true,
            Selector::Event(e) => !matches!(e, EventType::Other(_)),
            Selector::Message(m) => !matches!(m, MsgType::Other(_)),
        }
    }

    /// Whether a message is of this kind.
    pub fn matches(&self, msg: &InboundMessage) -> bool {
        match self {
            Selector::Any => true,
            Selector::AnyEvent => matches!(msg.kind, MsgType::Event(_)),
            Selector::Event(e) => msg.event_type() == Some(e),
            Selector::Message(m) => msg.kind == *m,
            Selector::LateReplyFailed | Selector::Component(_) => false,
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

/// A `wx.on_start(fn)` registration: start-up work that may wait.
#[derive(Debug, Clone)]
pub struct StartHook {
    /// The Lua function.
    pub func: Function,
    /// `file:line` of the `wx.on_start` call, for logs.
    pub origin: String,
}

/// The handlers of one Lua state, in registration order.
#[derive(Debug, Default)]
pub struct HandlerRegistry {
    /// Registered handlers.
    pub handlers: Vec<Handler>,
    /// `wx.on_start` functions, in registration order.
    pub start: Vec<StartHook>,
    /// Registered web routes (`wx.route`), in registration order.
    pub routes: Vec<super::web::Route>,
    /// Set once loading finished; later `wx.on` and `wx.route` calls are refused.
    pub sealed: bool,
    /// Doubtful registrations (unknown kinds), for `check` and the log.
    pub warnings: Vec<LoadWarning>,
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
            Some(text) if selector == Selector::Message(MsgType::Text) => Some(Filter::Pattern(text)),
            Some(key) if selector.takes_key() => Some(Filter::Key(key.to_str()?.to_string())),
            Some(_) => {
                // `wx.on("txt", "^hi", f)`: the misspelt kind is the mistake to report.
                let misspelt = if selector.is_known() {
                    String::new()
                } else {
                    format!("{}; ", unknown_kind_message(&kind))
                };
                return Err(error_at(
                    lua,
                    format!(
                        "{misspelt}wx.on(\"{kind}\", filter, fn): a filter applies to \"text\" (a Lua pattern on the content) and to events (an exact EventKey) only"
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
            // Collected, not logged here: every Lua state built from the set runs this line,
            // and the pool logs the warnings of a load once.
            let (file, line) = caller_position(lua, 1).unzip();
            registry.warnings.push(LoadWarning {
                file,
                line: line.flatten(),
                message: unknown_kind_message(&kind),
                unknown_kind: Some(kind.clone()),
            });
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
    wx.set("on", on)?;

    let on_start = lua.create_function(|lua, func: Value| {
        let func = match func {
            Value::Function(func) => func,
            other => {
                return Err(error_at(
                    lua,
                    format!("wx.on_start takes a function, not a {}", other.type_name()),
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
                "wx.on_start can only be called while the scripts load (at the top level of a script)",
            ));
        }
        registry.start.push(StartHook { func, origin });
        Ok(())
    })?;
    wx.set("on_start", on_start)
}

/// Every kind `wx.on` knows, as a script writes it.
pub fn known_kinds() -> Vec<String> {
    MsgType::MESSAGE_NAMES
        .iter()
        .map(|k| k.to_string())
        .chain(EventType::NAMES.iter().map(|e| format!("event.{e}")))
        .chain(["event", "*", "late_reply_failed"].map(String::from))
        .chain(COMPONENT_EVENTS.map(String::from))
        .collect()
}

/// The warning about a kind WeChat never sends: the kind likely meant when one is within a
/// typo of it, else where the kinds are listed.
pub fn unknown_kind_message(kind: &str) -> String {
    match closest(kind, known_kinds()) {
        Some(best) => format!(
            "wx.on(\"{kind}\"): WeChat sends no message of this kind (did you mean \"{best}\"?)"
        ),
        None => format!(
            "wx.on(\"{kind}\"): WeChat sends no message of this kind (kinds: {}, event.<name>; see docs/lua-api.md)",
            MsgType::MESSAGE_NAMES.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> InboundMessage {
        InboundMessage::parse(
            format!(
                "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName>\
                 <CreateTime>1</CreateTime>{body}</xml>"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn selectors_match_on_the_kind_enums() {
        let text = msg("<MsgType>TEXT</MsgType><Content>hi</Content>");
        let click = msg("<MsgType>event</MsgType><Event>CLICK</Event>");
        let odd = msg("<MsgType>Hologram</MsgType>");
        let new_event = msg("<MsgType>event</MsgType><Event>Teleport</Event>");
        let bare_event = msg("<MsgType>event</MsgType>");
        let empty_event = msg("<MsgType>event</MsgType><Event></Event>");

        let text_sel = Selector::parse("Text");
        assert_eq!(text_sel, Selector::Message(MsgType::Text));
        assert!(text_sel.matches(&text) && !text_sel.matches(&click));
        let click_sel = Selector::parse("event.click");
        assert_eq!(click_sel, Selector::Event(EventType::Click));
        assert!(click_sel.matches(&click) && !click_sel.matches(&text));
        assert!(Selector::parse("EVENT").matches(&bare_event));
        assert!(!Selector::parse("event").matches(&text));
        // Kinds this version does not know still match by their lowercased name.
        assert!(Selector::parse("hologram").matches(&odd));
        assert!(!Selector::parse("hologram").is_known());
        assert!(Selector::parse("event.teleport").matches(&new_event));
        assert!(!Selector::parse("event.teleport").is_known());
        // `event.` is for an empty Event element, not for an event without one.
        assert!(Selector::parse("event.").matches(&empty_event));
        assert!(!Selector::parse("event.").matches(&bare_event));
        for name in MsgType::MESSAGE_NAMES {
            assert!(Selector::parse(name).is_known(), "{name}");
        }
        for name in EventType::NAMES {
            assert!(
                Selector::parse(&format!("event.{name}")).is_known(),
                "{name}"
            );
        }
    }

    #[test]
    fn an_unknown_kind_names_the_likely_kind_or_where_the_kinds_are() {
        let hint = unknown_kind_message;
        assert!(
            hint("txt").ends_with("(did you mean \"text\"?)"),
            "{}",
            hint("txt")
        );
        assert!(hint("event.subscrib").contains("did you mean \"event.subscribe\"?"));
        assert!(hint("evnt.click").contains("\"event.click\""));
        assert!(hint("Imgae").contains("\"image\""));
        let far = hint("hologram");
        assert!(!far.contains("did you mean"), "{far}");
        assert!(
            !far.contains("templatesendjobfinish"),
            "not the whole list: {far}"
        );
    }
}
