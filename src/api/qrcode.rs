//! Parametric QR codes (带参数二维码): `qrcode/create` for temporary and permanent scene codes.

use serde_json::{json, Value};

use super::client::WechatClient;
use super::error::ApiError;

/// Where `showqrcode` images are fetched (not under the API host).
pub const SHOWQRCODE_URL: &str = "https://mp.weixin.qq.com/cgi-bin/showqrcode";
/// Longest a temporary code may live (30 days).
pub const MAX_EXPIRE_SECONDS: u32 = 2_592_000;

/// The scene value delivered in the scan/subscribe event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scene {
    /// `scene_id` (permanent codes: 1–100000).
    Id(u32),
    /// `scene_str` (1–64 characters).
    Str(String),
}

/// What `qrcode/create` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrCode {
    /// Exchange for the image at [`QrCode::image_url`].
    pub ticket: String,
    /// Lifetime for temporary codes.
    pub expire_seconds: Option<u64>,
    /// The URL the code encodes (make your own image from it).
    pub url: String,
}

impl QrCode {
    /// The `showqrcode` image URL for this ticket.
    pub fn image_url(&self) -> String {
        match reqwest::Url::parse_with_params(SHOWQRCODE_URL, &[("ticket", &self.ticket)]) {
            Ok(u) => u.to_string(),
            Err(_) => SHOWQRCODE_URL.to_string(),
        }
    }
}

/// The documented `qrcode/create` body.
pub fn create_request(scene: &Scene, expire_seconds: Option<u32>) -> Value {
    let permanent = expire_seconds.is_none();
    let (action, scene_json) = match (scene, permanent) {
        (Scene::Id(id), false) => ("QR_SCENE", json!({"scene_id": id})),
        (Scene::Id(id), true) => ("QR_LIMIT_SCENE", json!({"scene_id": id})),
        (Scene::Str(s), false) => ("QR_STR_SCENE", json!({"scene_str": s})),
        (Scene::Str(s), true) => ("QR_LIMIT_STR_SCENE", json!({"scene_str": s})),
    };
    let mut v = json!({"action_name": action, "action_info": {"scene": scene_json}});
    if let Some(e) = expire_seconds {
        v["expire_seconds"] = json!(e.min(MAX_EXPIRE_SECONDS));
    }
    v
}

/// QR-code API family; get one with [`WechatClient::qrcode`].
#[derive(Debug, Clone, Copy)]
pub struct QrCodes<'a> {
    client: &'a WechatClient,
}

impl WechatClient {
    /// Parametric QR codes (带参数二维码).
    pub fn qrcode(&self) -> QrCodes<'_> {
        QrCodes { client: self }
    }
}

impl QrCodes<'_> {
    /// A temporary code living `expire_seconds` (capped at 30 days).
    pub async fn create_temporary(
        &self,
        scene: &Scene,
        expire_seconds: u32,
    ) -> Result<QrCode, ApiError> {
        self.create(&create_request(scene, Some(expire_seconds)))
            .await
    }

    /// A permanent code (limited to 100,000 per account).
    pub async fn create_permanent(&self, scene: &Scene) -> Result<QrCode, ApiError> {
        self.create(&create_request(scene, None)).await
    }

    async fn create(&self, body: &Value) -> Result<QrCode, ApiError> {
        let v = self.client.post("/cgi-bin/qrcode/create", body).await?;
        let ticket = v["ticket"].as_str().ok_or_else(|| ApiError::InvalidJson {
            raw: v.to_string().chars().take(300).collect(),
            reason: "qrcode/create answer without ticket".into(),
        })?;
        Ok(QrCode {
            ticket: ticket.to_string(),
            expire_seconds: v["expire_seconds"].as_u64(),
            url: v["url"].as_str().unwrap_or_default().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_shapes() {
        assert_eq!(
            create_request(&Scene::Id(123), Some(604800)),
            json!({"expire_seconds":604800,"action_name":"QR_SCENE","action_info":{"scene":{"scene_id":123}}})
        );
        assert_eq!(
            create_request(&Scene::Str("test".into()), None),
            json!({"action_name":"QR_LIMIT_STR_SCENE","action_info":{"scene":{"scene_str":"test"}}})
        );
        assert_eq!(
            create_request(&Scene::Id(1), Some(u32::MAX))["expire_seconds"],
            json!(MAX_EXPIRE_SECONDS)
        );
    }

    #[test]
    fn image_url_escapes_ticket() {
        let q = QrCode {
            ticket: "gQH+/=".into(),
            expire_seconds: None,
            url: String::new(),
        };
        assert_eq!(
            q.image_url(),
            "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=gQH%2B%2F%3D"
        );
    }
}
