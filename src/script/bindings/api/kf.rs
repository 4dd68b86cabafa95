//! `wx.kf.send/typing/window`: customer-service messages (客服消息), which reach a user who
//! wrote or clicked recently (48 hours for messages); the window is tracked locally.

use mlua::{Lua, Result as LuaResult, Table, Value};
use serde_json::{json, Value as Json};

use super::convert::{api_function, arg_str, opt_bool, opt_str, queue_if_transient, typed_fields};
use crate::api::KfMessage;
use crate::script::bindings::error_at;
use crate::script::services::ActingFor;

/// A customer-service message from a string (text) or a table whose `type` names it; reply
/// tables (`wx.reply.*`) are accepted with their field spellings (`pic_url`, `music_url`).
pub fn kf_message(lua: &Lua, fname: &str, v: &Value) -> LuaResult<KfMessage> {
    if let Value::String(_) = v {
        return Ok(KfMessage::text(arg_str(lua, fname, "message", v)?));
    }
    let (kind, mut fields) = typed_fields(lua, fname, v)?;
    if matches!(kind.as_str(), "transfer_customer_service" | "transfer") {
        return Err(error_at(
            lua,
            format!("{fname}: a transfer is a passive reply, not a customer-service message"),
        ));
    }
    let o = &mut fields;
    match kind.as_str() {
        "music" => {
            rename(o, "music_url", "musicurl");
            rename(o, "hq_music_url", "hqmusicurl");
            if !o.contains_key("hqmusicurl") {
                if let Some(u) = o.get("musicurl").cloned() {
                    o.insert("hqmusicurl".into(), u);
                }
            }
        }
        "news" => {
            if let Some(articles) = o.get_mut("articles").and_then(Json::as_array_mut) {
                for a in articles.iter_mut().filter_map(Json::as_object_mut) {
                    rename(a, "pic_url", "picurl");
                    a.entry("url").or_insert_with(|| Json::from(""));
                }
            }
        }
        "msgmenu" => {
            if let Some(list) = o.get_mut("list").and_then(Json::as_array_mut) {
                for item in list.iter_mut().filter_map(Json::as_object_mut) {
                    if let Some(id) = item.get("id").filter(|id| id.is_number()) {
                        let id = id.to_string();
                        item.insert("id".into(), Json::from(id));
                    }
                }
            }
        }
        _ => {}
    }
    KfMessage::from_json(&json!({"msgtype": kind, kind.as_str(): fields}))
        .map_err(|e| error_at(lua, format!("{fname}: {}", e.errmsg())))
}

/// Moves a field to the name the customer-service JSON uses, unless that one is set.
fn rename(o: &mut serde_json::Map<String, Json>, from: &str, to: &str) {
    if let Some(v) = o.remove(from) {
        o.entry(to).or_insert(v);
    }
}

/// Adds `wx.kf`.
pub fn register(lua: &Lua, wx: &Table, acting: &ActingFor) -> LuaResult<()> {
    let kf = lua.create_table()?;
    kf.set(
        "send",
        api_function(
            lua,
            acting,
            "wx.kf.send",
            |lua, (openid, message, account): (Value, Value, Value)| {
                let f = "wx.kf.send";
                Ok((
                    arg_str(lua, f, "openid", &openid)?,
                    kf_message(lua, f, &message)?,
                    opt_str(lua, f, "kf_account", &account)?,
                ))
            },
            move |api, (openid, message, account)| {
                // The window and the outbox of the account the send goes out for.
                let window = api.services.kf_window.clone();
                let outbox = api.services.outbox.clone();
                async move {
                    match api
                        .kf()
                        .send_as(&openid, &message, account.as_deref())
                        .await
                    {
                        Ok(()) => {
                            window.note_sent(&openid, crate::clock::unix_secs());
                            Ok(Json::Bool(true))
                        }
                        Err(e) => {
                            if e.outcome_unknown() {
                                // It may have arrived: count it against the window, so the
                                // remaining sends are never overstated.
                                window.note_sent(&openid, crate::clock::unix_secs());
                            }
                            Err(queue_if_transient(
                                outbox.as_deref(),
                                e,
                                message.queued_send(
                                    &openid,
                                    account.as_deref(),
                                    format!("wx.kf.send {}", message.msgtype()),
                                ),
                            )
                            .await)
                        }
                    }
                }
            },
        )?,
    )?;
    kf.set(
        "typing",
        api_function(
            lua,
            acting,
            "wx.kf.typing",
            |lua, (openid, on): (Value, Value)| {
                let f = "wx.kf.typing";
                let openid = arg_str(lua, f, "openid", &openid)?;
                let on = opt_bool(lua, f, "on", &on)?
                    .ok_or_else(|| error_at(lua, format!("{f}: on is required (a boolean)")))?;
                Ok((openid, on))
            },
            |api, (openid, on)| async move {
                api.kf().typing(&openid, on).await?;
                Ok(Json::Bool(true))
            },
        )?,
    )?;
    let acting = acting.clone();
    kf.set(
        "window",
        lua.create_function(move |lua, openid: Value| {
            let openid = arg_str(lua, "wx.kf.window", "openid", &openid)?;
            let tracker = acting.services(lua)?.kf_window.clone();
            let w = tracker.window(&openid, crate::clock::unix_secs());
            let out = lua.create_table()?;
            out.set("open", w.open)?;
            out.set("remaining", w.remaining)?;
            out.set("closes_at", w.closes_at)?;
            Ok(out)
        })?,
    )?;
    wx.set("kf", kf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(lua_src: &str) -> Result<KfMessage, String> {
        let lua = Lua::new();
        let v: Value = lua.load(lua_src).eval().unwrap();
        kf_message(&lua, "wx.kf.send", &v).map_err(|e| e.to_string())
    }

    #[test]
    fn reply_tables_map_to_customer_service_json() {
        assert_eq!(msg(r#"return "hi""#).unwrap(), KfMessage::text("hi"));
        let news = msg(
            r#"return {type="news", articles={{title="T", description="D", pic_url="P", url="U"}}}"#,
        )
        .unwrap();
        assert_eq!(
            news.to_request("o", None),
            json!({"touser": "o", "msgtype": "news", "news": {"articles": [
                {"title": "T", "description": "D", "picurl": "P", "url": "U"}]}})
        );
        let music = msg(r#"return {type="music", music_url="m", thumb_media_id="t"}"#).unwrap();
        assert_eq!(
            music.to_request("o", None)["music"],
            json!({"musicurl": "m", "hqmusicurl": "m", "thumb_media_id": "t"})
        );
        let menu = msg(
            r#"return {type="msgmenu", head_content="h", list={{id=101, content="yes"}}, tail_content="t"}"#,
        )
        .unwrap();
        assert_eq!(
            menu.to_request("o", None)["msgmenu"]["list"],
            json!([{"id": "101", "content": "yes"}])
        );
        let page = msg(
            r#"return {type="miniprogrampage", title="t", appid="a", pagepath="p", thumb_media_id="m"}"#,
        )
        .unwrap();
        assert_eq!(page.msgtype(), "miniprogrampage");
    }

    #[test]
    fn bad_messages_are_argument_errors() {
        assert!(msg(r#"return {type="image"}"#)
            .unwrap_err()
            .contains("media_id"));
        assert!(msg(r#"return {type="transfer_customer_service"}"#)
            .unwrap_err()
            .contains("passive reply"));
        assert!(msg(r#"return {content="x"}"#).unwrap_err().contains("type"));
        assert!(msg("return 42").unwrap_err().contains("not a integer"));
    }
}
