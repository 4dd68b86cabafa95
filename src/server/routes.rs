//! The handlers: URL verification (GET), the message callback (POST), metrics and a health
//! check.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::inbound::Inbound;
use super::verify::Signed;
use super::{AppError, AppState};

/// `GET /wechat`: the console's URL verification; echoes `echostr` when the signature matches.
/// The echo is plaintext in every mode for Official Accounts.
pub async fn verify_url(signed: Signed) -> Result<Response, AppError> {
    let echostr = signed
        .query
        .echostr
        .ok_or(AppError::MissingParameter("echostr"))?;
    tracing::info!("URL verification succeeded");
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        echostr,
    )
        .into_response())
}

/// `POST /wechat`: one message or event, answered with a passive reply or `success`. The
/// extractor has checked, opened and parsed it; the dispatcher answers it.
pub async fn callback(State(state): State<Arc<AppState>>, inbound: Inbound) -> Response {
    let Inbound { message, seal } = inbound;
    let answer = state.dispatcher.handle(message).await;
    seal.respond(answer)
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let metrics = crate::metrics::metrics();
    match state.store.outbox_len().await {
        Ok(depth) => metrics.set_outbox_depth(depth),
        Err(e) => tracing::warn!("metrics: cannot read the outbox depth: {e}"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

/// `GET /healthz`: the host is up; reports the script generation and where the last reload
/// failed (file and line relative to the scripts directory; the error itself is only logged,
/// as it may quote the script's source).
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    Json(serde_json::json!({
        "status": "ok",
        "scripts": state.dispatcher.script_health(),
    }))
    .into_response()
}
