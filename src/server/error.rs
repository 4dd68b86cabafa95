//! Every way a request can fail, mapped to a response in one place. Details go to the log;
//! the response says only what the caller needs.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::protocol::envelope::{OpenError, SealedError};
use crate::protocol::message::ParseError;

/// The one answer to a signed encrypted message that cannot be read, whatever the reason.
pub const UNREADABLE_SEALED: &str = "encrypted message could not be read";

/// A request the host refuses.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A required query parameter is absent.
    #[error("missing query parameter `{0}`")]
    MissingParameter(&'static str),
    /// The query string could not be read.
    #[error("bad query string: {0}")]
    BadQuery(String),
    /// The signature does not match the token.
    #[error("signature mismatch")]
    BadSignature,
    /// `msg_signature` of an encrypted message does not match.
    #[error("msg_signature mismatch")]
    BadMsgSignature,
    /// The timestamp is too far from now (a replayed or forged request).
    #[error("timestamp {0} is more than 10 minutes from now")]
    StaleTimestamp(i64),
    /// A signed query used before (a replayed request; WeChat's own retries carry new nonces).
    #[error("signed query already used (replay)")]
    Replayed,
    /// The body is larger than [`BODY_LIMIT`](super::BODY_LIMIT).
    #[error("request body: larger than the limit")]
    BodyTooLarge,
    /// The body could not be read (the connection failed).
    #[error("request body: {0}")]
    BodyUnreadable(String),
    /// The body is not the documented XML.
    #[error("bad message XML: {0}")]
    BadXml(#[from] ParseError),
    /// An encrypted body has no `Encrypt` element.
    #[error("encrypted request without an Encrypt element")]
    NoEncrypt,
    /// A safe-mode message whose msg_signature matched but which could not be read. Every
    /// such failure answers with the same status and body ([`UNREADABLE_SEALED`]); the reason
    /// is for the log only, so a token holder learns nothing about the plaintext from it.
    #[error("encrypted message could not be read: {0}")]
    Sealed(#[from] SealedError),
    /// Safe mode and the request is not encrypted.
    #[error("safe mode accepts only encrypted messages")]
    PlaintextRefused,
    /// `/wechat/<name>` for a name no `[[accounts]]` table has (the name is not repeated: it
    /// is the caller's text).
    #[error("no such account")]
    UnknownAccount,
    /// The request is encrypted but no EncodingAESKey is configured.
    #[error("encrypted message received, but no encoding_aes_key is configured (mode is plain)")]
    NoKey,
}

impl AppError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::MissingParameter(_)
            | AppError::BadQuery(_)
            | AppError::BadXml(_)
            | AppError::NoEncrypt
            | AppError::Sealed(_)
            | AppError::NoKey
            | AppError::BodyUnreadable(_) => StatusCode::BAD_REQUEST,
            AppError::BadSignature
            | AppError::BadMsgSignature
            | AppError::StaleTimestamp(_)
            | AppError::Replayed
            | AppError::PlaintextRefused => StatusCode::FORBIDDEN,
            AppError::UnknownAccount => StatusCode::NOT_FOUND,
            AppError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

impl From<OpenError> for AppError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Xml(e) => AppError::BadXml(e),
            OpenError::NoEncrypt => AppError::NoEncrypt,
            OpenError::NoMsgSignature => AppError::MissingParameter("msg_signature"),
            OpenError::BadMsgSignature => AppError::BadMsgSignature,
            OpenError::Sealed(e) => AppError::Sealed(e),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        tracing::warn!(status = status.as_u16(), "refused request: {self}");
        let reason = match &self {
            AppError::BodyTooLarge | AppError::BodyUnreadable(_) => status
                .canonical_reason()
                .unwrap_or("bad request")
                .to_string(),
            AppError::Sealed(_) => UNREADABLE_SEALED.to_string(),
            other => other.to_string(),
        };
        (status, reason).into_response()
    }
}
