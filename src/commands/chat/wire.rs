//! The callback as WeChat calls it: a signed query, and when an EncodingAESKey is in use the
//! message encrypted with its msg_signature, the reply's signature checked and decrypted.

use crate::config::Secret;
use crate::protocol::crypto::{CryptoError, MessageCrypto};
use crate::protocol::signature;
use crate::protocol::xml_fields::parse_fields;

use super::ACCOUNT;

/// Why one message got no readable answer; shown in place of the reply.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the host answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("unreadable encrypted reply: {0}")]
    Envelope(String),
    #[error("encrypted reply does not decrypt: {0}")]
    Crypto(#[from] CryptoError),
}

/// The callback as WeChat calls it: signed query, and in safe/compatible mode the message
/// encrypted with msg_signature and the reply decrypted after checking its signature.
pub(super) struct Wire {
    pub(super) client: reqwest::Client,
    pub(super) url: String,
    pub(super) token: Secret,
    pub(super) crypto: Option<MessageCrypto>,
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
        let body = match &self.crypto {
            Some(crypto) => {
                let encrypt = crypto.encrypt(xml);
                query.push(("encrypt_type", "aes".into()));
                query.push((
                    "msg_signature",
                    signature::sign(&[token, &timestamp, &nonce, &encrypt]),
                ));
                format!(
                    "<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
                )
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
        match &self.crypto {
            Some(crypto) if text.trim() != "success" => self.open_envelope(crypto, &text),
            _ => Ok(text),
        }
    }

    /// Checks the reply envelope's msg_signature and decrypts it, as WeChat does.
    fn open_envelope(&self, crypto: &MessageCrypto, text: &str) -> Result<String, SendError> {
        let fields =
            parse_fields(text.as_bytes()).map_err(|e| SendError::Envelope(e.to_string()))?;
        let field = |name: &'static str| {
            fields
                .text(name)
                .ok_or_else(|| SendError::Envelope(format!("no {name} in {text}")))
        };
        let (encrypt, received) = (field("Encrypt")?, field("MsgSignature")?);
        let (timestamp, nonce) = (field("TimeStamp")?, field("Nonce")?);
        let parts = [self.token.expose(), timestamp, nonce, encrypt];
        if !signature::verify(&parts, received) {
            return Err(SendError::Envelope("MsgSignature does not match".into()));
        }
        Ok(crypto.decrypt(encrypt)?)
    }
}
