//! `wx.api.get/post`: any other endpoint of the WeChat API, with the access_token added and
//! the same error handling. Only paths on the configured API host are allowed, so a script
//! cannot send the token elsewhere.

use mlua::{Lua, Result as LuaResult, Table, Value};
use serde_json::{json, Value as Json};

use super::convert::{api_function, arg_str, arg_table, lua_to_json};
use crate::script::bindings::error_at;
use crate::script::services::ActingFor;

/// Why a path is refused, if it is; it must be a plain path on the API host.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("the path must start with / (e.g. /cgi-bin/...); absolute URLs are refused");
    }
    if path.starts_with("//") || path.contains("://") || path.contains('\\') {
        return Some(
            "absolute URLs are refused: the access_token only goes to the WeChat API host",
        );
    }
    if path.contains(['?', '#']) {
        return Some("put query parameters in the query table, not in the path");
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("the path contains spaces or control characters");
    }
    None
}

fn checked_path(lua: &Lua, fname: &str, v: &Value) -> LuaResult<String> {
    let path = arg_str(lua, fname, "path", v)?;
    match path_problem(&path) {
        Some(why) => Err(error_at(lua, format!("{fname}: {why}: {path}"))),
        None => Ok(path),
    }
}

/// Query values are strings, numbers or booleans, written as Lua would print them.
fn query_pairs(lua: &Lua, fname: &str, v: &Value) -> LuaResult<Vec<(String, String)>> {
    if v.is_nil() {
        return Ok(Vec::new());
    }
    let t = arg_table(lua, fname, "query", v)?;
    let mut out = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let key = arg_str(lua, fname, "a query key", &k)?;
        let value = match v {
            Value::Boolean(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            other => arg_str(lua, fname, &format!("query.{key}"), &other)?,
        };
        out.push((key, value));
    }
    // Sorted so requests are reproducible whatever the table order.
    out.sort();
    Ok(out)
}

/// Adds `wx.api`.
pub fn register(lua: &Lua, wx: &Table, acting: &ActingFor) -> LuaResult<()> {
    let api = lua.create_table()?;
    api.set(
        "get",
        api_function(
            lua,
            acting,
            "wx.api.get",
            |lua, (path, query): (Value, Value)| {
                let f = "wx.api.get";
                Ok((checked_path(lua, f, &path)?, query_pairs(lua, f, &query)?))
            },
            |api, (path, query)| async move {
                let q: Vec<(&str, &str)> = query
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                api.get(&path, &q).await
            },
        )?,
    )?;
    api.set(
        "post",
        api_function(
            lua,
            acting,
            "wx.api.post",
            |lua, (path, body): (Value, Value)| {
                let f = "wx.api.post";
                let path = checked_path(lua, f, &path)?;
                let body: Json = match body {
                    Value::Nil => json!({}),
                    v @ Value::Table(_) => lua_to_json(lua, f, "the body", v)?,
                    other => {
                        return Err(error_at(
                            lua,
                            format!("{f}: the body must be a table, not a {}", other.type_name()),
                        ))
                    }
                };
                Ok((path, body))
            },
            |api, (path, body)| async move { api.post(&path, &body).await },
        )?,
    )?;
    wx.set("api", api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_the_api_host() {
        assert_eq!(path_problem("/cgi-bin/user/get"), None);
        assert_eq!(path_problem("/datacube/getusersummary"), None);
        for bad in [
            "https://evil.example/cgi-bin/x",
            "cgi-bin/x",
            "//evil.example/x",
            "/x?access_token=1",
            "/redirect?u=http://evil",
            "/a\\b",
            "/a b",
        ] {
            assert!(path_problem(bad).is_some(), "{bad} accepted");
        }
    }
}
