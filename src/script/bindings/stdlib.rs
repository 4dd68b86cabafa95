//! The standard library scripts get: `string`, `table`, `math`, `utf8`, `coroutine`, the
//! harmless part of `os`, and `require`/`dofile`/`loadfile` that read only from the scripts
//! snapshot, with the pattern functions of `string` replaced by budgeted ones
//! ([`super::pattern`]). No `io`, no `debug`, no `package` loaders, no binary chunks.

use std::sync::Arc;

use mlua::{Function, Lua, MultiValue, Result as LuaResult, Table, Value};

use super::error_at;
use crate::script::ScriptSources;

/// Functions of `os` that neither touch the system nor end the process.
const OS_KEEP: &[&str] = &["time", "date", "clock", "difftime"];
/// Registry key of the table of modules already required.
const LOADED_KEY: &str = "wechat_lua.loaded";

/// Restricts the globals and installs the snapshot-backed loaders.
pub fn install(lua: &Lua, sources: Arc<ScriptSources>) -> LuaResult<()> {
    // Pattern matching with a step budget, since the C matcher is out of the run limit's reach.
    super::pattern::install(lua)?;
    let globals = lua.globals();
    let os: Table = globals.get("os")?;
    let safe_os = lua.create_table()?;
    for name in OS_KEEP {
        safe_os.set(*name, os.get::<Value>(*name)?)?;
    }
    globals.set("os", safe_os)?;

    // Text chunks only: a binary chunk can crash the VM. Forward `env` only when given,
    // because `load(s, n, m, nil)` would set the chunk's _ENV to nil.
    lua.load(
        r#"
        local load, select = load, select
        _G.load = function(chunk, name, _mode, ...)
            if select('#', ...) > 0 then return load(chunk, name, "t", ...) end
            return load(chunk, name, "t")
        end
        "#,
    )
    .set_name("=wechat-lua")
    .exec()?;

    lua.set_named_registry_value(LOADED_KEY, lua.create_table()?)?;
    lua.set_app_data(ModulesRunning::default());

    let s = sources.clone();
    let require = lua.create_function(move |lua, name: String| require(lua, &s, &name))?;
    globals.set("require", require)?;

    let s = sources.clone();
    let loadfile =
        lua.create_function(
            move |lua, path: String| match compile_file(lua, &s, &path) {
                Ok(f) => Ok((Value::Function(f), Value::Nil)),
                Err(e) => Ok((Value::Nil, Value::String(lua.create_string(e.to_string())?))),
            },
        )?;
    globals.set("loadfile", loadfile)?;

    let s = sources;
    let dofile = lua.create_function(move |lua, path: String| {
        let f = compile_file(lua, &s, &path)?;
        let _running = ModuleRunning::enter(lua);
        f.call::<MultiValue>(())
    })?;
    globals.set("dofile", dofile)?;
    Ok(())
}

fn compile_file(lua: &Lua, sources: &ScriptSources, path: &str) -> LuaResult<Function> {
    let Some(rel) = sources.resolve_file(path) else {
        return Err(error_at(
            lua,
            format!("cannot open {path}: only scripts inside the scripts directory can be loaded"),
        ));
    };
    compile(lua, sources, &rel)
}

/// Compiles a script of the snapshot under its display path, so errors read `file:line`.
pub fn compile(lua: &Lua, sources: &ScriptSources, rel: &str) -> LuaResult<Function> {
    let source = sources
        .get(rel)
        .ok_or_else(|| mlua::Error::RuntimeError(format!("no script {rel}")))?;
    lua.load(source)
        .set_name(format!("@{}", sources.display_path(rel)))
        .into_function()
}

/// How many module chunks (`require`, `dofile`) are running: they run through a host
/// function, a C call no coroutine can yield across, so calls that wait are refused there as
/// at the top level ([`super::waiting_function`]).
#[derive(Default)]
pub struct ModulesRunning(pub std::sync::atomic::AtomicUsize);

/// Counts one module chunk as running while alive.
struct ModuleRunning<'a>(Option<mlua::AppDataRef<'a, ModulesRunning>>);

impl<'a> ModuleRunning<'a> {
    fn enter(lua: &'a Lua) -> ModuleRunning<'a> {
        let running = lua.app_data_ref::<ModulesRunning>();
        if let Some(running) = &running {
            running.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        ModuleRunning(running)
    }
}

impl Drop for ModuleRunning<'_> {
    fn drop(&mut self) {
        if let Some(running) = &self.0 {
            running.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn require(lua: &Lua, sources: &ScriptSources, name: &str) -> LuaResult<Value> {
    let loaded: Table = lua.named_registry_value(LOADED_KEY)?;
    match loaded.get::<Value>(name)? {
        Value::Nil => {}
        Value::LightUserData(_) => {
            return Err(error_at(
                lua,
                format!("module '{name}' requires itself (a require cycle)"),
            ))
        }
        value => return Ok(value),
    }
    let Some(rel) = sources.resolve_module(name) else {
        let base = name.replace('.', "/");
        return Err(error_at(
            lua,
            format!(
                "module '{name}' not found: no {} or {} in the scripts directory",
                sources.display_path(&format!("{base}.lua")),
                sources.display_path(&format!("{base}/init.lua"))
            ),
        ));
    };
    let chunk = compile(lua, sources, &rel)?;
    // A marker while the module runs, so a cycle is reported instead of recursing forever.
    loaded.set(
        name,
        Value::LightUserData(mlua::LightUserData(std::ptr::null_mut())),
    )?;
    let result = {
        let _running = ModuleRunning::enter(lua);
        chunk.call::<Value>(name)
    };
    let value = match result {
        Ok(Value::Nil) => Value::Boolean(true),
        Ok(value) => value,
        Err(e) => {
            loaded.set(name, Value::Nil)?;
            return Err(e);
        }
    };
    loaded.set(name, value.clone())?;
    Ok(value)
}
