//! Temporary media (临时素材): `media/upload` and `media/get`, and `media/uploadimg` (images
//! for article content). Permanent material is [`super::material`].

use bytes::Bytes;
use serde_json::Value;

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
    pub(crate) fn part(&self) -> UploadPart {
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

pub(crate) fn missing(v: &Value, what: &str) -> ApiError {
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

    /// `media/uploadimg`: upload an image (jpg/png, under 1 MB) for use inside article
    /// content; returns its URL. It does not count against the material library's limit.
    pub async fn uploadimg(&self, file: &MediaFile) -> Result<String, ApiError> {
        let v = self
            .client
            .upload("/cgi-bin/media/uploadimg", &[], &[file.part()])
            .await?;
        v["url"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| missing(&v, "url"))
    }

    /// `media/get`: download temporary media. Videos come back as JSON with `video_url`,
    /// returned here as a `RawResponse` whose content type is JSON.
    pub async fn get(&self, media_id: &str) -> Result<RawResponse, ApiError> {
        self.client
            .get_bytes("/cgi-bin/media/get", &[("media_id", media_id)], None)
            .await
    }
}
