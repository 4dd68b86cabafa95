//! The fake's subscription-notification endpoints (`message/subscribe/bizsend`,
//! `wxaapi/newtmpl/*`), as [`crate::api::subscribe`] calls them. A send goes through unless
//! its template is unknown (40037), a value is malformed (47003) or the user was told to have
//! refused notifications ([`FakeWechat::refuse_subscribe`], 43101).

use std::collections::HashSet;

use axum::extract::State;
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::state::{ok, JsonBody};
use super::FakeWechat;
use crate::api::subscribe::{ADD_PATH, CATEGORIES_PATH, DELETE_PATH, SEND_PATH, TEMPLATES_PATH};

/// Longest `sceneDesc`, in characters.
const MAX_SCENE_DESC: usize = 15;

/// What the fake keeps of subscription notifications.
#[derive(Debug, Default)]
pub(super) struct SubscribeState {
    /// The account's templates, as `gettemplate` lists them.
    templates: Vec<Value>,
    /// Users whose sends are refused with 43101.
    refused: HashSet<String>,
}

impl FakeWechat {
    /// Refuse subscription notifications to `openid` from now on (43101), as when the user
    /// did not subscribe or turned notifications off.
    pub fn refuse_subscribe(&self, openid: &str) {
        self.lock().subscribe.refused.insert(openid.to_string());
    }
}

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route(SEND_PATH, any(send))
        .route(TEMPLATES_PATH, any(templates))
        .route(ADD_PATH, any(add))
        .route(DELETE_PATH, any(delete))
        .route(CATEGORIES_PATH, any(categories))
}

async fn send(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let s = fake.lock();
    let touser = b["touser"].as_str().unwrap_or_default();
    let known = s
        .subscribe
        .templates
        .iter()
        .any(|t| t["priTmplId"] == b["template_id"]);
    let well_formed = b["data"]
        .as_object()
        .is_some_and(|d| d.values().all(|v| v["value"].is_string()));
    Json(if touser.is_empty() {
        s.err(40003)
    } else if !known {
        s.err(40037)
    } else if !well_formed {
        s.err(47003)
    } else if s.subscribe.refused.contains(touser) {
        s.err(43101)
    } else {
        ok()
    })
}

async fn templates(State(fake): State<FakeWechat>) -> Json<Value> {
    Json(json!({"errcode": 0, "errmsg": "ok", "data": fake.lock().subscribe.templates}))
}

/// `addtemplate`: `tid`, 2 to 5 keyword ids in `kidList`, a `sceneDesc` of up to 15
/// characters; the template's content names one `thing<kid>` per keyword.
async fn add(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    let tid = b["tid"].as_str().unwrap_or_default().to_string();
    let kids: Option<Vec<i64>> = b["kidList"]
        .as_array()
        .and_then(|l| l.iter().map(Value::as_i64).collect());
    let scene = b["sceneDesc"].as_str().unwrap_or_default();
    let kids = match kids {
        Some(k) if !tid.is_empty() && (2..=5).contains(&k.len()) => k,
        _ => return Json(s.err(47001)),
    };
    if scene.chars().count() > MAX_SCENE_DESC {
        return Json(s.err(47001));
    }
    let id = format!("FAKE_SUB_{tid}_{:x}", s.next_serial());
    let content: String = kids
        .iter()
        .map(|k| format!("关键词{k}:{{{{thing{k}.DATA}}}}\n"))
        .collect();
    s.subscribe.templates.push(json!({
        "priTmplId": id, "title": format!("template {tid}"), "content": content,
        "example": "", "type": 2
    }));
    Json(json!({"errcode": 0, "errmsg": "ok", "priTmplId": id}))
}

async fn delete(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    let before = s.subscribe.templates.len();
    s.subscribe
        .templates
        .retain(|t| t["priTmplId"] != b["priTmplId"]);
    Json(if s.subscribe.templates.len() < before {
        ok()
    } else {
        s.err(40037)
    })
}

async fn categories() -> Json<Value> {
    Json(json!({"errcode": 0, "errmsg": "ok", "data": [
        {"id": 616, "name": "公交"},
        {"id": 670, "name": "服装/鞋/箱包"},
    ]}))
}
