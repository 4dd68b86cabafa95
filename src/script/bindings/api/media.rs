//! `wx.media.upload/get/uploadimg`: temporary media (临时素材) from and to bytes the script
//! holds, e.g. the picture or voice a user sent (`msg.media_id`), and images for article
//! content.

use bytes::Bytes;
use mlua::{Lua, Result as LuaResult, Table, Value};
use serde_json::json;

use super::convert::{api_function, api_function_with, arg_str, json_to_lua, opt_str};
use crate::api::client::RawResponse;
use crate::api::material::json_answer;
use crate::api::media::{MediaFile, MediaType};
use crate::script::bindings::error_at;
use crate::script::services::ActingFor;

const UPLOAD: &str = "wx.media.upload";
const GET: &str = "wx.media.get";
const UPLOADIMG: &str = "wx.media.uploadimg";

/// The media type by its documented name.
pub fn media_type(lua: &Lua, fname: &str, name: &str) -> LuaResult<MediaType> {
    Ok(match name {
        "image" => MediaType::Image,
        "voice" => MediaType::Voice,
        "video" => MediaType::Video,
        "thumb" => MediaType::Thumb,
        other => {
            return Err(error_at(
                lua,
                format!("{fname}: type must be image, voice, video or thumb, not \"{other}\""),
            ))
        }
    })
}

/// WeChat infers the format from the file name, so a missing one gets a usual extension.
pub fn default_filename(kind: MediaType) -> &'static str {
    match kind {
        MediaType::Image => "media.jpg",
        MediaType::Voice => "media.amr",
        MediaType::Video => "media.mp4",
        MediaType::Thumb => "thumb.jpg",
    }
}

/// The MIME type for a file name's extension, when it is one WeChat accepts.
pub fn content_type(filename: &str) -> Option<String> {
    let ext = filename.rsplit_once('.')?.1.to_ascii_lowercase();
    let ct = match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "amr" => "audio/amr",
        "mp3" => "audio/mpeg",
        "wma" => "audio/x-ms-wma",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        _ => return None,
    };
    Some(ct.to_string())
}

/// A file's content: any Lua string (NULs and non-UTF-8 included), not empty.
pub fn file_bytes(lua: &Lua, fname: &str, v: Value) -> LuaResult<Bytes> {
    let data = match v {
        Value::String(s) => Bytes::copy_from_slice(&s.as_bytes()),
        other => {
            return Err(error_at(
                lua,
                format!(
                    "{fname}: the content must be a string of bytes, not a {}",
                    other.type_name()
                ),
            ))
        }
    };
    if data.is_empty() {
        return Err(error_at(lua, format!("{fname}: the content is empty")));
    }
    Ok(data)
}

/// A file to upload, named `filename` or the type's usual name.
pub fn media_file(data: Bytes, filename: Option<String>, fallback: &str) -> MediaFile {
    let filename = filename.unwrap_or_else(|| fallback.to_string());
    MediaFile {
        content_type: content_type(&filename),
        filename,
        data,
    }
}

fn upload_args(
    lua: &Lua,
    (kind, data, filename): (Value, Value, Value),
) -> LuaResult<(MediaType, MediaFile)> {
    let kind = media_type(lua, UPLOAD, &arg_str(lua, UPLOAD, "type", &kind)?)?;
    let data = file_bytes(lua, UPLOAD, data)?;
    let filename = opt_str(lua, UPLOAD, "filename", &filename)?;
    Ok((kind, media_file(data, filename, default_filename(kind))))
}

/// A downloaded file as Lua sees it: `{bytes =, content_type =, filename =}`, or the table of
/// the JSON WeChat answers instead for a video (`{video_url =}`) or a news material.
pub fn downloaded(lua: &Lua, raw: RawResponse) -> LuaResult<Value> {
    if let Some(v) = json_answer(&raw) {
        return json_to_lua(lua, &v);
    }
    let t = lua.create_table()?;
    t.set("bytes", lua.create_string(&raw.data)?)?;
    t.set("content_type", raw.content_type)?;
    t.set("filename", raw.filename)?;
    Ok(Value::Table(t))
}

/// Adds `wx.media`.
pub fn register(lua: &Lua, wx: &Table, acting: &ActingFor) -> LuaResult<()> {
    let media = lua.create_table()?;
    media.set(
        "upload",
        api_function(lua, acting, UPLOAD, upload_args, |api, (kind, file)| async move {
            let up = api.media().upload(kind, &file).await?;
            Ok(json!({"media_id": up.media_id, "type": kind.as_str(), "created_at": up.created_at}))
        })?,
    )?;
    media.set(
        "get",
        api_function_with(
            lua,
            acting,
            GET,
            |lua, media_id: Value| arg_str(lua, GET, "media_id", &media_id),
            |api, media_id| async move { api.media().get(&media_id).await },
            downloaded,
        )?,
    )?;
    media.set(
        "uploadimg",
        api_function(
            lua,
            acting,
            UPLOADIMG,
            |lua, (data, filename): (Value, Value)| {
                let data = file_bytes(lua, UPLOADIMG, data)?;
                let filename = opt_str(lua, UPLOADIMG, "filename", &filename)?;
                Ok(media_file(data, filename, "image.jpg"))
            },
            |api, file| async move { api.media().uploadimg(&file).await.map(Into::into) },
        )?,
    )?;
    wx.set("media", media)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types() {
        assert_eq!(content_type("a.JPG").as_deref(), Some("image/jpeg"));
        assert_eq!(content_type("noext"), None);
        let lua = Lua::new();
        let (kind, file) = upload_args(
            &lua,
            (
                Value::String(lua.create_string("image").unwrap()),
                Value::String(lua.create_string(b"\x89PNG\0\x01").unwrap()),
                Value::Nil,
            ),
        )
        .unwrap();
        assert_eq!(kind, MediaType::Image);
        assert_eq!(file.filename, "media.jpg");
        assert_eq!(&file.data[..], b"\x89PNG\0\x01");
        assert!(media_type(&lua, UPLOAD, "news").is_err());
    }
}
