//! The outbound WeChat API: access_token lifecycle and one module per API family.
//!
//! Start with [`WechatClient::new`]; the generic [`WechatClient::get`]/[`WechatClient::post`]
//! reach any endpoint, and the family accessors (`client.kf()`, `client.mass()`, ...) wrap
//! the documented ones with typed requests.

pub mod client;
pub mod error;
pub mod kf;
pub mod mass;
pub mod token;

pub use client::{ClientConfig, RawResponse, RetryPolicy, UploadPart, WechatClient};
pub use error::ApiError;
pub use token::{CachedToken, TokenEndpoint, TokenPersistence, TokenStatus};
