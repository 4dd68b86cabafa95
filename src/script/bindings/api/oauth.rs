//! `wx.oauth.url/exchange/userinfo`: 网页授权 helpers for custom sign-in flows (the host's
//! built-in `/oauth/login` covers the usual one).

use mlua::{Lua, Result as LuaResult, Table, Value};

use super::convert::{api_function, arg_str, arg_table, not_configured, opt_str};
use crate::api::oauth::{check_state, Scope};
use crate::api::ApiError;
use crate::script::bindings::error_at;
use crate::script::services::ActingFor;

const URL: &str = "wx.oauth.url";
const EXCHANGE: &str = "wx.oauth.exchange";
const USERINFO: &str = "wx.oauth.userinfo";

/// `{redirect_uri =, scope =, state =}`, checked as WeChat's sign-in page checks them.
fn url_args(lua: &Lua, args: &Value) -> LuaResult<(String, Scope, String)> {
    let t = arg_table(
        lua,
        URL,
        "the argument ({redirect_uri =, scope =, state =})",
        args,
    )?;
    let redirect_uri = arg_str(lua, URL, "redirect_uri", &t.raw_get("redirect_uri")?)?;
    if let Err(why) = crate::api::jssdk::check_page_url(&redirect_uri) {
        return Err(error_at(
            lua,
            format!("{URL}: redirect_uri: {}", why.replace("the page URL", "it")),
        ));
    }
    let scope = match opt_str(lua, URL, "scope", &t.raw_get("scope")?)? {
        None => Scope::Base,
        Some(name) => Scope::parse(&name).ok_or_else(|| {
            error_at(
                lua,
                format!("{URL}: scope is \"snsapi_base\" or \"snsapi_userinfo\", not {name:?}"),
            )
        })?,
    };
    let state = opt_str(lua, URL, "state", &t.raw_get("state")?)?.unwrap_or_default();
    check_state(&state).map_err(|why| error_at(lua, format!("{URL}: {why}")))?;
    Ok((redirect_uri, scope, state))
}

/// Adds `wx.oauth`.
pub fn register(lua: &Lua, wx: &Table, acting: &ActingFor) -> LuaResult<()> {
    let oauth = lua.create_table()?;
    let acting_now = acting.clone();
    // Builds a URL, waits for nothing: callable anywhere, also while the scripts load.
    oauth.set(
        "url",
        lua.create_function(move |lua, args: Value| {
            let (redirect_uri, scope, state) = url_args(lua, &args)?;
            match &acting_now.services(lua)?.api {
                Some(api) => Ok((
                    Value::String(lua.create_string(api.oauth().authorize_url(
                        &redirect_uri,
                        scope,
                        &state,
                    ))?),
                    Value::Nil,
                )),
                None => not_configured(lua, URL),
            }
        })?,
    )?;
    oauth.set(
        "exchange",
        api_function(
            lua,
            acting,
            EXCHANGE,
            |lua, code: Value| {
                let code = arg_str(lua, EXCHANGE, "code", &code)?;
                if code.is_empty() {
                    return Err(error_at(lua, format!("{EXCHANGE}: code is empty")));
                }
                Ok(code)
            },
            |api, code| async move {
                let token = api.oauth().exchange(&code).await?;
                serde_json::to_value(token).map_err(|e| ApiError::InvalidJson {
                    raw: String::new(),
                    reason: e.to_string(),
                })
            },
        )?,
    )?;
    oauth.set(
        "userinfo",
        api_function(
            lua,
            acting,
            USERINFO,
            |lua, (token, openid, lang): (Value, Value, Value)| {
                Ok((
                    arg_str(lua, USERINFO, "access_token", &token)?,
                    arg_str(lua, USERINFO, "openid", &openid)?,
                    opt_str(lua, USERINFO, "lang", &lang)?.unwrap_or_else(|| "zh_CN".into()),
                ))
            },
            |api, (token, openid, lang)| async move {
                api.oauth().userinfo(&token, &openid, &lang).await
            },
        )?,
    )?;
    wx.set("oauth", oauth)
}
