//! The fake WeChat API on loopback with a client pointed at it, as the API tests use them.

use std::time::Duration;

use wechat_lua::api::kf::KfMessage;
use wechat_lua::api::{ApiError, ClientConfig, RetryPolicy, WechatClient};
use wechat_lua::fake_wechat::{FakeWechat, RecordedCall};

/// The customer-service send, the call most tests make.
pub const SEND: &str = "/cgi-bin/message/custom/send";

/// A client config for `fake` at `base` whose busy retries wait 10–40 ms, not 0.3–2 s.
pub fn config(fake: &FakeWechat, base: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(fake.appid(), fake.secret()).with_base_url(base);
    cfg.retry = RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
    };
    cfg
}

/// A fake on a free port and a client of it.
pub async fn setup() -> (FakeWechat, WechatClient) {
    setup_with(|_| {}).await
}

/// Same as [`setup`], with the client config changed by `f` first.
pub async fn setup_with(f: impl FnOnce(&mut ClientConfig)) -> (FakeWechat, WechatClient) {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let mut cfg = config(&fake, &base);
    f(&mut cfg);
    (fake, WechatClient::new(cfg).unwrap())
}

/// Sends "hi" to `oUSER` through customer service.
pub async fn send(c: &WechatClient) -> Result<(), ApiError> {
    c.kf().send("oUSER", &KfMessage::text("hi")).await
}

/// The last call the fake received for `path`.
pub fn last(fake: &FakeWechat, path: &str) -> RecordedCall {
    fake.calls_to(path)
        .pop()
        .unwrap_or_else(|| panic!("no call to {path}"))
}
