//! The `wx` table scripts talk to, built from one `register` function per family, and the
//! restricted standard library they run with.

pub mod handlers;
pub mod log;
pub mod reply;
pub mod stdlib;
pub mod time;

use std::sync::Arc;

use mlua::{Lua, Result as LuaResult, Table};

use super::ScriptSources;

/// Installs the sandboxed standard library and the global `wx` table.
pub fn install(lua: &Lua, sources: Arc<ScriptSources>) -> LuaResult<Table> {
    stdlib::install(lua, sources)?;
    let wx = lua.create_table()?;
    handlers::register(lua, &wx)?;
    reply::register(lua, &wx)?;
    log::register(lua, &wx)?;
    time::register(lua, &wx)?;
    lua.globals().set("wx", &wx)?;
    Ok(wx)
}

/// `file:line` of the Lua code `level` frames up from the running Rust function
/// (1 = the Lua code that called it), so errors point at the user's line.
pub fn caller_location(lua: &Lua, level: usize) -> Option<String> {
    lua.inspect_stack(level, |frame| {
        let source = frame.source();
        let file = source.short_src.as_deref().unwrap_or("?").to_string();
        match frame.current_line() {
            Some(line) => format!("{file}:{line}"),
            None => file,
        }
    })
}

/// A Lua error whose message starts with the caller's `file:line`, as Lua's own errors do.
pub fn error_at(lua: &Lua, message: impl std::fmt::Display) -> mlua::Error {
    match caller_location(lua, 1) {
        Some(location) => mlua::Error::RuntimeError(format!("{location}: {message}")),
        None => mlua::Error::RuntimeError(message.to_string()),
    }
}
