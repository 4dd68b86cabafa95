//! Template messages (模板消息): industry, template library and `message/template/send`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::WechatClient;
use super::error::ApiError;
use super::outbox::QueuedCall;

/// The endpoint that sends a template message.
pub const SEND_PATH: &str = "/cgi-bin/message/template/send";

/// One `data` entry of a template message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateValue {
    /// The text filled into `{{key.DATA}}`.
    pub value: String,
    /// Colour such as `#173177` (ignored by newer templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// Mini program opened when the message is tapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMiniProgram {
    /// AppID of the mini program (must be linked to the account).
    pub appid: String,
    /// Page path with query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagepath: Option<String>,
}

/// A `message/template/send` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMessage {
    /// Recipient OpenID.
    pub touser: String,
    /// template_id from `api_add_template` or the console.
    pub template_id: String,
    /// Link opened on tap (ignored when `miniprogram` is set and supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Mini program opened on tap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<TemplateMiniProgram>,
    /// Idempotency key: WeChat sends one message per openid and key within 10 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// Keyword values by key (`first`, `keyword1`, `remark`, ...); ordered for stable JSON.
    pub data: BTreeMap<String, TemplateValue>,
}

impl TemplateMessage {
    /// A message with no data yet.
    pub fn new(touser: impl Into<String>, template_id: impl Into<String>) -> TemplateMessage {
        TemplateMessage {
            touser: touser.into(),
            template_id: template_id.into(),
            url: None,
            miniprogram: None,
            client_msg_id: None,
            data: BTreeMap::new(),
        }
    }

    /// Add one keyword value (and optional colour).
    pub fn with(mut self, key: &str, value: impl Into<String>, color: Option<&str>) -> Self {
        self.data.insert(
            key.to_string(),
            TemplateValue {
                value: value.into(),
                color: color.map(str::to_string),
            },
        );
        self
    }

    /// The `message/template/send` of this message, as the outbox keeps it for a retry.
    pub fn queued_send(&self, purpose: impl Into<String>) -> QueuedCall {
        QueuedCall::new(
            SEND_PATH,
            serde_json::to_value(self).unwrap_or_default(),
            purpose,
        )
    }

    /// The message's `client_msg_id`, a fresh one set first when it has none, so that a retry
    /// after an answer that never came cannot deliver it twice: WeChat sends one message per
    /// openid and `client_msg_id` within 10 minutes.
    pub fn ensure_client_msg_id(&mut self) -> &str {
        self.client_msg_id
            .get_or_insert_with(super::mass::new_idempotency_key)
    }
}

/// Template-message API family; get one with [`WechatClient::template`].
#[derive(Debug, Clone, Copy)]
pub struct Template<'a> {
    client: &'a WechatClient,
}

impl WechatClient {
    /// Template messages (模板消息).
    pub fn template(&self) -> Template<'_> {
        Template { client: self }
    }
}

impl Template<'_> {
    /// `template/api_set_industry`.
    pub async fn set_industry(
        &self,
        industry_id1: &str,
        industry_id2: &str,
    ) -> Result<(), ApiError> {
        self.client
            .post(
                "/cgi-bin/template/api_set_industry",
                &json!({"industry_id1": industry_id1, "industry_id2": industry_id2}),
            )
            .await
            .map(drop)
    }

    /// `template/get_industry`: `primary_industry` and `secondary_industry`.
    pub async fn get_industry(&self) -> Result<Value, ApiError> {
        self.client.get("/cgi-bin/template/get_industry", &[]).await
    }

    /// `template/api_add_template`: add a library template; returns its template_id.
    pub async fn add_template(
        &self,
        template_id_short: &str,
        keyword_name_list: &[&str],
    ) -> Result<String, ApiError> {
        let v = self
            .client
            .post(
                "/cgi-bin/template/api_add_template",
                &json!({"template_id_short": template_id_short, "keyword_name_list": keyword_name_list}),
            )
            .await?;
        v["template_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ApiError::InvalidJson {
                raw: v.to_string().chars().take(300).collect(),
                reason: "api_add_template answer without template_id".into(),
            })
    }

    /// `template/get_all_private_template`: the account's templates (`template_list`).
    pub async fn get_all_private_template(&self) -> Result<Vec<Value>, ApiError> {
        let v = self
            .client
            .get("/cgi-bin/template/get_all_private_template", &[])
            .await?;
        Ok(v["template_list"].as_array().cloned().unwrap_or_default())
    }

    /// `template/del_private_template`.
    pub async fn del_private_template(&self, template_id: &str) -> Result<(), ApiError> {
        self.client
            .post(
                "/cgi-bin/template/del_private_template",
                &json!({"template_id": template_id}),
            )
            .await
            .map(drop)
    }

    /// `message/template/send`; returns the msgid.
    pub async fn send(&self, msg: &TemplateMessage) -> Result<i64, ApiError> {
        let body = serde_json::to_value(msg)
            .map_err(|e| ApiError::Config(format!("unserialisable template message: {e}")))?;
        let v = self.client.post(SEND_PATH, &body).await?;
        v["msgid"]
            .as_i64()
            .or_else(|| v["msgid"].as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| ApiError::InvalidJson {
                raw: v.to_string().chars().take(300).collect(),
                reason: "template send answer without msgid".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_documented() {
        let mut m = TemplateMessage::new("OPENID", "TPL")
            .with("keyword1", "巧克力", Some("#173177"))
            .with("remark", "thanks", None);
        m.url = Some("http://weixin.qq.com/download".into());
        m.miniprogram = Some(TemplateMiniProgram {
            appid: "wxa".into(),
            pagepath: Some("index?foo=bar".into()),
        });
        m.client_msg_id = Some("cid".into());
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"touser":"OPENID","template_id":"TPL","url":"http://weixin.qq.com/download",
                   "miniprogram":{"appid":"wxa","pagepath":"index?foo=bar"},"client_msg_id":"cid",
                   "data":{"keyword1":{"value":"巧克力","color":"#173177"},"remark":{"value":"thanks"}}})
        );
    }
}
