//! WeChat wire formats: everything that turns bytes from WeChat into values and back.
//! Pure code, no I/O, so every piece is unit-tested and fuzzed on its own.
//!
//! - [`signature`]: the sha1 signatures of the query and of encrypted bodies.
//! - [`crypto`]: safe-mode AES of one message.
//! - [`envelope`]: an encrypted request opened and its reply sealed (and the inverse pair
//!   WeChat uses), the `msg_signature` checked before decrypting.
//! - [`xml_fields`]: any `<xml>` body as a tree of named fields, with the parser's limits and
//!   list rules.
//! - [`message`]: an inbound message on top of that tree, with its kind as an enum.
//! - [`reply`]: passive replies and their XML.
//! - [`text`]: the shared UTF-8 buffer a message's values are views into.

pub mod crypto;
pub mod envelope;
pub mod message;
pub mod reply;
pub mod signature;
pub mod text;
pub mod xml_fields;
