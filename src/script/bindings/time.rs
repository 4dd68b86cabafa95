//! `wx.sleep(seconds)`: waits without holding up other messages (the handler yields).

use std::time::Duration;

use mlua::{Lua, Result as LuaResult, Table};

use super::error_at;

/// Longest single sleep: a handler that needs longer is better split into a later send.
const MAX_SLEEP_SECS: f64 = 3600.0;

/// Adds `wx.sleep`.
pub fn register(lua: &Lua, wx: &Table) -> LuaResult<()> {
    let sleep = super::waiting_function(lua, "wx.sleep", |lua, seconds: f64| async move {
        if !(0.0..=MAX_SLEEP_SECS).contains(&seconds) || seconds.is_nan() {
            return Err(error_at(
                &lua,
                format!("wx.sleep takes 0 to {MAX_SLEEP_SECS} seconds, not {seconds}"),
            ));
        }
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        Ok(())
    })?;
    wx.set("sleep", sleep)
}
