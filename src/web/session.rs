//! Who is visiting: the hook sign-in fills. A [`Sessions`] reads a request (its signed
//! session cookie) and names the signed-in [`Visitor`], whose OpenID route handlers see as
//! `req.openid`. The host serves with [`SignedOut`] until sign-in with WeChat (网页授权,
//! `/oauth/login` and `/oauth/callback`) provides a real one; a session that cannot be read
//! (tampered, expired) must simply be `None`, never an error.

use axum::http::request::Parts;

pub use crate::script::routes::Visitor;

/// Reads the visitor of a request from its session.
pub trait Sessions: Send + Sync + 'static {
    /// The signed-in visitor, or `None` when the request carries no valid session.
    fn visitor(&self, request: &Parts) -> Option<Visitor>;
}

/// No sign-in configured: every visitor is signed out.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedOut;

impl Sessions for SignedOut {
    fn visitor(&self, _request: &Parts) -> Option<Visitor> {
        None
    }
}
