//! WeChat request signatures: the `signature` of URL verification and plain callbacks, and the
//! `msg_signature` of safe-mode (安全模式) callbacks and encrypted replies.
//!
//! Both are the lowercase hex SHA-1 of the given strings sorted lexically and concatenated
//! (`signature` = sign(token, timestamp, nonce); `msg_signature` adds the `Encrypt` text).

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Parts signed without a heap allocation; WeChat itself never signs more than four.
const STACK_PARTS: usize = 8;

/// sha1 hex (lowercase) of the lexically sorted strings concatenated. WeChat's `signature` = sign(&[token, timestamp, nonce]); `msg_signature` = sign(&[token, timestamp, nonce, encrypt]).
pub fn sign(parts: &[&str]) -> String {
    let hex = hex_digest(parts).expect("20 bytes are 40 hex digits");
    String::from_utf8(hex.to_vec()).expect("hex digits are ASCII")
}

/// Constant-time comparison of a received signature with the expected one.
pub fn verify(parts: &[&str], received: &str) -> bool {
    // A 20-byte digest always fits 40 hex digits, so this cannot fail; refuse rather than panic.
    let Some(expected) = hex_digest(parts) else {
        return false;
    };
    // `ct_eq` on slices of different lengths is false without looking at the contents.
    expected.as_slice().ct_eq(received.as_bytes()).into()
}

/// The digest's 40 lowercase hex digits in a buffer (`hex::encode` would collect them into a
/// `String` char by char); `None` only if 20 bytes did not make 40 digits.
fn hex_digest(parts: &[&str]) -> Option<[u8; 40]> {
    let mut hex = [0u8; 40];
    hex::encode_to_slice(digest(parts), &mut hex).ok()?;
    Some(hex)
}

/// SHA-1 over the sorted parts, fed one by one instead of concatenated into a new string.
fn digest(parts: &[&str]) -> [u8; 20] {
    let mut hasher = Sha1::new();
    if parts.len() <= STACK_PARTS {
        let mut sorted = [""; STACK_PARTS];
        let sorted = &mut sorted[..parts.len()];
        sorted.copy_from_slice(parts);
        // Byte order of UTF-8 is code point order, which is how WeChat (and Python's sort) compare.
        sorted.sort_unstable();
        sorted.iter().for_each(|p| hasher.update(p.as_bytes()));
    } else {
        let mut sorted = parts.to_vec();
        sorted.sort_unstable();
        sorted.iter().for_each(|p| hasher.update(p.as_bytes()));
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_verification_vector_from_wechatpy() {
        // wechatpy tests/test_utils.py: token "test", timestamp 1410685589, nonce "test".
        let parts = ["test", "1410685589", "test"];
        assert_eq!(sign(&parts), "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff");
        assert!(verify(&parts, "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"));
        assert!(!verify(&parts, "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe"));
    }

    #[test]
    fn parts_are_sorted_before_hashing() {
        // wechatpy WeChatSigner test: "789", "456", "123" hash as "123456789".
        let expected = "f7c3bc1d808e04732adf679965ccc34ca7ae3441";
        assert_eq!(sign(&["789", "456", "123"]), expected);
        assert_eq!(sign(&["123", "789", "456"]), expected);
        assert_eq!(sign(&["123456789"]), expected);
    }

    #[test]
    fn msg_signature_vector_from_wecom_sample() {
        // The official WXBizMsgCrypt sample: token QDG6eK, timestamp 1409659813, nonce 1372623149.
        let encrypt = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";
        let parts = ["QDG6eK", "1409659813", "1372623149", encrypt];
        assert_eq!(sign(&parts), "477715d11cdb4164915debcba66cb864d751f3e6");
        assert!(verify(&parts, "477715d11cdb4164915debcba66cb864d751f3e6"));
    }

    #[test]
    fn verify_rejects_wrong_length_case_and_empty() {
        let parts = ["test", "1410685589", "test"];
        let good = sign(&parts);
        assert!(!verify(&parts, ""));
        assert!(!verify(&parts, &good[..39]));
        assert!(!verify(&parts, &format!("{good}0")));
        // WeChat sends lowercase; uppercase is not accepted.
        assert!(!verify(&parts, &good.to_uppercase()));
        // Another nonce gives another signature.
        assert!(!verify(&["test", "1410685589", "tesu"], &good));
    }

    #[test]
    fn many_parts_take_the_heap_path_with_the_same_result() {
        let parts: Vec<String> = (0..20).rev().map(|i| format!("p{i:02}")).collect();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let mut sorted = refs.clone();
        sorted.sort();
        assert_eq!(sign(&refs), sign(&[sorted.concat().as_str()]));
        assert!(verify(&refs, &sign(&sorted)));
    }

    #[test]
    fn empty_input_is_sha1_of_nothing() {
        assert_eq!(sign(&[]), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }
}
