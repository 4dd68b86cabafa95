//! `wx.json` and the one Lua ⇄ JSON converter of the host: `wx.json.encode/decode`, `wx.api`
//! bodies and results, `wx.store` values and `wx.http` bodies all go through [`lua_to_json`]
//! and [`json_to_lua`], so a table means the same JSON everywhere.
//!
//! # Rules
//! - `nil` and [`wx.json.null`](null) (mlua's null light userdata) are `null`.
//! - Integers stay 64-bit integers and floats stay floats, both ways (`1.0` encodes as `1.0`).
//! - A table marked with `wx.json.array` (decoded arrays carry this mark) is an array; one
//!   marked with `wx.json.object` is an object (integer keys written in decimal).
//! - An unmarked table: empty is `{}` (WeChat bodies are objects); keys exactly `1..n` make
//!   an array; string keys make an object; anything else (a hole, a key 0 or below, a mix of
//!   items and names, a boolean key) is an error, since guessing loses data.
//! - NaN, ±infinity, a table that contains itself, nesting deeper than [`MAX_JSON_DEPTH`],
//!   functions, userdata and strings that are not UTF-8 are errors naming the script's line
//!   and where in the value the problem is (`.a[2]`).
//!
//! Written here rather than with mlua's serde support: its mixed-table detection turns an
//! empty table into `[]`, and its float handling turns NaN into `null` without a word.

use std::collections::HashSet;
use std::ffi::c_void;

use mlua::{Lua, LuaSerdeExt, Result as LuaResult, Table, Value};
use serde_json::Value as Json;

use super::{error_at, lua_type};

/// Deepest table nesting turned into JSON.
pub const MAX_JSON_DEPTH: usize = 64;

/// Registry name of the metatable `wx.json.object` marks tables with.
const OBJECT_MARK: &str = "wx.json.object";

/// The JSON `null` sentinel as Lua sees it (`wx.json.null`).
pub fn null(lua: &Lua) -> Value {
    lua.null()
}

/// What JSON `null` becomes inside an object when decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectNull {
    /// An absent key, so `if t.x then` works (WeChat API results).
    Nil,
    /// [`null`], so decode → encode gives the same document (`wx.json.decode`, `wx.store`).
    Sentinel,
}

/// The metatable marking tables meant as JSON objects (made on first use).
fn object_mark(lua: &Lua) -> LuaResult<Table> {
    if let Some(mark) = lua.named_registry_value::<Option<Table>>(OBJECT_MARK)? {
        return Ok(mark);
    }
    let mark = lua.create_table()?;
    mark.set("__name", "wx.json.object")?;
    mark.set("__metatable", "wx.json.object")?;
    lua.set_named_registry_value(OBJECT_MARK, &mark)?;
    Ok(mark)
}

/// JSON as Lua: objects and arrays become tables (arrays carry the `wx.json.array` mark, so
/// they encode back as arrays even when empty), integers stay integers (beyond `i64` they
/// become floats), `null` inside arrays is [`null`] (so lengths are kept) and inside objects
/// as `object_null` says.
pub fn json_to_lua(lua: &Lua, v: &Json, object_null: ObjectNull) -> LuaResult<Value> {
    Ok(match v {
        Json::Null => null(lua),
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(lua.create_string(s)?),
        Json::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, json_to_lua(lua, item, object_null)?)?;
            }
            t.set_metatable(Some(lua.array_metatable()))?;
            Value::Table(t)
        }
        Json::Object(fields) => {
            let t = lua.create_table_with_capacity(0, fields.len())?;
            for (k, item) in fields {
                if item.is_null() && object_null == ObjectNull::Nil {
                    continue;
                }
                t.raw_set(k.as_str(), json_to_lua(lua, item, object_null)?)?;
            }
            Value::Table(t)
        }
    })
}

/// A Lua value as JSON under the rules of this module; the error raised names the script's
/// line, `fname: what` and where in the value the problem is.
pub fn lua_to_json(lua: &Lua, fname: &str, what: &str, v: Value) -> LuaResult<Json> {
    let marks = Marks {
        array: lua.array_metatable(),
        object: object_mark(lua)?,
    };
    let mut walk = Walk {
        marks,
        path: String::new(),
        open: HashSet::new(),
    };
    walk.value(&v, 0)
        .map_err(|problem| error_at(lua, format!("{fname}: {what} {problem}")))
}

struct Marks {
    array: Table,
    object: Table,
}

/// One conversion: where it is in the value, and the tables it is inside (to find cycles).
struct Walk {
    marks: Marks,
    path: String,
    open: HashSet<*const c_void>,
}

/// How a table is written.
enum Shape {
    Array(usize),
    Object,
}

impl Walk {
    /// Why the value has no JSON form, and where (`.a[2]`, nothing for the value itself).
    fn problem(&self, what: std::fmt::Arguments<'_>) -> String {
        if self.path.is_empty() {
            what.to_string()
        } else {
            format!("{what} (at {})", self.path)
        }
    }

    fn value(&mut self, v: &Value, depth: usize) -> Result<Json, String> {
        Ok(match v {
            Value::Nil => Json::Null,
            Value::LightUserData(p) if p.0.is_null() => Json::Null,
            Value::Boolean(b) => Json::Bool(*b),
            Value::Integer(i) => Json::from(*i),
            Value::Number(n) => match serde_json::Number::from_f64(*n) {
                Some(n) => Json::Number(n),
                None => {
                    return Err(self.problem(format_args!("contains {n}, which JSON cannot hold")))
                }
            },
            Value::String(s) => match s.to_str() {
                Ok(s) => Json::String(s.to_string()),
                Err(_) => {
                    return Err(self.problem(format_args!("contains a string that is not UTF-8")))
                }
            },
            Value::Table(t) => {
                if depth >= MAX_JSON_DEPTH {
                    return Err(
                        self.problem(format_args!("nests tables deeper than {MAX_JSON_DEPTH}"))
                    );
                }
                let id = t.to_pointer();
                if !self.open.insert(id) {
                    return Err(self.problem(format_args!("contains itself")));
                }
                let json = self.table(t, depth + 1);
                self.open.remove(&id);
                json?
            }
            other => return Err(self.problem(format_args!("cannot contain a {}", lua_type(other)))),
        })
    }

    fn table(&mut self, t: &Table, depth: usize) -> Result<Json, String> {
        let pairs: Vec<(Value, Value)> = t
            .pairs::<Value, Value>()
            .collect::<LuaResult<_>>()
            .map_err(|e| self.problem(format_args!("cannot be read: {e}")))?;
        let mark = t.metatable();
        let marked_array = mark.as_ref().is_some_and(|m| m == &self.marks.array);
        let marked_object = mark.as_ref().is_some_and(|m| m == &self.marks.object);
        let shape = if marked_object {
            Shape::Object
        } else {
            self.shape(&pairs, marked_array)?
        };
        match shape {
            Shape::Array(len) => {
                let mut items = vec![Json::Null; len];
                for (k, v) in &pairs {
                    let Value::Integer(i) = k else { continue };
                    let mark = self.path.len();
                    self.path.push_str(&format!("[{i}]"));
                    items[(*i - 1) as usize] = self.value(v, depth)?;
                    self.path.truncate(mark);
                }
                Ok(Json::Array(items))
            }
            Shape::Object => {
                // serde_json's map keeps keys sorted, so the same table always gives the same
                // text (signatures, caches).
                let mut object = serde_json::Map::with_capacity(pairs.len());
                for (k, v) in &pairs {
                    let key = match k {
                        Value::String(s) => s.to_str().map(|s| s.to_string()).map_err(|_| {
                            self.problem(format_args!("has a key that is not UTF-8"))
                        })?,
                        Value::Integer(i) => i.to_string(),
                        Value::Number(n) => n.to_string(),
                        other => {
                            return Err(self.problem(format_args!(
                                "has a {} key; JSON keys are strings",
                                lua_type(other)
                            )))
                        }
                    };
                    let mark = self.path.len();
                    self.path.push('.');
                    self.path.push_str(&key);
                    let value = self.value(v, depth)?;
                    self.path.truncate(mark);
                    object.insert(key, value);
                }
                Ok(Json::Object(object))
            }
        }
    }

    /// Array or object for a table that is not marked as an object.
    fn shape(&self, pairs: &[(Value, Value)], marked_array: bool) -> Result<Shape, String> {
        let mut max = 0i64;
        let mut items = 0usize;
        let mut named = None;
        for (k, _) in pairs {
            match k {
                Value::Integer(i) if *i >= 1 => {
                    max = max.max(*i);
                    items += 1;
                }
                Value::String(_) => named = named.or(Some(k)),
                other => {
                    let key = match other {
                        Value::Integer(i) => i.to_string(),
                        Value::Number(n) => n.to_string(),
                        other => format!("a {} key", lua_type(other)),
                    };
                    return Err(self.problem(format_args!(
                        "has the key {key}, which neither an array nor an object can hold \
                         (wx.json.object{{...}} writes number keys as names)"
                    )));
                }
            }
        }
        if let Some(Value::String(name)) = named {
            if marked_array {
                return Err(self.problem(format_args!(
                    "is marked as an array but has the key \"{}\"",
                    name.to_string_lossy()
                )));
            }
            if items > 0 {
                return Err(self.problem(format_args!(
                    "mixes array items with the key \"{}\"; use one or the other",
                    name.to_string_lossy()
                )));
            }
            return Ok(Shape::Object);
        }
        if items == 0 && !marked_array {
            return Ok(Shape::Object);
        }
        if max as usize != items {
            let missing = (1..=max)
                .find(|i| !pairs.iter().any(|(k, _)| k == &Value::Integer(*i)))
                .unwrap_or(max);
            return Err(self.problem(format_args!(
                "is a sparse array: item [{missing}] is missing of {max} \
                 (use wx.json.null to keep a hole)"
            )));
        }
        Ok(Shape::Array(items))
    }
}

/// Sets the mark `mark` on `v` (a new table when `nil`) and returns it; a table that already
/// has another metatable is refused rather than silently changed.
fn mark_table(lua: &Lua, fname: &str, v: Value, mark: Table) -> LuaResult<Table> {
    let t = match v {
        Value::Nil => lua.create_table()?,
        Value::Table(t) => t,
        other => {
            return Err(error_at(
                lua,
                format!("{fname}: expects a table, not a {}", lua_type(&other)),
            ))
        }
    };
    match t.metatable() {
        Some(existing) if existing != mark => {
            let other = if existing == lua.array_metatable() {
                "it is already marked as an array"
            } else if existing == object_mark(lua)? {
                "it is already marked as an object"
            } else {
                "it already has a metatable"
            };
            Err(error_at(
                lua,
                format!("{fname}: cannot mark the table: {other}"),
            ))
        }
        _ => {
            t.set_metatable(Some(mark))?;
            Ok(t)
        }
    }
}

/// The byte offset (1-based) serde_json's line and column point at.
fn byte_position(text: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    line_start + column
}

/// `wx.json.decode`'s message for a document that is not JSON: what is wrong and at which
/// byte.
pub fn decode_error(text: &[u8], e: &serde_json::Error) -> String {
    let message = e.to_string();
    let what = message
        .rsplit_once(" at line ")
        .map(|(what, _)| what)
        .unwrap_or(&message);
    if e.line() == 0 {
        return format!("not JSON: {what}");
    }
    format!(
        "not JSON: {what} at byte {} (line {}, column {})",
        byte_position(text, e.line(), e.column()),
        e.line(),
        e.column()
    )
}

/// Decodes a JSON document into Lua, or says why it is not JSON.
pub fn decode(lua: &Lua, text: &[u8]) -> LuaResult<Result<Value, String>> {
    match serde_json::from_slice::<Json>(text) {
        Ok(json) => Ok(Ok(json_to_lua(lua, &json, ObjectNull::Sentinel)?)),
        Err(e) => Ok(Err(decode_error(text, &e))),
    }
}

/// Adds `wx.json`.
pub fn register(lua: &Lua, wx: &Table) -> LuaResult<()> {
    // Scripts see the marks' names, never the tables: a script holding a mark could put a
    // `__gc` on it, and every array decoded later would run that finalizer, where no run
    // limit reaches (the sandbox's setmetatable refuses `__gc` for the same reason).
    lua.array_metatable()
        .raw_set("__metatable", "wx.json.array")?;
    object_mark(lua)?;
    let json = lua.create_table()?;
    json.set("null", null(lua))?;
    json.set(
        "encode",
        lua.create_function(|lua, (value, options): (Value, Value)| {
            let mut pretty = false;
            match options {
                Value::Nil => {}
                Value::Table(t) => {
                    for pair in t.pairs::<Value, Value>() {
                        let (k, v) = pair?;
                        match (k.to_string()?.as_str(), v) {
                            ("pretty", Value::Boolean(b)) => pretty = b,
                            ("pretty", other) => {
                                return Err(error_at(
                                    lua,
                                    format!(
                                        "wx.json.encode: pretty must be a boolean, not a {}",
                                        lua_type(&other)
                                    ),
                                ))
                            }
                            (other, _) => {
                                return Err(error_at(
                                    lua,
                                    format!(
                                        "wx.json.encode: unknown option `{other}` (known: pretty)"
                                    ),
                                ))
                            }
                        }
                    }
                }
                other => {
                    return Err(error_at(
                        lua,
                        format!(
                            "wx.json.encode: options must be a table, not a {}",
                            lua_type(&other)
                        ),
                    ))
                }
            }
            let json = lua_to_json(lua, "wx.json.encode", "the value", value)?;
            let text = if pretty {
                serde_json::to_string_pretty(&json)
            } else {
                serde_json::to_string(&json)
            };
            text.map_err(|e| error_at(lua, format!("wx.json.encode: {e}")))
        })?,
    )?;
    json.set(
        "decode",
        lua.create_function(|lua, text: Value| {
            let Value::String(text) = text else {
                return Err(error_at(
                    lua,
                    format!(
                        "wx.json.decode: expects a string, not a {}",
                        lua_type(&text)
                    ),
                ));
            };
            match decode(lua, &text.as_bytes())? {
                Ok(v) => Ok((v, Value::Nil)),
                Err(message) => Ok((
                    Value::Nil,
                    Value::String(lua.create_string(format!("wx.json.decode: {message}"))?),
                )),
            }
        })?,
    )?;
    json.set(
        "array",
        lua.create_function(|lua, t: Value| {
            mark_table(lua, "wx.json.array", t, lua.array_metatable())
        })?,
    )?;
    json.set(
        "object",
        lua.create_function(|lua, t: Value| {
            let mark = object_mark(lua)?;
            mark_table(lua, "wx.json.object", t, mark)
        })?,
    )?;
    wx.set("json", json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lua() -> Lua {
        let lua = Lua::new();
        let wx = lua.create_table().unwrap();
        register(&lua, &wx).unwrap();
        lua.globals().set("wx", wx).unwrap();
        lua
    }

    fn encode(lua: &Lua, src: &str) -> Result<Json, String> {
        let v: Value = lua.load(src).set_name("=t.lua").eval().unwrap();
        lua_to_json(lua, "wx.f", "the value", v).map_err(|e| e.to_string())
    }

    fn eval(lua: &Lua, src: &str) -> String {
        lua.load(src)
            .set_name("=t.lua")
            .eval::<String>()
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn tables_become_arrays_objects_or_located_errors() {
        let lua = lua();
        assert_eq!(encode(&lua, "return {}").unwrap(), json!({}));
        assert_eq!(
            encode(&lua, "return {1, 'a', true}").unwrap(),
            json!([1, "a", true])
        );
        assert_eq!(
            encode(&lua, "return {a = {b = {}}, n = 1.0, i = 1}").unwrap(),
            json!({"a": {"b": {}}, "n": 1.0, "i": 1})
        );
        assert_eq!(
            encode(&lua, "return wx.json.array{1, wx.json.null, 3}").unwrap(),
            json!([1, null, 3])
        );
        assert_eq!(encode(&lua, "return wx.json.array()").unwrap(), json!([]));
        assert_eq!(
            encode(&lua, "return wx.json.object{[20] = 'x', 'y'}").unwrap(),
            json!({"1": "y", "20": "x"})
        );
        let sparse = encode(&lua, "return {a = {1, nil, 3}}").unwrap_err();
        assert!(
            sparse.contains(
                "sparse array: item [2] is missing of 3 (use wx.json.null to keep a hole) (at .a)"
            ),
            "{sparse}"
        );
        let mixed = encode(&lua, "return {1, x = 2}").unwrap_err();
        assert!(
            mixed.contains("mixes array items with the key \"x\""),
            "{mixed}"
        );
        assert!(encode(&lua, "return {[0] = 1}")
            .unwrap_err()
            .contains("key 0"));
        assert!(encode(&lua, "return {[true] = 1}")
            .unwrap_err()
            .contains("boolean key"));
        let marked = encode(&lua, "local t = wx.json.array() t.x = 1 return t").unwrap_err();
        assert!(marked.contains("marked as an array"), "{marked}");
    }

    #[test]
    fn what_json_cannot_hold_is_refused_with_the_line_and_where() {
        let lua = lua();
        let err = |src: &str| eval(&lua, src);
        assert!(err("return wx.json.encode(0/0)")
            .contains("t.lua:1: wx.json.encode: the value contains NaN"));
        assert!(err("return wx.json.encode({a = {b = {1, 1/0}}})")
            .contains("contains inf, which JSON cannot hold (at .a.b[2])"));
        assert!(err("local t = {} t.self = {t} return wx.json.encode(t)")
            .contains("contains itself (at .self[1])"));
        assert!(
            err("return wx.json.encode({f = print})").contains("cannot contain a function (at .f)")
        );
        assert!(err("return wx.json.encode('\\xff')").contains("not UTF-8"));
        assert!(err("return wx.json.encode({}, {indent = 2})").contains("unknown option `indent`"));
        // The same table twice (not a cycle) is fine.
        assert_eq!(
            eval(&lua, "local s = {1} return wx.json.encode({s, s})"),
            "[[1],[1]]"
        );
        let deep = format!(
            "return wx.json.encode({}{})",
            "{".repeat(70),
            "}".repeat(70)
        );
        assert!(err(&deep).contains("deeper than 64"));
    }

    #[test]
    fn scripts_cannot_reach_the_marks_themselves() {
        let lua = lua();
        assert_eq!(
            eval(
                &lua,
                "return getmetatable(wx.json.array()) .. ' ' .. getmetatable(wx.json.object())"
            ),
            "wx.json.array wx.json.object"
        );
        assert!(eval(&lua, "return setmetatable(wx.json.decode('[]'), {})")
            .contains("cannot change a protected metatable"));
        assert!(
            eval(&lua, "return wx.json.object(wx.json.array())").contains(
                "t.lua:1: wx.json.object: cannot mark the table: it is already marked as an array"
            )
        );
    }

    #[test]
    fn decode_then_encode_gives_the_document_back() {
        let lua = lua();
        let out = eval(
            &lua,
            r#"local v = assert(wx.json.decode('{"a":[],"b":{},"c":[1,null,3],"d":null,"f":1.5,"g":1.0,"i":9007199254740993}'))
               assert(#v.c == 3 and v.c[2] == wx.json.null and v.d == wx.json.null)
               assert(math.type(v.i) == "integer" and v.i == 9007199254740993)
               assert(math.type(v.g) == "float")
               return wx.json.encode(v)"#,
        );
        assert_eq!(
            out,
            r#"{"a":[],"b":{},"c":[1,null,3],"d":null,"f":1.5,"g":1.0,"i":9007199254740993}"#
        );
        assert_eq!(
            eval(
                &lua,
                "return wx.json.encode({b = 1, a = {x = 1}}, {pretty = true})"
            ),
            "{\n  \"a\": {\n    \"x\": 1\n  },\n  \"b\": 1\n}"
        );
    }

    #[test]
    fn decode_errors_are_nil_and_the_byte_position() {
        let lua = lua();
        assert_eq!(
            eval(
                &lua,
                r#"local v, err = wx.json.decode('{"a": x}') assert(v == nil) return err"#
            ),
            "wx.json.decode: not JSON: expected value at byte 7 (line 1, column 7)"
        );
        assert!(eval(
            &lua,
            r#"local _, err = wx.json.decode('[1,\n2,') return err"#
        )
        .contains("at byte 6 (line 2, column 2)"));
        let e = eval(&lua, "return wx.json.decode(42)");
        assert!(e.contains("t.lua:1: wx.json.decode: expects a string, not a number"));
    }

    #[test]
    fn api_results_drop_nulls_in_objects_but_keep_them_in_arrays() {
        let lua = lua();
        let v = json_to_lua(
            &lua,
            &json!({"n": null, "a": [null, 1], "e": []}),
            ObjectNull::Nil,
        )
        .unwrap();
        let Value::Table(t) = &v else { panic!() };
        assert!(t.get::<Value>("n").unwrap().is_nil());
        assert_eq!(t.get::<Table>("a").unwrap().raw_len(), 2);
        assert_eq!(
            lua_to_json(&lua, "f", "x", v).unwrap(),
            json!({"a": [null, 1], "e": []})
        );
    }
}
