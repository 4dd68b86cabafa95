//! The message callback's extractor: a handler that takes [`Inbound`] gets a message that is
//! signed ([`Signed`](super::verify::Signed)'s checks: signature, timestamp window, single use), opened when encrypted
//! (`msg_signature`, then decryption, through [`Envelope::open_request`]) and parsed, plus the
//! [`Seal`] its answer must go out in. Every refusal is an [`AppError`].

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;

use super::verify::{account_of, check_query};
use super::{AppError, AppState};
use crate::account::Account;
use crate::config::SecurityMode;
use crate::dispatch::Answer;
use crate::protocol::envelope::Envelope;
use crate::protocol::message::InboundMessage;

/// The plain answer that tells WeChat "received, no reply".
const SUCCESS: &str = "success";

/// Content types as static header values: a `&str` would be copied into every response.
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const APPLICATION_XML: HeaderValue = HeaderValue::from_static("application/xml; charset=utf-8");

/// A signed message, opened and parsed.
pub struct Inbound {
    /// The account it came for.
    pub account: Arc<Account>,
    /// The message.
    pub message: InboundMessage,
    /// How its answer goes out.
    pub seal: Seal,
}

/// How an answer goes out: as sent, or sealed in the envelope the request came in.
#[derive(Debug)]
pub enum Seal {
    /// A plaintext request: the reply XML as it is.
    Plain,
    /// An encrypted request: the reply encrypted and signed with the request's nonce.
    Envelope {
        /// The account's envelope.
        envelope: Arc<Envelope>,
        /// The request's nonce, which the reply's signature repeats.
        nonce: String,
    },
}

impl Seal {
    /// The HTTP answer: `success`, the reply XML, or the reply sealed in its envelope.
    pub fn respond(self, answer: Answer) -> Response {
        let Some(xml) = answer else {
            return ([(header::CONTENT_TYPE, TEXT_PLAIN)], SUCCESS).into_response();
        };
        let body = match self {
            Seal::Plain => xml.to_string(),
            Seal::Envelope { envelope, nonce } => {
                envelope.seal_reply(&xml, crate::clock::unix_secs(), &nonce)
            }
        };
        ([(header::CONTENT_TYPE, APPLICATION_XML)], body).into_response()
    }
}

/// The whole body, refused past `limit` bytes (413, as announced by `Content-Length` or as
/// read). Read here rather than through axum's `Bytes` extractor and `DefaultBodyLimit`
/// layer, which cost the callback half a dozen allocations per message: a body that comes in
/// one chunk, as WeChat's few KiB do, is kept as it came.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, AppError> {
    use axum::body::HttpBody;
    use futures::StreamExt;
    if body.size_hint().lower() > limit as u64 {
        return Err(AppError::BodyTooLarge);
    }
    let mut chunks = body.into_data_stream();
    let mut whole = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| AppError::BodyUnreadable(e.to_string()))?;
        let so_far = joined.as_ref().map_or(whole.len(), BytesMut::len);
        if so_far + chunk.len() > limit {
            return Err(AppError::BodyTooLarge);
        }
        match &mut joined {
            Some(joined) => joined.extend_from_slice(&chunk),
            None if whole.is_empty() => whole = chunk,
            None => {
                let mut both = BytesMut::with_capacity(whole.len() + chunk.len());
                both.extend_from_slice(&whole);
                both.extend_from_slice(&chunk);
                joined = Some(both);
            }
        }
    }
    Ok(joined.map_or(whole, BytesMut::freeze))
}

impl FromRequest<Arc<AppState>> for Inbound {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, AppError> {
        let (mut parts, body) = request.into_parts();
        // The signature first: nothing of an unsigned request is read. The same checks as
        // the `Signed` extractor, with the query's values borrowed rather than copied.
        let account = account_of(&mut parts, state).await?;
        let checked =
            check_query(state, &account.token, parts.uri.query().unwrap_or_default()).await?;
        let body = read_body(body, super::BODY_LIMIT).await?;
        if checked.query.encrypt_type.as_deref() != Some("aes") {
            if account.mode == SecurityMode::Safe {
                return Err(AppError::PlaintextRefused);
            }
            return Ok(Inbound {
                message: InboundMessage::parse(&body)?,
                account,
                seal: Seal::Plain,
            });
        }
        let envelope = account.envelope.clone().ok_or(AppError::NoKey)?;
        let message = envelope.open_request(
            &body,
            &checked.timestamp,
            &checked.nonce,
            checked.query.msg_signature.as_deref(),
        )?;
        Ok(Inbound {
            account,
            message,
            seal: Seal::Envelope {
                envelope,
                nonce: checked.nonce.into_owned(),
            },
        })
    }
}
