//! `wx.material.add/get/delete/count/list`: permanent material (永久素材), uploaded from and
//! downloaded to bytes the script holds.

use mlua::{Lua, Result as LuaResult, Table, Value};
use serde_json::Value as Json;

use super::convert::{
    api_function, api_function_with, arg_str, arg_table, json_to_lua, opt_int, opt_str,
};
use super::media::{default_filename, downloaded, file_bytes, media_file, media_type};
use crate::api::material::{Material, MaterialKind, BATCHGET_MAX};
use crate::api::media::{MediaFile, MediaType};
use crate::script::bindings::error_at;
use crate::script::services::ActingFor;

const ADD: &str = "wx.material.add";
const GET: &str = "wx.material.get";
const DELETE: &str = "wx.material.delete";
const COUNT: &str = "wx.material.count";
const LIST: &str = "wx.material.list";

/// The options `wx.material.add` takes.
const ADD_OPTIONS: &[&str] = &["filename", "title", "introduction"];

/// What `wx.material.add` sends: the type, the file and a video's title and introduction.
type AddArgs = (MediaType, MediaFile, Option<(String, String)>);

fn add_args(lua: &Lua, (kind, data, options): (Value, Value, Value)) -> LuaResult<AddArgs> {
    let kind = media_type(lua, ADD, &arg_str(lua, ADD, "type", &kind)?)?;
    let data = file_bytes(lua, ADD, data)?;
    let (mut filename, mut title, mut introduction) = (None, None, None);
    if !options.is_nil() {
        let t = arg_table(lua, ADD, "the options", &options)?;
        for pair in t.pairs::<Value, Value>() {
            let (k, v) = pair?;
            let key = arg_str(lua, ADD, "an option name", &k)?;
            let slot = match key.as_str() {
                "filename" => &mut filename,
                "title" => &mut title,
                "introduction" => &mut introduction,
                other => {
                    return Err(error_at(
                        lua,
                        format!(
                            "{ADD}: unknown option \"{other}\" (options: {})",
                            ADD_OPTIONS.join(", ")
                        ),
                    ))
                }
            };
            *slot = opt_str(lua, ADD, &key, &v)?;
        }
    }
    // WeChat refuses a video without both; say so at the script's line instead of a 47001.
    let description = match (kind, title, introduction) {
        (MediaType::Video, Some(title), introduction) => {
            Some((title, introduction.unwrap_or_default()))
        }
        (MediaType::Video, None, _) => {
            return Err(error_at(
                lua,
                format!("{ADD}: a video needs a title ({{title =, introduction =}})"),
            ))
        }
        (_, None, None) => None,
        _ => {
            return Err(error_at(
                lua,
                format!("{ADD}: title and introduction are for videos only"),
            ))
        }
    };
    Ok((
        kind,
        media_file(data, filename, default_filename(kind)),
        description,
    ))
}

/// `type [, offset [, count]]`: offset from 0, count 1 to 20 (default 20).
fn list_args(
    lua: &Lua,
    (kind, offset, count): (Value, Value, Value),
) -> LuaResult<(MaterialKind, u32, u32)> {
    let name = arg_str(lua, LIST, "type", &kind)?;
    let kind = MaterialKind::parse(&name).ok_or_else(|| {
        error_at(
            lua,
            format!("{LIST}: type must be image, video, voice or news, not \"{name}\""),
        )
    })?;
    let offset = opt_int(lua, LIST, "offset", &offset)?.unwrap_or(0);
    let offset = u32::try_from(offset).map_err(|_| {
        error_at(
            lua,
            format!("{LIST}: offset must be 0 or more, not {offset}"),
        )
    })?;
    let count = opt_int(lua, LIST, "count", &count)?.unwrap_or(i64::from(BATCHGET_MAX));
    let count = u32::try_from(count)
        .ok()
        .filter(|c| (1..=BATCHGET_MAX).contains(c))
        .ok_or_else(|| {
            error_at(
                lua,
                format!("{LIST}: count must be 1 to {BATCHGET_MAX}, not {count}"),
            )
        })?;
    Ok((kind, offset, count))
}

/// Adds `wx.material`.
pub fn register(lua: &Lua, wx: &Table, acting: &ActingFor) -> LuaResult<()> {
    let api = acting;
    let material = lua.create_table()?;
    material.set(
        "add",
        api_function(
            lua,
            api,
            ADD,
            add_args,
            |api, (kind, file, description)| async move {
                let description = description.as_ref().map(|(t, i)| (t.as_str(), i.as_str()));
                api.material().add(kind, &file, description).await
            },
        )?,
    )?;
    material.set(
        "get",
        api_function_with(
            lua,
            api,
            GET,
            |lua, media_id: Value| arg_str(lua, GET, "media_id", &media_id),
            |api, media_id| async move { api.material().get(&media_id).await },
            |lua, material| match material {
                Material::File(raw) => downloaded(lua, raw),
                Material::Json(v) => json_to_lua(lua, &v),
            },
        )?,
    )?;
    material.set(
        "delete",
        api_function(
            lua,
            api,
            DELETE,
            |lua, media_id: Value| arg_str(lua, DELETE, "media_id", &media_id),
            |api, media_id| async move {
                api.material().delete(&media_id).await?;
                Ok(Json::Bool(true))
            },
        )?,
    )?;
    material.set(
        "count",
        api_function(
            lua,
            api,
            COUNT,
            |_, ()| Ok(()),
            |api, ()| async move {
                let mut v = api.material().count().await?;
                if let Some(o) = v.as_object_mut() {
                    o.remove("errcode");
                    o.remove("errmsg");
                }
                Ok(v)
            },
        )?,
    )?;
    material.set(
        "list",
        api_function(
            lua,
            api,
            LIST,
            list_args,
            |api, (kind, offset, count)| async move {
                api.material().batchget(kind, offset, count).await
            },
        )?,
    )?;
    wx.set("material", material)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(lua: &Lua, src: &str) -> (Value, Value, Value) {
        lua.load(src).eval().unwrap()
    }

    #[test]
    fn a_video_needs_a_title_and_options_are_checked() {
        let lua = Lua::new();
        let (kind, file, desc) = add_args(
            &lua,
            args(
                &lua,
                r#"return "video", "mp4", {title = "T", filename = "a.mp4"}"#,
            ),
        )
        .unwrap();
        assert_eq!(kind, MediaType::Video);
        assert_eq!(file.filename, "a.mp4");
        assert_eq!(desc, Some(("T".into(), String::new())));
        let err = |src: &str| add_args(&lua, args(&lua, src)).unwrap_err().to_string();
        assert!(err(r#"return "video", "mp4""#).contains("a video needs a title"));
        assert!(err(r#"return "image", "x", {title = "T"}"#).contains("videos only"));
        assert!(err(r#"return "image", "x", {name = "a.png"}"#).contains("unknown option \"name\""));
        assert!(err(r#"return "image", "", nil"#).contains("the content is empty"));
    }

    #[test]
    fn list_takes_a_type_an_offset_and_a_count_of_one_to_twenty() {
        let lua = Lua::new();
        assert_eq!(
            list_args(&lua, args(&lua, r#"return "news""#)).unwrap(),
            (MaterialKind::News, 0, 20)
        );
        assert_eq!(
            list_args(&lua, args(&lua, r#"return "image", 40, 5"#)).unwrap(),
            (MaterialKind::Image, 40, 5)
        );
        let err = |src: &str| list_args(&lua, args(&lua, src)).unwrap_err().to_string();
        assert!(err(r#"return "image", 0, 21"#).contains("count must be 1 to 20, not 21"));
        assert!(err(r#"return "image", -1"#).contains("offset must be 0 or more"));
        assert!(err(r#"return "thumb""#).contains("type must be image, video, voice or news"));
    }
}
