//! The fake's QR-code endpoint (`qrcode/create`), as [`crate::api::qrcode`] calls it.

use axum::extract::State;
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::state::JsonBody;
use super::FakeWechat;

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new().route("/cgi-bin/qrcode/create", any(create))
}

/// A temporary or permanent code with a numeric or string scene, checked as WeChat checks.
async fn create(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    let scene = &b["action_info"]["scene"];
    let action = b["action_name"].as_str().unwrap_or_default();
    let valid = match action {
        "QR_SCENE" => scene["scene_id"].as_u64().is_some_and(|id| id > 0),
        "QR_LIMIT_SCENE" => scene["scene_id"]
            .as_u64()
            .is_some_and(|id| (1..=100_000).contains(&id)),
        "QR_STR_SCENE" | "QR_LIMIT_STR_SCENE" => scene["scene_str"]
            .as_str()
            .is_some_and(|x| !x.is_empty() && x.len() <= 64),
        _ => false,
    };
    if !valid {
        return Json(s.err(47001));
    }
    let serial = s.next_serial();
    let ticket = format!("gQFAKE{serial}");
    let url = format!("http://weixin.qq.com/q/fake{serial}");
    Json(if action.starts_with("QR_LIMIT") {
        json!({"ticket": ticket, "url": url})
    } else {
        let expire = b["expire_seconds"]
            .as_u64()
            .unwrap_or(60)
            .clamp(60, 2_592_000);
        json!({"ticket": ticket, "expire_seconds": expire, "url": url})
    })
}
