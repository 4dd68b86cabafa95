//! The callback as WeChat calls it: a signed query, and when an EncodingAESKey is in use the
//! message sealed in its envelope and the reply's envelope opened
//! ([`crate::protocol::envelope`]).

use crate::config::Secret;
use crate::protocol::envelope::{Envelope, ReplyError};
use crate::protocol::signature;

use super::ACCOUNT;

/// Why one message got no readable answer; shown in place of the reply.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the host answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("unreadable encrypted reply: {0}")]
    Envelope(#[from] ReplyError),
}

/// The callback as WeChat calls it: signed query, and in safe/compatible mode the message
/// sealed with msg_signature and the reply opened after checking its signature.
pub(super) struct Wire {
    pub(super) client: reqwest::Client,
    pub(super) url: String,
    pub(super) token: Secret,
    pub(super) envelope: Option<std::sync::Arc<Envelope>>,
}

impl Wire {
    /// POSTs one message; returns the reply body in plaintext (`success` or reply XML).
    pub(super) async fn send(&self, xml: &str) -> Result<String, SendError> {
        let timestamp = crate::clock::unix_secs().to_string();
        let nonce = format!("{:010}", rand::random::<u32>());
        let token = self.token.expose();
        let mut query = vec![
            ("signature", signature::sign(&[token, &timestamp, &nonce])),
            ("timestamp", timestamp.clone()),
            ("nonce", nonce.clone()),
        ];
        let body = match &self.envelope {
            Some(envelope) => {
                let sealed = envelope.seal_request(xml, ACCOUNT, &timestamp, &nonce);
                query.push(("encrypt_type", "aes".into()));
                query.push(("msg_signature", sealed.msg_signature));
                sealed.body
            }
            None => xml.to_string(),
        };
        let response = self
            .client
            .post(&self.url)
            .query(&query)
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        if status != 200 {
            return Err(SendError::Status { status, body: text });
        }
        match &self.envelope {
            Some(envelope) if text.trim() != "success" => Ok(envelope.open_reply(&text)?),
            _ => Ok(text),
        }
    }
}
