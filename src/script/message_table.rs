//! An inbound message as the table handlers receive: short names (`type`, `event`, `from`,
//! `to`, `time`, `id`, `content`, `key`) plus every element under its snake_case name, nested
//! elements as tables and `<item>` lists as arrays, so nothing WeChat sends is out of reach.
//! Every [`Field::List`] becomes an array, an empty one included, so the lists WeChat
//! documents (which the parser always makes Lists) are arrays whatever their count.

use std::collections::HashMap;
use std::sync::Mutex;

use mlua::{Lua, LuaString, Result as LuaResult, Table};

use crate::protocol::message::InboundMessage;
use crate::protocol::xml_fields::{snake_case, Field, Fields};

/// Most element names one state keeps interned: WeChat's own are a few dozen; the cap keeps
/// a sender of made-up names from growing the cache without bound (those take the slow path).
const MAX_CACHED_KEYS: usize = 512;

/// Table keys already converted to snake_case and interned in one Lua state, so a message
/// costs neither again for names seen before.
pub struct KeyCache {
    /// Element name as WeChat spells it → its snake_case Lua string.
    names: Mutex<HashMap<String, LuaString>>,
    short: ShortKeys,
}

/// The short names every message table carries.
struct ShortKeys {
    msg_type: LuaString,
    event: LuaString,
    from: LuaString,
    to: LuaString,
    time: LuaString,
    id: LuaString,
    content: LuaString,
    key: LuaString,
}

impl KeyCache {
    /// An empty cache for `lua`'s strings.
    pub fn new(lua: &Lua) -> LuaResult<KeyCache> {
        Ok(KeyCache {
            names: Mutex::new(HashMap::new()),
            short: ShortKeys {
                msg_type: lua.create_string("type")?,
                event: lua.create_string("event")?,
                from: lua.create_string("from")?,
                to: lua.create_string("to")?,
                time: lua.create_string("time")?,
                id: lua.create_string("id")?,
                content: lua.create_string("content")?,
                key: lua.create_string("key")?,
            },
        })
    }

    fn name(
        &self,
        lua: &Lua,
        names: &mut HashMap<String, LuaString>,
        name: &str,
    ) -> LuaResult<LuaString> {
        if let Some(key) = names.get(name) {
            return Ok(key.clone());
        }
        let key = lua.create_string(snake_case(name).as_ref())?;
        if names.len() < MAX_CACHED_KEYS {
            names.insert(name.to_string(), key.clone());
        }
        Ok(key)
    }
}

/// Builds the Lua table for one message.
pub fn message_table(lua: &Lua, keys: &KeyCache, msg: &InboundMessage) -> LuaResult<Table> {
    let t = lua.create_table_with_capacity(0, msg.fields.0.len() + 8)?;
    {
        let mut names = crate::sync::lock(&keys.names);
        fill_fields(lua, keys, &mut names, &t, &msg.fields)?;
    }
    let short = &keys.short;
    t.raw_set(&short.msg_type, msg.msg_type())?;
    if let Some(event) = msg.event() {
        t.raw_set(&short.event, event)?;
    }
    t.raw_set(&short.from, msg.from_user.as_str())?;
    t.raw_set(&short.to, msg.to_user.as_str())?;
    t.raw_set(&short.time, msg.create_time)?;
    // MsgId stays a string: it can exceed what some tools handle as a number.
    if let Some(id) = msg.msg_id() {
        t.raw_set(&short.id, id)?;
    }
    if let Some(content) = msg.content() {
        t.raw_set(&short.content, content)?;
    }
    if let Some(key) = msg.event_key() {
        t.raw_set(&short.key, key)?;
    }
    Ok(t)
}

fn fill_fields(
    lua: &Lua,
    keys: &KeyCache,
    names: &mut HashMap<String, LuaString>,
    t: &Table,
    fields: &Fields,
) -> LuaResult<()> {
    for (name, field) in fields.iter() {
        let key = keys.name(lua, names, name)?;
        t.raw_set(key, field_value(lua, keys, names, field)?)?;
    }
    Ok(())
}

fn field_value(
    lua: &Lua,
    keys: &KeyCache,
    names: &mut HashMap<String, LuaString>,
    field: &Field,
) -> LuaResult<mlua::Value> {
    Ok(match field {
        Field::Text(text) => mlua::Value::String(lua.create_string(text)?),
        Field::Group(fields) => {
            let t = lua.create_table_with_capacity(0, fields.0.len())?;
            fill_fields(lua, keys, names, &t, fields)?;
            mlua::Value::Table(t)
        }
        Field::List(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, field_value(lua, keys, names, item)?)?;
            }
            mlua::Value::Table(t)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> InboundMessage {
        InboundMessage::parse(xml.as_bytes()).unwrap()
    }

    #[test]
    fn cached_names_give_the_same_table_as_fresh_ones() {
        let lua = Lua::new();
        let keys = KeyCache::new(&lua).unwrap();
        let msg = parse(
            "<xml><ToUserName>to</ToUserName><FromUserName>u</FromUserName>\
             <CreateTime>5</CreateTime><MsgType>text</MsgType><Content>hi</Content>\
             <MsgId>42</MsgId><BizMsgMenuId>7</BizMsgMenuId></xml>",
        );
        for _ in 0..2 {
            let t = message_table(&lua, &keys, &msg).unwrap();
            assert_eq!(t.get::<String>("biz_msg_menu_id").unwrap(), "7");
            assert_eq!(t.get::<String>("from_user_name").unwrap(), "u");
            assert_eq!(t.get::<String>("content").unwrap(), "hi");
            assert_eq!(t.get::<String>("id").unwrap(), "42");
            assert_eq!(t.get::<i64>("time").unwrap(), 5);
        }
        assert!(keys.names.lock().unwrap().contains_key("BizMsgMenuId"));
    }

    #[test]
    fn made_up_names_beyond_the_cap_still_reach_the_table() {
        let lua = Lua::new();
        let keys = KeyCache::new(&lua).unwrap();
        let extra: String = (0..MAX_CACHED_KEYS + 10)
            .map(|i| format!("<Made{i}Up>v{i}</Made{i}Up>"))
            .collect();
        let msg = parse(&format!(
            "<xml><ToUserName>to</ToUserName><FromUserName>u</FromUserName>\
             <CreateTime>5</CreateTime><MsgType>text</MsgType>{extra}</xml>"
        ));
        let t = message_table(&lua, &keys, &msg).unwrap();
        let last = MAX_CACHED_KEYS + 9;
        assert_eq!(
            t.get::<String>(format!("made{last}_up")).unwrap(),
            format!("v{last}")
        );
        assert_eq!(keys.names.lock().unwrap().len(), MAX_CACHED_KEYS);
    }
}
