//! The signature check as an extractor: a handler that takes [`Signed`] cannot run for a
//! request that is not signed with our token, whose timestamp is more than
//! [`MAX_CLOCK_SKEW_SECS`] from now, or whose signed query was already used.
//!
//! A used query is remembered ([`super::replay`]: in the store when instances share one)
//! until its timestamp leaves the window, after which the window alone refuses it. WeChat signs each
//! delivery, retries included, with a new nonce, so only a replay is refused; a retry goes on
//! to the retry cache ([`crate::dispatch::dedup`]).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::Deserialize;

use super::{AppError, AppState};
use crate::protocol::signature;

/// How far a request's timestamp may be from now before it is taken for a replay.
pub const MAX_CLOCK_SKEW_SECS: i64 = 600;

/// The query WeChat adds to every callback.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    /// sha1 of the sorted token, timestamp and nonce.
    pub signature: Option<String>,
    /// Seconds since the epoch, as WeChat sent it.
    pub timestamp: Option<String>,
    /// Random string chosen by WeChat.
    pub nonce: Option<String>,
    /// URL verification only: the text to echo.
    pub echostr: Option<String>,
    /// The sender's OpenID (informational; the body is authoritative).
    pub openid: Option<String>,
    /// `aes` when the body is encrypted.
    pub encrypt_type: Option<String>,
    /// Signature over the encrypted body.
    pub msg_signature: Option<String>,
}

/// A request whose `signature` matched, recent and not seen before.
#[derive(Debug)]
pub struct Signed {
    /// The verified timestamp, as sent.
    pub timestamp: String,
    /// The verified nonce.
    pub nonce: String,
    /// The whole query.
    pub query: CallbackQuery,
}

impl FromRequestParts<Arc<AppState>> for Signed {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Query(query) = Query::<CallbackQuery>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::BadQuery(e.body_text()))?;
        let received = query
            .signature
            .as_deref()
            .ok_or(AppError::MissingParameter("signature"))?;
        let timestamp = query
            .timestamp
            .clone()
            .ok_or(AppError::MissingParameter("timestamp"))?;
        let nonce = query
            .nonce
            .clone()
            .ok_or(AppError::MissingParameter("nonce"))?;
        if !signature::verify(&[state.token.expose(), &timestamp, &nonce], received) {
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
        Ok(Signed {
            timestamp,
            nonce,
            query,
        })
    }
}
