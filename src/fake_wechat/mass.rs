//! The fake's mass-message endpoints (`message/mass/*`, `media/uploadnews`), as
//! [`crate::api::mass`] calls them.

use std::time::Duration;

use axum::extract::State;
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::media::new_media_id;
use super::state::{ok, FakeState, JsonBody};
use super::FakeWechat;

/// Each mass `msgtype` and the field holding its content.
const MASS_TYPES: &[(&str, &str)] = &[
    ("mpnews", "mpnews"),
    ("text", "text"),
    ("voice", "voice"),
    ("image", "images"),
    ("mpvideo", "mpvideo"),
    ("wxcard", "wxcard"),
];

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route("/cgi-bin/message/mass/sendall", any(sendall))
        .route("/cgi-bin/message/mass/send", any(send))
        .route("/cgi-bin/message/mass/preview", any(preview))
        .route("/cgi-bin/message/mass/delete", any(delete))
        .route("/cgi-bin/message/mass/get", any(get))
        .route("/cgi-bin/message/mass/speed/get", any(speed_get))
        .route("/cgi-bin/message/mass/speed/set", any(speed_set))
        .route("/cgi-bin/media/uploadnews", any(uploadnews))
}

async fn sendall(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    Json(if !b["filter"].is_object() {
        s.err(47001)
    } else {
        mass_send(&mut s, &b)
    })
}

async fn send(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    Json(match b["touser"].as_array() {
        Some(list) if (2..=10_000).contains(&list.len()) => mass_send(&mut s, &b),
        _ => s.err(40130),
    })
}

async fn preview(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    Json(if b["touser"].is_string() || b["towxname"].is_string() {
        json!({"errcode": 0, "errmsg": "preview success", "msg_id": s.next_serial()})
    } else {
        s.err(40003)
    })
}

async fn delete(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let s = fake.lock();
    Json(if b["msg_id"].is_null() && b["url"].is_null() {
        s.err(47001)
    } else {
        ok()
    })
}

async fn get(JsonBody(b): JsonBody) -> Json<Value> {
    Json(json!({"msg_id": b["msg_id"].clone(), "msg_status": "SEND_SUCCESS"}))
}

async fn speed_get(State(fake): State<FakeWechat>) -> Json<Value> {
    let real = [80, 60, 45, 30, 10];
    let speed = fake.lock().mass_speed;
    Json(json!({"speed": speed, "realspeed": real[speed.clamp(0, 4) as usize]}))
}

async fn speed_set(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    Json(match b["speed"].as_i64() {
        Some(n) if (0..=4).contains(&n) => {
            s.mass_speed = n;
            ok()
        }
        _ => s.err(47001),
    })
}

async fn uploadnews(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    Json(match b["articles"].as_array() {
        Some(a) if !a.is_empty() && a.len() <= 8 => {
            let id = new_media_id(&mut s, "news", None, None, Vec::new());
            json!({"type": "news", "media_id": id, "created_at": crate::clock::unix_secs()})
        }
        _ => s.err(47001),
    })
}

/// How long WeChat checks a mass send's clientmsgid ("24 小时内的群发记录").
const KEY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A send to everyone, a tag or a list: one msg_id per clientmsgid, as WeChat keeps them.
fn mass_send(s: &mut FakeState, b: &Value) -> Value {
    let Some(key) = b["msgtype"]
        .as_str()
        .and_then(|t| MASS_TYPES.iter().find(|(m, _)| *m == t))
        .map(|(_, k)| *k)
    else {
        return s.err(40008);
    };
    if !b[key].is_object() {
        return s.err(40008);
    }
    let now = Instant::now();
    if let Some(cid) = b["clientmsgid"].as_str() {
        if let Some(&(msg_id, until)) = s.clientmsgids.get(cid) {
            if now < until {
                let mut e = s.err(45065);
                e["msg_id"] = json!(msg_id);
                return e;
            }
        }
    }
    let msg_id = s.next_serial();
    if let Some(cid) = b["clientmsgid"].as_str() {
        s.clientmsgids
            .insert(cid.to_string(), (msg_id as i64, now + KEY_WINDOW));
    }
    let path = if b["filter"].is_object() {
        crate::api::mass::SENDALL_PATH
    } else {
        crate::api::mass::SEND_PATH
    };
    s.deliver(path, b);
    let mut v = json!({"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id});
    if key == "mpnews" {
        v["msg_data_id"] = json!(msg_id * 10 + 1);
    }
    v
}
