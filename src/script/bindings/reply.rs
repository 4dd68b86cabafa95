//! `wx.reply.*`: constructors of passive replies. They return plain tables (so a literal
//! `{type="image", media_id=...}` works the same) and check them at once, so a mistake is
//! reported at the script line that made it.

use mlua::{Lua, Result as LuaResult, Table, Value};

use super::error_at;
use crate::script::reply_value::reply_from_lua;

fn checked(lua: &Lua, table: Table) -> LuaResult<Table> {
    match reply_from_lua(&Value::Table(table.clone())) {
        Ok(_) => Ok(table),
        Err(message) => Err(error_at(lua, message)),
    }
}

fn typed(lua: &Lua, kind: &str, fields: Option<Table>) -> LuaResult<Table> {
    let out = lua.create_table()?;
    if let Some(fields) = fields {
        for pair in fields.pairs::<Value, Value>() {
            let (k, v) = pair?;
            out.raw_set(k, v)?;
        }
    }
    out.raw_set("type", kind)?;
    Ok(out)
}

/// Adds `wx.reply`.
pub fn register(lua: &Lua, wx: &Table) -> LuaResult<()> {
    let reply = lua.create_table()?;
    reply.set(
        "text",
        lua.create_function(|lua, content: Value| {
            let t = typed(lua, "text", None)?;
            t.raw_set("content", content)?;
            checked(lua, t)
        })?,
    )?;
    for kind in ["image", "voice"] {
        reply.set(
            kind,
            lua.create_function(move |lua, media_id: Value| {
                let t = typed(lua, kind, None)?;
                t.raw_set("media_id", media_id)?;
                checked(lua, t)
            })?,
        )?;
    }
    for kind in ["video", "music"] {
        reply.set(
            kind,
            lua.create_function(move |lua, fields: Value| match fields {
                Value::Table(fields) => checked(lua, typed(lua, kind, Some(fields))?),
                other => Err(error_at(
                    lua,
                    format!(
                        "wx.reply.{kind} takes a table of fields, not a {}",
                        other.type_name()
                    ),
                )),
            })?,
        )?;
    }
    reply.set(
        "news",
        lua.create_function(|lua, articles: Value| {
            let t = typed(lua, "news", None)?;
            t.raw_set("articles", articles)?;
            checked(lua, t)
        })?,
    )?;
    reply.set(
        "transfer",
        lua.create_function(|lua, kf_account: Option<String>| {
            let t = typed(lua, "transfer_customer_service", None)?;
            t.raw_set("kf_account", kf_account)?;
            checked(lua, t)
        })?,
    )?;
    wx.set("reply", reply)
}
