//! The fake's template-message endpoints (`template/*`, `message/template/send`), as
//! [`crate::api::template`] calls them.

use std::time::Duration;

use axum::extract::State;
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::state::{ok, FakeState, JsonBody};
use super::FakeWechat;

/// Most private templates an account may have (WeChat answers 45026 past it).
const MAX_TEMPLATES: usize = 25;

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new()
        .route("/cgi-bin/template/api_set_industry", any(set_industry))
        .route("/cgi-bin/template/get_industry", any(get_industry))
        .route("/cgi-bin/template/api_add_template", any(add_template))
        .route(
            "/cgi-bin/template/get_all_private_template",
            any(all_private_templates),
        )
        .route(
            "/cgi-bin/template/del_private_template",
            any(del_private_template),
        )
        .route("/cgi-bin/message/template/send", any(send))
}

async fn set_industry(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    Json(
        match (b["industry_id1"].as_str(), b["industry_id2"].as_str()) {
            (Some(a), Some(c)) => {
                s.industry = Some((a.to_string(), c.to_string()));
                ok()
            }
            _ => s.err(47001),
        },
    )
}

async fn get_industry(State(fake): State<FakeWechat>) -> Json<Value> {
    let (a, c) = fake.lock().industry.clone().unwrap_or_default();
    Json(json!({
        "primary_industry": {"first_class": "IT科技", "second_class": format!("industry {a}")},
        "secondary_industry": {"first_class": "IT科技", "second_class": format!("industry {c}")}
    }))
}

/// `api_add_template`: the template's content names each of `keyword_name_list` (the
/// library's keywords picked for it), or two keywords when the list is empty or absent —
/// never `first`/`remark`, which WeChat stopped showing in 2023-05.
async fn add_template(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    let names: Option<Vec<&str>> = match &b["keyword_name_list"] {
        Value::Null => Some(Vec::new()),
        v => v
            .as_array()
            .and_then(|l| l.iter().map(Value::as_str).collect()),
    };
    let full = s.templates.len() >= MAX_TEMPLATES;
    Json(match (b["template_id_short"].as_str(), names) {
        (Some(short), Some(_)) if !short.is_empty() && full => s.err(45026),
        (Some(short), Some(names)) if !short.is_empty() => {
            let id = format!("tpl{}{}", short, s.next_serial());
            let content: String = if names.is_empty() {
                "订单号:{{character_string1.DATA}}\n时间:{{time2.DATA}}".into()
            } else {
                names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| format!("{name}:{{{{keyword{}.DATA}}}}\n", i + 1))
                    .collect()
            };
            s.templates.push(json!({
                "template_id": id, "title": format!("template {short}"),
                "primary_industry": "IT科技", "deputy_industry": "互联网|电子商务",
                "content": content, "example": ""
            }));
            json!({"errcode": 0, "errmsg": "ok", "template_id": id})
        }
        _ => s.err(47001),
    })
}

async fn all_private_templates(State(fake): State<FakeWechat>) -> Json<Value> {
    Json(json!({"template_list": fake.lock().templates}))
}

async fn del_private_template(
    State(fake): State<FakeWechat>,
    JsonBody(b): JsonBody,
) -> Json<Value> {
    let mut s = fake.lock();
    let before = s.templates.len();
    s.templates.retain(|t| t["template_id"] != b["template_id"]);
    Json(if s.templates.len() < before {
        ok()
    } else {
        s.err(40037)
    })
}

async fn send(State(fake): State<FakeWechat>, JsonBody(b): JsonBody) -> Json<Value> {
    let mut s = fake.lock();
    let known = s
        .templates
        .iter()
        .any(|t| t["template_id"] == b["template_id"]);
    Json(if b["touser"].as_str().is_none_or(str::is_empty) {
        s.err(40003)
    } else if !known {
        s.err(40037)
    } else if !b["data"].is_object() {
        s.err(47001)
    } else {
        send_once(&mut s, &b)
    })
}

/// How long WeChat keeps a template send's `client_msg_id`.
const KEY_WINDOW: Duration = Duration::from_secs(600);

/// Delivers a checked template send, unless it repeats an openid and `client_msg_id` seen in
/// the last 10 minutes: then nothing is delivered and the first send's msgid comes back.
fn send_once(s: &mut FakeState, b: &Value) -> Value {
    let now = Instant::now();
    let key = b["client_msg_id"]
        .as_str()
        .filter(|k| !k.is_empty())
        .map(|k| {
            (
                b["touser"].as_str().unwrap_or_default().to_string(),
                k.to_string(),
            )
        });
    if let Some(key) = &key {
        if let Some(&(msgid, until)) = s.template_keys.get(key) {
            if now < until {
                return json!({"errcode": 0, "errmsg": "ok", "msgid": msgid});
            }
        }
    }
    let msgid = s.next_serial();
    if let Some(key) = key {
        s.template_keys.insert(key, (msgid, now + KEY_WINDOW));
    }
    s.deliver(crate::api::template::SEND_PATH, b);
    json!({"errcode": 0, "errmsg": "ok", "msgid": msgid})
}
