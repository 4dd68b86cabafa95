//! `wx.jssdk.config`: the signed configuration a page passes to the JS-SDK's `wx.config`.

use mlua::{Lua, Result as LuaResult, Table, Value};

use super::convert::{api_function, arg_str, arg_table, opt_bool};
use crate::api::jssdk::check_page_url;
use crate::api::ApiError;
use crate::script::bindings::error_at;
use crate::script::services::ActingFor;

const CONFIG: &str = "wx.jssdk.config";

/// What `wx.jssdk.config` was asked for.
#[derive(Debug)]
struct ConfigArgs {
    url: String,
    apis: Vec<String>,
    open_tags: Vec<String>,
    debug: bool,
}

/// An optional list of names (`apis`, `open_tags`); empty when absent.
fn name_list(lua: &Lua, what: &str, v: &Value) -> LuaResult<Vec<String>> {
    if v.is_nil() {
        return Ok(Vec::new());
    }
    let t = arg_table(lua, CONFIG, what, v)?;
    let mut out = Vec::new();
    for (i, item) in t.sequence_values::<Value>().enumerate() {
        out.push(arg_str(lua, CONFIG, &format!("{what}[{}]", i + 1), &item?)?);
    }
    Ok(out)
}

fn config_args(lua: &Lua, (url, options): (Value, Value)) -> LuaResult<ConfigArgs> {
    let url = arg_str(lua, CONFIG, "url", &url)?;
    check_page_url(&url).map_err(|why| error_at(lua, format!("{CONFIG}: {why}")))?;
    let mut args = ConfigArgs {
        url,
        apis: Vec::new(),
        open_tags: Vec::new(),
        debug: false,
    };
    if !options.is_nil() {
        let t = arg_table(
            lua,
            CONFIG,
            "options ({apis =, open_tags =, debug =})",
            &options,
        )?;
        args.apis = name_list(lua, "apis", &t.raw_get("apis")?)?;
        args.open_tags = name_list(lua, "open_tags", &t.raw_get("open_tags")?)?;
        args.debug = opt_bool(lua, CONFIG, "debug", &t.raw_get("debug")?)?.unwrap_or(false);
    }
    Ok(args)
}

/// Adds `wx.jssdk`.
pub fn register(lua: &Lua, wx: &Table, acting: &ActingFor) -> LuaResult<()> {
    let jssdk = lua.create_table()?;
    jssdk.set(
        "config",
        api_function(lua, acting, CONFIG, config_args, |api, args| async move {
            let config = api
                .jssdk()
                .config(&args.url, args.apis, args.open_tags, args.debug)
                .await?;
            serde_json::to_value(config).map_err(|e| ApiError::InvalidJson {
                raw: String::new(),
                reason: e.to_string(),
            })
        })?,
    )?;
    wx.set("jssdk", jssdk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(src: &str) -> Result<ConfigArgs, String> {
        let lua = Lua::new();
        let v: mlua::MultiValue = lua.load(src).eval().unwrap();
        let mut it = v.into_iter();
        let url = it.next().unwrap_or(Value::Nil);
        let options = it.next().unwrap_or(Value::Nil);
        config_args(&lua, (url, options)).map_err(|e| e.to_string())
    }

    #[test]
    fn options_are_checked() {
        let a = args(
            r#"return "https://shop.example/orders#x", {apis = {"scanQRCode"}, open_tags = {"wx-open-subscribe"}, debug = true}"#,
        )
        .unwrap();
        assert_eq!(a.url, "https://shop.example/orders#x");
        assert_eq!(a.apis, ["scanQRCode"]);
        assert_eq!(a.open_tags, ["wx-open-subscribe"]);
        assert!(a.debug);
        let a = args(r#"return "http://127.0.0.1:8080/p""#).unwrap();
        assert!(a.apis.is_empty() && a.open_tags.is_empty() && !a.debug);
        assert!(args(r#"return "/orders""#)
            .unwrap_err()
            .contains("not an absolute URL"));
        assert!(
            args(r#"return "https://a.example/", {apis = "scanQRCode"}"#)
                .unwrap_err()
                .contains("apis must be a table")
        );
        assert!(args(r#"return "https://a.example/", {apis = {1.5}}"#).is_err());
    }
}
