//! The fake's temporary-media endpoints (`media/upload`, `media/get`, `media/uploadimg`), as
//! [`crate::api::media`] calls them, with WeChat's documented formats and sizes. Uploaded files
//! are kept so `media/get` hands them back byte for byte.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::state::{FakeState, StoredMedia, Uploaded};
use super::{FakeWechat, RecordedPart};

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route("/cgi-bin/media/upload", any(upload_temporary))
        .route("/cgi-bin/media/uploadimg", any(uploadimg))
        .route("/cgi-bin/media/get", any(get))
}

const MIB: usize = 1024 * 1024;

/// Where an upload goes: the material library takes a few more formats than temporary media.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kept {
    /// `media/upload`: kept three days on WeChat.
    Temporary,
    /// `material/add_material`: kept until deleted.
    Permanent,
}

/// The documented formats (by file extension) and largest size of each media type, and the
/// errcode of a file over it: image 10 MB (bmp only in the library), voice 2 MB (wma and wav
/// only in the library), video 10 MB mp4, thumb 64 KB jpg.
fn limits(kind: &str, kept: Kept) -> Option<(&'static [&'static str], usize, i64)> {
    const IMAGE: &[&str] = &["png", "jpeg", "jpg", "gif"];
    const IMAGE_LIBRARY: &[&str] = &["bmp", "png", "jpeg", "jpg", "gif"];
    const VOICE: &[&str] = &["amr", "mp3"];
    const VOICE_LIBRARY: &[&str] = &["mp3", "wma", "wav", "amr"];
    const VIDEO: &[&str] = &["mp4"];
    const THUMB: &[&str] = &["jpg", "jpeg"];
    Some(match (kind, kept) {
        ("image", Kept::Temporary) => (IMAGE, 10 * MIB, 40009),
        ("image", Kept::Permanent) => (IMAGE_LIBRARY, 10 * MIB, 40009),
        ("voice", Kept::Temporary) => (VOICE, 2 * MIB, 40010),
        ("voice", Kept::Permanent) => (VOICE_LIBRARY, 2 * MIB, 40010),
        ("video", _) => (VIDEO, 10 * MIB, 40011),
        ("thumb", _) => (THUMB, 64 * 1024, 40012),
        _ => return None,
    })
}

/// The file's extension, lower-cased.
fn extension(part: &RecordedPart) -> String {
    part.filename
        .as_deref()
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default()
}

/// The `media` part of an upload of `kind`, or WeChat's errcode for it: 40004 for an
/// unknown type, 41005 without a file, 44001 for an empty one, 40005 for a format the type
/// does not take, 40009..40012 for a file over the type's size.
pub(super) fn checked_file<'a>(
    kind: &str,
    kept: Kept,
    parts: &'a [RecordedPart],
) -> Result<&'a RecordedPart, i64> {
    let (formats, max, too_large) = limits(kind, kept).ok_or(40004)?;
    let media = parts.iter().find(|p| p.name == "media").ok_or(41005)?;
    if media.data.is_empty() {
        return Err(44001);
    }
    if !formats.contains(&extension(media).as_str()) {
        return Err(40005);
    }
    if media.data.len() > max {
        return Err(too_large);
    }
    Ok(media)
}

async fn upload_temporary(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
    Uploaded(parts): Uploaded,
) -> Json<Value> {
    let mut s = fake.lock();
    let kind = q.get("type").cloned().unwrap_or_default();
    let media = match checked_file(&kind, Kept::Temporary, &parts) {
        Ok(media) => media,
        Err(code) => return Json(s.err(code)),
    };
    let id = keep(&mut s, &kind, media, Kept::Temporary, None);
    let key = if kind == "thumb" {
        "thumb_media_id"
    } else {
        "media_id"
    };
    Json(json!({"type": kind, key: id, "created_at": crate::clock::unix_secs()}))
}

/// `media/uploadimg`: jpg or png under 1 MB (40005, 40009 otherwise); answers the image's URL.
/// The image joins neither temporary media nor the library.
async fn uploadimg(State(fake): State<FakeWechat>, Uploaded(parts): Uploaded) -> Json<Value> {
    let mut s = fake.lock();
    let Some(media) = parts.iter().find(|p| p.name == "media") else {
        return Json(s.err(41005));
    };
    let answer = if media.data.is_empty() {
        s.err(44001)
    } else if !["jpg", "jpeg", "png"].contains(&extension(media).as_str()) {
        s.err(40005)
    } else if media.data.len() >= MIB {
        s.err(40009)
    } else {
        let n = s.next_serial();
        json!({"url": format!("http://mmbiz.qpic.cn/fake_uploadimg/{n}/0"), "errcode": 0, "errmsg": "ok"})
    };
    Json(answer)
}

/// `media/get`: the file itself, or for a video the URL to fetch it from. Permanent material
/// is not temporary media (40007), as on WeChat.
async fn get(State(fake): State<FakeWechat>, Query(q): Query<HashMap<String, String>>) -> Response {
    let s = fake.lock();
    let media_id = q.get("media_id").map(String::as_str).unwrap_or_default();
    match s.media.get(media_id).filter(|m| !m.permanent) {
        Some(m) if m.kind == "video" => {
            Json(json!({"video_url": format!("http://mmbiz.qpic.cn/fake/video/{media_id}")}))
                .into_response()
        }
        Some(m) => file(m),
        None => Json(s.err(40007)).into_response(),
    }
}

/// A stored file as WeChat sends it: its content type and an attachment file name.
pub(super) fn file(m: &StoredMedia) -> Response {
    let ct = m
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let disp = format!(
        "attachment; filename=\"{}\"",
        m.filename.as_deref().unwrap_or("media")
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ct),
            (header::CONTENT_DISPOSITION, disp),
        ],
        m.data.clone(),
    )
        .into_response()
}

/// Keeps an uploaded file and returns its new media_id; a permanent video keeps its
/// description (title, introduction).
pub(super) fn keep(
    s: &mut FakeState,
    kind: &str,
    media: &RecordedPart,
    kept: Kept,
    description: Option<(String, String)>,
) -> String {
    let id = new_media_id(
        s,
        kind,
        media.filename.clone(),
        media.content_type.clone(),
        media.data.clone(),
    );
    if let Some(m) = s.media.get_mut(&id) {
        m.permanent = kept == Kept::Permanent;
        m.description = description;
    }
    id
}

/// Keeps an upload and returns its new media_id (temporary; [`keep`] marks material).
pub(super) fn new_media_id(
    s: &mut FakeState,
    kind: &str,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
) -> String {
    let serial = s.next_serial();
    let id = format!("FAKE_MEDIA_{kind}_{serial}");
    insert_temporary(s, id.clone(), serial, kind, filename, content_type, data);
    id
}

/// Keeps temporary media under a media_id chosen by the caller (the `MediaId` of a message a
/// user sent), replacing any file that had it.
pub(super) fn keep_media_as(
    s: &mut FakeState,
    id: &str,
    kind: &str,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
) {
    let serial = s.next_serial();
    insert_temporary(
        s,
        id.to_string(),
        serial,
        kind,
        filename,
        content_type,
        data,
    );
}

fn insert_temporary(
    s: &mut FakeState,
    id: String,
    serial: u64,
    kind: &str,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
) {
    s.media.insert(
        id,
        StoredMedia {
            kind: kind.to_string(),
            filename,
            content_type,
            data,
            permanent: false,
            description: None,
            serial,
            update_time: crate::clock::unix_secs(),
        },
    );
}
