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

use crate::script::services::ActingFor;

/// Adds every API family to `wx`.
pub fn register(lua: &Lua, wx: &Table, acting: &ActingFor) -> LuaResult<()> {
    kf::register(lua, wx, acting)?;
    mass::register(lua, wx, acting)?;
    template::register(lua, wx, acting)?;
    user::register(lua, wx, acting)?;
    menu::register(lua, wx, acting)?;
    media::register(lua, wx, acting)?;
    material::register(lua, wx, acting)?;
    qrcode::register(lua, wx, acting)?;
    oauth::register(lua, wx, acting)?;
    jssdk::register(lua, wx, acting)?;
    subscribe::register(lua, wx, acting)?;
    generic::register(lua, wx, acting)
}
