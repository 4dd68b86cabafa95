//! `wx.user.info/batch_info/list` and `wx.tags.*`: follower information and user tags (用户标签).

use mlua::{Lua, Result as LuaResult, Table, Value};
use serde_json::{json, Value as Json};

use super::convert::{api_function, arg_int, arg_str, arg_str_list, opt_str};
use crate::script::services::ActingFor;

/// Adds `wx.user` and `wx.tags`.
pub fn register(lua: &Lua, wx: &Table, acting: &ActingFor) -> LuaResult<()> {
    let api = acting;
    let user = lua.create_table()?;
    user.set(
        "info",
        api_function(
            lua,
            api,
            "wx.user.info",
            |lua, (openid, lang): (Value, Value)| {
                let f = "wx.user.info";
                Ok((
                    arg_str(lua, f, "openid", &openid)?,
                    opt_str(lua, f, "lang", &lang)?.unwrap_or_else(|| "zh_CN".into()),
                ))
            },
            |api, (openid, lang)| async move { api.user().info(&openid, &lang).await },
        )?,
    )?;
    user.set(
        "batch_info",
        api_function(
            lua,
            api,
            "wx.user.batch_info",
            |lua, (openids, lang): (Value, Value)| {
                let f = "wx.user.batch_info";
                Ok((
                    arg_str_list(lua, f, "openids", &openids)?,
                    opt_str(lua, f, "lang", &lang)?.unwrap_or_else(|| "zh_CN".into()),
                ))
            },
            |api, (openids, lang)| async move {
                api.user().batchget(&openids, &lang).await.map(Json::Array)
            },
        )?,
    )?;
    user.set(
        "list",
        api_function(
            lua,
            api,
            "wx.user.list",
            |lua, next: Value| {
                Ok(opt_str(lua, "wx.user.list", "next_openid", &next)?.unwrap_or_default())
            },
            |api, next| async move {
                let page = api.user().get(&next).await?;
                Ok(json!({"total": page.total, "openids": page.openids, "next_openid": page.next_openid}))
            },
        )?,
    )?;
    wx.set("user", user)?;

    let tags = lua.create_table()?;
    tags.set(
        "create",
        api_function(
            lua,
            api,
            "wx.tags.create",
            |lua, name: Value| arg_str(lua, "wx.tags.create", "name", &name),
            |api, name| async move { api.tags().create(&name).await.map(Json::from) },
        )?,
    )?;
    tags.set(
        "list",
        api_function(
            lua,
            api,
            "wx.tags.list",
            |_, ()| Ok(()),
            |api, ()| async move {
                let list = api.tags().get().await?;
                Ok(json!(list))
            },
        )?,
    )?;
    tags.set(
        "update",
        api_function(
            lua,
            api,
            "wx.tags.update",
            |lua, (id, name): (Value, Value)| {
                let f = "wx.tags.update";
                Ok((arg_int(lua, f, "id", &id)?, arg_str(lua, f, "name", &name)?))
            },
            |api, (id, name)| async move {
                api.tags().update(id, &name).await?;
                Ok(Json::Bool(true))
            },
        )?,
    )?;
    tags.set(
        "delete",
        api_function(
            lua,
            api,
            "wx.tags.delete",
            |lua, id: Value| arg_int(lua, "wx.tags.delete", "id", &id),
            |api, id| async move {
                api.tags().delete(id).await?;
                Ok(Json::Bool(true))
            },
        )?,
    )?;
    for (name, untag) in [("tag", false), ("untag", true)] {
        let fname = if untag {
            "wx.tags.untag"
        } else {
            "wx.tags.tag"
        };
        tags.set(
            name,
            api_function(
                lua,
                api,
                fname,
                move |lua, (tag_id, openids): (Value, Value)| {
                    Ok((
                        arg_int(lua, fname, "tag_id", &tag_id)?,
                        arg_str_list(lua, fname, "openids", &openids)?,
                    ))
                },
                move |api, (tag_id, openids)| async move {
                    if untag {
                        api.tags().batchuntagging(tag_id, &openids).await?;
                    } else {
                        api.tags().batchtagging(tag_id, &openids).await?;
                    }
                    Ok(Json::Bool(true))
                },
            )?,
        )?;
    }
    tags.set(
        "of",
        api_function(
            lua,
            api,
            "wx.tags.of",
            |lua, openid: Value| arg_str(lua, "wx.tags.of", "openid", &openid),
            |api, openid| async move { Ok(json!(api.tags().getidlist(&openid).await?)) },
        )?,
    )?;
    wx.set("tags", tags)
}
