//! What the page makes of each call the fake WeChat API answered: the call itself for the
//! panel (tokens and secrets masked), and what a user would see of it — a customer-service
//! message, the typing indicator, a template or subscription notice, a mass send in each
//! simulated user's conversation it reaches, a new menu.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::feed::{EventBody, PartSummary};
use super::{reply, Playground};
use crate::fake_wechat::RecordedCall;
use crate::sync::lock;

/// Tokens, tickets and secrets in the fake's answers are masked before the page sees them.
fn mask_secrets(value: &mut Value) {
    const HIDDEN: [&str; 7] = [
        "access_token",
        "refresh_token",
        "ticket",
        "secret",
        "appsecret",
        "component_access_token",
        "authorizer_access_token",
    ];
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if HIDDEN.contains(&key.as_str()) && v.is_string() {
                    *v = Value::from("<hidden>");
                } else {
                    mask_secrets(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

impl Playground {
    /// Turns one answered call to the fake API into the feed's entries: the call itself, and
    /// what a user would see of it.
    pub fn on_call(&self, call: RecordedCall) {
        let answer = call.answer.clone();
        let delivered = answer
            .as_ref()
            .is_some_and(|a| a.status == 200 && a.refusal().is_none());
        let body = call.body.clone().unwrap_or(Value::Null);
        let mut shown_answer = answer.as_ref().and_then(|a| a.json.clone());
        if let Some(answer) = shown_answer.as_mut() {
            mask_secrets(answer);
        }
        let mut shown_body = call.body.clone();
        if let Some(body) = shown_body.as_mut() {
            mask_secrets(body);
        }
        self.feed.push(EventBody::Api {
            method: call.method.clone(),
            path: call.path.clone(),
            query: call.query.clone(),
            body: shown_body,
            parts: call
                .parts
                .iter()
                .map(|p| PartSummary {
                    name: p.name.clone(),
                    filename: p.filename.clone(),
                    content_type: p.content_type.clone(),
                    size: p.data.len(),
                })
                .collect(),
            status: answer.as_ref().map_or(0, |a| a.status),
            answer: shown_answer,
        });
        if !delivered {
            return;
        }
        let touser = body["touser"].as_str().unwrap_or_default().to_string();
        match call.path.as_str() {
            crate::api::kf::SEND_PATH => {
                self.feed.push(EventBody::Reply {
                    user: touser,
                    reply: reply::from_message_json(&body),
                    via: "kf",
                    exchange: None,
                    raw: None,
                });
            }
            crate::api::kf::TYPING_PATH => {
                self.feed.push(EventBody::Typing {
                    user: touser,
                    on: body["command"] == "Typing",
                });
            }
            crate::api::template::SEND_PATH | crate::api::subscribe::SEND_PATH => {
                let template_id = body["template_id"].as_str().unwrap_or_default();
                let template = call.path == crate::api::template::SEND_PATH;
                let title = if template {
                    self.fake
                        .templates()
                        .into_iter()
                        .find(|(id, _)| id == template_id)
                        .map(|(_, title)| title)
                        .unwrap_or_else(|| template_id.to_string())
                } else {
                    template_id.to_string()
                };
                let fields = body["data"]
                    .as_object()
                    .map(|data| {
                        data.iter()
                            .map(|(k, v)| {
                                let value = v["value"]
                                    .as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v["value"].to_string());
                                (k.clone(), value)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let url = body["url"]
                    .as_str()
                    .or_else(|| body["page"].as_str())
                    .map(str::to_string);
                self.feed.push(EventBody::Notice {
                    user: touser,
                    notice: if template { "template" } else { "subscribe" },
                    title,
                    fields,
                    url,
                });
            }
            crate::api::mass::SEND_PATH
            | crate::api::mass::SENDALL_PATH
            | "/cgi-bin/message/mass/preview" => {
                let shown = reply::from_message_json(&body);
                for user in self.mass_targets(&call.path, &body) {
                    self.feed.push(EventBody::Broadcast {
                        user,
                        reply: shown.clone(),
                    });
                }
            }
            "/cgi-bin/menu/create" | "/cgi-bin/menu/delete" => {
                self.feed.push(EventBody::Menu {
                    menu: self.fake.menu(),
                });
            }
            _ => {}
        }
    }

    /// The simulated users a mass send reaches: those it names (`send`, `preview`), or the
    /// followers it selects (`sendall`: everyone, or a tag).
    fn mass_targets(&self, path: &str, body: &Value) -> Vec<String> {
        let users = lock(&self.users).clone();
        if path == crate::api::mass::SENDALL_PATH {
            let filter = &body["filter"];
            let tag = filter["tag_id"].as_i64();
            return users
                .into_iter()
                .filter(|u| self.fake.is_follower(&u.openid))
                .filter(|u| {
                    filter["is_to_all"].as_bool() == Some(true)
                        || tag.is_some_and(|t| self.fake.tags_of(&u.openid).contains(&t))
                })
                .map(|u| u.openid)
                .collect();
        }
        let named: Vec<&str> = match &body["touser"] {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        users
            .into_iter()
            .filter(|u| named.contains(&u.openid.as_str()))
            .map(|u| u.openid)
            .collect()
    }

    /// Feeds the calls the fake answers into the feed until the fake goes away.
    pub async fn watch_calls(
        self: Arc<Self>,
        mut calls: tokio::sync::broadcast::Receiver<RecordedCall>,
    ) {
        loop {
            match calls.recv().await {
                Ok(call) => self.on_call(call),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "the playground fell behind the fake API's calls; some are not shown"
                    );
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}
