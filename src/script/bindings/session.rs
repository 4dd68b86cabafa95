//! `wx.session(msg)`: a table per user, kept in the store under the account and the user's
//! OpenID, like WeRoBoT's `message.session`. A handler reads and changes it as a plain table;
//! the host saves it when the handler returns (not when it raises an error), and it expires
//! `session_ttl` after the last save. Within one handler run, every call for the same user
//! returns the same table.

use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, Result as LuaResult, Table, Value};

use super::error_at;
use super::json::{json_to_lua, lua_to_json, ObjectNull};
use crate::script::services::Services;
use crate::store::{keys, script_data, Store};

/// The sessions the running handler opened, saved when it returns.
struct Sessions {
    store: Arc<dyn Store>,
    ttl: Duration,
    open: Vec<OpenSession>,
}

/// One session table handed to the running handler.
struct OpenSession {
    /// Its store key.
    key: String,
    /// The table the handler changes.
    table: Table,
    /// `file:line` of the first `wx.session` call, for a save that fails.
    origin: String,
}

/// Adds `wx.session`.
pub fn register(lua: &Lua, wx: &Table, services: &Services) -> LuaResult<()> {
    lua.set_app_data(Sessions {
        store: services.store.clone(),
        ttl: services.session_ttl,
        open: Vec::new(),
    });
    let session = super::waiting_function(lua, "wx.session", |lua, msg: Value| async move {
        let key = session_key(&lua, &msg)?;
        let (store, opened) = {
            let sessions = lua
                .app_data_ref::<Sessions>()
                .ok_or_else(|| mlua::Error::RuntimeError("session registry missing".into()))?;
            let opened = sessions
                .open
                .iter()
                .find(|s| s.key == key)
                .map(|s| s.table.clone());
            (sessions.store.clone(), opened)
        };
        if let Some(table) = opened {
            return Ok(table);
        }
        let origin = super::caller_location(&lua, 1).unwrap_or_else(|| "?".into());
        let stored = store
            .get(&key)
            .await
            .map_err(|e| error_at(&lua, format!("wx.session: store: {e}")))?;
        let table = match stored.as_deref().map(script_data::decode) {
            Some(value @ serde_json::Value::Object(_)) => {
                match json_to_lua(&lua, &value, ObjectNull::Nil)? {
                    Value::Table(t) => t,
                    _ => lua.create_table()?,
                }
            }
            _ => lua.create_table()?,
        };
        if let Some(mut sessions) = lua.app_data_mut::<Sessions>() {
            sessions.open.push(OpenSession {
                key,
                table: table.clone(),
                origin,
            });
        }
        Ok(table)
    })?;
    wx.set("session", session)
}

/// The store key of the session of `msg`'s sender at `msg`'s account.
fn session_key(lua: &Lua, msg: &Value) -> LuaResult<String> {
    let field = |t: &Table, name: &str| match t.raw_get::<Value>(name) {
        Ok(Value::String(s)) if !s.as_bytes().is_empty() => Ok(s.to_string_lossy()),
        _ => Err(error_at(
            lua,
            format!("wx.session(msg): msg.{name} is missing; pass the message a handler received"),
        )),
    };
    match msg {
        Value::Table(t) => Ok(keys::session_key(&field(t, "to")?, &field(t, "from")?)),
        other => Err(error_at(
            lua,
            format!(
                "wx.session takes the message a handler received, not a {}",
                other.type_name()
            ),
        )),
    }
}

/// Forgets the sessions of an earlier run that did not return (an error, a cancelled run), so
/// they are never saved.
pub fn forget(lua: &Lua) {
    if let Some(mut sessions) = lua.app_data_mut::<Sessions>() {
        sessions.open.clear();
    }
}

/// Saves the sessions the handler that just returned opened: an empty table deletes the
/// session. A session that cannot be saved (a value JSON cannot hold, a failing store) is
/// logged with the line that opened it; the handler's reply still goes out.
pub async fn save(lua: &Lua) {
    let (store, ttl, open) = {
        let Some(mut sessions) = lua.app_data_mut::<Sessions>() else {
            return;
        };
        (
            sessions.store.clone(),
            sessions.ttl,
            std::mem::take(&mut sessions.open),
        )
    };
    for session in open {
        let value = match lua_to_json(
            lua,
            "wx.session",
            "the session",
            Value::Table(session.table),
        ) {
            Ok(value) => value,
            Err(e) => {
                tracing::error!(target: "script", "wx.session opened at {} not saved: {e}", session.origin);
                continue;
            }
        };
        let saved = match &value {
            serde_json::Value::Object(fields) if fields.is_empty() => {
                store.del(&session.key).await.map(drop)
            }
            serde_json::Value::Array(items) if items.is_empty() => {
                store.del(&session.key).await.map(drop)
            }
            _ => {
                store
                    .set(&session.key, &script_data::encode(&value), Some(ttl))
                    .await
            }
        };
        if let Err(e) = saved {
            tracing::error!(target: "script", "wx.session opened at {} not saved: store: {e}", session.origin);
        }
    }
}
