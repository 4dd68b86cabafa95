//! The fake's permanent-material endpoints (`material/add_material`, `get_material`,
//! `del_material`, `get_materialcount`, `batchget_material`), as [`crate::api::material`]
//! calls them: the same formats and sizes as WeChat's library, videos described by a title and
//! an introduction, a newest-first listing of 1 to 20 items, and 40007 for an id the library
//! does not hold (temporary media included).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::media::{checked_file, file, keep, Kept};
use super::state::{ok, FakeState, JsonBody, StoredMedia, Uploaded};
use super::FakeWechat;

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route("/cgi-bin/material/add_material", any(add))
        .route("/cgi-bin/material/get_material", any(get))
        .route("/cgi-bin/material/del_material", any(delete))
        .route("/cgi-bin/material/get_materialcount", any(count))
        .route("/cgi-bin/material/batchget_material", any(batchget))
}

/// The image URL WeChat gives library images (usable on Tencent domains only).
fn image_url(media_id: &str) -> String {
    format!("http://mmbiz.qpic.cn/fake/{media_id}/0")
}

async fn add(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
    Uploaded(parts): Uploaded,
) -> Json<Value> {
    let mut s = fake.lock();
    let kind = q.get("type").cloned().unwrap_or_default();
    let media = match checked_file(&kind, Kept::Permanent, &parts) {
        Ok(media) => media,
        Err(code) => return Json(s.err(code)),
    };
    // A video needs `description`, a JSON object with a title and an introduction.
    let description = match parts.iter().find(|p| p.name == "description") {
        Some(p) => match serde_json::from_slice::<Value>(&p.data) {
            Ok(d) if d["title"].is_string() && d["introduction"].is_string() => Some((
                d["title"].as_str().unwrap_or_default().to_string(),
                d["introduction"].as_str().unwrap_or_default().to_string(),
            )),
            _ => return Json(s.err(47001)),
        },
        None if kind == "video" => return Json(s.err(47001)),
        None => None,
    };
    let id = keep(&mut s, &kind, media, Kept::Permanent, description);
    Json(if kind == "image" {
        json!({"media_id": id, "url": image_url(&id)})
    } else {
        json!({"media_id": id})
    })
}

/// The material `media_id` names, if the library holds it.
fn material<'a>(s: &'a FakeState, body: &Value) -> Option<&'a StoredMedia> {
    s.media
        .get(body["media_id"].as_str()?)
        .filter(|m| m.permanent)
}

/// A video is described in JSON (title, description, download URL); any other file is sent
/// as itself.
async fn get(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Response {
    let s = fake.lock();
    match material(&s, &b) {
        Some(m) if m.kind == "video" => {
            let (title, introduction) = m.description.clone().unwrap_or_default();
            let id = b["media_id"].as_str().unwrap_or_default();
            Json(json!({
                "title": title, "description": introduction,
                "down_url": format!("http://mmbiz.qpic.cn/fake/video/{id}")
            }))
            .into_response()
        }
        Some(m) => file(m),
        None => Json(s.err(40007)).into_response(),
    }
}

async fn delete(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    if material(&s, &b).is_none() {
        return Json(s.err(40007));
    }
    if let Some(id) = b["media_id"].as_str() {
        s.media.remove(id);
    }
    Json(ok())
}

/// The library's size by kind; thumbs count as images, as WeChat keeps them with images.
async fn count(State(fake): State<FakeWechat>) -> Json<Value> {
    let s = fake.lock();
    let n = |kinds: &[&str]| {
        s.media
            .values()
            .filter(|m| m.permanent && kinds.contains(&m.kind.as_str()))
            .count()
    };
    Json(json!({
        "voice_count": n(&["voice"]), "video_count": n(&["video"]),
        "image_count": n(&["image", "thumb"]), "news_count": n(&["news"]),
    }))
}

/// One page of the library, newest first. `type` must be image, video, voice or news
/// (40004), `offset` at least 0 and `count` 1 to 20 (47001 otherwise; WeChat documents the
/// range, not the errcode).
async fn batchget(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let s = fake.lock();
    let kinds: &[&str] = match b["type"].as_str() {
        Some("image") => &["image", "thumb"],
        Some("video") => &["video"],
        Some("voice") => &["voice"],
        Some("news") => &["news"],
        _ => return Json(s.err(40004)),
    };
    let (Some(offset), Some(count)) = (b["offset"].as_u64(), b["count"].as_u64()) else {
        return Json(s.err(47001));
    };
    if !(1..=20).contains(&count) {
        return Json(s.err(47001));
    }
    let mut all: Vec<(&String, &StoredMedia)> = s
        .media
        .iter()
        .filter(|(_, m)| m.permanent && kinds.contains(&m.kind.as_str()))
        .collect();
    all.sort_by_key(|(_, m)| std::cmp::Reverse(m.serial));
    let item: Vec<Value> = all
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(count as usize)
        .map(|(id, m)| {
            let mut item = json!({
                "media_id": id,
                "name": m.filename.clone().unwrap_or_default(),
                "update_time": m.update_time,
            });
            if m.kind == "image" || m.kind == "thumb" {
                item["url"] = json!(image_url(id));
            }
            item
        })
        .collect();
    Json(json!({"total_count": all.len(), "item_count": item.len(), "item": item}))
}
