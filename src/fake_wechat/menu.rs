//! The fake's custom-menu endpoints (`menu/*`, `get_current_selfmenu_info`), as
//! [`crate::api::menu`] calls them.

use axum::extract::State;
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::state::{ok, JsonBody};
use super::FakeWechat;

/// `menu/delete`, the one POST that takes no body.
pub(super) const DELETE: &str = "/cgi-bin/menu/delete";

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route("/cgi-bin/menu/create", any(create))
        .route("/cgi-bin/menu/get", any(get))
        .route(DELETE, any(delete))
        .route("/cgi-bin/get_current_selfmenu_info", any(selfmenu_info))
}

async fn create(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    Json(match b["button"].as_array() {
        Some(btns) if (1..=3).contains(&btns.len()) => {
            s.menu = Some(b.clone());
            ok()
        }
        _ => s.err(40016),
    })
}

async fn get(State(fake): State<FakeWechat>) -> Json<Value> {
    let s = fake.lock();
    Json(match &s.menu {
        Some(m) => json!({"menu": m}),
        None => s.err(46003),
    })
}

async fn delete(State(fake): State<FakeWechat>) -> Json<Value> {
    fake.lock().menu = None;
    Json(ok())
}

async fn selfmenu_info(State(fake): State<FakeWechat>) -> Json<Value> {
    Json(match &fake.lock().menu {
        Some(m) => json!({"is_menu_open": 1, "selfmenu_info": m}),
        None => json!({"is_menu_open": 0}),
    })
}
