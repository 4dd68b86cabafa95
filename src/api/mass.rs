//! Mass messages (群发): `message/mass/sendall` (by tag or to everyone), `message/mass/send`
//! (OpenID list, split into calls of at most 10,000), `preview`, `delete`, `get`,
//! `speed/get|set` and `media/uploadnews`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::WechatClient;
use super::error::ApiError;
use super::outbox::QueuedCall;

/// The endpoint of a send to everyone or to a tag.
pub const SENDALL_PATH: &str = "/cgi-bin/message/mass/sendall";
/// The endpoint of a send to an OpenID list.
pub const SEND_PATH: &str = "/cgi-bin/message/mass/send";

/// Most OpenIDs WeChat accepts in one `message/mass/send`.
pub const MASS_SEND_MAX_OPENIDS: usize = 10_000;

/// Content of a mass message; serialises to the documented `{"<key>": payload}` form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MassMessage {
    /// A news material (图文).
    MpNews {
        /// media_id from `media/uploadnews` or a permanent material.
        media_id: String,
    },
    /// Text.
    Text {
        /// The text.
        content: String,
    },
    /// Voice.
    Voice {
        /// media_id.
        media_id: String,
    },
    /// Images (msgtype `image`, key `images`).
    Images {
        /// Up to 8 media_ids.
        media_ids: Vec<String>,
        /// Recommendation text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recommend: Option<String>,
        /// 1 to open comments.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        need_open_comment: Option<u8>,
        /// 1 to let only followers comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        only_fans_can_comment: Option<u8>,
    },
    /// Video (msgtype `mpvideo`).
    MpVideo {
        /// media_id.
        media_id: String,
    },
    /// A card/coupon.
    WxCard {
        /// card_id.
        card_id: String,
    },
}

impl MassMessage {
    /// The documented `msgtype` (note `image` for [`MassMessage::Images`]).
    pub fn msgtype(&self) -> &'static str {
        match self {
            MassMessage::MpNews { .. } => "mpnews",
            MassMessage::Text { .. } => "text",
            MassMessage::Voice { .. } => "voice",
            MassMessage::Images { .. } => "image",
            MassMessage::MpVideo { .. } => "mpvideo",
            MassMessage::WxCard { .. } => "wxcard",
        }
    }

    /// The payload object plus `msgtype`, to which the target fields are added.
    fn base(&self) -> serde_json::Map<String, Value> {
        let mut o = match serde_json::to_value(self) {
            Ok(Value::Object(o)) => o,
            _ => serde_json::Map::new(),
        };
        o.insert("msgtype".into(), Value::from(self.msgtype()));
        o
    }
}

/// Who receives a `sendall`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MassTarget {
    /// Every follower (`is_to_all: true`; also lands in the history list).
    All,
    /// Followers with this tag.
    Tag(i64),
}

/// Options shared by the send calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MassOptions {
    /// Idempotency key (≤ 64 bytes); generated when `None`. A repeated key returns the
    /// original msg_id instead of sending twice.
    pub clientmsgid: Option<String>,
    /// Send even when the article is judged a reprint (`send_ignore_reprint: 1`).
    pub send_ignore_reprint: bool,
}

/// What WeChat answered to one send call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MassSent {
    /// msg_id (used by `delete` and `get`).
    pub msg_id: i64,
    /// msg_data_id (mpnews only; for the analytics API).
    pub msg_data_id: Option<i64>,
    /// The clientmsgid this call used.
    pub clientmsgid: String,
    /// True when WeChat reported the clientmsgid as already used (45065) and this is the original send.
    pub duplicate: bool,
}

fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn sent(v: &Value, clientmsgid: String) -> Result<MassSent, ApiError> {
    let msg_id = as_i64(&v["msg_id"]).ok_or_else(|| ApiError::InvalidJson {
        raw: v.to_string().chars().take(300).collect(),
        reason: "mass send answer without msg_id".into(),
    })?;
    Ok(MassSent {
        msg_id,
        msg_data_id: as_i64(&v["msg_data_id"]),
        clientmsgid,
        duplicate: v["duplicate"].as_bool().unwrap_or(false),
    })
}

/// A fresh idempotency key (a mass send's clientmsgid, a template send's client_msg_id):
/// time plus randomness, well under the 64-byte limit.
pub(crate) fn new_idempotency_key() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("wl{now:x}{:016x}", rand::random::<u64>())
}

/// Mass-message API family; get one with [`WechatClient::mass`].
#[derive(Debug, Clone, Copy)]
pub struct Mass<'a> {
    client: &'a WechatClient,
}

impl WechatClient {
    /// Mass messages (群发).
    pub fn mass(&self) -> Mass<'_> {
        Mass { client: self }
    }
}

/// One mass-send call as it goes to WeChat: the endpoint, the body and the clientmsgid in it.
#[derive(Debug, Clone, PartialEq)]
pub struct MassCall {
    /// [`SENDALL_PATH`] or [`SEND_PATH`].
    pub path: &'static str,
    /// The request body, `clientmsgid` included.
    pub body: Value,
    /// The idempotency key of this call.
    pub clientmsgid: String,
}

impl MassCall {
    /// This call as the outbox keeps it for a retry (with the same clientmsgid, so a retry
    /// cannot send twice); `purpose` names it in log lines.
    pub fn queued_send(&self, purpose: impl Into<String>) -> QueuedCall {
        QueuedCall::new(self.path, self.body.clone(), purpose)
    }
}

/// The `message/mass/sendall` call to everyone or to one tag.
pub fn sendall_call(target: MassTarget, msg: &MassMessage, opts: &MassOptions) -> MassCall {
    let mut o = msg.base();
    let filter = match target {
        MassTarget::All => json!({"is_to_all": true}),
        MassTarget::Tag(id) => json!({"is_to_all": false, "tag_id": id}),
    };
    o.insert("filter".into(), filter);
    let cid = opts.clientmsgid.clone().unwrap_or_else(new_idempotency_key);
    o.insert("clientmsgid".into(), Value::from(cid.clone()));
    o.insert(
        "send_ignore_reprint".into(),
        Value::from(u8::from(opts.send_ignore_reprint)),
    );
    MassCall {
        path: SENDALL_PATH,
        body: Value::Object(o),
        clientmsgid: cid,
    }
}

/// The `message/mass/send` calls to an OpenID list: one per 10,000 OpenIDs, each with its own
/// clientmsgid (`<id>-<n>` when the list is split).
pub fn send_calls(touser: &[String], msg: &MassMessage, opts: &MassOptions) -> Vec<MassCall> {
    let chunks: Vec<&[String]> = touser.chunks(MASS_SEND_MAX_OPENIDS).collect();
    let base_id = opts.clientmsgid.clone().unwrap_or_else(new_idempotency_key);
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let cid = if chunks.len() == 1 {
                base_id.clone()
            } else {
                format!("{base_id}-{i}")
            };
            let mut o = msg.base();
            o.insert("touser".into(), json!(chunk));
            o.insert("clientmsgid".into(), Value::from(cid.clone()));
            o.insert(
                "send_ignore_reprint".into(),
                Value::from(u8::from(opts.send_ignore_reprint)),
            );
            MassCall {
                path: SEND_PATH,
                body: Value::Object(o),
                clientmsgid: cid,
            }
        })
        .collect()
}

impl Mass<'_> {
    /// One send call; a repeat of a clientmsgid WeChat already took (45065) is the original
    /// send, `duplicate = true`.
    pub async fn call(&self, call: &MassCall) -> Result<MassSent, ApiError> {
        let v = self.client.post(call.path, &call.body).await?;
        sent(&v, call.clientmsgid.clone())
    }

    /// `message/mass/sendall`: send to everyone or to one tag.
    pub async fn sendall(
        &self,
        target: MassTarget,
        msg: &MassMessage,
        opts: &MassOptions,
    ) -> Result<MassSent, ApiError> {
        self.call(&sendall_call(target, msg, opts)).await
    }

    /// `message/mass/send` to an OpenID list; lists over 10,000 are split into several calls
    /// (each with its own clientmsgid, `<id>-<n>` when one was given). Stops at the first
    /// failure, returning it; earlier chunks have been sent (and their ids are idempotent).
    pub async fn send(
        &self,
        touser: &[String],
        msg: &MassMessage,
        opts: &MassOptions,
    ) -> Result<Vec<MassSent>, ApiError> {
        let calls = send_calls(touser, msg, opts);
        let mut out = Vec::with_capacity(calls.len());
        for call in &calls {
            out.push(self.call(call).await?);
        }
        Ok(out)
    }

    /// `message/mass/preview` to one follower (by OpenID).
    pub async fn preview(&self, touser: &str, msg: &MassMessage) -> Result<Value, ApiError> {
        let mut o = msg.base();
        o.insert("touser".into(), Value::from(touser));
        self.client
            .post("/cgi-bin/message/mass/preview", &Value::Object(o))
            .await
    }

    /// `message/mass/preview` to a WeChat ID (`towxname`).
    pub async fn preview_wxname(
        &self,
        towxname: &str,
        msg: &MassMessage,
    ) -> Result<Value, ApiError> {
        let mut o = msg.base();
        o.insert("towxname".into(), Value::from(towxname));
        self.client
            .post("/cgi-bin/message/mass/preview", &Value::Object(o))
            .await
    }

    /// `message/mass/delete`: delete article `article_idx` (1-based; 0 = all) of a sent message.
    pub async fn delete(&self, msg_id: i64, article_idx: u32) -> Result<(), ApiError> {
        self.client
            .post(
                "/cgi-bin/message/mass/delete",
                &json!({"msg_id": msg_id, "article_idx": article_idx}),
            )
            .await
            .map(drop)
    }

    /// `message/mass/get`: the status of a send (`msg_status`, e.g. `SEND_SUCCESS`).
    pub async fn get(&self, msg_id: i64) -> Result<Value, ApiError> {
        self.client
            .post("/cgi-bin/message/mass/get", &json!({"msg_id": msg_id}))
            .await
    }

    /// `message/mass/speed/get`: `(speed level 0..=4, realspeed in 万/minute)`.
    pub async fn speed_get(&self) -> Result<(i64, i64), ApiError> {
        let v = self
            .client
            .post("/cgi-bin/message/mass/speed/get", &json!({}))
            .await?;
        Ok((
            as_i64(&v["speed"]).unwrap_or(0),
            as_i64(&v["realspeed"]).unwrap_or(0),
        ))
    }

    /// `message/mass/speed/set`: 0 (fastest, 80万/min) to 4 (slowest, 10万/min).
    pub async fn speed_set(&self, speed: u8) -> Result<(), ApiError> {
        self.client
            .post("/cgi-bin/message/mass/speed/set", &json!({"speed": speed}))
            .await
            .map(drop)
    }

    /// `media/uploadnews`: upload news articles for a mass send; returns the media_id.
    /// Each article is the documented object (`thumb_media_id`, `title`, `content`, ...).
    pub async fn uploadnews(&self, articles: &[Value]) -> Result<String, ApiError> {
        let v = self
            .client
            .post("/cgi-bin/media/uploadnews", &json!({"articles": articles}))
            .await?;
        v["media_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ApiError::InvalidJson {
                raw: v.to_string().chars().take(300).collect(),
                reason: "uploadnews answer without media_id".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_use_msgtype_image_and_key_images() {
        let m = MassMessage::Images {
            media_ids: vec!["a".into()],
            recommend: None,
            need_open_comment: Some(1),
            only_fans_can_comment: None,
        };
        let o = Value::Object(m.base());
        assert_eq!(
            o,
            json!({"msgtype":"image","images":{"media_ids":["a"],"need_open_comment":1}})
        );
        let t = Value::Object(
            MassMessage::MpVideo {
                media_id: "v".into(),
            }
            .base(),
        );
        assert_eq!(t, json!({"msgtype":"mpvideo","mpvideo":{"media_id":"v"}}));
    }

    #[test]
    fn generated_clientmsgids_are_unique_and_short() {
        let a = new_idempotency_key();
        let b = new_idempotency_key();
        assert_ne!(a, b);
        assert!(a.len() <= 64);
    }

    #[test]
    fn msg_id_may_be_a_string() {
        let s = sent(
            &json!({"msg_id": "34182", "msg_data_id": 206227730}),
            "c".into(),
        )
        .unwrap();
        assert_eq!(s.msg_id, 34182);
        assert_eq!(s.msg_data_id, Some(206227730));
        assert!(sent(&json!({}), "c".into()).is_err());
    }
}
