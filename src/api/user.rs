//! Followers (用户管理): `user/info`, `user/info/batchget`, and the paged `user/get`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::WechatClient;
use super::error::ApiError;

/// Most OpenIDs per `user/info/batchget` call.
pub const BATCHGET_MAX: usize = 100;

/// One page of `user/get`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerPage {
    /// Total followers.
    pub total: u64,
    /// OpenIDs on this page (at most 10,000).
    pub openids: Vec<String>,
    /// Pass to the next call; empty (or the last OpenID of a short page) at the end.
    pub next_openid: String,
}

/// User API family; get one with [`WechatClient::user`].
#[derive(Debug, Clone, Copy)]
pub struct User<'a> {
    client: &'a WechatClient,
}

impl WechatClient {
    /// Followers (用户管理).
    pub fn user(&self) -> User<'_> {
        User { client: self }
    }
}

impl User<'_> {
    /// `user/info`: one follower's profile (`subscribe` 0 means not following). `lang` e.g. `zh_CN`.
    pub async fn info(&self, openid: &str, lang: &str) -> Result<Value, ApiError> {
        self.client
            .get("/cgi-bin/user/info", &[("openid", openid), ("lang", lang)])
            .await
    }

    /// `user/info/batchget`: profiles of many followers, split into calls of 100.
    pub async fn batchget(&self, openids: &[String], lang: &str) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::with_capacity(openids.len());
        for chunk in openids.chunks(BATCHGET_MAX) {
            let list: Vec<Value> = chunk
                .iter()
                .map(|o| json!({"openid": o, "lang": lang}))
                .collect();
            let v = self
                .client
                .post("/cgi-bin/user/info/batchget", &json!({"user_list": list}))
                .await?;
            out.extend(v["user_info_list"].as_array().cloned().unwrap_or_default());
        }
        Ok(out)
    }

    /// `user/get`: one page of follower OpenIDs starting after `next_openid` (`""` for the first).
    pub async fn get(&self, next_openid: &str) -> Result<FollowerPage, ApiError> {
        let q: Vec<(&str, &str)> = if next_openid.is_empty() {
            Vec::new()
        } else {
            vec![("next_openid", next_openid)]
        };
        let v = self.client.get("/cgi-bin/user/get", &q).await?;
        let openids = v["data"]["openid"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(FollowerPage {
            total: v["total"].as_u64().unwrap_or(0),
            openids,
            next_openid: v["next_openid"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Every follower OpenID, following `next_openid` until a page comes back empty.
    pub async fn all(&self) -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        let mut next = String::new();
        loop {
            let page = self.get(&next).await?;
            if page.openids.is_empty() {
                return Ok(out);
            }
            out.extend(page.openids);
            if page.next_openid.is_empty() || out.len() as u64 >= page.total {
                return Ok(out);
            }
            next = page.next_openid;
        }
    }
}
