//! Message encryption of safe mode (安全模式) and compatible mode (兼容模式): decrypting the
//! `Encrypt` element of a callback and encrypting the passive reply. The envelope around them
//! (signatures and XML) is [`super::envelope`].
//!
//! The scheme (消息加解密, the `WXBizMsgCrypt` samples): AES-256-CBC, key = base64 of the
//! EncodingAESKey, IV = first 16 key bytes; plaintext = 16 random bytes + 4-byte big-endian
//! message length + message + appid, PKCS#7-padded to a multiple of **32** bytes.
//!
//! Decryption is strict: every pad byte, the length field and the appid are checked, each
//! failure with its own error, for the log. The checks on decrypted bytes run in full without
//! a data-dependent early return (constant-time padding and appid comparison, `subtle`), so a
//! timer learns nothing about which failed. The caller must check `msg_signature` (see
//! [`crate::protocol::signature`]) *before* decrypting, and must not show the distinct errors
//! to the sender: anyone with the token can sign a ciphertext, so distinct answers would be a
//! padding oracle ([`super::envelope`] opens a request so that they are all one error).

use aes::Aes256;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use cbc::cipher::generic_array::GenericArray;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use subtle::{
    Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater, ConstantTimeLess,
};

/// AES block size.
const BLOCK: usize = 16;
/// WeChat pads to 32 bytes, not to the AES block size.
const PAD_BLOCK: usize = 32;
/// Random prefix plus the 4-byte length field.
const HEADER: usize = 20;

/// Accepts the console key as given: 43 characters without the `=`, whose last character
/// usually carries non-zero trailing bits that a strict decoder refuses.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a key or an encrypted message was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CryptoError {
    /// The EncodingAESKey does not decode to 32 bytes.
    #[error("EncodingAESKey must be the 43-character base64 key from the console (32 bytes)")]
    InvalidKey,
    /// The `Encrypt` text is not base64.
    #[error("Encrypt is not valid base64")]
    Base64,
    /// The ciphertext cannot be AES-CBC output.
    #[error("ciphertext length is not a positive multiple of the 16-byte AES block")]
    CiphertextLength,
    /// Bad PKCS#7 padding: wrong key, or a damaged or forged message.
    #[error("decrypted padding is malformed (wrong EncodingAESKey or tampered message)")]
    Padding,
    /// The length field does not fit the decrypted data.
    #[error("message length field runs past the decrypted data")]
    LengthField,
    /// The message names another appid.
    #[error("message was encrypted for another appid")]
    AppIdMismatch,
    /// The message is not UTF-8.
    #[error("decrypted message is not valid UTF-8")]
    Utf8,
}

/// WeChat message encryption for one account (EncodingAESKey + AppID).
#[derive(Clone)]
pub struct MessageCrypto {
    /// AES-256 key; its first 16 bytes are also the IV, as WeChat specifies.
    key: [u8; 32],
    appid: String,
}

impl std::fmt::Debug for MessageCrypto {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCrypto")
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

impl MessageCrypto {
    /// `encoding_aes_key` is the 43-character key from the console (base64 without the trailing '='); it must decode to 32 bytes.
    pub fn new(encoding_aes_key: &str, appid: &str) -> Result<Self, CryptoError> {
        let decoded = LENIENT
            .decode(encoding_aes_key)
            .map_err(|_| CryptoError::InvalidKey)?;
        let key: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self {
            key,
            appid: appid.to_owned(),
        })
    }

    /// The AppID messages must carry.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    /// Decrypts the `Encrypt` element's text and returns the inner XML, refusing a message for another appid.
    ///
    /// Only the base64 and length checks, which depend on nothing but the public ciphertext,
    /// return early. Everything that depends on the decrypted bytes (padding, length field,
    /// appid, UTF-8) is computed in full, without a data-dependent early return, and decided
    /// once at the end; the error says which check failed, for the log only.
    pub fn decrypt(&self, encrypt: &str) -> Result<String, CryptoError> {
        let mut data = LENIENT.decode(encrypt).map_err(|_| CryptoError::Base64)?;
        if data.is_empty() || data.len() % BLOCK != 0 {
            return Err(CryptoError::CiphertextLength);
        }
        let mut cipher = cbc::Decryptor::<Aes256>::new(self.key_ga(), self.iv_ga());
        for block in data.chunks_exact_mut(BLOCK) {
            cipher.decrypt_block_mut(GenericArray::from_mut_slice(block));
        }

        let (pad_ok, content_len) = unpad(&data);
        // The length field sits at 16..20; a 16-byte ciphertext has none (public: its length).
        let len_field = data
            .get(BLOCK..HEADER)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .unwrap_or_default();
        let content_len = content_len as u64;
        let msg_end = u64::from(u32::from_be_bytes(len_field)) + HEADER as u64;
        let len_ok = !(HEADER as u64).ct_gt(&content_len) & !msg_end.ct_gt(&content_len);
        // The appid must fill exactly the bytes from the message's end to the padding.
        let appid = self.appid.as_bytes();
        let tail_len = content_len.wrapping_sub(msg_end);
        let appid_len_ok = tail_len.ct_eq(&(appid.len() as u64));
        // Compared where the appid must end (the padding's start), whatever the length field
        // said, so the comparison always touches the same number of bytes.
        let appid_start = (content_len as usize).saturating_sub(appid.len());
        let appid_bytes_ok = data
            .get(appid_start..appid_start + appid.len())
            .map_or(Choice::from(0), |tail| tail.ct_eq(appid));
        let appid_ok = appid_len_ok & appid_bytes_ok;
        // UTF-8 is checked on the message region even when an earlier check failed.
        let msg_start = HEADER.min(appid_start);
        let utf8_ok = std::str::from_utf8(&data[msg_start..appid_start]).is_ok();

        let failure = if !bool::from(pad_ok) {
            Some(CryptoError::Padding)
        } else if !bool::from(len_ok) {
            Some(CryptoError::LengthField)
        } else if !bool::from(appid_ok) {
            Some(CryptoError::AppIdMismatch)
        } else if !utf8_ok {
            Some(CryptoError::Utf8)
        } else {
            None
        };
        if let Some(failure) = failure {
            return Err(failure);
        }
        // All checks passed, so the message is exactly HEADER..appid_start, checked UTF-8.
        // Reuse the decryption buffer for the message instead of copying it out.
        data.truncate(appid_start);
        data.drain(..HEADER);
        String::from_utf8(data).map_err(|_| CryptoError::Utf8)
    }

    /// Encrypts a reply with fresh random 16 bytes; returns the base64 text for `<Encrypt>`.
    ///
    /// # Panics
    /// If `plain` is 4 GiB or longer, which the 32-bit length field cannot express.
    pub fn encrypt(&self, plain: &str) -> String {
        self.encrypt_with_random(plain, rand::random())
    }

    /// Same with given random bytes (test vectors).
    ///
    /// # Panics
    /// If `plain` is 4 GiB or longer, which the 32-bit length field cannot express.
    pub fn encrypt_with_random(&self, plain: &str, random: [u8; 16]) -> String {
        let msg_len = u32::try_from(plain.len())
            .expect("a reply of 4 GiB cannot be framed by WeChat's 32-bit length field");
        let unpadded = HEADER + plain.len() + self.appid.len();
        // PKCS#7 always pads, a whole 32-byte block when already aligned.
        let pad = PAD_BLOCK - unpadded % PAD_BLOCK;
        let mut data = Vec::with_capacity(unpadded + pad);
        data.extend_from_slice(&random);
        data.extend_from_slice(&msg_len.to_be_bytes());
        data.extend_from_slice(plain.as_bytes());
        data.extend_from_slice(self.appid.as_bytes());
        // `pad` is 1..=32, so it fits a byte.
        data.resize(unpadded + pad, pad as u8);
        self.encrypt_blocks(&mut data);
        STANDARD.encode(&data)
    }

    /// AES-CBC-encrypts whole blocks in place; `data.len()` is a multiple of 16 (callers pad).
    fn encrypt_blocks(&self, data: &mut [u8]) {
        let mut cipher = cbc::Encryptor::<Aes256>::new(self.key_ga(), self.iv_ga());
        for block in data.chunks_exact_mut(BLOCK) {
            cipher.encrypt_block_mut(GenericArray::from_mut_slice(block));
        }
    }

    fn key_ga(&self) -> &GenericArray<u8, aes::cipher::consts::U32> {
        GenericArray::from_slice(&self.key)
    }

    fn iv_ga(&self) -> &GenericArray<u8, aes::cipher::consts::U16> {
        GenericArray::from_slice(&self.key[..BLOCK])
    }
}

/// Whether `data` ends in valid PKCS#7 padding of 1..=32 bytes, and its length without it
/// (all of `data` when the padding is bad). Constant time in the pad byte: the last 32 bytes
/// are all looked at whatever the last byte claims.
fn unpad(data: &[u8]) -> (Choice, usize) {
    let n = data.len();
    let pad = data.last().copied().unwrap_or(0);
    let pad_len = u64::from(pad);
    let mut ok = !pad.ct_eq(&0) & !pad.ct_gt(&(PAD_BLOCK as u8)) & !pad_len.ct_gt(&(n as u64));
    for (i, &byte) in data.iter().rev().take(PAD_BLOCK).enumerate() {
        // Position i from the end is inside the padding when i < pad.
        let inside = (i as u8).ct_lt(&pad);
        ok &= !inside | byte.ct_eq(&pad);
    }
    let stripped = u64::conditional_select(&(n as u64), &(n as u64).wrapping_sub(pad_len), ok);
    (ok, stripped as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::signature::sign;
    use proptest::prelude::*;

    /// The official 公众号 sample (WXBizMsgCryptTest in the Java SDK).
    const SAMPLE_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const SAMPLE_APPID: &str = "wxb11529c136998cb6";
    const SAMPLE_RANDOM: &[u8; 16] = b"aaaabbbbccccdddd";

    fn sample() -> MessageCrypto {
        MessageCrypto::new(SAMPLE_KEY, SAMPLE_APPID).unwrap()
    }

    /// Encrypts raw bytes padded to `pad` with `pad_byte`, to forge malformed plaintexts.
    fn forge(crypto: &MessageCrypto, mut plain: Vec<u8>) -> String {
        assert_eq!(
            plain.len() % BLOCK,
            0,
            "forged plaintext must be block aligned"
        );
        crypto.encrypt_blocks(&mut plain);
        STANDARD.encode(&plain)
    }

    /// A well-formed plaintext for `appid`, unpadded.
    fn framed(msg: &[u8], len_field: u32, appid: &[u8]) -> Vec<u8> {
        let mut v = vec![7u8; 16];
        v.extend_from_slice(&len_field.to_be_bytes());
        v.extend_from_slice(msg);
        v.extend_from_slice(appid);
        v
    }

    fn pkcs7(mut v: Vec<u8>) -> Vec<u8> {
        let pad = PAD_BLOCK - v.len() % PAD_BLOCK;
        v.resize(v.len() + pad, pad as u8);
        v
    }

    #[test]
    fn official_sample_encrypts_to_the_known_ciphertext() {
        let c = sample();
        let short = c.encrypt_with_random("我是中文abcd123", *SAMPLE_RANDOM);
        assert_eq!(
            short,
            "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
        );
        assert_eq!(c.decrypt(&short).unwrap(), "我是中文abcd123");

        let xml = "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>";
        let long = c.encrypt_with_random(xml, *SAMPLE_RANDOM);
        assert_eq!(long, "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb");
        assert_eq!(c.decrypt(&long).unwrap(), xml);
    }

    #[test]
    fn wecom_sample_callback_decrypts_with_its_signature() {
        // The official WXBizMsgCrypt callback sample (same scheme, corp id as appid).
        let encrypt = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";
        assert_eq!(
            sign(&["QDG6eK", "1409659813", "1372623149", encrypt]),
            "477715d11cdb4164915debcba66cb864d751f3e6"
        );
        let c = MessageCrypto::new(
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
            "wx5823bf96d3bd56c7",
        )
        .unwrap();
        let xml = c.decrypt(encrypt).unwrap();
        assert!(xml.starts_with("<xml>"), "{xml}");
        for part in [
            "<ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>",
            "<FromUserName><![CDATA[mycreate]]></FromUserName>",
            "<CreateTime>1409659813</CreateTime>",
            "<Content><![CDATA[hello]]></Content>",
            "<MsgId>4561255354251345929</MsgId>",
            "<AgentID>218</AgentID>",
        ] {
            assert!(xml.contains(part), "{part} missing from {xml}");
        }
        let other =
            MessageCrypto::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wxother").unwrap();
        assert_eq!(other.decrypt(encrypt), Err(CryptoError::AppIdMismatch));
    }

    #[test]
    fn wechatpy_reply_vector_encrypts_and_signs_exactly() {
        // wechatpy tests/test_crypto.py test_encrypt_message (random "1234567890123456").
        let c = MessageCrypto::new(
            "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
            "wx49f0ab532d5d035a",
        )
        .unwrap();
        let reply = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>";
        let encrypt = c.encrypt_with_random(reply, *b"1234567890123456");
        assert_eq!(encrypt, "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3");
        assert_eq!(
            sign(&["123456", "1411525903", "461056294", &encrypt]),
            "407518b7649e86ef23978113f92d27afa9296533"
        );
        assert_eq!(c.decrypt(&encrypt).unwrap(), reply);
    }

    #[test]
    fn key_must_decode_to_32_bytes() {
        assert_eq!(
            MessageCrypto::new("", "wx").unwrap_err(),
            CryptoError::InvalidKey
        );
        assert_eq!(
            MessageCrypto::new(&SAMPLE_KEY[..42], "wx").unwrap_err(),
            CryptoError::InvalidKey
        );
        assert_eq!(
            MessageCrypto::new(&format!("{SAMPLE_KEY}AAAA"), "wx").unwrap_err(),
            CryptoError::InvalidKey
        );
        assert_eq!(
            MessageCrypto::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEF!", "wx").unwrap_err(),
            CryptoError::InvalidKey
        );
        // With the '=' some tools keep, the key is the same.
        let padded = MessageCrypto::new(&format!("{SAMPLE_KEY}="), SAMPLE_APPID).unwrap();
        assert_eq!(padded.key, sample().key);
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let shown = format!("{:?}", sample());
        assert!(shown.contains(SAMPLE_APPID));
        assert!(!shown.contains("key"), "{shown}");
    }

    #[test]
    fn round_trips_with_random_prefix() {
        let c = sample();
        for msg in ["", "x", "😀中文<&>]]>", &"a".repeat(1000)] {
            let a = c.encrypt(msg);
            let b = c.encrypt(msg);
            assert_ne!(a, b, "fresh random bytes give a fresh ciphertext");
            assert_eq!(c.decrypt(&a).unwrap(), msg);
            assert_eq!(c.decrypt(&b).unwrap(), msg);
        }
    }

    #[test]
    fn padding_is_to_32_bytes_and_a_full_block_when_aligned() {
        let c = sample();
        // 20 header + 18 appid = 38 bytes; 26 more make 64, aligned: a whole 32-byte pad follows.
        let aligned = LENIENT.decode(c.encrypt(&"a".repeat(26))).unwrap();
        assert_eq!(aligned.len(), 96);
        let one_short = LENIENT.decode(c.encrypt(&"a".repeat(25))).unwrap();
        assert_eq!(one_short.len(), 64);
        assert_eq!(
            c.decrypt(&c.encrypt(&"a".repeat(26))).unwrap(),
            "a".repeat(26)
        );
    }

    #[test]
    fn base64_errors() {
        let c = sample();
        assert_eq!(c.decrypt("not base64!"), Err(CryptoError::Base64));
        assert_eq!(c.decrypt("a"), Err(CryptoError::Base64));
    }

    #[test]
    fn ciphertext_length_errors() {
        let c = sample();
        assert_eq!(c.decrypt(""), Err(CryptoError::CiphertextLength));
        assert_eq!(
            c.decrypt(&STANDARD.encode([0u8; 15])),
            Err(CryptoError::CiphertextLength)
        );
        assert_eq!(
            c.decrypt(&STANDARD.encode([0u8; 33])),
            Err(CryptoError::CiphertextLength)
        );
    }

    #[test]
    fn padding_errors() {
        let c = sample();
        let body = framed(b"hello", 5, SAMPLE_APPID.as_bytes());
        let pad_with = |value: u8, count: usize| {
            let mut v = body.clone();
            v.resize(v.len() + count, value);
            forge(&c, v)
        };
        // body is 43 bytes; 21 bytes of padding make 64.
        assert_eq!(c.decrypt(&pad_with(21, 21)).unwrap(), "hello");
        assert_eq!(c.decrypt(&pad_with(0, 21)), Err(CryptoError::Padding));
        // A pad of 33 is valid PKCS#7 for 16-byte blocks but never produced by WeChat.
        let mut long = body.clone();
        long.resize(64 + 16, 0);
        long[64..].fill(33);
        long[43..64].fill(33);
        assert_eq!(c.decrypt(&forge(&c, long)), Err(CryptoError::Padding));
        // The last byte claims 21 but an earlier pad byte differs: wechatpy would accept this.
        let mut bad = body.clone();
        bad.resize(64, 21);
        bad[50] = 20;
        assert_eq!(c.decrypt(&forge(&c, bad)), Err(CryptoError::Padding));
        // A 16-byte message padded by 32 claims more padding than there is data.
        assert_eq!(
            c.decrypt(&forge(&c, vec![32u8; 16])),
            Err(CryptoError::Padding)
        );
        // A wrong key garbles the padding (the other checks catch the rare survivors).
        let other = MessageCrypto::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq", SAMPLE_APPID)
            .unwrap();
        assert!(other.decrypt(&c.encrypt("hello")).is_err());
    }

    #[test]
    fn length_field_errors() {
        let c = sample();
        // Length runs past the end.
        let v = pkcs7(framed(b"hello", 5 + 19, SAMPLE_APPID.as_bytes()));
        assert_eq!(c.decrypt(&forge(&c, v)), Err(CryptoError::LengthField));
        let v = pkcs7(framed(b"hello", u32::MAX, SAMPLE_APPID.as_bytes()));
        assert_eq!(c.decrypt(&forge(&c, v)), Err(CryptoError::LengthField));
        // Shorter than the 20-byte header once unpadded.
        let mut v = vec![7u8; 18];
        v.resize(32, 14);
        assert_eq!(c.decrypt(&forge(&c, v)), Err(CryptoError::LengthField));
        // Exactly the header with a zero length and an empty appid is well-formed for appid "".
        let empty_appid = MessageCrypto::new(SAMPLE_KEY, "").unwrap();
        let v = pkcs7(framed(b"", 0, b""));
        assert_eq!(empty_appid.decrypt(&forge(&c, v)).unwrap(), "");
    }

    #[test]
    fn appid_errors() {
        let c = sample();
        let other = MessageCrypto::new(SAMPLE_KEY, "wx0000000000000000").unwrap();
        assert_eq!(
            other.decrypt(&c.encrypt("hi")),
            Err(CryptoError::AppIdMismatch)
        );
        // A prefix or extension of our appid is not our appid.
        let prefix = MessageCrypto::new(SAMPLE_KEY, &SAMPLE_APPID[..10]).unwrap();
        assert_eq!(
            prefix.decrypt(&c.encrypt("hi")),
            Err(CryptoError::AppIdMismatch)
        );
        assert_eq!(
            c.decrypt(&prefix.encrypt("hi")),
            Err(CryptoError::AppIdMismatch)
        );
        // A length field that is too short leaves message bytes where the appid should be.
        let v = pkcs7(framed(b"hello", 3, SAMPLE_APPID.as_bytes()));
        assert_eq!(c.decrypt(&forge(&c, v)), Err(CryptoError::AppIdMismatch));
    }

    #[test]
    fn utf8_errors() {
        let c = sample();
        let v = pkcs7(framed(&[0xff, 0xfe], 2, SAMPLE_APPID.as_bytes()));
        assert_eq!(c.decrypt(&forge(&c, v)), Err(CryptoError::Utf8));
    }

    #[test]
    fn error_messages_say_which() {
        assert_eq!(
            CryptoError::AppIdMismatch.to_string(),
            "message was encrypted for another appid"
        );
        assert!(CryptoError::InvalidKey.to_string().contains("43-character"));
        assert!(CryptoError::Padding.to_string().contains("padding"));
    }

    proptest! {
        // The fuzz target: whatever arrives in <Encrypt>, decrypt answers without panicking.
        #[test]
        fn decrypt_never_panics_on_any_string(s in any::<String>()) {
            let _ = sample().decrypt(&s);
        }

        #[test]
        fn decrypt_never_panics_on_any_base64_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = sample().decrypt(&STANDARD.encode(&bytes));
        }

        // Block-aligned input gets past the length check into padding and framing.
        #[test]
        fn decrypt_never_panics_on_block_aligned_bytes(blocks in proptest::collection::vec(any::<[u8; 16]>(), 1..20)) {
            let bytes: Vec<u8> = blocks.concat();
            let _ = sample().decrypt(&STANDARD.encode(&bytes));
        }

        // Forged plaintexts reach every check after decryption.
        #[test]
        fn decrypt_never_panics_on_forged_plaintexts(blocks in proptest::collection::vec(any::<[u8; 16]>(), 1..10)) {
            let c = sample();
            let _ = c.decrypt(&forge(&c, blocks.concat()));
        }

        #[test]
        fn encrypt_decrypt_round_trips(msg in any::<String>(), random in any::<[u8; 16]>()) {
            let c = sample();
            prop_assert_eq!(c.decrypt(&c.encrypt_with_random(&msg, random)).unwrap(), msg);
        }
    }
}
