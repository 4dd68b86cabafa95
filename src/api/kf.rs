//! Customer-service messages (客服消息): `message/custom/send` and `message/custom/typing`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::WechatClient;
use super::error::ApiError;
use super::outbox::QueuedCall;

/// The endpoint that sends a customer-service message.
pub const SEND_PATH: &str = "/cgi-bin/message/custom/send";
/// The endpoint of the "typing…" indicator.
pub const TYPING_PATH: &str = "/cgi-bin/message/custom/typing";

/// One article of a `news` customer-service message (at most 1 per message on WeChat today).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KfArticle {
    /// Title.
    pub title: String,
    /// Summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Link opened on tap.
    pub url: String,
    /// Cover image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picurl: Option<String>,
}

/// One choice of a `msgmenu` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuItem {
    /// Id echoed back in the user's reply (bizmsgmenuid).
    pub id: String,
    /// Text shown.
    pub content: String,
}

/// A customer-service message; serialises to the documented `msgtype` + payload JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KfMessage {
    /// Text (may contain `<a href>` links and `<a data-miniprogram-appid>` links).
    Text {
        /// The text.
        content: String,
    },
    /// An image uploaded as temporary media.
    Image {
        /// media_id from `media/upload`.
        media_id: String,
    },
    /// A voice clip.
    Voice {
        /// media_id from `media/upload`.
        media_id: String,
    },
    /// A video.
    Video {
        /// media_id of the video.
        media_id: String,
        /// media_id of the thumbnail.
        thumb_media_id: String,
        /// Title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// Description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// Music.
    Music {
        /// Title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// Description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// Music link.
        musicurl: String,
        /// High-quality link (used on Wi-Fi).
        hqmusicurl: String,
        /// media_id of the thumbnail.
        thumb_media_id: String,
    },
    /// An external link card.
    News {
        /// The article(s).
        articles: Vec<KfArticle>,
    },
    /// A permanent news material (图文素材).
    MpNews {
        /// media_id of the material.
        media_id: String,
    },
    /// A published article (发布后的图文).
    MpNewsArticle {
        /// article_id from the publishing API.
        article_id: String,
    },
    /// A menu of choices the user can tap.
    MsgMenu {
        /// Text above the choices.
        head_content: String,
        /// The choices.
        list: Vec<MenuItem>,
        /// Text below the choices.
        tail_content: String,
    },
    /// A card/coupon.
    WxCard {
        /// card_id.
        card_id: String,
    },
    /// A mini-program card.
    MiniProgramPage {
        /// Title.
        title: String,
        /// AppID of the mini program.
        appid: String,
        /// Page path.
        pagepath: String,
        /// media_id of the cover image.
        thumb_media_id: String,
    },
}

impl KfMessage {
    /// The customer-service form of a passive reply, for a reply that missed the 5-second
    /// deadline; `None` for a transfer to customer service, which has no such form.
    pub fn from_reply(reply: &crate::protocol::reply::Reply) -> Option<KfMessage> {
        use crate::protocol::reply::Reply;
        Some(match reply {
            Reply::Text { content } => KfMessage::Text {
                content: content.clone(),
            },
            Reply::Image { media_id } => KfMessage::Image {
                media_id: media_id.clone(),
            },
            Reply::Voice { media_id } => KfMessage::Voice {
                media_id: media_id.clone(),
            },
            // A passive video reply has no thumbnail; the video's own media is the closest.
            Reply::Video {
                media_id,
                title,
                description,
            } => KfMessage::Video {
                media_id: media_id.clone(),
                thumb_media_id: media_id.clone(),
                title: title.clone(),
                description: description.clone(),
            },
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => KfMessage::Music {
                title: title.clone(),
                description: description.clone(),
                musicurl: music_url.clone().unwrap_or_default(),
                hqmusicurl: hq_music_url
                    .clone()
                    .or_else(|| music_url.clone())
                    .unwrap_or_default(),
                thumb_media_id: thumb_media_id.clone(),
            },
            Reply::News { articles } => KfMessage::News {
                articles: articles
                    .iter()
                    .map(|a| KfArticle {
                        title: a.title.clone(),
                        description: Some(a.description.clone()).filter(|d| !d.is_empty()),
                        url: a.url.clone(),
                        picurl: Some(a.pic_url.clone()).filter(|p| !p.is_empty()),
                    })
                    .collect(),
            },
            Reply::TransferCustomerService { .. } => return None,
        })
    }

    /// A text message.
    pub fn text(content: impl Into<String>) -> KfMessage {
        KfMessage::Text {
            content: content.into(),
        }
    }

    /// The documented `msgtype`.
    pub fn msgtype(&self) -> &'static str {
        match self {
            KfMessage::Text { .. } => "text",
            KfMessage::Image { .. } => "image",
            KfMessage::Voice { .. } => "voice",
            KfMessage::Video { .. } => "video",
            KfMessage::Music { .. } => "music",
            KfMessage::News { .. } => "news",
            KfMessage::MpNews { .. } => "mpnews",
            KfMessage::MpNewsArticle { .. } => "mpnewsarticle",
            KfMessage::MsgMenu { .. } => "msgmenu",
            KfMessage::WxCard { .. } => "wxcard",
            KfMessage::MiniProgramPage { .. } => "miniprogrampage",
        }
    }

    /// The full `message/custom/send` body for `touser`, optionally from a given kf_account.
    pub fn to_request(&self, touser: &str, kf_account: Option<&str>) -> Value {
        // Externally tagged serde form is {"<msgtype>": payload}: add msgtype and touser.
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Some(o) = v.as_object_mut() {
            o.insert("touser".into(), Value::from(touser));
            o.insert("msgtype".into(), Value::from(self.msgtype()));
            if let Some(kf) = kf_account {
                o.insert("customservice".into(), json!({ "kf_account": kf }));
            }
        }
        v
    }

    /// The `message/custom/send` of this message to `touser`, as the outbox keeps it for a
    /// retry; `purpose` names the send in log lines.
    pub fn queued_send(
        &self,
        touser: &str,
        kf_account: Option<&str>,
        purpose: impl Into<String>,
    ) -> QueuedCall {
        QueuedCall::new(SEND_PATH, self.to_request(touser, kf_account), purpose)
    }

    /// Parse the documented JSON (`{"msgtype": "text", "text": {...}}`), e.g. from a script.
    pub fn from_json(v: &Value) -> Result<KfMessage, ApiError> {
        let msgtype = v
            .get("msgtype")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::Config("customer-service message without msgtype".into()))?;
        let payload = v.get(msgtype).cloned().unwrap_or(Value::Null);
        serde_json::from_value(json!({ msgtype: payload })).map_err(|e| {
            ApiError::Config(format!("invalid {msgtype} customer-service message: {e}"))
        })
    }
}

/// Customer-service API family; get one with [`WechatClient::kf`].
#[derive(Debug, Clone, Copy)]
pub struct Kf<'a> {
    client: &'a WechatClient,
}

impl WechatClient {
    /// Customer-service messages (客服消息).
    pub fn kf(&self) -> Kf<'_> {
        Kf { client: self }
    }
}

impl Kf<'_> {
    /// `message/custom/send`: send `msg` to `touser` (within the customer-service window).
    pub async fn send(&self, touser: &str, msg: &KfMessage) -> Result<(), ApiError> {
        self.send_as(touser, msg, None).await
    }

    /// `message/custom/send` from a specific customer-service account (`customservice.kf_account`).
    pub async fn send_as(
        &self,
        touser: &str,
        msg: &KfMessage,
        kf_account: Option<&str>,
    ) -> Result<(), ApiError> {
        let body = msg.to_request(touser, kf_account);
        self.client.post(SEND_PATH, &body).await.map(drop)
    }

    /// `message/custom/typing`: show (`true`) or hide the "typing…" indicator.
    pub async fn typing(&self, touser: &str, typing: bool) -> Result<(), ApiError> {
        let command = if typing { "Typing" } else { "CancelTyping" };
        self.client
            .post(TYPING_PATH, &json!({"touser": touser, "command": command}))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_send_is_the_send_itself() {
        let msg = KfMessage::text("hi");
        let call = msg.queued_send("oUSER", Some("a@kf"), "late text reply");
        assert_eq!(call.path, "/cgi-bin/message/custom/send");
        assert_eq!(call.body, msg.to_request("oUSER", Some("a@kf")));
        assert_eq!(call.purpose, "late text reply");
    }

    #[test]
    fn text_serialises_as_documented() {
        let v = KfMessage::text("Hello World").to_request("OPENID", Some("test1@kftest"));
        assert_eq!(
            v,
            json!({"touser":"OPENID","msgtype":"text","text":{"content":"Hello World"},
                   "customservice":{"kf_account":"test1@kftest"}})
        );
    }

    #[test]
    fn every_type_round_trips_with_its_msgtype_key() {
        let msgs = vec![
            KfMessage::Image {
                media_id: "M".into(),
            },
            KfMessage::Voice {
                media_id: "M".into(),
            },
            KfMessage::Video {
                media_id: "M".into(),
                thumb_media_id: "T".into(),
                title: Some("t".into()),
                description: None,
            },
            KfMessage::Music {
                title: None,
                description: None,
                musicurl: "u".into(),
                hqmusicurl: "h".into(),
                thumb_media_id: "T".into(),
            },
            KfMessage::News {
                articles: vec![KfArticle {
                    title: "t".into(),
                    description: None,
                    url: "u".into(),
                    picurl: Some("p".into()),
                }],
            },
            KfMessage::MpNews {
                media_id: "M".into(),
            },
            KfMessage::MpNewsArticle {
                article_id: "A".into(),
            },
            KfMessage::MsgMenu {
                head_content: "h".into(),
                list: vec![MenuItem {
                    id: "101".into(),
                    content: "yes".into(),
                }],
                tail_content: "t".into(),
            },
            KfMessage::WxCard {
                card_id: "C".into(),
            },
            KfMessage::MiniProgramPage {
                title: "t".into(),
                appid: "wxa".into(),
                pagepath: "p".into(),
                thumb_media_id: "T".into(),
            },
        ];
        for m in msgs {
            let v = m.to_request("O", None);
            assert!(v[m.msgtype()].is_object(), "{v}");
            assert!(v.get("customservice").is_none());
            assert_eq!(KfMessage::from_json(&v).unwrap(), m);
        }
    }

    #[test]
    fn bad_json_is_an_error_not_a_panic() {
        assert!(KfMessage::from_json(&json!({"msgtype":"text"})).is_err());
        assert!(KfMessage::from_json(&json!({"msgtype":"nope","nope":{}})).is_err());
        assert!(KfMessage::from_json(&json!(42)).is_err());
    }
}
