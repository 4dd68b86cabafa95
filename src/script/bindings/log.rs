//! `wx.log.debug/info/warn/error(...)` and `print`: script output into the host's log, tagged
//! with the script's file and line.

use mlua::{Lua, MultiValue, Result as LuaResult, Table};

use super::caller_location;

#[derive(Clone, Copy)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// Joins the arguments as Lua's `print` does (tostring, tab-separated).
pub fn join_args(args: &MultiValue) -> String {
    let mut out = String::new();
    for (i, value) in args.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        match value.to_string() {
            Ok(text) => out.push_str(&text),
            Err(_) => out.push_str(value.type_name()),
        }
    }
    out
}

fn emit(lua: &Lua, level: Level, args: &MultiValue) {
    let text = join_args(args);
    let at = caller_location(lua, 1).unwrap_or_default();
    match level {
        Level::Debug => tracing::debug!(target: "script", at = %at, "{text}"),
        Level::Info => tracing::info!(target: "script", at = %at, "{text}"),
        Level::Warn => tracing::warn!(target: "script", at = %at, "{text}"),
        Level::Error => tracing::error!(target: "script", at = %at, "{text}"),
    }
}

/// Adds `wx.log` and routes the global `print` to it.
pub fn register(lua: &Lua, wx: &Table) -> LuaResult<()> {
    let log = lua.create_table()?;
    for (name, level) in [
        ("debug", Level::Debug),
        ("info", Level::Info),
        ("warn", Level::Warn),
        ("error", Level::Error),
    ] {
        let f = lua.create_function(move |lua, args: MultiValue| {
            emit(lua, level, &args);
            Ok(())
        })?;
        log.set(name, f)?;
    }
    wx.set("log", log)?;
    let print = lua.create_function(|lua, args: MultiValue| {
        emit(lua, Level::Info, &args);
        Ok(())
    })?;
    lua.globals().set("print", print)
}
