//! `wx.qrcode.create`: parametric QR codes (带参数二维码), temporary or permanent.

use mlua::{Lua, Result as LuaResult, Table, Value};
use serde_json::json;

use super::convert::{api_function, arg_table, opt_int};
use crate::api::qrcode::{Scene, MAX_EXPIRE_SECONDS};
use crate::script::bindings::error_at;
use crate::script::services::ActingFor;

const CREATE: &str = "wx.qrcode.create";

/// Longest `scene_str` WeChat accepts, in characters.
const MAX_SCENE_STR: usize = 64;

fn create_args(lua: &Lua, args: Value) -> LuaResult<(Scene, Option<u32>)> {
    let t = arg_table(
        lua,
        CREATE,
        "the argument ({scene =, expire_seconds =})",
        &args,
    )?;
    let scene = match t.raw_get::<Value>("scene")? {
        Value::String(s) => {
            let s = s
                .to_str()
                .map_err(|_| error_at(lua, format!("{CREATE}: scene is not valid UTF-8")))?
                .to_string();
            if s.is_empty() || s.chars().count() > MAX_SCENE_STR {
                return Err(error_at(
                    lua,
                    format!("{CREATE}: a string scene is 1 to {MAX_SCENE_STR} characters"),
                ));
            }
            Scene::Str(s)
        }
        v @ (Value::Integer(_) | Value::Number(_)) => {
            let n = opt_int(lua, CREATE, "scene", &v)?.unwrap_or(0);
            match u32::try_from(n) {
                Ok(id) if id > 0 => Scene::Id(id),
                _ => {
                    return Err(error_at(
                        lua,
                        format!("{CREATE}: a numeric scene is a positive 32-bit integer, not {n}"),
                    ))
                }
            }
        }
        other => {
            return Err(error_at(
                lua,
                format!(
                    "{CREATE}: scene is required (a string or a number), not a {}",
                    other.type_name()
                ),
            ))
        }
    };
    let expire = match opt_int(
        lua,
        CREATE,
        "expire_seconds",
        &t.raw_get::<Value>("expire_seconds")?,
    )? {
        None => None,
        Some(n) if n > 0 => Some(u32::try_from(n).unwrap_or(MAX_EXPIRE_SECONDS)),
        Some(n) => {
            return Err(error_at(
                lua,
                format!(
                "{CREATE}: expire_seconds must be positive (omit it for a permanent code), not {n}"
            ),
            ))
        }
    };
    Ok((scene, expire))
}

/// Adds `wx.qrcode`.
pub fn register(lua: &Lua, wx: &Table, acting: &ActingFor) -> LuaResult<()> {
    let qrcode = lua.create_table()?;
    qrcode.set(
        "create",
        api_function(
            lua,
            acting,
            CREATE,
            create_args,
            |api, (scene, expire)| async move {
                let code = match expire {
                    Some(secs) => api.qrcode().create_temporary(&scene, secs).await?,
                    None => api.qrcode().create_permanent(&scene).await?,
                };
                Ok(json!({
                    "ticket": code.ticket,
                    "url": code.url,
                    "expire_seconds": code.expire_seconds,
                    "image_url": code.image_url(),
                }))
            },
        )?,
    )?;
    wx.set("qrcode", qrcode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(src: &str) -> Result<(Scene, Option<u32>), String> {
        let lua = Lua::new();
        let v: Value = lua.load(src).eval().unwrap();
        create_args(&lua, v).map_err(|e| e.to_string())
    }

    #[test]
    fn scenes_and_expiry() {
        assert_eq!(
            args(r#"return {scene="promo", expire_seconds=600}"#).unwrap(),
            (Scene::Str("promo".into()), Some(600))
        );
        assert_eq!(args("return {scene=42}").unwrap(), (Scene::Id(42), None));
        assert!(args("return {scene=0}").is_err());
        assert!(args("return {scene=1.5}").is_err());
        assert!(args("return {}").unwrap_err().contains("scene is required"));
        assert!(args("return {scene='x', expire_seconds=-1}").is_err());
    }
}
