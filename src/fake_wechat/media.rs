//! The fake's media endpoints (`media/upload`, `media/get`, `material/add_material`), as
//! [`crate::api::media`] calls them. Uploaded files are kept so `media/get` hands them back.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::state::{FakeState, StoredMedia, Uploaded};
use super::FakeWechat;

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route("/cgi-bin/media/upload", any(upload_temporary))
        .route("/cgi-bin/material/add_material", any(upload_permanent))
        .route("/cgi-bin/media/get", any(get))
}

/// Where an upload goes: the two endpoints answer in different shapes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// `media/upload`: kept three days on WeChat.
    Temporary,
    /// `material/add_material`: kept until deleted; videos need a description.
    Permanent,
}

async fn upload_temporary(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
    Uploaded(parts): Uploaded,
) -> Json<Value> {
    Json(upload(&mut fake.lock(), Kept::Temporary, &q, &parts))
}

async fn upload_permanent(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
    Uploaded(parts): Uploaded,
) -> Json<Value> {
    Json(upload(&mut fake.lock(), Kept::Permanent, &q, &parts))
}

fn upload(
    s: &mut FakeState,
    kept: Kept,
    q: &HashMap<String, String>,
    parts: &[super::RecordedPart],
) -> Value {
    let kind = q.get("type").cloned().unwrap_or_default();
    if !matches!(kind.as_str(), "image" | "voice" | "video" | "thumb") {
        return s.err(40004);
    }
    let Some(media) = parts.iter().find(|p| p.name == "media") else {
        return s.err(41005);
    };
    if kept == Kept::Permanent && kind == "video" && !parts.iter().any(|p| p.name == "description")
    {
        return s.err(47001);
    }
    let id = new_media_id(
        s,
        &kind,
        media.filename.clone(),
        media.content_type.clone(),
        media.data.clone(),
    );
    if kept == Kept::Temporary {
        let key = if kind == "thumb" {
            "thumb_media_id"
        } else {
            "media_id"
        };
        json!({"type": kind, key: id, "created_at": crate::clock::unix_secs()})
    } else if kind == "image" {
        json!({"media_id": id, "url": format!("http://mmbiz.qpic.cn/fake/{id}/0")})
    } else {
        json!({"media_id": id})
    }
}

/// `media/get`: the file itself, or for a video the URL to fetch it from.
async fn get(State(fake): State<FakeWechat>, Query(q): Query<HashMap<String, String>>) -> Response {
    let s = fake.lock();
    let media_id = q.get("media_id").map(String::as_str).unwrap_or_default();
    match q.get("media_id").and_then(|id| s.media.get(id)) {
        Some(m) if m.kind == "video" => {
            Json(json!({"video_url": format!("http://mmbiz.qpic.cn/fake/video/{media_id}")}))
                .into_response()
        }
        Some(m) => file(m.clone()),
        None => Json(s.err(40007)).into_response(),
    }
}

/// A stored file as WeChat sends it: its content type and an attachment file name.
fn file(m: StoredMedia) -> Response {
    let ct = m
        .content_type
        .unwrap_or_else(|| "application/octet-stream".into());
    let disp = format!(
        "attachment; filename=\"{}\"",
        m.filename.unwrap_or_else(|| "media".into())
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ct),
            (header::CONTENT_DISPOSITION, disp),
        ],
        m.data,
    )
        .into_response()
}

/// Keeps an upload and returns its new media_id.
pub(super) fn new_media_id(
    s: &mut FakeState,
    kind: &str,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
) -> String {
    let id = format!("FAKE_MEDIA_{kind}_{}", s.next_serial());
    s.media.insert(
        id.clone(),
        StoredMedia {
            kind: kind.to_string(),
            filename,
            content_type,
            data,
        },
    );
    id
}
