//! An inbound message as the table handlers receive: short names (`type`, `event`, `from`,
//! `to`, `time`, `id`, `content`, `key`, `account`, `appid`) plus every element under its
//! snake_case name, nested elements as tables and `<item>` lists as arrays, so nothing WeChat
//! sends is out of reach. Every [`Field::List`] becomes an array, an empty one included, so
//! the lists WeChat documents (which the parser always makes Lists) are arrays whatever their
//! count.
//!
//! The table is built in one protected call through Lua's C API (`Lua::exec_raw`). Through
//! mlua's safe API every key and value was a protected call and a registry reference of its
//! own, and building the table cost about twice what running the echo handler did (a quarter
//! of `router/plain_text` under `perf`). The keys of common elements and the short names are
//! Lua strings made once per state ([`MessageKeys`]): pushing a name as text costs its
//! snake_case conversion and Lua's hash and lookup of the interned string, about a fifth of
//! the table's cost for a text message.

use std::ffi::c_int;
use std::ptr;

use mlua::{ffi, Lua, Result as LuaResult, Table};

use crate::protocol::message::InboundMessage;
use crate::protocol::xml_fields::{
    common_name_index, snake_case, snake_case_into, Field, Fields, COMMON_NAMES,
};
use crate::script::services::AccountLabel;

/// Element names are converted to snake_case this many bytes at a time, into a buffer on
/// the stack; a longer name is pushed in pieces and joined by Lua.
const NAME_PIECE: usize = 64;

/// A short name of message tables, by its place among [`MessageKeys`]' strings after the
/// common element names.
#[derive(Clone, Copy)]
enum Short {
    Type,
    Event,
    From,
    To,
    Time,
    Id,
    Content,
    Key,
    Account,
    AppId,
}

impl Short {
    /// Every short name, in their places' order.
    const ALL: [Short; 10] = [
        Short::Type,
        Short::Event,
        Short::From,
        Short::To,
        Short::Time,
        Short::Id,
        Short::Content,
        Short::Key,
        Short::Account,
        Short::AppId,
    ];

    /// The key as scripts see it.
    fn name(self) -> &'static str {
        match self {
            Short::Type => "type",
            Short::Event => "event",
            Short::From => "from",
            Short::To => "to",
            Short::Time => "time",
            Short::Id => "id",
            Short::Content => "content",
            Short::Key => "key",
            Short::Account => "account",
            Short::AppId => "appid",
        }
    }
}

/// The keys of every message table, made once per Lua state: the snake_case names of the
/// parser's common element names ([`COMMON_NAMES`], same order) followed by the short names
/// ([`Short::ALL`]), in one array. The strings stay interned for the state's life, and a
/// key is pushed by its index instead of as text.
pub struct MessageKeys(Table);

impl MessageKeys {
    /// Makes the keys in `lua`.
    pub fn new(lua: &Lua) -> LuaResult<MessageKeys> {
        let names = COMMON_NAMES
            .iter()
            .map(|name| snake_case(name))
            .chain(Short::ALL.iter().map(|short| short.name().into()));
        let keys = lua.create_table_with_capacity(COMMON_NAMES.len() + Short::ALL.len(), 0)?;
        for (i, name) in names.enumerate() {
            keys.raw_set(i + 1, lua.create_string(name.as_bytes())?)?;
        }
        Ok(MessageKeys(keys))
    }
}

/// Stack index of the [`MessageKeys`] array while the table is built: `exec_raw`'s argument.
const KEYS: c_int = 1;

/// Builds the Lua table for one message to `account`, with the keys `keys` made in `lua`.
pub fn message_table(
    lua: &Lua,
    keys: &MessageKeys,
    msg: &InboundMessage,
    account: &AccountLabel,
) -> LuaResult<Table> {
    // SAFETY: `push_message` uses only the state `exec_raw` hands it, inside the protected
    // call `exec_raw` makes: a Lua error (out of memory, the stack too deep) longjmps out of
    // it to that call, which returns it as an `Err`. Nothing in `push_message` and what it
    // calls owns memory or needs dropping (borrows of `msg` and `account`, integers, a buffer
    // on the stack), so skipping their frames leaks nothing. The keys array is the call's
    // one argument (at `KEYS`); it removes it and leaves exactly the table on the stack,
    // which `exec_raw` returns.
    unsafe { lua.exec_raw::<Table>(&keys.0, |state| push_message(state, msg, account)) }
}

unsafe fn push_message(state: *mut ffi::lua_State, msg: &InboundMessage, account: &AccountLabel) {
    let optional = OptionalShorts::of(msg);
    ffi::luaL_checkstack(state, 4, ptr::null());
    ffi::lua_createtable(state, 0, table_size(key_count(msg, &optional, account)));
    push_fields(state, &msg.fields);
    // The short names and the account after the message's own fields, so an element named
    // `Type` or `Account` cannot pose as them.
    set_short(state, Short::Type, msg.msg_type());
    if let Some(event) = optional.event {
        set_short(state, Short::Event, event);
    }
    set_short(state, Short::From, &msg.from_user);
    set_short(state, Short::To, &msg.to_user);
    push_short(state, Short::Time);
    ffi::lua_pushinteger(state, msg.create_time);
    ffi::lua_rawset(state, -3);
    // MsgId stays a string: it can exceed what some tools handle as a number.
    if let Some(id) = optional.id {
        set_short(state, Short::Id, id);
    }
    if let Some(content) = optional.content {
        set_short(state, Short::Content, content);
    }
    if let Some(key) = optional.key {
        set_short(state, Short::Key, key);
    }
    set_short(state, Short::Account, &account.name);
    // Set even when absent (nil), so an element named `AppId` does not pose as it either.
    push_short(state, Short::AppId);
    match &account.appid {
        Some(appid) => push_text(state, appid),
        None => ffi::lua_pushnil(state),
    }
    ffi::lua_rawset(state, -3);
    ffi::lua_remove(state, KEYS);
}

/// Pushes the key at `index` (0-based) of the [`MessageKeys`] array.
unsafe fn push_key(state: *mut ffi::lua_State, index: usize) {
    ffi::lua_rawgeti(state, KEYS, index as ffi::lua_Integer + 1);
}

unsafe fn push_short(state: *mut ffi::lua_State, name: Short) {
    push_key(state, COMMON_NAMES.len() + name as usize);
}

/// Sets `table[name] = value` in the table on top of the stack.
unsafe fn set_short(state: *mut ffi::lua_State, name: Short, value: &str) {
    push_short(state, name);
    push_text(state, value);
    ffi::lua_rawset(state, -3);
}

/// The values of the short names a message may lack, each looked up in its fields once
/// (for the table's size and then for the table).
struct OptionalShorts<'m> {
    event: Option<&'m str>,
    id: Option<&'m str>,
    content: Option<&'m str>,
    key: Option<&'m str>,
}

impl<'m> OptionalShorts<'m> {
    fn of(msg: &'m InboundMessage) -> OptionalShorts<'m> {
        OptionalShorts {
            event: msg.event(),
            id: msg.msg_id(),
            content: msg.content(),
            key: msg.event_key(),
        }
    }
}

/// How many keys [`push_message`] sets at most: the table's room, made once. Lua rounds it up
/// to a power of two, so a guess of "ten more" took a text message's table from 16 slots
/// to 32 (twice the memory to clear and collect per message); one too few would make Lua
/// rehash the table on the last key.
fn key_count(msg: &InboundMessage, optional: &OptionalShorts, account: &AccountLabel) -> usize {
    // `type`, `from`, `to`, `time` and `account`, always; the rest when present.
    let present = [
        optional.event.is_some(),
        optional.id.is_some(),
        optional.content.is_some(),
        optional.key.is_some(),
        account.appid.is_some(),
    ];
    msg.fields.len() + 5 + present.iter().filter(|set| **set).count()
}

/// Sets each field of `fields` in the table on top of the stack.
unsafe fn push_fields(state: *mut ffi::lua_State, fields: &Fields) {
    for (name, field) in &fields.0 {
        ffi::luaL_checkstack(state, 3, ptr::null());
        match common_name_index(name) {
            Some(index) => push_key(state, index),
            None => push_snake_case(state, name),
        }
        push_field(state, field);
        ffi::lua_rawset(state, -3);
    }
}

/// Pushes one field's value: a string, a table of its fields, or an array of its items.
unsafe fn push_field(state: *mut ffi::lua_State, field: &Field) {
    match field {
        Field::Text(text) => push_text(state, text),
        Field::Group(fields) => {
            ffi::lua_createtable(state, 0, table_size(fields.len()));
            push_fields(state, fields);
        }
        Field::List(items) => {
            ffi::lua_createtable(state, table_size(items.len()), 0);
            for (i, item) in items.iter().enumerate() {
                ffi::luaL_checkstack(state, 2, ptr::null());
                push_field(state, item);
                ffi::lua_rawseti(state, -2, i as ffi::lua_Integer + 1);
            }
        }
    }
}

/// Pushes the snake_case form of the element name `name`.
unsafe fn push_snake_case(state: *mut ffi::lua_State, name: &str) {
    let bytes = name.as_bytes();
    if !bytes.iter().any(u8::is_ascii_uppercase) {
        return push_text(state, name);
    }
    let mut buf = [0u8; 2 * NAME_PIECE];
    let mut pieces: c_int = 0;
    for start in (0..bytes.len()).step_by(NAME_PIECE) {
        let end = (start + NAME_PIECE).min(bytes.len());
        let len = snake_case_into(bytes, start..end, &mut buf);
        ffi::luaL_checkstack(state, 1, ptr::null());
        ffi::lua_pushlstring(state, buf.as_ptr().cast(), len);
        pieces += 1;
    }
    if pieces > 1 {
        ffi::lua_concat(state, pieces);
    }
}

unsafe fn push_text(state: *mut ffi::lua_State, text: &str) {
    ffi::lua_pushlstring(state, text.as_ptr().cast(), text.len());
}

/// A size hint for `lua_createtable` (only a hint: the parser bounds real sizes far below).
fn table_size(n: usize) -> c_int {
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A message from `u` to `to` at time 5 of type `msg_type`, with `rest` after its head.
    fn message(msg_type: &str, rest: &str) -> InboundMessage {
        let xml = format!(
            "<xml><ToUserName>to</ToUserName><FromUserName>u</FromUserName>\
             <CreateTime>5</CreateTime><MsgType>{msg_type}</MsgType>{rest}</xml>"
        );
        InboundMessage::parse(xml.as_bytes()).unwrap()
    }

    fn account(appid: Option<&str>) -> AccountLabel {
        AccountLabel {
            name: Arc::from("shop"),
            appid: appid.map(Arc::from),
            store_prefix: Arc::from(""),
        }
    }

    #[test]
    fn every_field_under_its_snake_case_name_and_the_short_names() {
        let lua = Lua::new();
        let keys = MessageKeys::new(&lua).unwrap();
        let msg = message(
            "text",
            "<Content>hi</Content>\
             <MsgId>42</MsgId><BizMsgMenuId>7</BizMsgMenuId>",
        );
        // Twice on one state: the second table is built from the strings the first interned.
        for _ in 0..2 {
            let t = message_table(&lua, &keys, &msg, &account(Some("wx1"))).unwrap();
            assert_eq!(t.get::<String>("biz_msg_menu_id").unwrap(), "7");
            assert_eq!(t.get::<String>("from_user_name").unwrap(), "u");
            assert_eq!(t.get::<String>("msg_type").unwrap(), "text");
            assert_eq!(t.get::<String>("type").unwrap(), "text");
            assert_eq!(t.get::<String>("from").unwrap(), "u");
            assert_eq!(t.get::<String>("to").unwrap(), "to");
            assert_eq!(t.get::<String>("content").unwrap(), "hi");
            assert_eq!(t.get::<String>("id").unwrap(), "42");
            assert_eq!(
                t.get::<mlua::Value>("time").unwrap(),
                mlua::Value::Integer(5)
            );
            assert_eq!(t.get::<String>("account").unwrap(), "shop");
            assert_eq!(t.get::<String>("appid").unwrap(), "wx1");
            assert_eq!(t.get::<mlua::Value>("event").unwrap(), mlua::Value::Nil);
        }
    }

    #[test]
    fn each_short_name_has_its_own_key() {
        // A short name is pushed by its place: `ALL` must list them in the enum's order, once.
        for (i, short) in Short::ALL.into_iter().enumerate() {
            assert_eq!(short as usize, i);
        }
        let mut names: Vec<&str> = Short::ALL.iter().map(|short| short.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Short::ALL.len(), "two short names alike");
    }

    #[test]
    fn common_and_other_names_get_the_same_keys() {
        // A name the parser borrowed from its common names and the same name owned (as a
        // made-up name would be) must reach the same key.
        let lua = Lua::new();
        let keys = MessageKeys::new(&lua).unwrap();
        let mut msg = message("text", "<Content>hi</Content><MsgId>1</MsgId>");
        let from_table = |msg: &InboundMessage| {
            let t = message_table(&lua, &keys, msg, &account(None)).unwrap();
            let mut pairs: Vec<(String, String)> = t
                .pairs::<String, mlua::Value>()
                .map(|pair| {
                    let (k, v) = pair.unwrap();
                    (k, format!("{v:?}"))
                })
                .collect();
            pairs.sort();
            pairs
        };
        let borrowed = from_table(&msg);
        assert!(msg
            .fields
            .0
            .iter()
            .all(|(name, _)| crate::protocol::xml_fields::common_name_index(name).is_some()));
        for (name, _) in &mut msg.fields.0 {
            *name = std::borrow::Cow::Owned(name.to_string());
        }
        assert_eq!(from_table(&msg), borrowed);
        assert!(borrowed.iter().any(|(k, _)| k == "msg_type"));
        assert!(borrowed.iter().any(|(k, _)| k == "create_time"));
    }

    #[test]
    fn the_table_is_made_with_room_for_every_key_it_gets() {
        let lua = Lua::new();
        let keys = MessageKeys::new(&lua).unwrap();
        let messages = [
            message("text", "<Content>hi</Content><MsgId>42</MsgId>"),
            message(
                "event",
                "<Event>CLICK</Event><EventKey>k</EventKey><MenuId>3</MenuId>",
            ),
            message("event", "<Event>subscribe</Event>"),
            message(
                "image",
                "<PicUrl>p</PicUrl><MediaId>m</MediaId><MsgId>1</MsgId>\
                 <Type>x</Type><From>y</From><Account>z</Account>",
            ),
        ];
        for msg in &messages {
            for appid in [None, Some("wx1")] {
                let account = account(appid);
                let t = message_table(&lua, &keys, msg, &account).unwrap();
                let keys = t.pairs::<mlua::Value, mlua::Value>().count();
                // Never short (Lua would rehash on the last key), and never a size class
                // too large.
                let room = key_count(msg, &OptionalShorts::of(msg), &account);
                assert!(room >= keys, "{room} < {keys} keys: {:?}", msg.fields);
                assert!(room < 2 * keys, "{room} slots for {keys} keys");
            }
        }
    }

    #[test]
    fn short_names_keep_their_own_text_where_the_element_differs() {
        // `type` and `event` are the parsed kinds, lower case, where the elements keep
        // WeChat's spelling; `id` comes from MsgID when MsgId is absent.
        let lua = Lua::new();
        let keys = MessageKeys::new(&lua).unwrap();
        let msg = message(
            "EVENT",
            "<Event>CLICK</Event><EventKey>k</EventKey><MsgID>9</MsgID>",
        );
        let t = message_table(&lua, &keys, &msg, &account(None)).unwrap();
        assert_eq!(t.get::<String>("type").unwrap(), "event");
        assert_eq!(t.get::<String>("msg_type").unwrap(), "EVENT");
        assert_eq!(t.get::<String>("event").unwrap(), "click");
        assert_eq!(t.get::<String>("event_key").unwrap(), "k");
        assert_eq!(t.get::<String>("key").unwrap(), "k");
        assert_eq!(t.get::<String>("id").unwrap(), "9");
        assert_eq!(t.get::<String>("from").unwrap(), "u");
        // A long text (Lua copies strings over 40 bytes instead of interning them) arrives
        // whole.
        let long = "长".repeat(40);
        let msg = message("text", &format!("<Content>{long}</Content>"));
        let t = message_table(&lua, &keys, &msg, &account(None)).unwrap();
        assert_eq!(t.get::<String>("content").unwrap(), long);
    }

    #[test]
    fn elements_cannot_pose_as_the_short_names_or_the_account() {
        let lua = Lua::new();
        let keys = MessageKeys::new(&lua).unwrap();
        let msg = message(
            "text",
            "<Type>forged</Type>\
             <Account>forged</Account><AppId>forged</AppId><Time>forged</Time>",
        );
        let t = message_table(&lua, &keys, &msg, &account(None)).unwrap();
        assert_eq!(t.get::<String>("type").unwrap(), "text");
        assert_eq!(t.get::<String>("account").unwrap(), "shop");
        assert_eq!(t.get::<mlua::Value>("appid").unwrap(), mlua::Value::Nil);
        assert_eq!(t.get::<i64>("time").unwrap(), 5);
    }

    #[test]
    fn groups_become_tables_and_lists_arrays() {
        let lua = Lua::new();
        let keys = MessageKeys::new(&lua).unwrap();
        let msg = message(
            "event",
            "<Event>scancode_push</Event>\
             <ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>r</ScanResult></ScanCodeInfo>\
             <SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum>a</PicMd5Sum></item>\
             <item><PicMd5Sum>b</PicMd5Sum></item></PicList></SendPicsInfo>",
        );
        let t = message_table(&lua, &keys, &msg, &account(None)).unwrap();
        lua.globals().set("m", t).unwrap();
        let got: String = lua
            .load("return m.event .. ' ' .. m.scan_code_info.scan_type .. ' ' .. #m.send_pics_info.pic_list .. ' ' .. m.send_pics_info.pic_list[2].pic_md5_sum")
            .eval()
            .unwrap();
        assert_eq!(got, "scancode_push qrcode 2 b");
    }

    #[test]
    fn long_and_many_made_up_names_reach_the_table() {
        let lua = Lua::new();
        let keys = MessageKeys::new(&lua).unwrap();
        // Longer than one piece of the name buffer, with a word boundary across pieces.
        let long = format!("{}Name{}Tail", "Abc".repeat(30), "X".repeat(70));
        let extra: String = (0..600)
            .map(|i| format!("<Made{i}Up>v{i}</Made{i}Up>"))
            .collect();
        let msg = message("text", &format!("<{long}>far</{long}>{extra}"));
        let t = message_table(&lua, &keys, &msg, &account(None)).unwrap();
        let key = crate::protocol::xml_fields::snake_case(&long).into_owned();
        assert!(key.len() > 2 * NAME_PIECE, "{key}");
        assert_eq!(t.get::<String>(key).unwrap(), "far");
        assert_eq!(t.get::<String>("made599_up").unwrap(), "v599");
    }

    #[test]
    fn a_state_out_of_memory_is_an_error_not_a_crash() {
        let lua = Lua::new();
        let keys = MessageKeys::new(&lua).unwrap();
        let msg = message(
            "text",
            &format!("<Content>{}</Content>", "x".repeat(200_000)),
        );
        lua.set_memory_limit(lua.used_memory() + 50_000).unwrap();
        let err = message_table(&lua, &keys, &msg, &account(None)).unwrap_err();
        assert!(matches!(err, mlua::Error::MemoryError(_)), "{err:?}");
        // The state is still usable afterwards.
        lua.set_memory_limit(0).unwrap();
        assert!(message_table(&lua, &keys, &msg, &account(None)).is_ok());
    }
}
