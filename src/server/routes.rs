//! The handlers: URL verification (GET), the message callback (POST) and a health check.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tracing::Instrument;

use super::deadline::handle_within;
use super::dedup::{Answer, Claim};
use super::verify::Signed;
use super::{AppError, AppState};
use crate::config::SecurityMode;
use crate::protocol::envelope::Envelope;
use crate::protocol::message::InboundMessage;
use crate::protocol::signature;
use crate::script::error::public_summary;

/// The plain answer that tells WeChat "received, no reply".
const SUCCESS: &str = "success";

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

/// `POST /wechat`: one message or event, answered with a passive reply or `success`.
pub async fn callback(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body?;
    let encrypted = signed.query.encrypt_type.as_deref() == Some("aes");
    let (msg, envelope) = if encrypted {
        let envelope = state.envelope.as_deref().ok_or(AppError::NoKey)?;
        let msg = envelope.open_request(
            &body,
            &signed.timestamp,
            &signed.nonce,
            signed.query.msg_signature.as_deref(),
        )?;
        (msg, Some(envelope))
    } else {
        if state.mode == SecurityMode::Safe {
            return Err(AppError::PlaintextRefused);
        }
        (InboundMessage::parse(&body)?, None)
    };

    note_window(&state, &msg);
    crate::metrics::metrics().message(&msg);
    let span = tracing::info_span!(
        "message",
        msg_type = msg.msg_type(),
        event = msg.event().unwrap_or(""),
        openid = %openid_hash(&msg.from_user),
        handler = tracing::field::Empty,
        outcome = tracing::field::Empty,
        duration_us = tracing::field::Empty,
    );
    let answer = handle_message(&state, msg).instrument(span).await;
    Ok(answer_response(answer, envelope, &signed.nonce))
}

/// Dedup, the handler within the deadline, and rendering: the answer to one message.
async fn handle_message(state: &Arc<AppState>, msg: InboundMessage) -> Answer {
    let metrics = crate::metrics::metrics();
    let span = tracing::Span::current();
    let guard = match state.dedup.claim(&msg.dedup_key()).await {
        Claim::First(guard) => guard,
        Claim::Duplicate(answer) => {
            metrics.retry_deduplicated();
            span.record("outcome", "retry");
            tracing::info!("retry of a message already handled: same answer again");
            return answer;
        }
        Claim::StillRunning => {
            metrics.retry_deduplicated();
            span.record("outcome", "retry-while-running");
            tracing::info!("retry while the first delivery still runs: success");
            return None;
        }
    };

    let (to, from) = (msg.from_user.clone(), msg.to_user.clone());
    let started = std::time::Instant::now();
    let reply = match handle_within(&state.scripts, &state.late, state.reply_timeout, msg).await {
        Ok(handled) => {
            span.record("handler", handled.handler.as_deref().unwrap_or("-"));
            handled.reply
        }
        Err(e) => {
            metrics.script_error();
            span.record("outcome", "script-error");
            tracing::error!("script error, answered success: {e}");
            None
        }
    };
    let elapsed = started.elapsed();
    metrics.handled(elapsed);
    let kind = reply.as_ref().map(|r| r.kind()).unwrap_or(SUCCESS);
    metrics.reply(kind);
    span.record("duration_us", elapsed.as_micros() as u64);
    tracing::debug!(reply = kind, "message handled");
    let answer: Answer =
        reply.map(|reply| Arc::from(reply.render(&to, &from, crate::clock::unix_secs())));
    guard.finish(answer.clone()).await;
    answer
}

/// A short, stable, non-reversible tag of an OpenID, so logs can follow one user without
/// holding their identity.
fn openid_hash(openid: &str) -> String {
    signature::sign(&["wechat-lua-log", openid])[..12].to_string()
}

/// Records when the user last interacted, which opens the customer-service window: a message
/// allows 5 sends within 48 hours; a menu click, subscribe or QR scan, 3 within a minute.
fn note_window(state: &AppState, msg: &InboundMessage) {
    let window = &state.services.kf_window;
    match msg.event() {
        None => window.note_message(&msg.from_user, crate::clock::unix_secs()),
        Some("click" | "subscribe" | "scan" | "view" | "scancode_push" | "scancode_waitmsg") => {
            window.note_event(&msg.from_user, crate::clock::unix_secs())
        }
        Some(_) => {}
    }
}

/// The HTTP answer: `success`, the reply XML, or the reply sealed in its envelope.
fn answer_response(answer: Answer, envelope: Option<&Envelope>, nonce: &str) -> Response {
    let Some(xml) = answer else {
        return plain(SUCCESS);
    };
    let Some(envelope) = envelope else {
        return xml_response(xml.to_string());
    };
    xml_response(envelope.seal_reply(&xml, crate::clock::unix_secs(), nonce))
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
    let status = state.scripts.status();
    Json(serde_json::json!({
        "status": "ok",
        "scripts": {
            "generation": status.generation,
            "reloads_ok": status.reloads_ok,
            "reloads_failed": status.reloads_failed,
            "last_error": status
                .last_error
                .map(|e| public_summary(&e, state.scripts.location())),
        }
    }))
    .into_response()
}

fn plain(text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

fn xml_response(xml: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        xml,
    )
        .into_response()
}
