//! The JS-SDK's page configuration (`wx.config({...})` in the page): the signature over the
//! jsapi_ticket, a nonce, a timestamp and the page's URL, as the JS-SDK documentation's
//! appendix 1 defines it. The ticket itself comes from [`super::ticket`].

use serde::Serialize;
use sha1::{Digest, Sha1};

use super::client::WechatClient;
use super::error::ApiError;

/// Length of the generated `nonceStr` (the documentation's example uses 16).
const NONCE_LEN: usize = 16;

/// The page URL as it is signed: everything before `#` (WeChat signs without the fragment,
/// which the page's `location.href.split('#')[0]` drops too).
pub fn signed_url(url: &str) -> &str {
    url.split('#').next().unwrap_or(url)
}

/// Checks that `url` is what a page's JS-SDK config is signed for: an absolute http(s) URL.
pub fn check_page_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        Ok(u) => Err(format!(
            "the page URL must be http or https, not {}",
            u.scheme()
        )),
        Err(e) => Err(format!("the page URL is not an absolute URL ({e})")),
    }
}

/// `sha1("jsapi_ticket=…&noncestr=…&timestamp=…&url=…")` in lowercase hex: the fields in
/// ASCII order, values raw (not URL-escaped), the URL without its fragment.
pub fn signature(jsapi_ticket: &str, noncestr: &str, timestamp: i64, url: &str) -> String {
    let string1 = format!(
        "jsapi_ticket={jsapi_ticket}&noncestr={noncestr}&timestamp={timestamp}&url={}",
        signed_url(url)
    );
    hex::encode(Sha1::digest(string1.as_bytes()))
}

/// What the page passes to `wx.config`, in the JS-SDK's own field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsSdkConfig {
    /// The official account's AppID.
    pub app_id: String,
    /// Unix seconds the signature was made at.
    pub timestamp: i64,
    /// The random string signed.
    pub nonce_str: String,
    /// The signature.
    pub signature: String,
    /// The JS interfaces the page will call (`updateAppMessageShareData`, `scanQRCode`, …).
    pub js_api_list: Vec<String>,
    /// The open tags the page uses (`wx-open-subscribe`, `wx-open-launch-weapp`, …).
    pub open_tag_list: Vec<String>,
    /// Whether the JS-SDK shows every call's result in an alert.
    pub debug: bool,
}

/// JS-SDK family; get one with [`WechatClient::jssdk`].
#[derive(Debug, Clone, Copy)]
pub struct JsSdk<'a> {
    client: &'a WechatClient,
}

impl WechatClient {
    /// The JS-SDK (网页开发 → JS-SDK).
    pub fn jssdk(&self) -> JsSdk<'_> {
        JsSdk { client: self }
    }
}

impl JsSdk<'_> {
    /// A signed config for the page at `url` (its fragment is dropped), with a fresh nonce
    /// and the current time; the jsapi_ticket is the cached one, fetched when needed.
    pub async fn config(
        &self,
        url: &str,
        js_api_list: Vec<String>,
        open_tag_list: Vec<String>,
        debug: bool,
    ) -> Result<JsSdkConfig, ApiError> {
        use rand::distr::{Alphanumeric, SampleString};
        let ticket = self.client.jsapi_ticket().await?;
        let nonce_str = Alphanumeric.sample_string(&mut rand::rng(), NONCE_LEN);
        let timestamp = self.client.now_unix();
        Ok(JsSdkConfig {
            app_id: self.client.appid().to_string(),
            timestamp,
            signature: signature(&ticket, &nonce_str, timestamp, url),
            nonce_str,
            js_api_list,
            open_tag_list,
            debug,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ticket of the JS-SDK documentation's worked example (附录1).
    const DOC_TICKET: &str =
        "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";

    #[test]
    fn signs_the_documented_worked_example() {
        // The current documentation's example, query string included and not escaped.
        assert_eq!(
            signature(
                DOC_TICKET,
                "Wm3WZYTPz0wzccnW",
                1414587457,
                "http://mp.weixin.qq.com?params=value"
            ),
            "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
        );
        // The earlier edition's example, without a query.
        assert_eq!(
            signature(
                DOC_TICKET,
                "Wm3WZYTPz0wzccnW",
                1414587457,
                "http://mp.weixin.qq.com"
            ),
            "f4d90daf4b3bca3078ab155816175ba34c443a7b"
        );
    }

    #[test]
    fn the_fragment_is_not_signed() {
        let plain = signature(DOC_TICKET, "n", 1, "http://mp.weixin.qq.com?params=value");
        assert_eq!(
            signature(
                DOC_TICKET,
                "n",
                1,
                "http://mp.weixin.qq.com?params=value#/orders?x=1"
            ),
            plain
        );
        assert_eq!(signed_url("https://a.example/p#"), "https://a.example/p");
    }

    #[test]
    fn page_urls_must_be_absolute_http() {
        assert!(check_page_url("https://shop.example/orders?id=1#top").is_ok());
        assert!(check_page_url("/orders").is_err());
        assert!(check_page_url("javascript:alert(1)").is_err());
        assert!(check_page_url("file:///etc/passwd").is_err());
    }

    #[test]
    fn config_serialises_with_the_js_sdk_names() {
        let c = JsSdkConfig {
            app_id: "wx1".into(),
            timestamp: 5,
            nonce_str: "n".into(),
            signature: "s".into(),
            js_api_list: vec!["scanQRCode".into()],
            open_tag_list: vec![],
            debug: false,
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"appId": "wx1", "timestamp": 5, "nonceStr": "n", "signature": "s",
                               "jsApiList": ["scanQRCode"], "openTagList": [], "debug": false})
        );
    }
}
