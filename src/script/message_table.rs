//! An inbound message as the table handlers receive: short names (`type`, `event`, `from`,
//! `to`, `time`, `id`, `content`, `key`) plus every element under its snake_case name, nested
//! elements as tables and `<item>` lists as arrays, so nothing WeChat sends is out of reach.

use mlua::{Lua, Result as LuaResult, Table};

use crate::protocol::message::{snake_case, Field, Fields, InboundMessage};

/// Builds the Lua table for one message.
pub fn message_table(lua: &Lua, msg: &InboundMessage) -> LuaResult<Table> {
    let t = lua.create_table_with_capacity(0, msg.fields.0.len() + 8)?;
    fill_fields(lua, &t, &msg.fields)?;
    t.raw_set("type", msg.msg_type())?;
    if let Some(event) = msg.event() {
        t.raw_set("event", event)?;
    }
    t.raw_set("from", msg.from_user.as_str())?;
    t.raw_set("to", msg.to_user.as_str())?;
    t.raw_set("time", msg.create_time)?;
    // MsgId stays a string: it can exceed what some tools handle as a number.
    if let Some(id) = msg.msg_id() {
        t.raw_set("id", id)?;
    }
    if let Some(content) = msg.content() {
        t.raw_set("content", content)?;
    }
    if let Some(key) = msg.event_key() {
        t.raw_set("key", key)?;
    }
    Ok(t)
}

fn fill_fields(lua: &Lua, t: &Table, fields: &Fields) -> LuaResult<()> {
    for (name, field) in fields.iter() {
        t.raw_set(snake_case(name).as_ref(), field_value(lua, field)?)?;
    }
    Ok(())
}

fn field_value(lua: &Lua, field: &Field) -> LuaResult<mlua::Value> {
    Ok(match field {
        Field::Text(text) => mlua::Value::String(lua.create_string(text)?),
        Field::Group(fields) => {
            let t = lua.create_table_with_capacity(0, fields.0.len())?;
            fill_fields(lua, &t, fields)?;
            mlua::Value::Table(t)
        }
        Field::List(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, field_value(lua, item)?)?;
            }
            mlua::Value::Table(t)
        }
    })
}
