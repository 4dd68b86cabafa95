//! The `wx` table scripts talk to, built from one `register` function per family, and the
//! restricted standard library they run with.

pub mod account;
pub mod api;
pub mod crypto;
pub mod encoding;
pub mod handlers;
pub mod http;
pub mod json;
pub mod log;
pub mod pattern;
pub mod reply;
pub mod session;
pub mod stdlib;
pub mod store;
pub mod time;
pub mod web;

use std::sync::Arc;

use mlua::{Function, Lua, Result as LuaResult, Table};

use super::{ScriptSources, Services};

/// Installs the sandboxed standard library and the global `wx` table.
pub fn install(
    lua: &Lua,
    sources: Arc<ScriptSources>,
    services: &Arc<Services>,
) -> LuaResult<Table> {
    stdlib::install(lua, sources)?;
    // Outside a run (loading, `wx.on_start`, web routes) the bindings act for the pool's own
    // account; a run puts its own in for as long as it is resumed.
    lua.set_app_data(super::services::RunAccount(services.clone()));
    let wx = lua.create_table()?;
    handlers::register(lua, &wx)?;
    reply::register(lua, &wx)?;
    log::register(lua, &wx)?;
    time::register(lua, &wx)?;
    store::register(lua, &wx, services)?;
    session::register(lua, &wx, services)?;
    api::register(lua, &wx, &super::services::ActingFor::Run)?;
    account::register(lua, &wx, services)?;
    json::register(lua, &wx)?;
    crypto::register(lua, &wx)?;
    encoding::register(lua, &wx)?;
    http::register(lua, &wx, services)?;
    web::register(lua, &wx)?;
    lua.globals().set("wx", &wx)?;
    Ok(wx)
}

/// `file:line` of the nearest user Lua code at or above `level` frames up from the running Rust
/// function (1 = its caller), skipping C frames and mlua's async glue, so errors point at the
/// user's line also from async functions.
pub fn caller_location(lua: &Lua, level: usize) -> Option<String> {
    let (file, line) = caller_position(lua, level)?;
    Some(match line {
        Some(line) => format!("{file}:{line}"),
        None => file,
    })
}

/// The file and (when Lua knows it) line of [`caller_location`], as values.
pub fn caller_position(lua: &Lua, level: usize) -> Option<(String, Option<u32>)> {
    (level..level + 8).find_map(|level| {
        lua.inspect_stack(level, |frame| {
            let source = frame.source();
            let file = source.short_src.as_deref().unwrap_or("?");
            if source.what == "C" || is_internal_chunk(file) {
                return None;
            }
            let line = frame.current_line().and_then(|l| u32::try_from(l).ok());
            Some((file.to_string(), line))
        })?
    })
}

/// A Lua function that waits for an answer (the store, the WeChat API, `wx.http`,
/// `wx.sleep`): `func`'s future, run in the calling handler's coroutine, which it yields while
/// waiting. Such a call made while the scripts load (at the top level of a script or of a
/// module being `require`d) has no coroutine to yield: it is refused there every time, at the
/// calling line, in `check` as in `serve` (it used to fail only when it really had to wait,
/// so a script loaded or not at random).
pub fn waiting_function<F, A, FR, R>(lua: &Lua, name: &'static str, func: F) -> LuaResult<Function>
where
    F: Fn(Lua, A) -> FR + mlua::MaybeSend + 'static,
    A: mlua::FromLuaMulti,
    FR: std::future::Future<Output = LuaResult<R>> + mlua::MaybeSend + 'static,
    R: mlua::IntoLuaMulti,
{
    lua.create_async_function(move |lua, args: A| {
        let call = refuse_while_loading(&lua, name).map(|()| func(lua, args));
        async move { call?.await }
    })
}

fn refuse_while_loading(lua: &Lua, name: &str) -> mlua::Result<()> {
    let loading = lua
        .app_data_ref::<handlers::HandlerRegistry>()
        .is_some_and(|registry| !registry.sealed);
    let in_module = lua
        .app_data_ref::<stdlib::ModulesRunning>()
        .is_some_and(|running| running.0.load(std::sync::atomic::Ordering::Relaxed) > 0);
    if loading || in_module {
        return Err(error_at(
            lua,
            format!(
                "{name}: only inside a handler or wx.on_start (it waits for an answer, which a \
                 script cannot do while it loads, at the top level of a script or of a required \
                 module)"
            ),
        ));
    }
    Ok(())
}

/// Chunks of the host or of mlua, which users should not see in locations and tracebacks.
pub fn is_internal_chunk(short_src: &str) -> bool {
    short_src.starts_with("__mlua") || short_src == "wechat-lua"
}

/// A Lua error whose message starts with the caller's `file:line`, as Lua's own errors do.
pub fn error_at(lua: &Lua, message: impl std::fmt::Display) -> mlua::Error {
    match caller_location(lua, 1) {
        Some(location) => mlua::Error::RuntimeError(format!("{location}: {message}")),
        None => mlua::Error::RuntimeError(message.to_string()),
    }
}

/// The name Lua's `type()` gives a value (`number` for integers and floats alike), for error
/// messages scripts read.
pub fn lua_type(v: &mlua::Value) -> &'static str {
    match v {
        mlua::Value::Integer(_) | mlua::Value::Number(_) => "number",
        mlua::Value::LightUserData(_) => "userdata",
        other => other.type_name(),
    }
}
