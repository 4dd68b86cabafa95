//! The signature check as an extractor: a handler that takes [`Signed`] cannot run for a
//! request that is not signed with our token.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::Deserialize;

use super::{AppError, AppState};
use crate::protocol::signature;

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

/// A request whose `signature` matched.
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
        Ok(Signed {
            timestamp,
            nonce,
            query,
        })
    }
}
