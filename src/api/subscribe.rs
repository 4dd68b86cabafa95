//! 订阅通知 (subscription notifications): the templates an account picks from the public
//! library (`wxaapi/newtmpl/*`), and `message/subscribe/bizsend`, which sends one to a user
//! who subscribed (in a page's `<wx-open-subscribe>` or an article). Since 2023-05 this, not
//! the template message, is how an account reaches a user outside the 48-hour window.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::WechatClient;
use super::error::ApiError;
use super::outbox::QueuedCall;

/// The endpoint that sends a subscription notification.
pub const SEND_PATH: &str = "/cgi-bin/message/subscribe/bizsend";
/// The account's templates.
pub const TEMPLATES_PATH: &str = "/wxaapi/newtmpl/gettemplate";
/// Adds a template from the public library.
pub const ADD_PATH: &str = "/wxaapi/newtmpl/addtemplate";
/// Deletes one of the account's templates.
pub const DELETE_PATH: &str = "/wxaapi/newtmpl/deltemplate";
/// The account's categories (类目), which decide the library it picks from.
pub const CATEGORIES_PATH: &str = "/wxaapi/newtmpl/getcategory";
/// WeChat: the user has not subscribed to this template (or refused it).
pub const NOT_SUBSCRIBED: i64 = 43101;

/// One `data` entry: `{"value": "…"}` (the library's keys: `thing1`, `time2`, `amount3`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeValue {
    /// The text filled into `{{key.DATA}}`.
    pub value: String,
}

/// Mini program opened when the notification is tapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeMiniProgram {
    /// AppID of the mini program (must be linked to the account).
    pub appid: String,
    /// Page path with query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagepath: Option<String>,
}

/// A `message/subscribe/bizsend` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeMessage {
    /// Recipient OpenID.
    pub touser: String,
    /// The priTmplId of one of the account's templates.
    pub template_id: String,
    /// Web page opened on tap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// Mini program opened on tap (wins over `page`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<SubscribeMiniProgram>,
    /// Values by key; ordered for stable JSON.
    pub data: BTreeMap<String, SubscribeValue>,
}

impl SubscribeMessage {
    /// A notification with no data yet.
    pub fn new(touser: impl Into<String>, template_id: impl Into<String>) -> SubscribeMessage {
        SubscribeMessage {
            touser: touser.into(),
            template_id: template_id.into(),
            page: None,
            miniprogram: None,
            data: BTreeMap::new(),
        }
    }

    /// Add one value.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.data.insert(
            key.to_string(),
            SubscribeValue {
                value: value.into(),
            },
        );
        self
    }

    /// The `bizsend` of this notification, as the outbox keeps it for a retry.
    pub fn queued_send(&self, purpose: impl Into<String>) -> QueuedCall {
        QueuedCall::new(
            SEND_PATH,
            serde_json::to_value(self).unwrap_or_default(),
            purpose,
        )
    }
}

/// Subscription-notification family; get one with [`WechatClient::subscribe`].
#[derive(Debug, Clone, Copy)]
pub struct Subscribe<'a> {
    client: &'a WechatClient,
}

impl WechatClient {
    /// Subscription notifications (订阅通知).
    pub fn subscribe(&self) -> Subscribe<'_> {
        Subscribe { client: self }
    }
}

/// The `data` array of an answer, or an empty one.
fn data_list(v: &Value) -> Vec<Value> {
    v["data"].as_array().cloned().unwrap_or_default()
}

impl Subscribe<'_> {
    /// `message/subscribe/bizsend`. 43101 when the user has not subscribed to the template.
    pub async fn send(&self, msg: &SubscribeMessage) -> Result<(), ApiError> {
        let body = serde_json::to_value(msg)
            .map_err(|e| ApiError::Config(format!("unserialisable notification: {e}")))?;
        self.client.post(SEND_PATH, &body).await.map(drop)
    }

    /// `wxaapi/newtmpl/gettemplate`: the account's templates (`priTmplId`, `title`,
    /// `content`, `example`, `type`: 2 one-off, 3 long-term).
    pub async fn templates(&self) -> Result<Vec<Value>, ApiError> {
        Ok(data_list(&self.client.get(TEMPLATES_PATH, &[]).await?))
    }

    /// `wxaapi/newtmpl/addtemplate`: picks library template `tid` with the keywords
    /// `kid_list` (2 to 5, in the order shown) for the scene `scene_desc` (up to 15
    /// characters); returns the new priTmplId.
    pub async fn add(
        &self,
        tid: &str,
        kid_list: &[i64],
        scene_desc: &str,
    ) -> Result<String, ApiError> {
        let v = self
            .client
            .post(
                ADD_PATH,
                &json!({"tid": tid, "kidList": kid_list, "sceneDesc": scene_desc}),
            )
            .await?;
        v["priTmplId"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ApiError::InvalidJson {
                raw: v.to_string().chars().take(300).collect(),
                reason: "addtemplate answer without priTmplId".into(),
            })
    }

    /// `wxaapi/newtmpl/deltemplate`.
    pub async fn delete(&self, pri_tmpl_id: &str) -> Result<(), ApiError> {
        self.client
            .post(DELETE_PATH, &json!({"priTmplId": pri_tmpl_id}))
            .await
            .map(drop)
    }

    /// `wxaapi/newtmpl/getcategory`: the account's categories (`id`, `name`).
    pub async fn categories(&self) -> Result<Vec<Value>, ApiError> {
        Ok(data_list(&self.client.get(CATEGORIES_PATH, &[]).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_documented() {
        let mut m = SubscribeMessage::new("OPENID", "TEMPLATE_ID")
            .with("thing1", "订单已发货")
            .with("time2", "2026-11-30 10:00");
        m.page = Some("https://shop.example/orders/42".into());
        m.miniprogram = Some(SubscribeMiniProgram {
            appid: "wxa".into(),
            pagepath: Some("index?foo=bar".into()),
        });
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"touser": "OPENID", "template_id": "TEMPLATE_ID",
                   "page": "https://shop.example/orders/42",
                   "miniprogram": {"appid": "wxa", "pagepath": "index?foo=bar"},
                   "data": {"thing1": {"value": "订单已发货"}, "time2": {"value": "2026-11-30 10:00"}}})
        );
        let q = m.queued_send("subscribe");
        assert_eq!(q.path, SEND_PATH);
        assert_eq!(q.body["touser"], "OPENID");
    }
}
