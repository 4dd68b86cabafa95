//! `wx.template.send/list/add`: template messages (模板消息).

use mlua::{Lua, Result as LuaResult, Table, Value};
use serde_json::Value as Json;

use super::convert::queue_if_transient;
use super::convert::{api_function, arg_str, arg_str_list, arg_table, opt_str};
use crate::api::template::{TemplateMessage, TemplateMiniProgram, TemplateValue};
use crate::script::bindings::error_at;
use crate::script::services::Services;

const SEND: &str = "wx.template.send";

/// `{to =, template_id =, url =, miniprogram = {appid =, pagepath =}, data = {...},
/// client_msg_id =}`; a data entry is `{value =, color =}` or just the value.
pub fn template_message(lua: &Lua, args: &Value) -> LuaResult<TemplateMessage> {
    let t = arg_table(
        lua,
        SEND,
        "the argument ({to =, template_id =, data =})",
        args,
    )?;
    let field = |name: &str| t.raw_get::<Value>(name);
    let to = match field("to")? {
        Value::Nil => field("touser")?,
        v => v,
    };
    let mut msg = TemplateMessage::new(
        arg_str(lua, SEND, "to", &to)?,
        arg_str(lua, SEND, "template_id", &field("template_id")?)?,
    );
    msg.url = opt_str(lua, SEND, "url", &field("url")?)?;
    msg.client_msg_id = opt_str(lua, SEND, "client_msg_id", &field("client_msg_id")?)?;
    if let v @ Value::Table(_) = field("miniprogram")? {
        let mp = arg_table(lua, SEND, "miniprogram", &v)?;
        msg.miniprogram = Some(TemplateMiniProgram {
            appid: arg_str(lua, SEND, "miniprogram.appid", &mp.raw_get("appid")?)?,
            pagepath: opt_str(lua, SEND, "miniprogram.pagepath", &mp.raw_get("pagepath")?)?,
        });
    } else if !field("miniprogram")?.is_nil() {
        return Err(error_at(
            lua,
            format!("{SEND}: miniprogram must be a table"),
        ));
    }
    let data = arg_table(lua, SEND, "data", &field("data")?)?;
    for pair in data.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let key = arg_str(lua, SEND, "a data key", &k)?;
        let what = format!("data.{key}");
        let value = match &v {
            Value::Table(entry) => TemplateValue {
                value: value_text(lua, &format!("{what}.value"), &entry.raw_get("value")?)?,
                color: opt_str(
                    lua,
                    SEND,
                    &format!("{what}.color"),
                    &entry.raw_get("color")?,
                )?,
            },
            other => TemplateValue {
                value: value_text(lua, &what, other)?,
                color: None,
            },
        };
        msg.data.insert(key, value);
    }
    Ok(msg)
}

/// A data value: a string, or a number written as Lua prints it.
fn value_text(lua: &Lua, what: &str, v: &Value) -> LuaResult<String> {
    match v {
        Value::Number(n) => Ok(n.to_string()),
        other => arg_str(lua, SEND, what, other),
    }
}

/// Adds `wx.template`.
pub fn register(lua: &Lua, wx: &Table, services: &Services) -> LuaResult<()> {
    let template = lua.create_table()?;
    let outbox = services.outbox.clone();
    template.set(
        "send",
        api_function(
            lua,
            &services.api,
            SEND,
            |lua, args: Value| template_message(lua, &args),
            move |api, msg| {
                let outbox = outbox.clone();
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
            &services.api,
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
            &services.api,
            "wx.template.add",
            |lua, (short, names): (Value, Value)| {
                let f = "wx.template.add";
                let short = arg_str(lua, f, "template_id_short", &short)?;
                let names = match names {
                    Value::Nil => Vec::new(),
                    v => arg_str_list(lua, f, "keyword_name_list", &v)?,
                };
                Ok((short, names))
            },
            |api, (short, names)| async move {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                api.template()
                    .add_template(&short, &names)
                    .await
                    .map(Json::from)
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
