//! `wx.base64` and `wx.url`: the encodings scripts need to talk to web APIs, done by the
//! `base64`, `percent-encoding` and `form_urlencoded` crates.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use mlua::{Lua, Result as LuaResult, Table, Value};
use percent_encoding::{percent_decode, AsciiSet, NON_ALPHANUMERIC};

use super::{error_at, lua_type};

/// What `wx.url.encode` leaves as it is: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn bytes_arg(lua: &Lua, fname: &str, v: &Value) -> LuaResult<mlua::BString> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec().into()),
        Value::Integer(_) | Value::Number(_) => Ok(v.to_string()?.into_bytes().into()),
        other => Err(error_at(
            lua,
            format!("{fname}: expects a string, not a {}", lua_type(other)),
        )),
    }
}

/// The `url = true` option of `wx.base64`.
fn url_option(lua: &Lua, fname: &str, options: Value) -> LuaResult<bool> {
    match options {
        Value::Nil => Ok(false),
        Value::Table(t) => {
            let mut url = false;
            for pair in t.pairs::<Value, Value>() {
                match pair? {
                    (Value::String(k), Value::Boolean(b)) if k == "url" => url = b,
                    (k, _) => {
                        return Err(error_at(
                            lua,
                            format!(
                                "{fname}: unknown option `{}` (known: url = true|false)",
                                k.to_string()?
                            ),
                        ))
                    }
                }
            }
            Ok(url)
        }
        other => Err(error_at(
            lua,
            format!(
                "{fname}: options must be a table, not a {}",
                lua_type(&other)
            ),
        )),
    }
}

/// A value of `wx.url.query`'s table as text.
fn query_value(lua: &Lua, key: &str, v: &Value) -> LuaResult<String> {
    match v {
        Value::String(s) => s.to_str().map(|s| s.to_string()).map_err(|_| {
            error_at(
                lua,
                format!("wx.url.query: the value of `{key}` is not UTF-8"),
            )
        }),
        Value::Integer(_) | Value::Number(_) | Value::Boolean(_) => Ok(v.to_string()?),
        other => Err(error_at(
            lua,
            format!(
                "wx.url.query: the value of `{key}` must be a string, number or boolean, not a {}",
                lua_type(other)
            ),
        )),
    }
}

/// `key=value&…` of a table, keys sorted (so a signature over it is stable), encoded as
/// `application/x-www-form-urlencoded`. Also used by `wx.http` for `query` and `form`.
pub fn query_string(lua: &Lua, fname: &str, t: &Table) -> LuaResult<String> {
    let mut pairs = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let key = match &k {
            Value::String(s) => s
                .to_str()
                .map(|s| s.to_string())
                .map_err(|_| error_at(lua, format!("{fname}: a key is not UTF-8")))?,
            Value::Integer(i) => i.to_string(),
            other => {
                return Err(error_at(
                    lua,
                    format!("{fname}: keys must be strings, not a {}", lua_type(other)),
                ))
            }
        };
        let value = query_value(lua, &key, &v).map_err(|e| match e {
            mlua::Error::RuntimeError(m) => {
                mlua::Error::RuntimeError(m.replace("wx.url.query", fname))
            }
            e => e,
        })?;
        pairs.push((key, value));
    }
    pairs.sort();
    Ok(form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish())
}

/// Adds `wx.base64` and `wx.url`.
pub fn register(lua: &Lua, wx: &Table) -> LuaResult<()> {
    let base64 = lua.create_table()?;
    base64.set(
        "encode",
        lua.create_function(|lua, (s, options): (Value, Value)| {
            let data = bytes_arg(lua, "wx.base64.encode", &s)?;
            let engine = if url_option(lua, "wx.base64.encode", options)? {
                &URL_SAFE
            } else {
                &STANDARD
            };
            Ok(engine.encode(data.as_slice()))
        })?,
    )?;
    base64.set(
        "decode",
        lua.create_function(|lua, (s, options): (Value, Value)| {
            let data = bytes_arg(lua, "wx.base64.decode", &s)?;
            let url = url_option(lua, "wx.base64.decode", options)?;
            let trimmed: Vec<u8> = data
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let decoded = if url {
                // Padding is optional in URL-safe text (JWTs leave it out).
                let unpadded: Vec<u8> = trimmed.iter().copied().filter(|&b| b != b'=').collect();
                URL_SAFE_NO_PAD.decode(unpadded)
            } else {
                STANDARD.decode(trimmed)
            };
            match decoded {
                Ok(bytes) => Ok((Value::String(lua.create_string(bytes)?), Value::Nil)),
                Err(e) => Ok((
                    Value::Nil,
                    Value::String(lua.create_string(format!("wx.base64.decode: not base64: {e}"))?),
                )),
            }
        })?,
    )?;
    wx.set("base64", base64)?;

    let url = lua.create_table()?;
    url.set(
        "encode",
        lua.create_function(|lua, s: Value| {
            let data = bytes_arg(lua, "wx.url.encode", &s)?;
            Ok(percent_encoding::percent_encode(data.as_slice(), UNRESERVED).to_string())
        })?,
    )?;
    url.set(
        "decode",
        lua.create_function(|lua, s: Value| {
            let data = bytes_arg(lua, "wx.url.decode", &s)?;
            // Form encoding writes spaces as `+`; decode both forms.
            let plus_as_space: Vec<u8> = data
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect();
            let decoded: Vec<u8> = percent_decode(&plus_as_space).collect();
            lua.create_string(decoded)
        })?,
    )?;
    url.set(
        "query",
        lua.create_function(|lua, t: Value| match t {
            Value::Table(t) => query_string(lua, "wx.url.query", &t),
            other => Err(error_at(
                lua,
                format!("wx.url.query: expects a table, not a {}", lua_type(&other)),
            )),
        })?,
    )?;
    wx.set("url", url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str) -> String {
        let lua = Lua::new();
        let wx = lua.create_table().unwrap();
        register(&lua, &wx).unwrap();
        lua.globals().set("wx", wx).unwrap();
        lua.load(src)
            .set_name("=t.lua")
            .eval::<String>()
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn base64_round_trips_bytes_in_both_alphabets() {
        assert_eq!(eval("return wx.base64.encode('\\251\\255\\0')"), "+/8A");
        assert_eq!(
            eval("return wx.base64.encode('\\251\\255\\0', {url = true})"),
            "-_8A"
        );
        assert_eq!(eval("return wx.base64.decode('aGk=')"), "hi");
        assert_eq!(eval("return wx.base64.decode('aGk', {url = true})"), "hi");
        assert_eq!(
            eval("local s = '\\251\\255\\0' return tostring(wx.base64.decode(wx.base64.encode(s)) == s)"),
            "true"
        );
        assert!(
            eval("local v, err = wx.base64.decode('*') return tostring(v) .. ' ' .. err")
                .starts_with("nil wx.base64.decode: not base64")
        );
        assert!(eval("return wx.base64.encode('x', {padding = false})")
            .contains("t.lua:1: wx.base64.encode: unknown option `padding`"));
        assert!(eval("return wx.base64.encode({})").contains("expects a string, not a table"));
    }

    #[test]
    fn url_encoding_and_sorted_queries() {
        assert_eq!(
            eval("return wx.url.encode('a b&c=d/é~')"),
            "a%20b%26c%3Dd%2F%C3%A9~"
        );
        assert_eq!(eval("return wx.url.decode('a%20b+c%26')"), "a b c&");
        assert_eq!(
            eval("return wx.url.query{z = 1, a = 'x y', m = true, ['k&'] = '='}"),
            "a=x+y&k%26=%3D&m=true&z=1"
        );
        assert!(eval("return wx.url.query{a = {}}")
            .contains("t.lua:1: wx.url.query: the value of `a` must be"));
    }
}
