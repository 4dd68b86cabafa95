//! The fake's tag endpoints (`tags/*`), as [`crate::api::tags`] calls them.

use axum::extract::State;
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::state::{ok, FakeState, JsonBody};
use super::FakeWechat;

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route("/cgi-bin/tags/create", any(create))
        .route("/cgi-bin/tags/get", any(get))
        .route("/cgi-bin/tags/update", any(update))
        .route("/cgi-bin/tags/delete", any(delete))
        .route("/cgi-bin/tags/members/batchtagging", any(batch_tag))
        .route("/cgi-bin/tags/members/batchuntagging", any(batch_untag))
        .route("/cgi-bin/tags/getidlist", any(id_list))
}

async fn create(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    Json(match b["tag"]["name"].as_str() {
        Some(n) if !n.is_empty() && n.chars().count() <= 30 && !s.tags.values().any(|t| t == n) => {
            let id = s.tags.keys().next_back().map_or(100, |k| k + 1);
            s.tags.insert(id, n.to_string());
            json!({"tag": {"id": id, "name": n}})
        }
        _ => s.err(45157),
    })
}

async fn get(State(fake): State<FakeWechat>) -> Json<Value> {
    let s = fake.lock();
    let tags: Vec<Value> = s
        .tags
        .iter()
        .map(|(id, name)| {
            let count = s.user_tags.values().filter(|t| t.contains(id)).count();
            json!({"id": id, "name": name, "count": count})
        })
        .collect();
    Json(json!({"tags": tags}))
}

async fn update(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    Json(match (b["tag"]["id"].as_i64(), b["tag"]["name"].as_str()) {
        (Some(id), Some(n)) if s.tags.contains_key(&id) => {
            s.tags.insert(id, n.to_string());
            ok()
        }
        _ => s.err(45159),
    })
}

async fn delete(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    Json(match b["tag"]["id"].as_i64() {
        Some(id) if s.tags.remove(&id).is_some() => {
            for t in s.user_tags.values_mut() {
                t.retain(|x| *x != id);
            }
            ok()
        }
        _ => s.err(45159),
    })
}

async fn batch_tag(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    Json(tag_members(&mut fake.lock(), &b, true))
}

async fn batch_untag(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    Json(tag_members(&mut fake.lock(), &b, false))
}

/// Adds (`tagging`) or removes a tag for up to 50 followers.
fn tag_members(s: &mut FakeState, b: &Value, tagging: bool) -> Value {
    let tag = b["tagid"].as_i64().filter(|id| s.tags.contains_key(id));
    match (tag, b["openid_list"].as_array()) {
        (Some(tag), Some(list)) if !list.is_empty() && list.len() <= 50 => {
            for o in list.iter().filter_map(Value::as_str) {
                let entry = s.user_tags.entry(o.to_string()).or_default();
                entry.retain(|x| *x != tag);
                if tagging {
                    entry.push(tag);
                }
            }
            ok()
        }
        (None, _) => s.err(45159),
        _ => s.err(40003),
    }
}

async fn id_list(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let s = fake.lock();
    Json(match b["openid"].as_str() {
        Some(o) if !o.is_empty() => {
            json!({"tagid_list": s.user_tags.get(o).cloned().unwrap_or_default()})
        }
        _ => s.err(40003),
    })
}
