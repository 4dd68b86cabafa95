//! `wx.log.debug/info/warn/error(...)` and `print`: script output into the host's log, tagged
//! with the script's file and line, and with the account the run acts for when it is not
//! `default` (the shared scripts answer many accounts).

use mlua::{Lua, MultiValue, Result as LuaResult, Table};

use super::caller_location;
use crate::script::services::RunAccount;

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
    let account = lua
        .app_data_ref::<RunAccount>()
        .map(|run| run.0.account.clone())
        .filter(|account| !account.is_default());
    match (level, account) {
        (Level::Debug, None) => tracing::debug!(target: "script", at = %at, "{text}"),
        (Level::Info, None) => tracing::info!(target: "script", at = %at, "{text}"),
        (Level::Warn, None) => tracing::warn!(target: "script", at = %at, "{text}"),
        (Level::Error, None) => tracing::error!(target: "script", at = %at, "{text}"),
        (Level::Debug, Some(a)) => {
            tracing::debug!(target: "script", at = %at, account = %a.name, "{text}")
        }
        (Level::Info, Some(a)) => {
            tracing::info!(target: "script", at = %at, account = %a.name, "{text}")
        }
        (Level::Warn, Some(a)) => {
            tracing::warn!(target: "script", at = %at, account = %a.name, "{text}")
        }
        (Level::Error, Some(a)) => {
            tracing::error!(target: "script", at = %at, account = %a.name, "{text}")
        }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::script::Services;

    /// A log sink tests can read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The log line `wx.log.info("hi")` writes while the run acts for `account`.
    fn line_for(account: &str) -> String {
        let lua = Lua::new();
        let services = Services::in_memory().unwrap().for_account(account, None);
        lua.set_app_data(RunAccount(Arc::new(services)));
        let wx = lua.create_table().unwrap();
        register(&lua, &wx).unwrap();
        lua.globals().set("wx", wx).unwrap();
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            lua.load("wx.log.info('hi')").exec().unwrap();
        });
        let text = captured.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn lines_name_the_account_unless_it_is_the_default() {
        let shop = line_for("shop");
        assert!(
            shop.contains("account=shop") && shop.contains("hi"),
            "{shop}"
        );
        let default = line_for(crate::config::DEFAULT_ACCOUNT);
        assert!(!default.contains("account="), "{default}");
        assert!(default.contains("hi"), "{default}");
    }
}
