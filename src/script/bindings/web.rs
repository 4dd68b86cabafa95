//! `wx.route(method, path, fn)` and `wx.web` (`redirect`, `escape`, `require_login`): web
//! pages served from the scripts. Routes are registered while the scripts load, like `wx.on`
//! handlers, and kept beside them in the [`HandlerRegistry`]. This file also turns a
//! [`RouteRequest`] into the `req` table a route handler gets, and the handler's return
//! value into a [`RouteResponse`]; the HTTP side is [`crate::web`].

use mlua::{Function, Lua, Result as LuaResult, Table, Value};

use super::handlers::HandlerRegistry;
use super::json::{decode, lua_to_json};
use super::{caller_location, error_at, lua_type};
use crate::net::header_value;
use crate::script::routes::{
    parse_form, RouteMethod, RoutePattern, RouteRequest, RouteResponse, LOGIN_PATH,
};

/// Registry name of the metatable every `req` table shares (its `:json()` and `:form()`).
const REQUEST_METATABLE: &str = "wx.web.request";

/// The content type of a page returned as a string, or of a body without one.
pub const HTML: &str = "text/html; charset=utf-8";
/// The content type of `{json = value}`.
pub const JSON: &str = "application/json";

/// Headers the host writes itself: a script setting them could desynchronise the response.
const HOST_HEADERS: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
];

/// Statuses `wx.web.redirect` accepts.
const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// What a route handler's return value may look like, for the message when it is neither.
const EXPECTED: &str = "expected a string (an HTML page), {status =, headers =, body =}, \
                        {json = value} or wx.web.redirect(url)";

/// One registered route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The method it takes.
    pub method: RouteMethod,
    /// The path it takes.
    pub pattern: RoutePattern,
    /// The Lua function.
    pub func: Function,
    /// `file:line` of the `wx.route` call, for logs and errors.
    pub origin: String,
}

fn string_arg(lua: &Lua, fname: &str, what: &str, v: &Value) -> LuaResult<String> {
    match v {
        Value::String(s) => s
            .to_str()
            .map(|s| s.to_string())
            .map_err(|_| error_at(lua, format!("{fname}: {what} is not UTF-8"))),
        other => Err(error_at(
            lua,
            format!(
                "{fname}: {what} must be a string, not a {}",
                lua_type(other)
            ),
        )),
    }
}

/// Adds `wx.route` and `wx.web`.
pub fn register(lua: &Lua, wx: &Table) -> LuaResult<()> {
    wx.set(
        "route",
        lua.create_function(|lua, (method, path, func): (Value, Value, Value)| {
            let method_text = string_arg(lua, "wx.route", "the method", &method)?;
            let method = RouteMethod::parse(&method_text).ok_or_else(|| {
                error_at(
                    lua,
                    format!(
                        "wx.route: `{method_text}` is not a method (one of {})",
                        RouteMethod::NAMES.join(", ")
                    ),
                )
            })?;
            let path = string_arg(lua, "wx.route", "the path", &path)?;
            let pattern = RoutePattern::parse(&path)
                .map_err(|e| error_at(lua, format!("wx.route(\"{method}\", \"{path}\"): {e}")))?;
            let Value::Function(func) = func else {
                return Err(error_at(
                    lua,
                    format!(
                        "wx.route(\"{method}\", \"{path}\", fn): fn must be a function, not a {}",
                        lua_type(&func)
                    ),
                ));
            };
            let origin = caller_location(lua, 1).unwrap_or_else(|| "?".into());
            let mut registry = lua
                .app_data_mut::<HandlerRegistry>()
                .ok_or_else(|| mlua::Error::RuntimeError("handler registry missing".into()))?;
            if registry.sealed {
                return Err(error_at(
                    lua,
                    "wx.route can only be called while the scripts load (at the top level of a script)",
                ));
            }
            if let Some(earlier) = registry
                .routes
                .iter()
                .find(|r| r.method == method && r.pattern.text() == pattern.text())
            {
                return Err(error_at(
                    lua,
                    format!(
                        "wx.route: {method} {path} is already registered at {}",
                        earlier.origin
                    ),
                ));
            }
            registry.routes.push(Route {
                method,
                pattern,
                func,
                origin,
            });
            Ok(())
        })?,
    )?;

    let request_methods = lua.create_table()?;
    request_methods.set(
        "json",
        lua.create_function(|lua, req: Table| {
            let body: mlua::LuaString = req.raw_get("body")?;
            match decode(lua, &body.as_bytes())? {
                Ok(v) => Ok((v, Value::Nil)),
                Err(message) => Ok((
                    Value::Nil,
                    Value::String(lua.create_string(format!("req:json(): {message}"))?),
                )),
            }
        })?,
    )?;
    request_methods.set(
        "form",
        lua.create_function(|lua, req: Table| {
            let body: mlua::LuaString = req.raw_get("body")?;
            let parsed = std::str::from_utf8(&body.as_bytes())
                .map_err(|_| "the body is not UTF-8".to_string())
                .and_then(|text| parse_form(text).map_err(|e| e.to_string()));
            match parsed {
                Ok(pairs) => {
                    let form = lua.create_table()?;
                    for (key, value) in pairs {
                        form.raw_set(key, value)?;
                    }
                    Ok((Value::Table(form), Value::Nil))
                }
                Err(message) => Ok((
                    Value::Nil,
                    Value::String(lua.create_string(format!("req:form(): {message}"))?),
                )),
            }
        })?,
    )?;
    let metatable = lua.create_table()?;
    metatable.raw_set("__index", request_methods)?;
    // Shared by every request of the state: scripts may read it, not change it.
    metatable.raw_set("__metatable", REQUEST_METATABLE)?;
    lua.set_named_registry_value(REQUEST_METATABLE, metatable)?;

    let web = lua.create_table()?;
    web.set(
        "redirect",
        lua.create_function(|lua, (url, status): (Value, Value)| {
            let url = string_arg(lua, "wx.web.redirect", "the URL", &url)?;
            let status = match status {
                Value::Nil => 302,
                Value::Integer(n) if REDIRECT_STATUSES.iter().any(|&s| i64::from(s) == n) => n,
                other => {
                    return Err(error_at(
                        lua,
                        format!(
                            "wx.web.redirect: the status must be one of 301, 302, 303, 307, 308 (got {})",
                            other.to_string().unwrap_or_else(|_| lua_type(&other).into())
                        ),
                    ))
                }
            };
            redirect(lua, &url, status)
                .map_err(|e| error_at(lua, format!("wx.web.redirect: {e}")))
        })?,
    )?;
    web.set(
        "escape",
        lua.create_function(|lua, text: Value| {
            let text = match &text {
                Value::String(s) => s.to_string_lossy(),
                Value::Integer(_) | Value::Number(_) => text.to_string()?,
                other => {
                    return Err(error_at(
                        lua,
                        format!(
                            "wx.web.escape: expects a string or a number, not a {}",
                            lua_type(other)
                        ),
                    ))
                }
            };
            Ok(escape_html(&text))
        })?,
    )?;
    web.set(
        "require_login",
        lua.create_function(|lua, req: Value| {
            let Value::Table(req) = req else {
                return Err(error_at(
                    lua,
                    format!(
                        "wx.web.require_login: expects the route's req, not a {}",
                        lua_type(&req)
                    ),
                ));
            };
            if let Value::String(openid) = req.raw_get::<Value>("openid")? {
                if !openid.as_bytes().is_empty() {
                    return Ok(Value::Nil);
                }
            }
            let here = match req.raw_get::<Value>("url")? {
                Value::String(url) => url.to_string_lossy(),
                _ => "/".to_string(),
            };
            let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
            Ok(Value::Table(redirect(
                lua,
                &format!("{LOGIN_PATH}?next={next}"),
                302,
            )?))
        })?,
    )?;
    wx.set("web", web)
}

/// `{status =, headers = {location = url}, body = ""}`.
fn redirect(lua: &Lua, url: &str, status: i64) -> LuaResult<Table> {
    if url.is_empty() || header_value(url.as_bytes()).is_none() {
        return Err(mlua::Error::RuntimeError(
            "the URL is empty or has characters a Location header cannot carry".into(),
        ));
    }
    let headers = lua.create_table()?;
    headers.set("location", url)?;
    let response = lua.create_table()?;
    response.set("status", status)?;
    response.set("headers", headers)?;
    response.set("body", "")?;
    Ok(response)
}

/// `text` safe inside HTML text and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The `req` table of one request: method, path, url, query, query_all, headers, cookies,
/// body, params, ip, openid, unionid, and the `:json()` and `:form()` methods.
pub fn request_table(
    lua: &Lua,
    req: &RouteRequest,
    params: &[(String, String)],
) -> LuaResult<Table> {
    let t = lua.create_table()?;
    t.raw_set("method", req.method.as_str())?;
    t.raw_set("path", req.path.decoded.as_str())?;
    t.raw_set("url", req.url.as_str())?;
    if let Some(page_url) = &req.page_url {
        t.raw_set("page_url", page_url.as_str())?;
    }

    let query = lua.create_table()?;
    let query_all = lua.create_table()?;
    for (key, value) in &req.query {
        query.raw_set(key.as_str(), value.as_str())?;
        let all = match query_all.raw_get::<Option<Table>>(key.as_str())? {
            Some(all) => all,
            None => {
                let all = lua.create_table()?;
                query_all.raw_set(key.as_str(), &all)?;
                all
            }
        };
        all.raw_push(value.as_str())?;
    }
    t.raw_set("query", query)?;
    t.raw_set("query_all", query_all)?;

    let headers = lua.create_table()?;
    for (name, value) in &req.headers {
        let joined = match headers.raw_get::<Option<String>>(name.as_str())? {
            // RFC 9110 joins repeated fields with commas; Cookie is joined with "; ".
            Some(earlier) if name == "cookie" => format!("{earlier}; {value}"),
            Some(earlier) => format!("{earlier}, {value}"),
            None => value.clone(),
        };
        headers.raw_set(name.as_str(), joined)?;
    }
    t.raw_set("headers", headers)?;

    let cookies = lua.create_table()?;
    for (name, value) in &req.cookies {
        // The first of two same-named cookies is the more specific one (RFC 6265 §5.4).
        if cookies.raw_get::<Value>(name.as_str())?.is_nil() {
            cookies.raw_set(name.as_str(), value.as_str())?;
        }
    }
    t.raw_set("cookies", cookies)?;

    t.raw_set("body", lua.create_string(&req.body)?)?;
    let route_params = lua.create_table()?;
    for (name, value) in params {
        route_params.raw_set(name.as_str(), value.as_str())?;
    }
    t.raw_set("params", route_params)?;
    if let Some(ip) = &req.ip {
        t.raw_set("ip", ip.as_str())?;
    }
    if let Some(visitor) = &req.visitor {
        t.raw_set("openid", visitor.openid.as_str())?;
        if let Some(unionid) = &visitor.unionid {
            t.raw_set("unionid", unionid.as_str())?;
        }
    }
    let metatable: Table = lua.named_registry_value(REQUEST_METATABLE)?;
    t.set_metatable(Some(metatable))?;
    Ok(t)
}

/// A route handler's return value as a response, or what is wrong with it.
pub fn response_from_lua(lua: &Lua, value: &Value) -> Result<RouteResponse, String> {
    match value {
        Value::String(page) => Ok(RouteResponse {
            status: 200,
            headers: vec![("content-type".into(), HTML.into())],
            body: page.as_bytes().to_vec(),
        }),
        Value::Table(t) => response_from_table(lua, t),
        Value::Nil => Err(format!("it returned nothing: {EXPECTED}")),
        other => Err(format!("it returned a {}: {EXPECTED}", lua_type(other))),
    }
}

fn response_from_table(lua: &Lua, t: &Table) -> Result<RouteResponse, String> {
    let lua_err = |e: mlua::Error| e.to_string();
    let mut status = 200u16;
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut body: Option<Vec<u8>> = None;
    let mut json = None;
    for pair in t.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(lua_err)?;
        let key = match &key {
            Value::String(s) => s.to_string_lossy(),
            other => {
                return Err(format!(
                    "the response table has a {} key: {EXPECTED}",
                    lua_type(other)
                ))
            }
        };
        match key.as_str() {
            "status" => {
                let n = match value {
                    Value::Integer(n) => Some(n),
                    Value::Number(f) if f.fract() == 0.0 => Some(f as i64),
                    _ => None,
                };
                status = n
                    .filter(|n| (200..=599).contains(n))
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| {
                        format!(
                            "status must be an integer from 200 to 599, not {}",
                            value.to_string().unwrap_or_else(|_| lua_type(&value).into())
                        )
                    })?;
            }
            "headers" => {
                let Value::Table(list) = value else {
                    return Err(format!(
                        "headers must be a table of name = value, not a {}",
                        lua_type(&value)
                    ));
                };
                headers = response_headers(&list)?;
            }
            "body" => match value {
                Value::String(s) => body = Some(s.as_bytes().to_vec()),
                other => return Err(format!("body must be a string, not a {}", lua_type(&other))),
            },
            "json" => {
                let encoded = lua_to_json(lua, "route", "json", value).map_err(lua_err)?;
                json = Some(serde_json::to_vec(&encoded).map_err(|e| e.to_string())?);
            }
            other => {
                return Err(format!(
                    "unknown field `{other}` in the response table (known: status, headers, body, json)"
                ))
            }
        }
    }
    let (body, content_type) = match (body, json) {
        (Some(_), Some(_)) => return Err("the response has both body and json: pick one".into()),
        (None, Some(json)) => (json, JSON),
        (body, None) => (body.unwrap_or_default(), HTML),
    };
    if !headers.iter().any(|(name, _)| name == "content-type") {
        headers.push(("content-type".into(), content_type.into()));
    }
    Ok(RouteResponse {
        status,
        headers,
        body,
    })
}

/// `headers = {name = "value" | {"v1", "v2"}}` checked as HTTP, names lower-cased.
fn response_headers(list: &Table) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    for pair in list.pairs::<Value, Value>() {
        let (name, value) = pair.map_err(|e| e.to_string())?;
        let Value::String(name) = name else {
            return Err(format!(
                "header names must be strings, not a {}",
                lua_type(&name)
            ));
        };
        let name = name.to_string_lossy().to_ascii_lowercase();
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("`{name}` is not a header name"));
        }
        if HOST_HEADERS.contains(&name.as_str()) {
            return Err(format!("the {name} header is set by the host"));
        }
        let mut add = |value: &Value| -> Result<(), String> {
            let text = match value {
                Value::String(s) => s.to_string_lossy(),
                Value::Integer(_) | Value::Number(_) => {
                    value.to_string().map_err(|e| e.to_string())?
                }
                other => {
                    return Err(format!(
                        "the {name} header must be a string, not a {}",
                        lua_type(other)
                    ))
                }
            };
            if header_value(text.as_bytes()).is_none() {
                return Err(format!(
                    "the {name} header has characters a header cannot carry (line breaks, control characters)"
                ));
            }
            headers.push((name.clone(), text));
            Ok(())
        };
        match &value {
            // A list for a repeated header (Set-Cookie).
            Value::Table(values) => {
                for value in values.sequence_values::<Value>() {
                    add(&value.map_err(|e| e.to_string())?)?;
                }
            }
            value => add(value)?,
        }
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_text_and_attributes() {
        assert_eq!(
            escape_html(r#"<a href="x?a=1&b='2'">你</a>"#),
            "&lt;a href=&quot;x?a=1&amp;b=&#39;2&#39;&quot;&gt;你&lt;/a&gt;"
        );
    }
}
