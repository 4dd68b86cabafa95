//! The fake's follower endpoints (`user/info`, `user/info/batchget`, `user/get`), as
//! [`crate::api::user`] calls them, over the followers a test added.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::state::{FakeState, JsonBody};
use super::FakeWechat;

/// OpenIDs per `user/get` page (as on WeChat).
const USER_PAGE: usize = 10_000;

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route("/cgi-bin/user/info", any(info))
        .route("/cgi-bin/user/info/batchget", any(batchget))
        .route("/cgi-bin/user/get", any(list))
}

async fn info(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let s = fake.lock();
    Json(match q.get("openid") {
        Some(o) if !o.is_empty() => user_info(&s, o, q.get("lang").map_or("zh_CN", String::as_str)),
        _ => s.err(40003),
    })
}

async fn batchget(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let s = fake.lock();
    Json(match b["user_list"].as_array() {
        Some(list) if !list.is_empty() && list.len() <= 100 => {
            let infos: Vec<Value> = list
                .iter()
                .map(|u| {
                    user_info(
                        &s,
                        u["openid"].as_str().unwrap_or_default(),
                        u["lang"].as_str().unwrap_or("zh_CN"),
                    )
                })
                .collect();
            json!({"user_info_list": infos})
        }
        _ => s.err(47001),
    })
}

/// `user/get`: one page of followers after `next_openid`.
async fn list(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let s = fake.lock();
    let start = match q.get("next_openid").filter(|n| !n.is_empty()) {
        Some(n) => match s.followers.iter().position(|f| f == n) {
            Some(i) => i + 1,
            None => return Json(s.err(40003)),
        },
        None => 0,
    };
    let page: Vec<String> = s
        .followers
        .iter()
        .skip(start)
        .take(USER_PAGE)
        .cloned()
        .collect();
    let next = page.last().cloned().unwrap_or_default();
    let mut v = json!({"total": s.followers.len(), "count": page.len(), "next_openid": next});
    if !page.is_empty() {
        v["data"] = json!({"openid": page});
    }
    Json(v)
}

fn user_info(s: &FakeState, openid: &str, lang: &str) -> Value {
    if openid.is_empty() {
        return s.err(40003);
    }
    if s.followers.iter().any(|f| f == openid) {
        json!({
            "subscribe": 1, "openid": openid, "language": lang,
            "subscribe_time": 1_700_000_000, "remark": "", "groupid": 0,
            "tagid_list": s.user_tags.get(openid).cloned().unwrap_or_default(),
            "subscribe_scene": "ADD_SCENE_QR_CODE", "qr_scene": 0, "qr_scene_str": ""
        })
    } else {
        json!({"subscribe": 0, "openid": openid})
    }
}
