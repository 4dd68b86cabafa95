//! Fake WeChat servers for tests and local prototyping.

pub mod fake_api;

pub use fake_api::FakeWechat;
