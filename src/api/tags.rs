//! User tags (用户标签): `tags/create|get|update|delete`,
//! `tags/members/batchtagging|batchuntagging` and `tags/getidlist`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::WechatClient;
use super::error::ApiError;

/// Most OpenIDs per batch (un)tagging call.
pub const BATCHTAGGING_MAX: usize = 50;

/// A tag as `tags/get` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Tag id (0–2 are reserved by WeChat).
    pub id: i64,
    /// Name (≤ 30 characters).
    pub name: String,
    /// Followers carrying it.
    #[serde(default)]
    pub count: u64,
}

/// Tag API family; get one with [`WechatClient::tags`].
#[derive(Debug, Clone, Copy)]
pub struct Tags<'a> {
    client: &'a WechatClient,
}

impl WechatClient {
    /// User tags (用户标签).
    pub fn tags(&self) -> Tags<'_> {
        Tags { client: self }
    }
}

impl Tags<'_> {
    /// `tags/create`: returns the new tag's id.
    pub async fn create(&self, name: &str) -> Result<i64, ApiError> {
        let v = self
            .client
            .post("/cgi-bin/tags/create", &json!({"tag": {"name": name}}))
            .await?;
        v["tag"]["id"]
            .as_i64()
            .ok_or_else(|| ApiError::InvalidJson {
                raw: v.to_string().chars().take(300).collect(),
                reason: "tags/create answer without tag.id".into(),
            })
    }

    /// `tags/get`: every tag.
    pub async fn get(&self) -> Result<Vec<Tag>, ApiError> {
        let v = self.client.get("/cgi-bin/tags/get", &[]).await?;
        serde_json::from_value(v["tags"].clone()).map_err(|e| ApiError::InvalidJson {
            raw: v.to_string().chars().take(300).collect(),
            reason: e.to_string(),
        })
    }

    /// `tags/update`: rename a tag.
    pub async fn update(&self, id: i64, name: &str) -> Result<(), ApiError> {
        self.client
            .post(
                "/cgi-bin/tags/update",
                &json!({"tag": {"id": id, "name": name}}),
            )
            .await
            .map(drop)
    }

    /// `tags/delete`.
    pub async fn delete(&self, id: i64) -> Result<(), ApiError> {
        self.client
            .post("/cgi-bin/tags/delete", &json!({"tag": {"id": id}}))
            .await
            .map(drop)
    }

    /// `tags/members/batchtagging`, split into calls of 50 OpenIDs.
    pub async fn batchtagging(&self, tagid: i64, openids: &[String]) -> Result<(), ApiError> {
        self.members("/cgi-bin/tags/members/batchtagging", tagid, openids)
            .await
    }

    /// `tags/members/batchuntagging`, split into calls of 50 OpenIDs.
    pub async fn batchuntagging(&self, tagid: i64, openids: &[String]) -> Result<(), ApiError> {
        self.members("/cgi-bin/tags/members/batchuntagging", tagid, openids)
            .await
    }

    async fn members(&self, path: &str, tagid: i64, openids: &[String]) -> Result<(), ApiError> {
        for chunk in openids.chunks(BATCHTAGGING_MAX) {
            self.client
                .post(path, &json!({"openid_list": chunk, "tagid": tagid}))
                .await?;
        }
        Ok(())
    }

    /// `tags/getidlist`: the tag ids a follower carries.
    pub async fn getidlist(&self, openid: &str) -> Result<Vec<i64>, ApiError> {
        let v = self
            .client
            .post("/cgi-bin/tags/getidlist", &json!({"openid": openid}))
            .await?;
        Ok(v["tagid_list"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default())
    }
}
