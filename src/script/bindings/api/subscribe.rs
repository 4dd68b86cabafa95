//! `wx.subscribe.*`: subscription notifications (订阅通知), the supported way to reach a user
//! outside the 48-hour window since template messages were restricted.

use mlua::{Lua, Result as LuaResult, Table, Value};
use serde_json::Value as Json;

use super::convert::{
    api_function, arg_int, arg_str, arg_table, notice_head, notice_mini_program, notice_value,
    opt_str, queue_if_transient,
};
use crate::api::subscribe::{SubscribeMessage, SubscribeMiniProgram, SubscribeValue};
use crate::script::bindings::error_at;
use crate::script::services::ActingFor;

const SEND: &str = "wx.subscribe.send";
const ADD: &str = "wx.subscribe.add";
/// Keywords a template combines (WeChat: 2 to 5).
const KIDS: std::ops::RangeInclusive<usize> = 2..=5;
/// Longest `scene_desc`, in characters.
const MAX_SCENE_DESC: usize = 15;

/// `{to =, template_id =, data = {key = value | {value =}}, page =, miniprogram = {appid =,
/// pagepath =}}`.
pub fn subscribe_message(lua: &Lua, args: &Value) -> LuaResult<SubscribeMessage> {
    let (t, to, template_id) = notice_head(lua, SEND, args)?;
    let field = |name: &str| t.raw_get::<Value>(name);
    let mut msg = SubscribeMessage::new(to, template_id);
    msg.page = opt_str(lua, SEND, "page", &field("page")?)?;
    msg.miniprogram = notice_mini_program(lua, SEND, &field("miniprogram")?)?
        .map(|(appid, pagepath)| SubscribeMiniProgram { appid, pagepath });
    let data = arg_table(lua, SEND, "data", &field("data")?)?;
    for pair in data.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let key = arg_str(lua, SEND, "a data key", &k)?;
        let what = format!("data.{key}");
        let value = match &v {
            Value::Table(entry) => notice_value(
                lua,
                SEND,
                &format!("{what}.value"),
                &entry.raw_get("value")?,
            )?,
            other => notice_value(lua, SEND, &what, other)?,
        };
        msg.data.insert(key, SubscribeValue { value });
    }
    Ok(msg)
}

/// `tid, kid_list, scene_desc` of `wx.subscribe.add`.
fn add_args(
    lua: &Lua,
    (tid, kids, scene): (Value, Value, Value),
) -> LuaResult<(String, Vec<i64>, String)> {
    let tid = arg_str(lua, ADD, "tid", &tid)?;
    let list = arg_table(lua, ADD, "kid_list", &kids)?;
    let mut kid_list = Vec::new();
    for (i, kid) in list.sequence_values::<Value>().enumerate() {
        kid_list.push(arg_int(lua, ADD, &format!("kid_list[{}]", i + 1), &kid?)?);
    }
    if !KIDS.contains(&kid_list.len()) {
        return Err(error_at(
            lua,
            format!(
                "{ADD}: kid_list holds 2 to 5 keyword ids, not {}",
                kid_list.len()
            ),
        ));
    }
    let scene = arg_str(lua, ADD, "scene_desc", &scene)?;
    if scene.chars().count() > MAX_SCENE_DESC {
        return Err(error_at(
            lua,
            format!("{ADD}: scene_desc is at most {MAX_SCENE_DESC} characters"),
        ));
    }
    Ok((tid, kid_list, scene))
}

/// Adds `wx.subscribe`.
pub fn register(lua: &Lua, wx: &Table, acting: &ActingFor) -> LuaResult<()> {
    let subscribe = lua.create_table()?;
    subscribe.set(
        "send",
        api_function(
            lua,
            acting,
            SEND,
            |lua, args: Value| subscribe_message(lua, &args),
            move |api, msg| {
                let outbox = api.services.outbox.clone();
                async move {
                    match api.subscribe().send(&msg).await {
                        Ok(()) => Ok(Json::Bool(true)),
                        Err(e) => {
                            let call = msg.queued_send(SEND);
                            Err(queue_if_transient(outbox.as_deref(), e, call).await)
                        }
                    }
                }
            },
        )?,
    )?;
    subscribe.set(
        "templates",
        api_function(
            lua,
            acting,
            "wx.subscribe.templates",
            |_, ()| Ok(()),
            |api, ()| async move { api.subscribe().templates().await.map(Json::Array) },
        )?,
    )?;
    subscribe.set(
        "add",
        api_function(
            lua,
            acting,
            ADD,
            add_args,
            |api, (tid, kids, scene)| async move {
                api.subscribe()
                    .add(&tid, &kids, &scene)
                    .await
                    .map(Json::from)
            },
        )?,
    )?;
    subscribe.set(
        "delete",
        api_function(
            lua,
            acting,
            "wx.subscribe.delete",
            |lua, id: Value| arg_str(lua, "wx.subscribe.delete", "pri_tmpl_id", &id),
            |api, id| async move {
                api.subscribe().delete(&id).await?;
                Ok(Json::Bool(true))
            },
        )?,
    )?;
    subscribe.set(
        "categories",
        api_function(
            lua,
            acting,
            "wx.subscribe.categories",
            |_, ()| Ok(()),
            |api, ()| async move { api.subscribe().categories().await.map(Json::Array) },
        )?,
    )?;
    wx.set("subscribe", subscribe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_the_documented_body() {
        let lua = Lua::new();
        let v: Value = lua
            .load(
                r#"return {to = "o", template_id = "T", page = "https://shop.example/orders/42",
                   data = {thing1 = {value = "已发货"}, number2 = 42, amount3 = 12.5}}"#,
            )
            .eval()
            .unwrap();
        let msg = subscribe_message(&lua, &v).unwrap();
        assert_eq!(
            serde_json::to_value(&msg).unwrap(),
            json!({"touser": "o", "template_id": "T", "page": "https://shop.example/orders/42",
                   "data": {"thing1": {"value": "已发货"}, "number2": {"value": "42"},
                            "amount3": {"value": "12.5"}}})
        );
        let bad: Value = lua.load(r#"return {to = "o", data = {}}"#).eval().unwrap();
        assert!(subscribe_message(&lua, &bad)
            .unwrap_err()
            .to_string()
            .contains("template_id is required"));
    }

    #[test]
    fn add_checks_the_keyword_count_and_scene() {
        let lua = Lua::new();
        let call = |src: &str| {
            let v: mlua::MultiValue = lua.load(src).eval().unwrap();
            let mut it = v.into_iter();
            let mut next = || it.next().unwrap_or(Value::Nil);
            add_args(&lua, (next(), next(), next())).map_err(|e| e.to_string())
        };
        assert_eq!(
            call(r#"return "502", {3, 5, 4}, "发货提醒""#).unwrap(),
            ("502".into(), vec![3, 5, 4], "发货提醒".into())
        );
        assert!(call(r#"return "502", {3}, "x""#)
            .unwrap_err()
            .contains("2 to 5"));
        assert!(
            call(r#"return "502", {1, 2}, "一二三四五六七八九十一二三四五六""#)
                .unwrap_err()
                .contains("at most 15")
        );
    }
}
