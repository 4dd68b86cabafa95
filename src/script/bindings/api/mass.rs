//! `wx.mass.send/preview/delete/status/speed/set_speed`: mass messages (群发) to a tag, to
//! everyone or to an OpenID list, and the speed they go out at.

use mlua::{Lua, Result as LuaResult, Table, Value};
use serde_json::{json, Value as Json};

use super::convert::{
    api_function, arg_int, arg_str, arg_str_list, arg_table, opt_bool, opt_int, opt_str,
    queue_if_transient, typed_fields,
};
use crate::api::mass::{
    send_calls, sendall_call, MassCall, MassMessage, MassOptions, MassSent, MassTarget, SEND_PATH,
};
use crate::api::outbox::Outbox;
use crate::api::{ApiError, WechatClient};
use crate::script::bindings::error_at;
use crate::script::services::ActingFor;

/// Who a `wx.mass.send` goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// `{all = true}` or `{tag_id = N}`: one `sendall` call.
    Filter(MassTarget),
    /// A list of OpenIDs: `message/mass/send`, split by 10,000.
    OpenIds(Vec<String>),
}

/// A mass message from a string (text) or a table whose `type` names it.
pub fn mass_message(lua: &Lua, fname: &str, v: &Value) -> LuaResult<MassMessage> {
    if let Value::String(_) = v {
        return Ok(MassMessage::Text {
            content: arg_str(lua, fname, "message", v)?,
        });
    }
    let (kind, mut fields) = typed_fields(lua, fname, v)?;
    let o = &mut fields;
    // Images are keyed `images` with a list; `media_id` alone is the common one-image case.
    let key = match kind.as_str() {
        "image" => {
            if let Some(id) = o.remove("media_id") {
                o.entry("media_ids").or_insert_with(|| json!([id]));
            }
            "images"
        }
        "text" | "mpnews" | "voice" | "mpvideo" | "wxcard" => kind.as_str(),
        other => {
            return Err(error_at(
                lua,
                format!(
                    "{fname}: unknown mass message type \"{other}\" (text, mpnews, image, voice, mpvideo, wxcard)"
                ),
            ))
        }
    };
    serde_json::from_value(json!({ key: fields }))
        .map_err(|e| error_at(lua, format!("{fname}: invalid {kind} message: {e}")))
}

/// `to = {tag_id = N} | {all = true} | {openid, ...}`.
fn recipients(lua: &Lua, fname: &str, v: &Value) -> LuaResult<Recipients> {
    let t = arg_table(
        lua,
        fname,
        "to ({tag_id = N}, {all = true} or a list of OpenIDs)",
        v,
    )?;
    if opt_bool(lua, fname, "to.all", &t.raw_get::<Value>("all")?)? == Some(true) {
        return Ok(Recipients::Filter(MassTarget::All));
    }
    if let Some(tag) = opt_int(lua, fname, "to.tag_id", &t.raw_get::<Value>("tag_id")?)? {
        return Ok(Recipients::Filter(MassTarget::Tag(tag)));
    }
    Ok(Recipients::OpenIds(arg_str_list(lua, fname, "to", v)?))
}

/// One send as Lua sees it.
fn sent_json(s: &MassSent) -> Json {
    json!({
        "msg_id": s.msg_id,
        "msg_data_id": s.msg_data_id,
        "clientmsgid": s.clientmsgid,
        "duplicate": s.duplicate,
    })
}

/// The parsed arguments of `wx.mass.send`.
type SendArgs = (Recipients, MassMessage, MassOptions);

fn send_args(lua: &Lua, args: Value) -> LuaResult<SendArgs> {
    let f = "wx.mass.send";
    let t = arg_table(lua, f, "the argument ({to =, message =, ...})", &args)?;
    let to = recipients(lua, f, &t.raw_get::<Value>("to")?)?;
    let message = t.raw_get::<Value>("message")?;
    if message.is_nil() {
        return Err(error_at(lua, format!("{f}: message is required")));
    }
    let message = mass_message(lua, f, &message)?;
    let opts = MassOptions {
        clientmsgid: opt_str(lua, f, "clientmsgid", &t.raw_get::<Value>("clientmsgid")?)?,
        send_ignore_reprint: opt_bool(
            lua,
            f,
            "send_ignore_reprint",
            &t.raw_get::<Value>("send_ignore_reprint")?,
        )?
        .unwrap_or(false),
    };
    Ok((to, message, opts))
}

/// Makes the calls of one `wx.mass.send` in order. When one fails for a transient reason,
/// it and the calls after it go to the outbox (each keeps its clientmsgid, so a retry cannot
/// send twice) and the script sees `err.queued = true`.
async fn send_all(
    api: &WechatClient,
    outbox: Option<&Outbox>,
    calls: &[MassCall],
) -> Result<Vec<MassSent>, ApiError> {
    let mut sent = Vec::with_capacity(calls.len());
    for (i, call) in calls.iter().enumerate() {
        match api.mass().call(call).await {
            Ok(s) => sent.push(s),
            Err(e) => {
                let purpose = |c: &MassCall| format!("wx.mass.send {}", c.clientmsgid);
                let error = queue_if_transient(outbox, e, call.queued_send(purpose(call))).await;
                if let (Some(outbox), ApiError::Queued { .. }) = (outbox, &error) {
                    let not_sent = ApiError::Network(format!(
                        "not sent yet: call {} of this mass send failed first",
                        i + 1
                    ));
                    for later in &calls[i + 1..] {
                        let queued = later.queued_send(purpose(later));
                        if let Err(store_error) = outbox.enqueue(&queued, &not_sent).await {
                            tracing::error!("{}: cannot queue ({store_error})", queued.purpose);
                        }
                    }
                }
                return Err(error);
            }
        }
    }
    Ok(sent)
}

/// Adds `wx.mass`.
pub fn register(lua: &Lua, wx: &Table, acting: &ActingFor) -> LuaResult<()> {
    let mass = lua.create_table()?;
    mass.set(
        "send",
        api_function(
            lua,
            acting,
            "wx.mass.send",
            send_args,
            move |api, (to, message, opts)| {
                let outbox = api.services.outbox.clone();
                async move {
                    let calls = match to {
                        Recipients::Filter(target) => vec![sendall_call(target, &message, &opts)],
                        Recipients::OpenIds(list) => send_calls(&list, &message, &opts),
                    };
                    let all = send_all(&api, outbox.as_deref(), &calls).await?;
                    // The first call's ids, plus every call when the list was split.
                    let mut first = all.first().map(sent_json).unwrap_or_else(|| json!({}));
                    if calls.first().is_some_and(|c| c.path == SEND_PATH) {
                        first["sends"] = Json::Array(all.iter().map(sent_json).collect());
                    }
                    Ok(first)
                }
            },
        )?,
    )?;
    mass.set(
        "preview",
        api_function(
            lua,
            acting,
            "wx.mass.preview",
            |lua, (openid, message): (Value, Value)| {
                let f = "wx.mass.preview";
                Ok((
                    arg_str(lua, f, "openid", &openid)?,
                    mass_message(lua, f, &message)?,
                ))
            },
            |api, (openid, message)| async move { api.mass().preview(&openid, &message).await },
        )?,
    )?;
    mass.set(
        "delete",
        api_function(
            lua,
            acting,
            "wx.mass.delete",
            |lua, (msg_id, idx): (Value, Value)| {
                let f = "wx.mass.delete";
                let msg_id = arg_int(lua, f, "msg_id", &msg_id)?;
                let idx = opt_int(lua, f, "article_idx", &idx)?.unwrap_or(0);
                let idx = u32::try_from(idx).map_err(|_| {
                    error_at(
                        lua,
                        format!("{f}: article_idx must be 0 (all) or an article number"),
                    )
                })?;
                Ok((msg_id, idx))
            },
            |api, (msg_id, idx)| async move {
                api.mass().delete(msg_id, idx).await?;
                Ok(Json::Bool(true))
            },
        )?,
    )?;
    mass.set(
        "status",
        api_function(
            lua,
            acting,
            "wx.mass.status",
            |lua, msg_id: Value| arg_int(lua, "wx.mass.status", "msg_id", &msg_id),
            |api, msg_id| async move { api.mass().get(msg_id).await },
        )?,
    )?;
    mass.set(
        "speed",
        api_function(
            lua,
            acting,
            "wx.mass.speed",
            |_, ()| Ok(()),
            |api, ()| async move {
                let (speed, realspeed) = api.mass().speed_get().await?;
                Ok(json!({"speed": speed, "realspeed": realspeed}))
            },
        )?,
    )?;
    mass.set(
        "set_speed",
        api_function(
            lua,
            acting,
            "wx.mass.set_speed",
            |lua, speed: Value| {
                let f = "wx.mass.set_speed";
                let speed = arg_int(lua, f, "speed", &speed)?;
                u8::try_from(speed).ok().filter(|s| *s <= 4).ok_or_else(|| {
                    error_at(
                        lua,
                        format!("{f}: speed must be 0 (fastest) to 4 (slowest), not {speed}"),
                    )
                })
            },
            |api, speed| async move {
                api.mass().speed_set(speed).await?;
                Ok(Json::Bool(true))
            },
        )?,
    )?;
    wx.set("mass", mass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str) -> (Lua, Value) {
        let lua = Lua::new();
        let v = lua.load(src).eval().unwrap();
        (lua, v)
    }

    #[test]
    fn messages_map_to_the_mass_types() {
        let (lua, v) = eval(r#"return {type="image", media_id="M"}"#);
        assert_eq!(
            mass_message(&lua, "f", &v).unwrap(),
            MassMessage::Images {
                media_ids: vec!["M".into()],
                recommend: None,
                need_open_comment: None,
                only_fans_can_comment: None
            }
        );
        let (lua, v) = eval(r#"return "hello""#);
        assert_eq!(
            mass_message(&lua, "f", &v).unwrap(),
            MassMessage::Text {
                content: "hello".into()
            }
        );
        let (lua, v) = eval(r#"return {type="news", articles={}}"#);
        assert!(mass_message(&lua, "f", &v)
            .unwrap_err()
            .to_string()
            .contains("unknown mass message type"));
        let (lua, v) = eval(r#"return {type="mpnews"}"#);
        assert!(mass_message(&lua, "f", &v)
            .unwrap_err()
            .to_string()
            .contains("media_id"));
    }

    #[test]
    fn recipients_are_a_filter_or_a_list() {
        let (lua, v) = eval("return {all = true}");
        assert_eq!(
            recipients(&lua, "f", &v).unwrap(),
            Recipients::Filter(MassTarget::All)
        );
        let (lua, v) = eval("return {tag_id = 7}");
        assert_eq!(
            recipients(&lua, "f", &v).unwrap(),
            Recipients::Filter(MassTarget::Tag(7))
        );
        let (lua, v) = eval(r#"return {"a", "b"}"#);
        assert_eq!(
            recipients(&lua, "f", &v).unwrap(),
            Recipients::OpenIds(vec!["a".into(), "b".into()])
        );
        let (lua, v) = eval("return {}");
        assert!(recipients(&lua, "f", &v).is_err());
    }
}
