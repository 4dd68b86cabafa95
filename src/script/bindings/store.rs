//! `wx.store.get/set/incr/del`: script data kept by the host (the embedded store or Redis), so
//! it is shared by every worker and instance and survives reloads and restarts. Values are
//! strings, numbers, booleans or tables of them, stored as JSON by the converter of `wx.json`
//! (same rules, same errors).

use std::time::Duration;

use mlua::{Lua, Result as LuaResult, Table, Value};

use super::error_at;
use super::json::{json_to_lua, lua_to_json, ObjectNull};
use std::sync::Arc;

use crate::script::services::{ActingFor, Services};
use crate::store::{script_data, StoreError};

/// Longest key accepted, in bytes.
const MAX_KEY_LEN: usize = 512;

fn check_key(lua: &Lua, fname: &str, key: &str) -> LuaResult<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(error_at(
            lua,
            format!("wx.store.{fname}: the key must be 1 to {MAX_KEY_LEN} bytes"),
        ));
    }
    Ok(())
}

/// Whether a call changes the store, which decides what a missing answer means.
#[derive(Clone, Copy)]
enum Call {
    Read,
    Write,
}

/// `err.kind` of a failure: whether the script may simply try again.
fn kind(e: &StoreError, call: Call) -> &'static str {
    match (e, call) {
        // Sent but not answered: a write may have been applied, so a blind retry may apply it
        // twice (an `incr` counted double).
        (StoreError::UnknownOutcome(_), Call::Write) => "unknown_outcome",
        (StoreError::UnknownOutcome(_) | StoreError::Unavailable(_), _) => "unavailable",
        _ => "error",
    }
}

/// `nil, err` for a failing backend, the Lua convention for errors a script may handle.
fn failure(lua: &Lua, e: StoreError, call: Call) -> LuaResult<(Value, Value)> {
    let err = lua.create_table()?;
    err.set("errcode", -2)?;
    err.set("kind", kind(&e, call))?;
    err.set("errmsg", format!("store: {e}"))?;
    Ok((Value::Nil, Value::Table(err)))
}

/// The prefix of `wx.store.global`, shared by every account.
fn global_prefix() -> String {
    format!("{}global:", crate::script::services::STORE_SPACE_MARK)
}

/// Whose keys a family of functions reads and writes.
#[derive(Clone)]
enum Space {
    /// The account the running handler acts for (its label's prefix, read at each call).
    Account,
    /// The keys every account shares.
    Global(Arc<str>),
}

impl Space {
    /// The full store key of `key` in this space, for a call made now.
    fn key(&self, lua: &Lua, key: &str) -> LuaResult<String> {
        let prefix = match self {
            Space::Account => ActingFor::Run.services(lua)?.account.store_prefix.clone(),
            Space::Global(prefix) => prefix.clone(),
        };
        Ok(format!("{prefix}{key}"))
    }
}

/// Adds `wx.store` (the handling account's keys) and `wx.store.global` (keys every account
/// shares), with the same functions.
pub fn register(lua: &Lua, wx: &Table, services: &Services) -> LuaResult<()> {
    let store = family(lua, services, Space::Account)?;
    store.set(
        "global",
        family(lua, services, Space::Global(global_prefix().into()))?,
    )?;
    wx.set("store", store)
}

/// `get`, `set`, `incr` and `del` on the keys under `prefix`.
fn family(lua: &Lua, services: &Services, prefix: Space) -> LuaResult<Table> {
    let store = lua.create_table()?;

    let (s, p) = (services.store.clone(), prefix.clone());
    store.set(
        "get",
        super::waiting_function(lua, "wx.store.get", move |lua, key: String| {
            let (s, p) = (s.clone(), p.clone());
            async move {
                check_key(&lua, "get", &key)?;
                let key = p.key(&lua, &key)?;
                match script_data::get(s.as_ref(), &key).await {
                    Ok(Some(value)) => {
                        Ok((json_to_lua(&lua, &value, ObjectNull::Sentinel)?, Value::Nil))
                    }
                    Ok(None) => Ok((Value::Nil, Value::Nil)),
                    Err(e) => failure(&lua, e, Call::Read),
                }
            }
        })?,
    )?;

    let (s, p) = (services.store.clone(), prefix.clone());
    store.set(
        "set",
        super::waiting_function(lua, "wx.store.set", move |lua, (key, value, ttl): (String, Value, Option<f64>)| {
            let (s, p) = (s.clone(), p.clone());
            async move {
                check_key(&lua, "set", &key)?;
                let key = p.key(&lua, &key)?;
                // Refuses what JSON cannot hold (NaN, ±inf, functions, ...) at the script's line
                // instead of storing `null` and answering true.
                let json = lua_to_json(&lua, "wx.store.set", "the value", value)?;
                let ttl = match ttl {
                    None => None,
                    Some(secs) if secs > 0.0 && secs.is_finite() => Some(Duration::from_secs_f64(secs)),
                    Some(secs) => {
                        return Err(error_at(&lua, format!("wx.store.set: ttl must be a positive number of seconds, not {secs}")))
                    }
                };
                match script_data::set(s.as_ref(), &key, &json, ttl).await {
                    Ok(()) => Ok((Value::Boolean(true), Value::Nil)),
                    Err(e) => failure(&lua, e, Call::Write),
                }
            }
        })?,
    )?;

    let (s, p) = (services.store.clone(), prefix.clone());
    store.set(
        "incr",
        super::waiting_function(
            lua,
            "wx.store.incr",
            move |lua, (key, by): (String, Option<i64>)| {
                let (s, p) = (s.clone(), p.clone());
                async move {
                    check_key(&lua, "incr", &key)?;
                    let key = p.key(&lua, &key)?;
                    match script_data::incr(s.as_ref(), &key, by.unwrap_or(1)).await {
                        Ok(n) => Ok((Value::Integer(n), Value::Nil)),
                        Err(e) => failure(&lua, e, Call::Write),
                    }
                }
            },
        )?,
    )?;

    let (s, p) = (services.store.clone(), prefix.clone());
    store.set(
        "del",
        super::waiting_function(lua, "wx.store.del", move |lua, key: String| {
            let (s, p) = (s.clone(), p.clone());
            async move {
                check_key(&lua, "del", &key)?;
                let key = p.key(&lua, &key)?;
                match script_data::del(s.as_ref(), &key).await {
                    Ok(existed) => Ok((Value::Boolean(existed), Value::Nil)),
                    Err(e) => failure(&lua, e, Call::Write),
                }
            }
        })?,
    )?;

    Ok(store)
}
