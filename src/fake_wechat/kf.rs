//! The fake's customer-service endpoints (`message/custom/*`), as [`crate::api::kf`] calls them.

use axum::extract::State;
use axum::routing::any;
use axum::{Json, Router};
use serde_json::Value;

use super::state::{ok, JsonBody};
use super::FakeWechat;

/// The message types `message/custom/send` takes.
const KF_TYPES: &[&str] = &[
    "text",
    "image",
    "voice",
    "video",
    "music",
    "news",
    "mpnews",
    "mpnewsarticle",
    "msgmenu",
    "wxcard",
    "miniprogrampage",
];

const SEND: &str = crate::api::kf::SEND_PATH;

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route(SEND, any(send))
        .route("/cgi-bin/message/custom/typing", any(typing))
}

async fn send(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    if b["touser"].as_str().is_none_or(str::is_empty) {
        return Json(s.err(40003));
    }
    Json(match b["msgtype"].as_str() {
        Some(t) if KF_TYPES.contains(&t) && b[t].is_object() => {
            s.deliver(SEND, &b);
            ok()
        }
        _ => s.err(40008),
    })
}

async fn typing(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let s = fake.lock();
    Json(if b["touser"].as_str().is_none_or(str::is_empty) {
        s.err(40003)
    } else if !matches!(b["command"].as_str(), Some("Typing" | "CancelTyping")) {
        s.err(47001)
    } else {
        ok()
    })
}
