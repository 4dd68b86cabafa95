//! `wx.template.*`: template messages (模板消息): send, the account's templates (list, add
//! from the library, delete) and its industries.

use mlua::{Lua, Result as LuaResult, Table, Value};
use serde_json::Value as Json;

use super::convert::queue_if_transient;
use super::convert::{
    api_function, arg_str, arg_str_list, arg_table, notice_head, notice_mini_program, notice_value,
    opt_str,
};
use crate::api::template::{TemplateMessage, TemplateMiniProgram, TemplateValue};
use crate::script::services::ActingFor;

const SEND: &str = "wx.template.send";

/// `{to =, template_id =, url =, miniprogram = {appid =, pagepath =}, data = {...},
/// client_msg_id =}`; a data entry is `{value =, color =}` or just the value.
pub fn template_message(lua: &Lua, args: &Value) -> LuaResult<TemplateMessage> {
    let (t, to, template_id) = notice_head(lua, SEND, args)?;
    let field = |name: &str| t.raw_get::<Value>(name);
    let mut msg = TemplateMessage::new(to, template_id);
    msg.url = opt_str(lua, SEND, "url", &field("url")?)?;
    msg.client_msg_id = opt_str(lua, SEND, "client_msg_id", &field("client_msg_id")?)?;
    msg.miniprogram = notice_mini_program(lua, SEND, &field("miniprogram")?)?
        .map(|(appid, pagepath)| TemplateMiniProgram { appid, pagepath });
    let data = arg_table(lua, SEND, "data", &field("data")?)?;
    for pair in data.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let key = arg_str(lua, SEND, "a data key", &k)?;
        let what = format!("data.{key}");
        let value = match &v {
            Value::Table(entry) => TemplateValue {
                value: notice_value(
                    lua,
                    SEND,
                    &format!("{what}.value"),
                    &entry.raw_get("value")?,
                )?,
                color: opt_str(
                    lua,
                    SEND,
                    &format!("{what}.color"),
                    &entry.raw_get("color")?,
                )?,
            },
            other => TemplateValue {
                value: notice_value(lua, SEND, &what, other)?,
                color: None,
            },
        };
        msg.data.insert(key, value);
    }
    Ok(msg)
}

/// Adds `wx.template`.
pub fn register(lua: &Lua, wx: &Table, acting: &ActingFor) -> LuaResult<()> {
    let template = lua.create_table()?;
    template.set(
        "send",
        api_function(
            lua,
            acting,
            SEND,
            |lua, args: Value| template_message(lua, &args),
            move |api, mut msg: TemplateMessage| {
                let outbox = api.services.outbox.clone();
                // A key on every send, so a retry after a lost answer cannot deliver it twice.
                msg.ensure_client_msg_id();
                async move {
                    match api.template().send(&msg).await {
                        Ok(msgid) => Ok(Json::from(msgid)),
                        Err(e) => {
                            let call = msg.queued_send(SEND);
                            Err(queue_if_transient(outbox.as_deref(), e, call).await)
                        }
                    }
                }
            },
        )?,
    )?;
    template.set(
        "list",
        api_function(
            lua,
            acting,
            "wx.template.list",
            |_, ()| Ok(()),
            |api, ()| async move {
                api.template()
                    .get_all_private_template()
                    .await
                    .map(Json::Array)
            },
        )?,
    )?;
    template.set(
        "add",
        api_function(
            lua,
            acting,
            "wx.template.add",
            |lua, (short, keywords): (Value, Value)| {
                let f = "wx.template.add";
                let short = arg_str(lua, f, "template_id_short", &short)?;
                let keywords = if keywords.is_nil() {
                    Vec::new()
                } else {
                    arg_str_list(lua, f, "keyword_name_list", &keywords)?
                };
                Ok((short, keywords))
            },
            |api, (short, keywords)| async move {
                let keywords: Vec<&str> = keywords.iter().map(String::as_str).collect();
                api.template()
                    .add_template(&short, &keywords)
                    .await
                    .map(Json::from)
            },
        )?,
    )?;
    template.set(
        "delete",
        api_function(
            lua,
            acting,
            "wx.template.delete",
            |lua, id: Value| arg_str(lua, "wx.template.delete", "template_id", &id),
            |api, id| async move {
                api.template().del_private_template(&id).await?;
                Ok(Json::Bool(true))
            },
        )?,
    )?;
    template.set(
        "get_industry",
        api_function(
            lua,
            acting,
            "wx.template.get_industry",
            |_, ()| Ok(()),
            |api, ()| async move { api.template().get_industry().await },
        )?,
    )?;
    template.set(
        "set_industry",
        api_function(
            lua,
            acting,
            "wx.template.set_industry",
            |lua, (first, second): (Value, Value)| {
                let f = "wx.template.set_industry";
                Ok((
                    arg_str(lua, f, "industry_id1", &first)?,
                    arg_str(lua, f, "industry_id2", &second)?,
                ))
            },
            |api, (first, second)| async move {
                api.template().set_industry(&first, &second).await?;
                Ok(Json::Bool(true))
            },
        )?,
    )?;
    wx.set("template", template)
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
                r##"return {to="o", template_id="T", url="http://x", miniprogram={appid="wxa"},
                   data={first={value="Hi", color="#173177"}, amount=12.5, n=3}}"##,
            )
            .eval()
            .unwrap();
        let msg = template_message(&lua, &v).unwrap();
        assert_eq!(
            serde_json::to_value(&msg).unwrap(),
            json!({"touser": "o", "template_id": "T", "url": "http://x",
                   "miniprogram": {"appid": "wxa"},
                   "data": {"first": {"value": "Hi", "color": "#173177"},
                            "amount": {"value": "12.5"}, "n": {"value": "3"}}})
        );
        let bad: Value = lua.load(r#"return {to="o", data={}}"#).eval().unwrap();
        assert!(template_message(&lua, &bad)
            .unwrap_err()
            .to_string()
            .contains("template_id is required"));
    }
}
