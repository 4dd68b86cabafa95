//! Shared plumbing of the API bindings: Lua ⇄ JSON (the converter of `wx.json`), argument checks
//! that raise at the script's line, and the `nil, err` convention for API failures.

use std::future::Future;
use std::sync::Arc;

use mlua::{FromLuaMulti, Function, Lua, MaybeSend, Result as LuaResult, Table, Value};
use serde_json::Value as Json;

use super::super::error_at;
pub use super::super::json::lua_to_json;
use super::super::json::{self, ObjectNull};
use crate::api::error::ERRCODE_CONFIG;
use crate::api::outbox::{unknown_reason, QueuedCall};
use crate::api::{ApiError, WechatClient};
use crate::script::services::{ActingFor, Services};

/// What a binding's WeChat call produces: JSON that becomes the Lua result.
pub type CallResult = Result<Json, ApiError>;

/// `nil, err` with `err.errcode`, `err.errmsg` and, when WeChat asks to wait, `err.retry_after`
/// (seconds); `err.kind = "unknown_outcome"` when the request went out and no answer came,
/// so the call may have taken effect.
pub fn failure(lua: &Lua, e: &ApiError) -> LuaResult<(Value, Value)> {
    let err = lua.create_table()?;
    err.set("errcode", e.errcode())?;
    err.set("errmsg", e.errmsg())?;
    if e.outcome_unknown() {
        err.set("kind", "unknown_outcome")?;
    }
    match e {
        ApiError::RetryLater { retry_after, .. } => {
            err.set("retry_after", retry_after.as_secs())?
        }
        // The host keeps retrying it: the script need not (and should not) send it again.
        ApiError::Queued { .. } => err.set("queued", true)?,
        _ => {}
    }
    Ok((Value::Nil, Value::Table(err)))
}

/// Keeps a call that failed for a transient reason in the outbox (when there is one) if
/// sending it again cannot deliver it twice ([`QueuedCall::may_send_again`]), so the host
/// retries it; the script then sees `err.queued = true`. A call whose outcome is unknown and
/// that has no idempotency key (a customer-service message) is not sent again: logged,
/// counted, and returned as it is (`err.kind = "unknown_outcome"`).
pub async fn queue_if_transient(
    outbox: Option<&crate::api::outbox::Outbox>,
    error: ApiError,
    call: QueuedCall,
) -> ApiError {
    match outbox {
        Some(outbox) if call.may_send_again(&error) => match outbox.enqueue(&call, &error).await {
            Ok(_) => ApiError::Queued {
                cause: Box::new(error),
            },
            Err(store_error) => {
                tracing::error!("{}: cannot queue for retry ({store_error})", call.purpose);
                error
            }
        },
        _ => {
            if error.outcome_unknown() {
                tracing::warn!(
                    purpose = %call.purpose,
                    errcode = error.errcode(),
                    "send's outcome unknown (the request went out, no answer came); not sent again (at most once)"
                );
                crate::metrics::metrics()
                    .send_unknown_outcome(&call.path, unknown_reason::ANSWER_LOST);
            }
            error
        }
    }
}

/// `nil, err` for a host without appid/appsecret, with the errcode `ApiError::Config` uses.
pub fn not_configured(lua: &Lua, fname: &str) -> LuaResult<(Value, Value)> {
    let err = lua.create_table()?;
    err.set("errcode", ERRCODE_CONFIG)?;
    err.set(
        "errmsg",
        format!(
            "no appid/appsecret configured: {fname} needs the WeChat API (set appid and appsecret in the config)"
        ),
    )?;
    Ok((Value::Nil, Value::Table(err)))
}

/// JSON as Lua for API results: `null` inside an object is an absent key (so `if t.x then`
/// works), inside an array [`wx.json.null`](crate::script::bindings::json::null) (so lengths
/// are kept); otherwise as `wx.json.decode`.
pub fn json_to_lua(lua: &Lua, v: &Json) -> LuaResult<Value> {
    json::json_to_lua(lua, v, ObjectNull::Nil)
}

/// A required string argument (numbers are accepted and written in decimal).
pub fn arg_str(lua: &Lua, fname: &str, what: &str, v: &Value) -> LuaResult<String> {
    opt_str(lua, fname, what, v)?
        .ok_or_else(|| error_at(lua, format!("{fname}: {what} is required (a string)")))
}

/// An optional string argument or field: `nil` is `None`.
pub fn opt_str(lua: &Lua, fname: &str, what: &str, v: &Value) -> LuaResult<Option<String>> {
    match v {
        Value::Nil => Ok(None),
        Value::String(s) => s
            .to_str()
            .map(|s| Some(s.to_string()))
            .map_err(|_| error_at(lua, format!("{fname}: {what} is not valid UTF-8"))),
        Value::Integer(i) => Ok(Some(i.to_string())),
        other => Err(error_at(
            lua,
            format!(
                "{fname}: {what} must be a string, not a {}",
                other.type_name()
            ),
        )),
    }
}

/// A required integer argument (a float with an integral value is accepted).
pub fn arg_int(lua: &Lua, fname: &str, what: &str, v: &Value) -> LuaResult<i64> {
    opt_int(lua, fname, what, v)?
        .ok_or_else(|| error_at(lua, format!("{fname}: {what} is required (an integer)")))
}

/// An optional integer argument or field.
pub fn opt_int(lua: &Lua, fname: &str, what: &str, v: &Value) -> LuaResult<Option<i64>> {
    match v {
        Value::Nil => Ok(None),
        Value::Integer(i) => Ok(Some(*i)),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Ok(Some(*n as i64)),
        Value::String(s) => match s.to_str().ok().and_then(|s| s.trim().parse().ok()) {
            Some(i) => Ok(Some(i)),
            None => Err(error_at(lua, format!("{fname}: {what} must be an integer"))),
        },
        other => Err(error_at(
            lua,
            format!(
                "{fname}: {what} must be an integer, not a {}",
                other.type_name()
            ),
        )),
    }
}

/// An optional boolean (`1`/`0` accepted, as WeChat's own flags are numbers).
pub fn opt_bool(lua: &Lua, fname: &str, what: &str, v: &Value) -> LuaResult<Option<bool>> {
    match v {
        Value::Nil => Ok(None),
        Value::Boolean(b) => Ok(Some(*b)),
        Value::Integer(0) => Ok(Some(false)),
        Value::Integer(1) => Ok(Some(true)),
        other => Err(error_at(
            lua,
            format!(
                "{fname}: {what} must be a boolean, not a {}",
                other.type_name()
            ),
        )),
    }
}

/// A required table argument.
/// A message table's `type` and its other fields as a JSON object (without `type`), the
/// shape both customer-service and mass messages are built from.
pub fn typed_fields(
    lua: &Lua,
    fname: &str,
    v: &Value,
) -> LuaResult<(String, serde_json::Map<String, Json>)> {
    let t = arg_table(lua, fname, "message (a string or a message table)", v)?;
    let kind = arg_str(lua, fname, "message.type", &t.raw_get::<Value>("type")?)?;
    let Json::Object(mut fields) = lua_to_json(lua, fname, "message", Value::Table(t))? else {
        return Err(error_at(
            lua,
            format!("{fname}: message must be a table of fields"),
        ));
    };
    fields.remove("type");
    Ok((kind, fields))
}

/// The fields every notice sent to one user shares (`wx.template.send`,
/// `wx.subscribe.send`): the argument table, the recipient (`to`, or `touser` as WeChat
/// spells it) and `template_id`.
pub fn notice_head(lua: &Lua, fname: &str, args: &Value) -> LuaResult<(Table, String, String)> {
    let t = arg_table(
        lua,
        fname,
        "the argument ({to =, template_id =, data =})",
        args,
    )?;
    let to = match t.raw_get::<Value>("to")? {
        Value::Nil => t.raw_get::<Value>("touser")?,
        v => v,
    };
    let to = arg_str(lua, fname, "to", &to)?;
    let template_id = arg_str(
        lua,
        fname,
        "template_id",
        &t.raw_get::<Value>("template_id")?,
    )?;
    Ok((t, to, template_id))
}

/// A notice's `miniprogram = {appid =, pagepath =}`, when given: `(appid, pagepath)`.
pub fn notice_mini_program(
    lua: &Lua,
    fname: &str,
    v: &Value,
) -> LuaResult<Option<(String, Option<String>)>> {
    if v.is_nil() {
        return Ok(None);
    }
    let mp = arg_table(lua, fname, "miniprogram", v)?;
    Ok(Some((
        arg_str(lua, fname, "miniprogram.appid", &mp.raw_get("appid")?)?,
        opt_str(lua, fname, "miniprogram.pagepath", &mp.raw_get("pagepath")?)?,
    )))
}

/// A notice's data value: a string, or a number written as Lua prints it.
pub fn notice_value(lua: &Lua, fname: &str, what: &str, v: &Value) -> LuaResult<String> {
    match v {
        Value::Number(n) => Ok(n.to_string()),
        other => arg_str(lua, fname, what, other),
    }
}

pub fn arg_table(lua: &Lua, fname: &str, what: &str, v: &Value) -> LuaResult<Table> {
    match v {
        Value::Table(t) => Ok(t.clone()),
        other => Err(error_at(
            lua,
            format!(
                "{fname}: {what} must be a table, not a {}",
                other.type_name()
            ),
        )),
    }
}

/// A list of strings (OpenIDs): a non-empty sequence table.
pub fn arg_str_list(lua: &Lua, fname: &str, what: &str, v: &Value) -> LuaResult<Vec<String>> {
    let t = arg_table(lua, fname, what, v)?;
    let mut out = Vec::new();
    for (i, item) in t.sequence_values::<Value>().enumerate() {
        out.push(arg_str(lua, fname, &format!("{what}[{}]", i + 1), &item?)?);
    }
    if out.is_empty() {
        return Err(error_at(lua, format!("{fname}: {what} must not be empty")));
    }
    Ok(out)
}

/// The WeChat API of the account a call acts for, with the rest of that account's services
/// (its outbox handle, its window tracker). Derefs to the [`WechatClient`], so a binding's
/// call reads `api.kf().send(..)` whichever account it is.
#[derive(Clone)]
pub struct AccountApi {
    /// The account's client.
    pub client: WechatClient,
    /// The account's services.
    pub services: Arc<Services>,
}

impl std::ops::Deref for AccountApi {
    type Target = WechatClient;
    fn deref(&self) -> &WechatClient {
        &self.client
    }
}

/// The API of the account `acting` names for a call made now: `Ok(None)` when that account
/// has no API credentials.
pub fn account_api(lua: &Lua, acting: &ActingFor) -> LuaResult<Option<AccountApi>> {
    let services = acting.services(lua)?;
    Ok(services
        .api
        .clone()
        .map(|client| AccountApi { client, services }))
}

/// Builds a Lua function for one WeChat call: `parse` checks the arguments (raising at the
/// script's line), then `call` runs against the API of the account the call acts for
/// (`acting`, resolved when the script calls, so the shared scripts call with the handling
/// message's account); the JSON it returns is the Lua result, an [`ApiError`] becomes
/// `nil, err`, and without an API every call is `nil, {errcode=-5}`.
/// The call is an mlua async function, so waiting on WeChat suspends only this script.
pub fn api_function<A, P, F, G, Fut>(
    lua: &Lua,
    acting: &ActingFor,
    fname: &'static str,
    parse: F,
    call: G,
) -> LuaResult<Function>
where
    A: FromLuaMulti + MaybeSend + 'static,
    P: Send + 'static,
    F: Fn(&Lua, A) -> LuaResult<P> + Send + Sync + 'static,
    G: Fn(AccountApi, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CallResult> + Send + 'static,
{
    api_function_with(lua, acting, fname, parse, call, |lua, v| {
        json_to_lua(lua, &v)
    })
}

/// [`api_function`] for a call whose result is not JSON (a downloaded file's bytes, which a
/// Lua string keeps and JSON cannot): `to_lua` makes the Lua result of what `call` returns.
pub fn api_function_with<A, P, T, F, G, Fut, C>(
    lua: &Lua,
    acting: &ActingFor,
    fname: &'static str,
    parse: F,
    call: G,
    to_lua: C,
) -> LuaResult<Function>
where
    A: FromLuaMulti + MaybeSend + 'static,
    P: Send + 'static,
    T: Send + 'static,
    F: Fn(&Lua, A) -> LuaResult<P> + Send + Sync + 'static,
    G: Fn(AccountApi, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
    C: Fn(&Lua, T) -> LuaResult<Value> + Send + Sync + 'static,
{
    let acting = acting.clone();
    let parse = Arc::new(parse);
    let call = Arc::new(call);
    let to_lua = Arc::new(to_lua);
    crate::script::bindings::waiting_function(lua, fname, move |lua, args: A| {
        // Resolved now, while the calling run is the state's: the call acts for its account
        // whatever runs on the state while it waits.
        let api = account_api(&lua, &acting);
        let parse = Arc::clone(&parse);
        let call = Arc::clone(&call);
        let to_lua = Arc::clone(&to_lua);
        async move {
            let parsed = parse(&lua, args)?;
            let Some(api) = api? else {
                return not_configured(&lua, fname);
            };
            match call(api, parsed).await {
                Ok(v) => Ok((to_lua(&lua, v)?, Value::Nil)),
                Err(e) => failure(&lua, &e),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_lua() {
        let lua = Lua::new();
        let v = json!({"a": [1, 2, {"b": "x"}], "n": null, "f": 1.5, "t": true, "e": []});
        let l = json_to_lua(&lua, &v).unwrap();
        let t = match &l {
            Value::Table(t) => t.clone(),
            _ => panic!("not a table"),
        };
        assert!(t.get::<Value>("n").unwrap().is_nil());
        assert_eq!(t.get::<Table>("a").unwrap().raw_len(), 3);
        let back = lua_to_json(&lua, "f", "x", l).unwrap();
        assert_eq!(
            back,
            json!({"a": [1, 2, {"b": "x"}], "f": 1.5, "t": true, "e": []})
        );
    }

    #[test]
    fn lua_tables_become_arrays_or_objects() {
        let lua = Lua::new();
        let v: Value = lua
            .load(r#"return {button = {{type="click", name="A", key="K"}}, n = 3}"#)
            .eval()
            .unwrap();
        assert_eq!(
            lua_to_json(&lua, "f", "x", v).unwrap(),
            json!({"button": [{"type": "click", "name": "A", "key": "K"}], "n": 3})
        );
        let f: Value = lua.load("return {f = function() end}").eval().unwrap();
        assert!(lua_to_json(&lua, "f", "x", f).is_err());
    }

    #[test]
    fn empty_tables_are_objects_unless_they_came_from_a_json_array() {
        let lua = Lua::new();
        let conv = |src: &str| {
            let v: Value = lua.load(src).eval().unwrap();
            lua_to_json(&lua, "f", "x", v)
        };
        assert_eq!(conv("return {}").unwrap(), json!({}));
        assert_eq!(
            conv("return {a = {}, b = {{}}}").unwrap(),
            json!({"a": {}, "b": [{}]})
        );
        // Holes, sparse keys and mixes are refused (one rule with wx.json), not guessed.
        assert!(conv("return {c = {1, nil, 3}}").is_err());
        assert!(conv("return {d = {[20] = 1}}").is_err());
        assert!(conv("return {e = {1, x = 2}}").is_err());
        let from_json = json_to_lua(&lua, &json!({"list": [], "obj": {}})).unwrap();
        assert_eq!(
            lua_to_json(&lua, "f", "x", from_json).unwrap(),
            json!({"list": [], "obj": {}})
        );
        assert_eq!(conv("return 1.5").unwrap(), json!(1.5));
    }

    #[test]
    fn what_json_cannot_hold_is_refused_with_where() {
        let lua = Lua::new();
        let err = |src: &str| {
            let v: Value = lua.load(src).eval().unwrap();
            lua_to_json(&lua, "wx.f", "the body", v)
                .unwrap_err()
                .to_string()
        };
        assert!(err("return 0/0").contains("wx.f: the body contains NaN"));
        assert!(err("return {a = {b = {1, 1/0}}}")
            .contains("contains inf, which JSON cannot hold (at .a.b[2])"));
        assert!(err("return {x = -1/0}").contains("-inf"));
        assert!(err("return {f = print}").contains("cannot contain a function (at .f)"));
        assert!(err("local t = {} t.self = t return t").contains("contains itself (at .self)"));
        assert!(err("return {[true] = 1}").contains("boolean key"));
    }

    #[test]
    fn failures_carry_errcode_errmsg_and_retry_after() {
        let lua = Lua::new();
        let e = ApiError::RetryLater {
            errcode: 45066,
            errmsg: "too fast".into(),
            retry_after: std::time::Duration::from_secs(60),
        };
        let (nil, err) = failure(&lua, &e).unwrap();
        assert!(nil.is_nil());
        let err = match err {
            Value::Table(t) => t,
            _ => panic!("not a table"),
        };
        assert_eq!(err.get::<i64>("errcode").unwrap(), 45066);
        assert_eq!(err.get::<String>("errmsg").unwrap(), "too fast");
        assert_eq!(err.get::<i64>("retry_after").unwrap(), 60);
        assert!(err.get::<Value>("kind").unwrap().is_nil());
        let (_, err) = failure(&lua, &ApiError::Timeout.after_sending()).unwrap();
        let err = match err {
            Value::Table(t) => t,
            _ => panic!("not a table"),
        };
        assert_eq!(err.get::<String>("kind").unwrap(), "unknown_outcome");
        assert_eq!(err.get::<i64>("errcode").unwrap(), -3);
        let (_, err) = not_configured(&lua, "wx.kf.send").unwrap();
        let err = match err {
            Value::Table(t) => t,
            _ => panic!("not a table"),
        };
        assert_eq!(err.get::<i64>("errcode").unwrap(), -5);
    }
}
