//! The callback as WeChat calls it: a signed query, and when an EncodingAESKey is in use the
//! message sealed in its envelope and the reply's envelope opened
//! ([`crate::protocol::envelope`]).

use crate::config::Secret;
use crate::protocol::envelope::{Envelope, ReplyError};
use crate::protocol::signature;

use super::ACCOUNT;

/// Why one message got no readable answer; shown in place of the reply.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the host answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("unreadable encrypted reply: {0}")]
    Envelope(#[from] ReplyError),
}

/// The callback as WeChat calls it: signed query, and in safe/compatible mode the message
/// sealed with msg_signature and the reply opened after checking its signature.
#[derive(Clone)]
pub struct Wire {
    pub client: reqwest::Client,
    pub url: String,
    pub token: Secret,
    pub envelope: Option<std::sync::Arc<Envelope>>,
}

/// One callback as it crossed the wire, for a viewer that shows the XML exchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// The signed query string WeChat would send (`signature`, `timestamp`, `nonce`, and
    /// `encrypt_type`/`msg_signature` when sealed).
    pub query: String,
    /// The body POSTed: the message XML, or its envelope when encrypted.
    pub request_body: String,
    /// The body the host answered, as it came (an envelope when encrypted).
    pub response_body: String,
    /// The reply in plaintext: `success`, empty, or reply XML.
    pub reply: String,
}

impl Wire {
    /// POSTs one message; returns the reply body in plaintext (`success` or reply XML).
    pub async fn send(&self, xml: &str) -> Result<String, SendError> {
        Ok(self.exchange(xml).await?.reply)
    }

    /// POSTs one message; returns what was sent and answered, and the plaintext reply.
    pub async fn exchange(&self, xml: &str) -> Result<Exchange, SendError> {
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
        let query_string = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&query)
            .finish();
        let response = self
            .client
            .post(&self.url)
            .query(&query)
            .body(body.clone())
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        if status != 200 {
            return Err(SendError::Status { status, body: text });
        }
        let reply = match &self.envelope {
            Some(envelope) if text.trim() != "success" => envelope.open_reply(&text)?,
            _ => text.clone(),
        };
        Ok(Exchange {
            query: query_string,
            request_body: body,
            response_body: text,
            reply,
        })
    }
}
