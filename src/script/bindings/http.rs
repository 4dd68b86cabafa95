//! `wx.http.request/get/post`: the Lua side of [`crate::net`]. Options are checked here and
//! mistakes raise at the script's line; transport failures are `nil, err` with `err.kind`,
//! `err.message` and `err.url`; any status is a response. Calls are async functions, so a
//! handler waiting on the network suspends only itself.

use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, Result as LuaResult, Table, Value};
use reqwest::header::{HeaderMap, HeaderName, CONTENT_TYPE};
use reqwest::Method;
use tokio::sync::Semaphore;
use url::Url;

use super::encoding::query_string;
use super::json::{decode, lua_to_json};
use super::{error_at, lua_type};
use crate::net::{header_value, ErrorKind, HttpClient, HttpError, OutboundRequest};
use crate::script::services::Services;

/// Default `timeout`, seconds.
const DEFAULT_TIMEOUT: f64 = 10.0;
/// Largest `timeout`, seconds.
const MAX_TIMEOUT: f64 = 60.0;
/// Default `max_bytes`: 8 MiB.
const DEFAULT_MAX_BYTES: i64 = 8 * 1024 * 1024;
/// Largest `max_bytes`: 64 MiB.
const MAX_MAX_BYTES: i64 = 64 * 1024 * 1024;

/// The options `wx.http.request` knows.
const OPTIONS: [&str; 9] = [
    "method",
    "url",
    "query",
    "headers",
    "body",
    "json",
    "form",
    "timeout",
    "max_bytes",
];

/// Headers the client sets itself; a script setting them could desynchronise the request.
const RESERVED_HEADERS: [&str; 4] = ["content-length", "transfer-encoding", "host", "connection"];

/// A checked request, or a URL that cannot be requested (`nil, {kind = "invalid_url"}`).
type Parsed = Result<OutboundRequest, HttpError>;

fn string_field(lua: &Lua, fname: &str, what: &str, v: &Value) -> LuaResult<Option<String>> {
    match v {
        Value::Nil => Ok(None),
        Value::String(s) => s
            .to_str()
            .map(|s| Some(s.to_string()))
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

/// Checks an options table into a request.
fn parse(lua: &Lua, fname: &str, opts: &Table) -> LuaResult<Parsed> {
    for pair in opts.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let known = matches!(&k, Value::String(s) if OPTIONS.iter().any(|o| s == *o));
        if !known {
            return Err(error_at(
                lua,
                format!(
                    "{fname}: unknown option `{}` (known: {})",
                    k.to_string()?,
                    OPTIONS.join(", ")
                ),
            ));
        }
    }
    let method_text = string_field(lua, fname, "method", &opts.raw_get("method")?)?
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    let is_token = !method_text.is_empty()
        && method_text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let method = match Method::from_bytes(method_text.as_bytes()) {
        Ok(m) if is_token => m,
        _ => {
            return Err(error_at(
                lua,
                format!("{fname}: method `{method_text}` is not an HTTP method name"),
            ))
        }
    };
    let Some(url_text) = string_field(lua, fname, "url", &opts.raw_get("url")?)? else {
        return Err(error_at(
            lua,
            format!("{fname}: url is required (a string)"),
        ));
    };
    let mut url = match Url::parse(&url_text) {
        Ok(url) => url,
        Err(e) => {
            return Ok(Err(HttpError {
                kind: ErrorKind::InvalidUrl,
                message: format!("not a URL: {e}"),
                url: url_text.split(['?', '#']).next().unwrap_or("").to_string(),
            }))
        }
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(error_at(
            lua,
            format!(
                "{fname}: url must be http:// or https://, not {}:",
                url.scheme()
            ),
        ));
    }
    match opts.raw_get::<Value>("query")? {
        Value::Nil => {}
        Value::Table(t) => {
            let extra = query_string(lua, &format!("{fname}: query"), &t)?;
            if !extra.is_empty() {
                let joined = match url.query() {
                    Some(q) if !q.is_empty() => format!("{q}&{extra}"),
                    _ => extra,
                };
                url.set_query(Some(&joined));
            }
        }
        other => {
            return Err(error_at(
                lua,
                format!("{fname}: query must be a table, not a {}", lua_type(&other)),
            ))
        }
    }

    let mut headers = HeaderMap::new();
    match opts.raw_get::<Value>("headers")? {
        Value::Nil => {}
        Value::Table(t) => {
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                let Value::String(name) = &k else {
                    return Err(error_at(
                        lua,
                        format!(
                            "{fname}: header names must be strings, not a {}",
                            lua_type(&k)
                        ),
                    ));
                };
                let name_text = name.to_string_lossy();
                let name = HeaderName::from_bytes(&name.as_bytes()).map_err(|_| {
                    error_at(lua, format!("{fname}: `{name_text}` is not a header name"))
                })?;
                if RESERVED_HEADERS.contains(&name.as_str()) {
                    return Err(error_at(
                        lua,
                        format!("{fname}: header `{name}` is set by the host, not by scripts"),
                    ));
                }
                let bytes = match &v {
                    Value::String(s) => s.as_bytes().to_vec(),
                    Value::Integer(_) | Value::Number(_) => v.to_string()?.into_bytes(),
                    other => {
                        return Err(error_at(
                            lua,
                            format!(
                                "{fname}: header `{name}` must be a string, not a {}",
                                lua_type(other)
                            ),
                        ))
                    }
                };
                let value = header_value(&bytes).ok_or_else(|| {
                    error_at(
                        lua,
                        format!(
                            "{fname}: header `{name}` contains a line break or a control character"
                        ),
                    )
                })?;
                headers.append(name, value);
            }
        }
        other => {
            return Err(error_at(
                lua,
                format!(
                    "{fname}: headers must be a table, not a {}",
                    lua_type(&other)
                ),
            ))
        }
    }

    let body_value: Value = opts.raw_get("body")?;
    let json_value: Value = opts.raw_get("json")?;
    let form_value: Value = opts.raw_get("form")?;
    let given = [&body_value, &json_value, &form_value]
        .iter()
        .filter(|v| !v.is_nil())
        .count();
    if given > 1 {
        return Err(error_at(
            lua,
            format!("{fname}: give one of body, json and form, not several"),
        ));
    }
    let mut content_type = None;
    let body = if let Value::String(s) = &body_value {
        Some(s.as_bytes().to_vec())
    } else if !body_value.is_nil() {
        return Err(error_at(
            lua,
            format!(
                "{fname}: body must be a string, not a {}",
                lua_type(&body_value)
            ),
        ));
    } else if !json_value.is_nil() {
        let json = lua_to_json(lua, fname, "json", json_value)?;
        content_type = Some("application/json");
        Some(serde_json::to_vec(&json).map_err(|e| error_at(lua, format!("{fname}: {e}")))?)
    } else if let Value::Table(t) = &form_value {
        content_type = Some("application/x-www-form-urlencoded");
        Some(query_string(lua, &format!("{fname}: form"), t)?.into_bytes())
    } else if !form_value.is_nil() {
        return Err(error_at(
            lua,
            format!(
                "{fname}: form must be a table, not a {}",
                lua_type(&form_value)
            ),
        ));
    } else {
        None
    };
    if let Some(ct) = content_type {
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, reqwest::header::HeaderValue::from_static(ct));
        }
    }

    let timeout = match opts.raw_get::<Value>("timeout")? {
        Value::Nil => DEFAULT_TIMEOUT,
        Value::Integer(i) if i > 0 && i as f64 <= MAX_TIMEOUT => i as f64,
        Value::Number(n) if n > 0.0 && n <= MAX_TIMEOUT => n,
        other => {
            return Err(error_at(
                lua,
                format!(
                    "{fname}: timeout must be a number of seconds in (0, {MAX_TIMEOUT}], not {}",
                    shown(&other)?
                ),
            ))
        }
    };
    let max_bytes = match opts.raw_get::<Value>("max_bytes")? {
        Value::Nil => DEFAULT_MAX_BYTES,
        Value::Integer(i) if (1..=MAX_MAX_BYTES).contains(&i) => i,
        other => {
            return Err(error_at(
                lua,
                format!(
                    "{fname}: max_bytes must be an integer in 1..={MAX_MAX_BYTES}, not {}",
                    shown(&other)?
                ),
            ))
        }
    };
    Ok(Ok(OutboundRequest {
        method,
        url,
        headers,
        body,
        timeout: Duration::from_secs_f64(timeout),
        max_bytes: max_bytes as usize,
    }))
}

/// A value as an error message shows it.
fn shown(v: &Value) -> LuaResult<String> {
    Ok(match v {
        Value::Integer(_) | Value::Number(_) => v.to_string()?,
        other => format!("a {}", lua_type(other)),
    })
}

/// `err` of a failed request.
fn error_table(lua: &Lua, e: &HttpError) -> LuaResult<Table> {
    let err = lua.create_table()?;
    err.set("kind", e.kind.as_str())?;
    err.set("message", e.message.as_str())?;
    err.set("url", e.url.as_str())?;
    Ok(err)
}

/// Sends a parsed request and turns the outcome into `resp` or `nil, err`.
async fn perform(
    lua: &Lua,
    client: &HttpClient,
    worker: &Semaphore,
    parsed: Parsed,
) -> LuaResult<(Value, Value)> {
    let request = match parsed {
        Ok(request) => request,
        Err(e) => return Ok((Value::Nil, Value::Table(error_table(lua, &e)?))),
    };
    match client.send(worker, request).await {
        Ok(resp) => {
            let t = lua.create_table()?;
            t.set("status", resp.status)?;
            let headers = lua.create_table()?;
            for (name, value) in &resp.headers {
                headers.set(name.as_str(), lua.create_string(value)?)?;
            }
            t.set("headers", headers)?;
            t.set("body", lua.create_string(&resp.body)?)?;
            t.set(
                "json",
                lua.named_registry_value::<mlua::Function>(JSON_METHOD)?,
            )?;
            Ok((Value::Table(t), Value::Nil))
        }
        Err(e) => Ok((Value::Nil, Value::Table(error_table(lua, &e)?))),
    }
}

/// Registry name of `resp:json()`, made once per state.
const JSON_METHOD: &str = "wx.http.resp.json";

/// A copy of `opts` (or an empty table) for the shorthands, which fill in some options
/// themselves and refuse them in `opts`.
fn shorthand_options(lua: &Lua, fname: &str, opts: Value, reserved: &[&str]) -> LuaResult<Table> {
    let copy = lua.create_table()?;
    match opts {
        Value::Nil => {}
        Value::Table(t) => {
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                if let Value::String(s) = &k {
                    if let Some(r) = reserved.iter().find(|r| s == **r) {
                        return Err(error_at(
                            lua,
                            format!("{fname}: `{r}` is given by the arguments, not the options"),
                        ));
                    }
                }
                copy.raw_set(k, v)?;
            }
        }
        other => {
            return Err(error_at(
                lua,
                format!(
                    "{fname}: options must be a table, not a {}",
                    lua_type(&other)
                ),
            ))
        }
    }
    Ok(copy)
}

/// Adds `wx.http`.
pub fn register(lua: &Lua, wx: &Table, services: &Services) -> LuaResult<()> {
    let http = lua.create_table()?;
    // One cap per Lua state: a loop of calls in one handler waits here, not in the process.
    let worker = services.http.worker_slots();

    lua.set_named_registry_value(
        JSON_METHOD,
        lua.create_function(|lua, resp: Value| {
            let Value::Table(resp) = resp else {
                return Err(error_at(
                    lua,
                    "resp:json(): call it with a colon, on a response",
                ));
            };
            let Value::String(body) = resp.raw_get::<Value>("body")? else {
                return Err(error_at(
                    lua,
                    "resp:json(): the response has no body string",
                ));
            };
            match decode(lua, &body.as_bytes())? {
                Ok(v) => Ok(v),
                Err(message) => Err(error_at(lua, format!("resp:json(): the body is {message}"))),
            }
        })?,
    )?;

    let client = services.http.clone();
    let slots = worker.clone();
    http.set(
        "request",
        super::waiting_function(lua, "wx.http.request", move |lua, opts: Value| {
            let client = client.clone();
            let slots = slots.clone();
            async move {
                let Value::Table(opts) = opts else {
                    return Err(error_at(
                        &lua,
                        format!(
                            "wx.http.request: expects an options table, not a {}",
                            lua_type(&opts)
                        ),
                    ));
                };
                let parsed = parse(&lua, "wx.http.request", &opts)?;
                perform(&lua, &client, &slots, parsed).await
            }
        })?,
    )?;

    let client = services.http.clone();
    let slots = worker.clone();
    http.set(
        "get",
        super::waiting_function(
            lua,
            "wx.http.get",
            move |lua, (url, opts): (Value, Value)| {
                let client = client.clone();
                let slots = slots.clone();
                async move {
                    let fname = "wx.http.get";
                    let t = shorthand_options(&lua, fname, opts, &["url", "method"])?;
                    t.raw_set("url", url)?;
                    let parsed = parse(&lua, fname, &t)?;
                    perform(&lua, &client, &slots, parsed).await
                }
            },
        )?,
    )?;

    let client: Arc<HttpClient> = services.http.clone();
    let slots = worker;
    http.set(
        "post",
        super::waiting_function(lua, "wx.http.post", move |lua, (url, body, opts): (Value, Value, Value)| {
            let client = client.clone();
            let slots = slots.clone();
            async move {
                let fname = "wx.http.post";
                let t = shorthand_options(
                    &lua,
                    fname,
                    opts,
                    &["url", "method", "body", "json", "form"],
                )?;
                t.raw_set("url", url)?;
                t.raw_set("method", "POST")?;
                match body {
                    Value::String(_) => t.raw_set("body", body)?,
                    Value::Table(_) => t.raw_set("json", body)?,
                    Value::Nil => {}
                    other => {
                        return Err(error_at(
                            &lua,
                            format!(
                                "{fname}: the body must be a string or a table (sent as JSON), not a {}",
                                lua_type(&other)
                            ),
                        ))
                    }
                }
                let parsed = parse(&lua, fname, &t)?;
                perform(&lua, &client, &slots, parsed).await
            }
        })?,
    )?;
    wx.set("http", http)
}
