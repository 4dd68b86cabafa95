//! The outbound WeChat API from Lua: `wx.kf`, `wx.mass`, `wx.template`, `wx.user`, `wx.tags`,
//! `wx.menu`, `wx.media`, `wx.material`, `wx.qrcode`, `wx.oauth`, `wx.jssdk`, `wx.subscribe`
//! and the generic `wx.api.get/post`. Every call that waits is an async function (waiting
//! suspends only the calling script), returns its result as Lua values, and reports WeChat
//! failures as `nil, err` (see [`convert`]).

pub mod convert;
pub mod generic;
pub mod jssdk;
pub mod kf;
pub mod mass;
pub mod material;
pub mod media;
pub mod menu;
pub mod oauth;
pub mod qrcode;
pub mod subscribe;
pub mod template;
pub mod user;

use mlua::{Lua, Result as LuaResult, Table};

use crate::script::services::Services;

/// Adds every API family to `wx`.
pub fn register(lua: &Lua, wx: &Table, services: &Services) -> LuaResult<()> {
    kf::register(lua, wx, services)?;
    mass::register(lua, wx, services)?;
    template::register(lua, wx, services)?;
    user::register(lua, wx, services)?;
    menu::register(lua, wx, services)?;
    media::register(lua, wx, services)?;
    material::register(lua, wx, services)?;
    qrcode::register(lua, wx, services)?;
    oauth::register(lua, wx, services)?;
    jssdk::register(lua, wx, services)?;
    subscribe::register(lua, wx, services)?;
    generic::register(lua, wx, services)
}
