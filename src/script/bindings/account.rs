//! `wx.account(name)`: the WeChat API tables (`kf`, `mass`, `template`, `user`, `tags`,
//! `menu`, `media`, `material`, `qrcode`, `oauth`, `jssdk`, `subscribe`, `api`) bound to
//! another account of the host, for jobs that act across accounts. The `wx.kf`, `wx.mass`…
//! a handler finds on `wx` are its own message's account's.

use mlua::{Lua, Result as LuaResult, Table};

use super::error_at;
use crate::script::services::Services;

/// Adds `wx.account`.
pub fn register(lua: &Lua, wx: &Table, services: &Services) -> LuaResult<()> {
    let peers = services.peers.clone();
    // Built on first use and kept: a state pays for the accounts its scripts name, not for
    // every account of the host.
    let built = lua.create_table()?;
    wx.set(
        "account",
        lua.create_function(move |lua, name: String| {
            if let Some(tables) = built.raw_get::<Option<Table>>(name.as_str())? {
                return Ok(tables);
            }
            let all = peers.get();
            let Some(peer) = all.and_then(|all| all.get(&name)) else {
                let mut names: Vec<&str> = all
                    .map(|all| all.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                names.sort_unstable();
                return Err(error_at(
                    lua,
                    format!(
                        "wx.account: no account named `{name}` (configured: {})",
                        names.join(", ")
                    ),
                ));
            };
            let tables = lua.create_table()?;
            super::api::register(lua, &tables, peer)?;
            built.raw_set(name.as_str(), &tables)?;
            Ok(tables)
        })?,
    )
}
