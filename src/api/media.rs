//! Media (素材): temporary `media/upload` / `media/get` and permanent `material/add_material`.

use bytes::Bytes;
use serde_json::{json, Value};

use super::client::{RawResponse, WechatClient};
use super::error::ApiError;
use super::transport::UploadPart;

/// Media types WeChat accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `image` (≤ 10 MB; bmp/png/jpeg/jpg/gif).
    Image,
    /// `voice` (≤ 2 MB, ≤ 60 s; amr/mp3).
    Voice,
    /// `video` (≤ 10 MB; mp4).
    Video,
    /// `thumb` (≤ 64 KB; jpg).
    Thumb,
}

impl MediaType {
    /// The documented `type` query value.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Image => "image",
            MediaType::Voice => "voice",
            MediaType::Video => "video",
            MediaType::Thumb => "thumb",
        }
    }
}

/// A file to upload.
#[derive(Debug, Clone)]
pub struct MediaFile {
    /// File name; WeChat checks the extension.
    pub filename: String,
    /// MIME type, e.g. `image/jpeg`.
    pub content_type: Option<String>,
    /// The content.
    pub data: Bytes,
}

impl MediaFile {
    fn part(&self) -> UploadPart {
        UploadPart {
            name: "media".into(),
            filename: Some(self.filename.clone()),
            content_type: self.content_type.clone(),
            data: self.data.clone(),
        }
    }
}

/// What `media/upload` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedMedia {
    /// media_id (`thumb_media_id` for thumbs), valid for 3 days.
    pub media_id: String,
    /// Unix time of the upload.
    pub created_at: i64,
}

/// Media API family; get one with [`WechatClient::media`].
#[derive(Debug, Clone, Copy)]
pub struct Media<'a> {
    client: &'a WechatClient,
}

impl WechatClient {
    /// Media (素材).
    pub fn media(&self) -> Media<'_> {
        Media { client: self }
    }
}

fn missing(v: &Value, what: &str) -> ApiError {
    ApiError::InvalidJson {
        raw: v.to_string().chars().take(300).collect(),
        reason: format!("answer without {what}"),
    }
}

impl Media<'_> {
    /// `media/upload`: upload temporary media (kept 3 days).
    pub async fn upload(
        &self,
        kind: MediaType,
        file: &MediaFile,
    ) -> Result<UploadedMedia, ApiError> {
        let v = self
            .client
            .upload(
                "/cgi-bin/media/upload",
                &[("type", kind.as_str())],
                &[file.part()],
            )
            .await?;
        let media_id = v["media_id"]
            .as_str()
            .or_else(|| v["thumb_media_id"].as_str())
            .ok_or_else(|| missing(&v, "media_id"))?
            .to_string();
        Ok(UploadedMedia {
            media_id,
            created_at: v["created_at"].as_i64().unwrap_or(0),
        })
    }

    /// `media/get`: download temporary media. Videos come back as JSON with `video_url`,
    /// returned here as a `RawResponse` whose content type is JSON.
    pub async fn get(&self, media_id: &str) -> Result<RawResponse, ApiError> {
        self.client
            .get_bytes("/cgi-bin/media/get", &[("media_id", media_id)], None)
            .await
    }

    /// `material/add_material`: upload permanent media; returns `media_id` (and `url` for images).
    /// Videos need a title and introduction (the `description` form field).
    pub async fn add_material(
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
}
