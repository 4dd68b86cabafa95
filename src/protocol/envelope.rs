//! The encrypted envelope of safe mode (安全模式) and compatible mode (兼容模式), both ways:
//! opening a request and sealing its reply as the host, and the inverse pair, sealing a request
//! and opening the reply, as WeChat does (the `chat` simulator and tests).
//!
//! A request's body is `<xml><ToUserName/><Encrypt/></xml>` with `msg_signature` in the query;
//! a reply's is `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`. Both signatures are
//! `sign(token, timestamp, nonce, Encrypt)`.
//!
//! Opening checks `msg_signature` *before* decrypting, so nobody without the token learns
//! anything from decryption. After the signature matched, every failure (base64, padding,
//! length field, appid, UTF-8, the plaintext's XML) is one [`OpenError::Sealed`], whose reason
//! is for the log only: anyone with the token can sign any ciphertext, so answers that differed
//! by reason would be a padding oracle (CBC without a MAC).

use super::crypto::{CryptoError, MessageCrypto};
use super::message::{InboundMessage, ParseError};
use super::reply::push_cdata;
use super::signature;
use super::xml_fields::parse_fields;

/// Why a signed encrypted message could not be read. Logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    /// Base64, block length, padding, length field, appid or UTF-8.
    #[error(transparent)]
    Decrypt(#[from] CryptoError),
    /// The decrypted plaintext is not a WeChat message.
    #[error("decrypted plaintext: {0}")]
    Xml(#[from] ParseError),
}

/// Why an encrypted request was not opened. Every variant but [`OpenError::Sealed`] concerns
/// only what the sender sent before proving it holds the token, so it may be named to them.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The body is not the envelope's XML.
    #[error("bad message XML: {0}")]
    Xml(ParseError),
    /// The body has no `Encrypt` element.
    #[error("encrypted request without an Encrypt element")]
    NoEncrypt,
    /// The query carries no `msg_signature`.
    #[error("missing query parameter `msg_signature`")]
    NoMsgSignature,
    /// `msg_signature` does not match.
    #[error("msg_signature mismatch")]
    BadMsgSignature,
    /// The signature matched but the message could not be read: one answer whatever the reason.
    #[error("encrypted message could not be read: {0}")]
    Sealed(#[from] SealedError),
}

/// Why an encrypted reply was not opened (WeChat's side: the simulator shows it).
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The body is not the envelope's XML.
    #[error("{0}")]
    Xml(ParseError),
    /// An element of the envelope is absent.
    #[error("no {0} element")]
    Missing(&'static str),
    /// `MsgSignature` does not match.
    #[error("MsgSignature does not match")]
    BadMsgSignature,
    /// The signature matched but `Encrypt` does not decrypt.
    #[error("does not decrypt: {0}")]
    Decrypt(#[from] CryptoError),
}

/// A request sealed as WeChat sends it: the body and the `msg_signature` for the query
/// (beside `encrypt_type=aes` and the usual signed query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRequest {
    /// `<xml><ToUserName/><Encrypt/></xml>`.
    pub body: String,
    /// `msg_signature` over the token, timestamp, nonce and `Encrypt`.
    pub msg_signature: String,
}

/// One account's envelope: the token that signs it and the key that encrypts it.
#[derive(Clone)]
pub struct Envelope {
    token: String,
    crypto: MessageCrypto,
}

impl std::fmt::Debug for Envelope {
    // The token and key stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("crypto", &self.crypto)
            .finish_non_exhaustive()
    }
}

impl Envelope {
    /// The envelope of the account with this callback token and message crypto.
    pub fn new(token: &str, crypto: MessageCrypto) -> Envelope {
        Envelope {
            token: token.to_owned(),
            crypto,
        }
    }

    /// The message encryption inside.
    pub fn crypto(&self) -> &MessageCrypto {
        &self.crypto
    }

    /// Opens a request: finds `Encrypt`, checks `msg_signature` (constant time) before
    /// decrypting, then decrypts and parses the message. `timestamp` and `nonce` are the
    /// query's, already checked with its `signature`.
    pub fn open_request(
        &self,
        body: &[u8],
        timestamp: &str,
        nonce: &str,
        msg_signature: Option<&str>,
    ) -> Result<InboundMessage, OpenError> {
        let plain = self.open_request_text(body, timestamp, nonce, msg_signature)?;
        // The decrypted text becomes the buffer the message's values are views into.
        Ok(InboundMessage::parse_shared(plain.into()).map_err(SealedError::from)?)
    }

    /// Opens a request whose plaintext is not a user's message (the open platform's pushes:
    /// tickets and authorization events): the same checks as
    /// [`open_request`](Self::open_request), and the decrypted XML's fields.
    pub fn open_request_fields(
        &self,
        body: &[u8],
        timestamp: &str,
        nonce: &str,
        msg_signature: Option<&str>,
    ) -> Result<super::xml_fields::Fields, OpenError> {
        let plain = self.open_request_text(body, timestamp, nonce, msg_signature)?;
        Ok(parse_fields(plain.as_bytes()).map_err(SealedError::from)?)
    }

    /// `Encrypt` found, `msg_signature` checked before decrypting, then decrypted.
    fn open_request_text(
        &self,
        body: &[u8],
        timestamp: &str,
        nonce: &str,
        msg_signature: Option<&str>,
    ) -> Result<String, OpenError> {
        let fields = parse_fields(body).map_err(OpenError::Xml)?;
        let encrypt = fields.text("Encrypt").ok_or(OpenError::NoEncrypt)?;
        let received = msg_signature.ok_or(OpenError::NoMsgSignature)?;
        if !signature::verify(&[&self.token, timestamp, nonce, encrypt], received) {
            return Err(OpenError::BadMsgSignature);
        }
        // From here on every failure is one error (Sealed); the reason is for the log.
        Ok(self.crypto.decrypt(encrypt).map_err(SealedError::from)?)
    }

    /// Seals a reply: encrypts the reply XML with fresh random bytes and signs it, at
    /// `timestamp` (seconds) with the request's `nonce`.
    pub fn seal_reply(&self, xml: &str, timestamp: i64, nonce: &str) -> String {
        let encrypt = self.crypto.encrypt(xml);
        let msg_signature =
            signature::sign(&[&self.token, &timestamp.to_string(), nonce, &encrypt]);
        encrypted_envelope(&encrypt, &msg_signature, timestamp, nonce)
    }

    /// Seals a request as WeChat does: the message encrypted for `to_user` (the account's
    /// original ID), signed at `timestamp` with `nonce`.
    pub fn seal_request(
        &self,
        xml: &str,
        to_user: &str,
        timestamp: &str,
        nonce: &str,
    ) -> SealedRequest {
        let encrypt = self.crypto.encrypt(xml);
        let msg_signature = signature::sign(&[&self.token, timestamp, nonce, &encrypt]);
        let mut body = String::with_capacity(encrypt.len() + to_user.len() + 96);
        body.push_str("<xml><ToUserName>");
        push_cdata(&mut body, to_user);
        body.push_str("</ToUserName><Encrypt>");
        push_cdata(&mut body, &encrypt);
        body.push_str("</Encrypt></xml>");
        SealedRequest {
            body,
            msg_signature,
        }
    }

    /// Opens a reply as WeChat does: checks `MsgSignature` against the envelope's own
    /// `TimeStamp` and `Nonce`, then decrypts; returns the reply XML.
    pub fn open_reply(&self, body: &str) -> Result<String, ReplyError> {
        let fields = parse_fields(body.as_bytes()).map_err(ReplyError::Xml)?;
        let field = |name: &'static str| fields.text(name).ok_or(ReplyError::Missing(name));
        let (encrypt, received) = (field("Encrypt")?, field("MsgSignature")?);
        let (timestamp, nonce) = (field("TimeStamp")?, field("Nonce")?);
        if !signature::verify(&[&self.token, timestamp, nonce, encrypt], received) {
            return Err(ReplyError::BadMsgSignature);
        }
        Ok(self.crypto.decrypt(encrypt)?)
    }
}

/// Builds the encrypted reply envelope `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>` (TimeStamp in seconds).
pub fn encrypted_envelope(
    encrypt: &str,
    msg_signature: &str,
    timestamp: i64,
    nonce: &str,
) -> String {
    let mut out = String::with_capacity(encrypt.len() + msg_signature.len() + nonce.len() + 160);
    out.push_str("<xml><Encrypt>");
    push_cdata(&mut out, encrypt);
    out.push_str("</Encrypt><MsgSignature>");
    push_cdata(&mut out, msg_signature);
    out.push_str("</MsgSignature><TimeStamp>");
    // Writing into a `String` cannot fail.
    let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{timestamp}"));
    out.push_str("</TimeStamp><Nonce>");
    // The nonce comes from the request's query string, so it is escaped like any other text.
    push_cdata(&mut out, nonce);
    out.push_str("</Nonce></xml>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::signature::sign;

    /// The official 公众号 sample (WXBizMsgCryptTest in the Java SDK).
    const SAMPLE_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const SAMPLE_APPID: &str = "wxb11529c136998cb6";
    const SAMPLE_RANDOM: &[u8; 16] = b"aaaabbbbccccdddd";
    const TOKEN: &str = "pamtest";
    const TEXT: &str = "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[u1]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>1</MsgId></xml>";

    fn envelope() -> Envelope {
        Envelope::new(TOKEN, MessageCrypto::new(SAMPLE_KEY, SAMPLE_APPID).unwrap())
    }

    #[test]
    fn official_sample_envelope_signature_verifies() {
        // The sample's token, timestamp and nonce; the signature is checked the way the
        // receiving side (WeChat) checks it.
        let c = MessageCrypto::new(SAMPLE_KEY, SAMPLE_APPID).unwrap();
        let encrypt = c.encrypt_with_random("我是中文abcd123", *SAMPLE_RANDOM);
        let msg_signature = sign(&["pamtest", "1409304348", "xxxxxx", &encrypt]);
        let envelope = encrypted_envelope(&encrypt, &msg_signature, 1409304348, "xxxxxx");
        assert_eq!(
            envelope,
            format!(
                "<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt>\
                 <MsgSignature><![CDATA[{msg_signature}]]></MsgSignature>\
                 <TimeStamp>1409304348</TimeStamp><Nonce><![CDATA[xxxxxx]]></Nonce></xml>"
            )
        );
    }

    #[test]
    fn envelope_escapes_a_hostile_nonce() {
        let env = encrypted_envelope("abc", "sig", -1, "n]]><Evil/>");
        assert!(!env.contains("]]><Evil/>]"), "{env}");
        assert!(
            env.contains("<Nonce><![CDATA[n]]]]><![CDATA[><Evil/>]]></Nonce>"),
            "{env}"
        );
        assert!(env.contains("<TimeStamp>-1</TimeStamp>"));
    }

    #[test]
    fn a_sealed_request_opens_and_a_sealed_reply_opens() {
        let e = envelope();
        let sealed = e.seal_request(TEXT, "gh_a", "1700000000", "n1");
        let msg = e
            .open_request(
                sealed.body.as_bytes(),
                "1700000000",
                "n1",
                Some(&sealed.msg_signature),
            )
            .unwrap();
        assert_eq!(msg.content(), Some("hi"));
        assert_eq!(msg.from_user, "u1");

        let reply = e.seal_reply("<xml><Content>back</Content></xml>", 1700000001, "n1");
        assert_eq!(
            e.open_reply(&reply).unwrap(),
            "<xml><Content>back</Content></xml>"
        );
    }

    #[test]
    fn a_request_is_refused_by_name_before_its_signature_and_as_one_after() {
        let e = envelope();
        let sealed = e.seal_request(TEXT, "gh_a", "1", "n");
        let open = |body: &str, sig: Option<&str>| e.open_request(body.as_bytes(), "1", "n", sig);
        assert!(matches!(open("not xml", None), Err(OpenError::Xml(_))));
        assert!(matches!(
            open("<xml><A>1</A></xml>", Some("x")),
            Err(OpenError::NoEncrypt)
        ));
        assert!(matches!(
            open(&sealed.body, None),
            Err(OpenError::NoMsgSignature)
        ));
        assert!(matches!(
            open(&sealed.body, Some(&sealed.msg_signature[1..])),
            Err(OpenError::BadMsgSignature)
        ));
        // Signed correctly but not a message: Sealed, like a decryption failure.
        let not_a_message = e.seal_request("<xml><A>1</A></xml>", "gh_a", "1", "n");
        assert!(matches!(
            open(&not_a_message.body, Some(&not_a_message.msg_signature)),
            Err(OpenError::Sealed(SealedError::Xml(_)))
        ));
        let body = "<xml><Encrypt>QUJD</Encrypt></xml>";
        let sig = sign(&[TOKEN, "1", "n", "QUJD"]);
        assert!(matches!(
            open(body, Some(&sig)),
            Err(OpenError::Sealed(SealedError::Decrypt(_)))
        ));
    }

    #[test]
    fn a_reply_with_a_wrong_or_missing_signature_is_refused() {
        let e = envelope();
        let reply = e.seal_reply("<xml/>", 5, "n");
        let other = Envelope::new(
            "another",
            MessageCrypto::new(SAMPLE_KEY, SAMPLE_APPID).unwrap(),
        );
        assert!(matches!(
            other.open_reply(&reply),
            Err(ReplyError::BadMsgSignature)
        ));
        assert!(matches!(
            e.open_reply("<xml><Encrypt>a</Encrypt></xml>"),
            Err(ReplyError::Missing("MsgSignature"))
        ));
    }

    #[test]
    fn debug_shows_neither_token_nor_key() {
        let shown = format!("{:?}", envelope());
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(!shown.contains(SAMPLE_KEY), "{shown}");
    }
}
