//! Permanent material (永久素材): `material/add_material`, `get_material`, `del_material`,
//! `get_materialcount` and `batchget_material`. Temporary media is [`super::media`].

use bytes::Bytes;
use serde_json::{json, Value};

use super::client::{RawResponse, WechatClient};
use super::error::ApiError;
use super::media::{missing, MediaFile, MediaType};
use super::transport::UploadPart;

/// Most items one `batchget_material` call returns (the documented range of `count` is 1..=20).
pub const BATCHGET_MAX: u32 = 20;

/// The kinds `batchget_material` lists (thumbs are listed with images).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaterialKind {
    /// `image`.
    Image,
    /// `video`.
    Video,
    /// `voice`.
    Voice,
    /// `news` (图文).
    News,
}

impl MaterialKind {
    /// The documented `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            MaterialKind::Image => "image",
            MaterialKind::Video => "video",
            MaterialKind::Voice => "voice",
            MaterialKind::News => "news",
        }
    }

    /// The kind by its documented name.
    pub fn parse(name: &str) -> Option<MaterialKind> {
        Some(match name {
            "image" => MaterialKind::Image,
            "video" => MaterialKind::Video,
            "voice" => MaterialKind::Voice,
            "news" => MaterialKind::News,
            _ => return None,
        })
    }
}

/// What `get_material` answers: a file (image, voice, thumb) or JSON (video: `title`,
/// `description`, `down_url`; news: `news_item`).
#[derive(Debug, Clone)]
pub enum Material {
    /// The file's bytes.
    File(RawResponse),
    /// WeChat's JSON description.
    Json(Value),
}

/// Permanent-material API family; get one with [`WechatClient::material`].
#[derive(Debug, Clone, Copy)]
pub struct Materials<'a> {
    client: &'a WechatClient,
}

impl WechatClient {
    /// Permanent material (永久素材).
    pub fn material(&self) -> Materials<'_> {
        Materials { client: self }
    }
}

impl Materials<'_> {
    /// `material/add_material`: upload permanent media; returns `media_id` (and `url` for
    /// images). Videos need a title and introduction (the `description` form field).
    pub async fn add(
        &self,
        kind: MediaType,
        file: &MediaFile,
        video_description: Option<(&str, &str)>,
    ) -> Result<Value, ApiError> {
        let mut parts = vec![file.part()];
        if let Some((title, introduction)) = video_description {
            parts.push(UploadPart {
                name: "description".into(),
                filename: None,
                content_type: None,
                data: Bytes::from(
                    json!({"title": title, "introduction": introduction}).to_string(),
                ),
            });
        }
        let v = self
            .client
            .upload(
                "/cgi-bin/material/add_material",
                &[("type", kind.as_str())],
                &parts,
            )
            .await?;
        if v["media_id"].as_str().is_none() {
            return Err(missing(&v, "media_id"));
        }
        Ok(v)
    }

    /// `material/get_material`: a file as bytes, or the JSON WeChat describes a video or a
    /// news material with.
    pub async fn get(&self, media_id: &str) -> Result<Material, ApiError> {
        let raw = self
            .client
            .get_bytes(
                "/cgi-bin/material/get_material",
                &[],
                Some(&json!({"media_id": media_id})),
            )
            .await?;
        Ok(match json_answer(&raw) {
            Some(v) => Material::Json(v),
            None => Material::File(raw),
        })
    }

    /// `material/del_material`.
    pub async fn delete(&self, media_id: &str) -> Result<(), ApiError> {
        self.client
            .post(
                "/cgi-bin/material/del_material",
                &json!({"media_id": media_id}),
            )
            .await
            .map(drop)
    }

    /// `material/get_materialcount`: `voice_count`, `video_count`, `image_count`, `news_count`.
    pub async fn count(&self) -> Result<Value, ApiError> {
        self.client
            .get("/cgi-bin/material/get_materialcount", &[])
            .await
    }

    /// `material/batchget_material`: `count` (1..=20) items of `kind` from `offset`;
    /// `total_count`, `item_count` and `item` as WeChat answers.
    pub async fn batchget(
        &self,
        kind: MaterialKind,
        offset: u32,
        count: u32,
    ) -> Result<Value, ApiError> {
        self.client
            .post(
                "/cgi-bin/material/batchget_material",
                &json!({"type": kind.as_str(), "offset": offset, "count": count}),
            )
            .await
    }
}

/// The JSON of an answer sent as JSON (a video's URL, a news material), if it is one.
pub fn json_answer(raw: &RawResponse) -> Option<Value> {
    let is_json = raw
        .content_type
        .as_deref()
        .is_some_and(|c| c.contains("json") || c.starts_with("text/plain"));
    if !is_json {
        return None;
    }
    serde_json::from_slice(&raw.data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_answer_is_json_and_a_file_is_not() {
        let raw = |ct: &str, data: &'static [u8]| RawResponse {
            content_type: Some(ct.into()),
            filename: None,
            data: Bytes::from_static(data),
        };
        assert_eq!(
            json_answer(&raw(
                "application/json; charset=utf-8",
                br#"{"down_url":"u"}"#
            )),
            Some(json!({"down_url": "u"}))
        );
        assert_eq!(json_answer(&raw("image/jpeg", b"{}")), None);
        assert_eq!(MaterialKind::parse("news"), Some(MaterialKind::News));
        assert_eq!(MaterialKind::parse("thumb"), None);
    }
}
