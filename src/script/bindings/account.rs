//! `wx.account(name)`: the WeChat API tables (`kf`, `mass`, `template`, `user`, `tags`,
//! `menu`, `media`, `material`, `qrcode`, `oauth`, `jssdk`, `subscribe`, `api`) bound to
//! another account of the host, for jobs that act across accounts. The `wx.kf`, `wx.mass`…
//! a handler finds on `wx` are its own message's account's.
//!
//! The tables are bound to the account's name, which is looked up in the host's registry at
//! each call: an account added while serving (an authorized one) is reachable, one removed
//! is a clear error, never a call with stale credentials.

use mlua::{Lua, Result as LuaResult, Table};

use super::error_at;
use crate::script::services::{ActingFor, Services};

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
            let all = peers.get().and_then(std::sync::Weak::upgrade);
            if all.as_ref().and_then(|all| all.services(&name)).is_none() {
                let names = all.map(|all| all.names()).unwrap_or_default();
                return Err(error_at(
                    lua,
                    format!(
                        "wx.account: no account named `{name}` (configured: {})",
                        names.join(", ")
                    ),
                ));
            }
            let tables = lua.create_table()?;
            let bound = ActingFor::Named(name.as_str().into(), peers.clone());
            super::api::register(lua, &tables, &bound)?;
            built.raw_set(name.as_str(), &tables)?;
            Ok(tables)
        })?,
    )
}
