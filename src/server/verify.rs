//! The signature check as an extractor: a handler that takes [`Signed`] cannot run for a
//! request that is not signed with our token, whose timestamp is more than
//! [`MAX_CLOCK_SKEW_SECS`] from now, or whose signed query was already used.
//!
//! A used query is remembered ([`super::replay`]: in the store when instances share one)
//! until its timestamp leaves the window, after which the window alone refuses it. WeChat signs each
//! delivery, retries included, with a new nonce, so only a replay is refused; a retry goes on
//! to the retry cache ([`crate::dispatch::dedup`]).

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use axum::extract::RawPathParams;

use super::{AppError, AppState};
use crate::account::Account;
use crate::protocol::signature;

/// How far a request's timestamp may be from now before it is taken for a replay.
pub const MAX_CLOCK_SKEW_SECS: i64 = 600;

/// The query WeChat adds to every callback, its values borrowed from the query string
/// unless percent-decoding changed them (WeChat's are hex, digits and OpenIDs: they never
/// need it).
#[derive(Debug, Default)]
pub struct CallbackQuery<'q> {
    /// sha1 of the sorted token, timestamp and nonce.
    pub signature: Option<Cow<'q, str>>,
    /// Seconds since the epoch, as WeChat sent it.
    pub timestamp: Option<Cow<'q, str>>,
    /// Random string chosen by WeChat.
    pub nonce: Option<Cow<'q, str>>,
    /// URL verification only: the text to echo.
    pub echostr: Option<Cow<'q, str>>,
    /// The sender's OpenID (informational; the body is authoritative).
    pub openid: Option<Cow<'q, str>>,
    /// `aes` when the body is encrypted.
    pub encrypt_type: Option<Cow<'q, str>>,
    /// Signature over the encrypted body.
    pub msg_signature: Option<Cow<'q, str>>,
}

impl<'q> CallbackQuery<'q> {
    /// Reads the parameters above out of a query string (percent-decoded, unknown names
    /// ignored, a repeated one refused as ambiguous). Written out rather than through
    /// axum's `Query`: that copies every key and tracks a serde path per value, a dozen
    /// allocations per request on the hottest path, for an error message this one matches.
    pub fn parse(query: &'q str) -> Result<CallbackQuery<'q>, String> {
        let mut parsed = CallbackQuery::default();
        for (name, value) in query_pairs(query) {
            let slot = match name.as_ref() {
                "signature" => &mut parsed.signature,
                "timestamp" => &mut parsed.timestamp,
                "nonce" => &mut parsed.nonce,
                "echostr" => &mut parsed.echostr,
                "openid" => &mut parsed.openid,
                "encrypt_type" => &mut parsed.encrypt_type,
                "msg_signature" => &mut parsed.msg_signature,
                _ => continue,
            };
            if slot.is_some() {
                return Err(format!(
                    "Failed to deserialize query string: duplicate field `{name}`"
                ));
            }
            *slot = Some(value);
        }
        Ok(parsed)
    }

    /// The same query owning its values, to keep past the request's parts.
    pub fn into_owned(self) -> CallbackQuery<'static> {
        let owned = |value: Option<Cow<'q, str>>| value.map(|v| Cow::Owned(v.into_owned()));
        CallbackQuery {
            signature: owned(self.signature),
            timestamp: owned(self.timestamp),
            nonce: owned(self.nonce),
            echostr: owned(self.echostr),
            openid: owned(self.openid),
            encrypt_type: owned(self.encrypt_type),
            msg_signature: owned(self.msg_signature),
        }
    }
}

/// The `name=value` pairs of a query string as `form_urlencoded::parse` yields them (empty
/// pairs skipped, split at the first `=`, `+` a space, percent-escapes decoded, invalid UTF-8
/// replaced), borrowing each pair that needs no decoding. `form_urlencoded` decodes every
/// name and value through a lossy UTF-8 pass, about a tenth of the signature check's cost
/// for WeChat's four plain pairs, so it only gets the pairs that have something to decode.
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    let bytes = query.as_bytes();
    let mut start = 0;
    // One pass over each pair finds its end, its first `=` and whether it has anything to
    // decode (splitting at `&`, then looking for `%`, then for `=` scanned it three times).
    std::iter::from_fn(move || loop {
        if start > bytes.len() {
            return None;
        }
        let first = start;
        let (mut end, mut equals, mut encoded) = (first, None, false);
        while let Some(&b) = bytes.get(end).filter(|&&b| b != b'&') {
            match b {
                b'=' if equals.is_none() => equals = Some(end),
                b'%' | b'+' => encoded = true,
                _ => {}
            }
            end += 1;
        }
        let pair = &query[first..end];
        start = end + 1;
        if pair.is_empty() {
            continue;
        }
        // Every index above is at an ASCII byte, so each slice is on character boundaries.
        return Some(match (encoded, equals) {
            (true, _) => form_urlencoded::parse(pair.as_bytes())
                .next()
                .unwrap_or_default(),
            (false, Some(equals)) => (
                Cow::Borrowed(&query[first..equals]),
                Cow::Borrowed(&query[equals + 1..end]),
            ),
            (false, None) => (Cow::Borrowed(pair), Cow::Borrowed("")),
        });
    })
}

/// A query [`check_query`] passed: its verified timestamp and nonce, and the rest of it
/// (`timestamp` and `nonce` moved out into the fields), borrowed from the query string.
pub(crate) struct CheckedQuery<'q> {
    /// The verified timestamp, as sent.
    pub timestamp: Cow<'q, str>,
    /// The verified nonce.
    pub nonce: Cow<'q, str>,
    /// The rest of the query.
    pub query: CallbackQuery<'q>,
}

/// A request whose `signature` matched, recent and not seen before.
pub struct Signed {
    /// The account the path names (`/wechat` is `default`), whose token signed the request.
    pub account: Arc<Account>,
    /// The verified timestamp, as sent.
    pub timestamp: String,
    /// The verified nonce.
    pub nonce: String,
    /// The rest of the query (`timestamp` and `nonce` are moved out into the fields above).
    pub query: CallbackQuery<'static>,
}

impl FromRequestParts<Arc<AppState>> for Signed {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let account = account_of(parts, state).await?;
        let checked =
            check_query(state, &account.token, parts.uri.query().unwrap_or_default()).await?;
        Ok(Signed {
            account,
            timestamp: checked.timestamp.into_owned(),
            nonce: checked.nonce.into_owned(),
            query: checked.query.into_owned(),
        })
    }
}

/// Checks a callback query signed with `token`: the signature, the timestamp window and
/// single use; returns the verified timestamp and nonce and the rest of the query. The
/// open platform's paths ([`super::component`]) check theirs with the platform's token.
pub(crate) async fn check_query<'q>(
    state: &AppState,
    token: &crate::config::Secret,
    raw_query: &'q str,
) -> Result<CheckedQuery<'q>, AppError> {
    let mut query = CallbackQuery::parse(raw_query).map_err(AppError::BadQuery)?;
    if query.signature.is_none() {
        return Err(AppError::MissingParameter("signature"));
    }
    let timestamp = query
        .timestamp
        .take()
        .ok_or(AppError::MissingParameter("timestamp"))?;
    let nonce = query
        .nonce
        .take()
        .ok_or(AppError::MissingParameter("nonce"))?;
    let received = query.signature.as_deref().unwrap_or_default();
    if !signature::verify(&[token.expose(), &timestamp, &nonce], received) {
        return Err(AppError::BadSignature);
    }
    let sent_at: i64 = timestamp
        .parse()
        .map_err(|_| AppError::BadQuery(format!("timestamp `{timestamp}` is not a number")))?;
    let now = crate::clock::unix_secs();
    if (now - sent_at).abs() > MAX_CLOCK_SKEW_SECS {
        return Err(AppError::StaleTimestamp(sent_at));
    }
    // Remembered until the timestamp leaves the window (a second past, for rounding).
    let until = sent_at + MAX_CLOCK_SKEW_SECS + 1;
    match state.replay.claim_once(received, now, until).await {
        Ok(true) => {}
        Ok(false) => return Err(AppError::Replayed),
        // Refusing every message while the store is down would lose them all; a replay
        // still needs the token-signed query of a message sent in the last 10 minutes.
        Err(e) => tracing::warn!("replay check skipped, store unavailable: {e}"),
    }
    Ok(CheckedQuery {
        timestamp,
        nonce,
        query,
    })
}

/// The account a callback path names: `/wechat/<name>` one the registry holds, any other
/// callback path (`/wechat`) the default account.
pub(super) async fn account_of(
    parts: &mut Parts,
    state: &Arc<AppState>,
) -> Result<Arc<Account>, AppError> {
    // `/wechat` itself is the default account: nothing to look up on its hot path.
    if parts.uri.path() == super::CALLBACK_PATH {
        return Ok(state.default_account.clone());
    }
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e| AppError::BadQuery(e.to_string()))?;
    match params.iter().find(|(name, _)| *name == ACCOUNT_PARAM) {
        None => Ok(state.default_account.clone()),
        // Authorizers of the open platform are served at their own path only.
        Some((_, name)) => state
            .accounts
            .get(name)
            .filter(|account| account.origin == crate::account::Origin::Configured)
            .ok_or(AppError::UnknownAccount),
    }
}

/// The path parameter of `/wechat/{account}`.
pub const ACCOUNT_PARAM: &str = "account";

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::CallbackQuery;

    #[test]
    fn pairs_are_split_and_decoded_as_form_urlencoded_does() {
        for query in [
            "signature=ab&timestamp=17&nonce=42&openid=o1",
            "a=1&&b&=x&c=&d=e=f&",
            "&&",
            "",
            "x=%E4%BD%A0+%E5%A5%BD&y=%FF%zz&%6e%61%6d%65=v",
            "+=+&a+b=c%2Bd",
            "n=\u{4f60}&m=%",
        ] {
            let ours: Vec<(String, String)> = super::query_pairs(query)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            let theirs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(ours, theirs, "{query}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_query_splits_as_form_urlencoded_does(query in "[ab=&%+2E\u{4f60}]{0,24}") {
            let ours: Vec<(String, String)> = super::query_pairs(&query)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            let theirs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn the_query_is_percent_decoded_and_unknown_names_are_ignored() {
        let q = CallbackQuery::parse(
            "signature=ab&timestamp=17&nonce=a%2Bb+c&openid=o1&utm_source=x&encrypt_type=aes",
        )
        .unwrap();
        assert_eq!(q.signature.as_deref(), Some("ab"));
        assert_eq!(q.timestamp.as_deref(), Some("17"));
        assert_eq!(q.nonce.as_deref(), Some("a+b c"));
        assert_eq!(q.openid.as_deref(), Some("o1"));
        assert_eq!(q.encrypt_type.as_deref(), Some("aes"));
        assert_eq!(q.echostr, None);
        assert_eq!(q.msg_signature, None);
        // Borrowed from the query string unless decoding changed the value.
        assert!(matches!(q.signature, Some(Cow::Borrowed(_))));
        assert!(matches!(q.nonce, Some(Cow::Owned(_))));
        let owned = q.into_owned();
        assert_eq!(owned.nonce.as_deref(), Some("a+b c"));
        assert_eq!(owned.encrypt_type.as_deref(), Some("aes"));
    }

    #[test]
    fn a_repeated_parameter_is_refused_as_ambiguous() {
        let err = CallbackQuery::parse("nonce=1&nonce=2").unwrap_err();
        assert!(err.contains("duplicate field `nonce`"), "{err}");
    }
}
