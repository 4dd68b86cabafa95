//! `wx.menu.create/get/delete`: the custom menu (自定义菜单).

use mlua::{Lua, Result as LuaResult, Table, Value};
use serde_json::{json, Value as Json};

use super::convert::{api_function, arg_table, lua_to_json};
use crate::script::services::ActingFor;

const CREATE: &str = "wx.menu.create";

/// The menu body: `{button = {...}}` as documented, or just the list of buttons.
fn menu_body(lua: &Lua, v: Value) -> LuaResult<Json> {
    let t = arg_table(lua, CREATE, "the menu ({button = {...}})", &v)?;
    let has_button = !t.raw_get::<Value>("button")?.is_nil();
    let body = lua_to_json(lua, CREATE, "the menu", v)?;
    Ok(if has_button {
        body
    } else {
        json!({ "button": body })
    })
}

/// Adds `wx.menu`.
pub fn register(lua: &Lua, wx: &Table, acting: &ActingFor) -> LuaResult<()> {
    let menu = lua.create_table()?;
    menu.set(
        "create",
        api_function(lua, acting, CREATE, menu_body, |api, body| async move {
            api.menu().create(&body).await?;
            Ok(Json::Bool(true))
        })?,
    )?;
    menu.set(
        "get",
        api_function(
            lua,
            acting,
            "wx.menu.get",
            |_, ()| Ok(()),
            |api, ()| async move { api.menu().get().await },
        )?,
    )?;
    menu.set(
        "delete",
        api_function(
            lua,
            acting,
            "wx.menu.delete",
            |_, ()| Ok(()),
            |api, ()| async move {
                api.menu().delete().await?;
                Ok(Json::Bool(true))
            },
        )?,
    )?;
    wx.set("menu", menu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_button_list_is_wrapped() {
        let lua = Lua::new();
        let v: Value = lua
            .load(r#"return {{type="click", name="A", key="K"}}"#)
            .eval()
            .unwrap();
        assert_eq!(
            menu_body(&lua, v).unwrap(),
            json!({"button": [{"type": "click", "name": "A", "key": "K"}]})
        );
        let v: Value = lua
            .load(r#"return {button={{type="view", name="B", url="http://x"}}}"#)
            .eval()
            .unwrap();
        assert_eq!(menu_body(&lua, v).unwrap()["button"][0]["type"], "view");
    }
}
