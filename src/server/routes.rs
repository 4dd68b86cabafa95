//! The handlers: URL verification (GET), the message callback (POST), metrics, the health
//! report and the readiness check.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::connection::Arrived;
use super::health;
use super::inbound::Inbound;
use super::verify::Signed;
use super::{AppError, AppState};

/// `GET /wechat` (and `/wechat/<account>`): the console's URL verification; echoes `echostr` when the signature matches.
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

/// `POST /wechat` (and `/wechat/<account>`): one message or event, answered with a passive reply or `success`. The
/// extractor has checked, opened and parsed it; the dispatcher answers it by the deadline
/// counted from its arrival.
pub async fn callback(Arrived(arrived): Arrived, inbound: Inbound) -> Response {
    let Inbound {
        account,
        message,
        seal,
    } = inbound;
    let answer = account.dispatcher.handle_arrived(message, arrived).await;
    seal.respond(answer)
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let metrics = crate::metrics::metrics();
    // Bounded like the health probes, so a stalled store cannot hold up a scrape.
    match crate::store::within("outbox_len", state.store_timeout, state.store.outbox_len()).await {
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

/// `GET /healthz`: the host is up (always 200, so a liveness check does not restart a host
/// for its store's trouble); reports `status` `ok` or `degraded` (the store failed its
/// probe), the script generation and where the last reload failed (file and line relative to
/// the scripts directory; the error itself is only logged, as it may quote the script's
/// source), the store's state and the outbox's depth and oldest age, and every account served
/// (name, whether it has API credentials, shared or own scripts and their generation; never a
/// token or secret).
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let (store, outbox) = tokio::join!(
        health::probe_store(state.store.as_ref(), state.store_timeout),
        health::outbox(state.store.as_ref(), state.store_timeout),
    );
    Json(serde_json::json!({
        "status": if store.is_ok() { "ok" } else { "degraded" },
        "scripts": state.dispatcher.script_health(),
        "store": store,
        "outbox": outbox,
        "accounts": state.accounts.health(),
    }))
    .into_response()
}

/// `GET /readyz`: 200 while the store takes writes, 503 while it is unreachable or failing, so
/// a load balancer moves traffic to an instance that can keep state.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let store = health::probe_store(state.store.as_ref(), state.store_timeout).await;
    if store.is_ok() {
        Json(serde_json::json!({ "status": "ready", "store": store })).into_response()
    } else {
        tracing::warn!(
            state = store.state,
            "readiness check failed: the store did not take the probe"
        );
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "store": store })),
        )
            .into_response()
    }
}
