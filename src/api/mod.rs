//! The outbound WeChat API: access_token lifecycle and one module per API family.
//!
//! Start with [`WechatClient::new`]; the generic [`WechatClient::get`]/[`WechatClient::post`]
//! reach any endpoint (the access_token is added for you), and the family accessors
//! (`client.kf()`, `client.mass()`, `client.template()`, `client.menu()`, `client.user()`,
//! `client.tags()`, `client.media()`, `client.material()`, `client.qrcode()`, `client.oauth()`,
//! `client.jssdk()`, `client.subscribe()`) wrap the documented ones with typed requests.
//! [`kf_window`] tracks when customer-service messages may be sent; [`ticket`] keeps the
//! JS-SDK's jsapi_ticket the way [`token`] keeps the access_token.

pub mod client;
pub mod component;
pub mod error;
pub mod jssdk;
pub mod kf;
pub mod kf_window;
pub mod mass;
pub mod material;
pub mod media;
pub mod menu;
pub mod oauth;
pub mod outbox;
pub mod qrcode;
pub mod subscribe;
pub mod tags;
pub mod template;
pub mod ticket;
pub mod token;
pub mod token_store;
pub mod transport;
pub mod user;

pub use client::{ClientConfig, RawResponse, WechatClient, DEFAULT_API_BASE};
pub use error::ApiError;
pub use kf::KfMessage;
pub use kf_window::{KfWindow, KfWindowTracker};
pub use token::{CachedToken, TokenEndpoint, TokenPersistence, TokenSource, TokenStatus};
pub use transport::{RetryPolicy, UploadPart};
