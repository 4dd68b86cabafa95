//! `wx.media.upload`: temporary media (临时素材) from bytes the script holds.

use bytes::Bytes;
use mlua::{Lua, Result as LuaResult, Table, Value};
use serde_json::json;

use super::convert::{api_function, arg_str, opt_str};
use crate::api::media::{MediaFile, MediaType};
use crate::script::bindings::error_at;
use crate::script::services::Services;

const UPLOAD: &str = "wx.media.upload";

/// The media type by its documented name.
fn media_type(lua: &Lua, name: &str) -> LuaResult<MediaType> {
    Ok(match name {
        "image" => MediaType::Image,
        "voice" => MediaType::Voice,
        "video" => MediaType::Video,
        "thumb" => MediaType::Thumb,
        other => {
            return Err(error_at(
                lua,
                format!("{UPLOAD}: type must be image, voice, video or thumb, not \"{other}\""),
            ))
        }
    })
}

/// WeChat infers the format from the file name, so a missing one gets a usual extension.
fn default_filename(kind: MediaType) -> &'static str {
    match kind {
        MediaType::Image => "media.jpg",
        MediaType::Voice => "media.amr",
        MediaType::Video => "media.mp4",
        MediaType::Thumb => "thumb.jpg",
    }
}

/// The MIME type for a file name's extension, when it is one WeChat accepts.
fn content_type(filename: &str) -> Option<String> {
    let ext = filename.rsplit_once('.')?.1.to_ascii_lowercase();
    let ct = match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "amr" => "audio/amr",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        _ => return None,
    };
    Some(ct.to_string())
}

fn upload_args(
    lua: &Lua,
    (kind, data, filename): (Value, Value, Value),
) -> LuaResult<(MediaType, MediaFile)> {
    let kind = media_type(lua, &arg_str(lua, UPLOAD, "type", &kind)?)?;
    // The content is raw bytes: any Lua string, NULs and non-UTF-8 included.
    let data = match data {
        Value::String(s) => Bytes::copy_from_slice(&s.as_bytes()),
        other => {
            return Err(error_at(
                lua,
                format!(
                    "{UPLOAD}: the content must be a string of bytes, not a {}",
                    other.type_name()
                ),
            ))
        }
    };
    if data.is_empty() {
        return Err(error_at(lua, format!("{UPLOAD}: the content is empty")));
    }
    let filename = opt_str(lua, UPLOAD, "filename", &filename)?
        .unwrap_or_else(|| default_filename(kind).to_string());
    let file = MediaFile {
        content_type: content_type(&filename),
        filename,
        data,
    };
    Ok((kind, file))
}

/// Adds `wx.media`.
pub fn register(lua: &Lua, wx: &Table, services: &Services) -> LuaResult<()> {
    let media = lua.create_table()?;
    media.set(
        "upload",
        api_function(lua, &services.api, UPLOAD, upload_args, |api, (kind, file)| async move {
            let up = api.media().upload(kind, &file).await?;
            Ok(json!({"media_id": up.media_id, "type": kind.as_str(), "created_at": up.created_at}))
        })?,
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
        assert!(media_type(&lua, "news").is_err());
    }
}
