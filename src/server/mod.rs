//! HTTP only: the router, the extractors that check and open requests, the mapping of errors
//! to responses, connections and graceful shutdown. What a message is answered with is the
//! [`Dispatcher`](crate::dispatch::Dispatcher)'s business.
//!
//! - [`connection`]: sockets: the accept loop, the connection cap and the deadlines on idle,
//!   slow heads and slow bodies.
//! - [`verify`]: [`Signed`](verify::Signed), the signature, timestamp window and single use of
//!   the query, in an extractor no handler can skip.
//! - [`inbound`]: [`Inbound`](inbound::Inbound), a signed message opened
//!   ([`protocol::envelope`](crate::protocol::envelope)) and parsed, with the
//!   [`Seal`](inbound::Seal) its answer goes out in.
//! - [`routes`]: the handlers; the callback is extractor → dispatcher → seal.
//! - [`error`]: every refusal as one [`AppError`], mapped to a status in one place.
//! - [`health`]: the store probe and outbox age behind `/healthz` and `/readyz`.
//! - [`state`]: what the handlers share.
//! - [`component`]: the open platform's paths (`/component/…`), with `[component]` only.
//!
//! Paths the host does not serve itself go to [`crate::web`]: `/public/` and the scripts'
//! `wx.route` pages, under the same body limit and body deadline.

pub mod component;
pub mod connection;
pub mod error;
pub mod health;
pub mod inbound;
pub mod replay;
pub mod routes;
pub mod state;
pub mod verify;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tower::Layer;

pub use error::AppError;
pub use state::AppState;

/// The callback path WeChat is configured with.
pub const CALLBACK_PATH: &str = "/wechat";
/// Largest request body accepted; WeChat's messages are a few KiB.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The router, without a socket, so tests can drive it with `oneshot`.
pub fn app(state: Arc<AppState>) -> Router {
    // `/wechat/<name>` is routed whether or not accounts are configured yet: they can be
    // added while serving. A name the registry does not hold is a 404, as the scripts'
    // routes (which refuse the reserved `/wechat` segment) would answer.
    let mut router = Router::new()
        .route(
            CALLBACK_PATH,
            get(routes::verify_url).post(routes::callback),
        )
        .route(
            &format!("{CALLBACK_PATH}/{{{}}}", verify::ACCOUNT_PARAM),
            get(routes::verify_url).post(routes::callback),
        );
    if state.platform.is_some() {
        use crate::component::{AUTHORIZED_PATH, AUTHORIZE_PATH, EVENTS_PATH};
        router = router
            .route(EVENTS_PATH, axum::routing::post(component::events))
            .route(AUTHORIZE_PATH, get(component::authorize))
            .route(AUTHORIZED_PATH, get(component::authorized))
            .route(
                "/component/{appid}/callback",
                axum::routing::post(component::callback),
            );
    }
    router
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        // A short plain answer, as every other refusal has (axum's own 405 is empty).
        .method_not_allowed_fallback(|| async {
            (
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            )
        })
        .nest_service(
            crate::web::PUBLIC_PATH,
            DefaultBodyLimit::max(BODY_LIMIT)
                .layer(crate::web::public_files(state.web.public_dir())),
        )
        // Every other path: the scripts' `wx.route` pages. The body limit is layered on the
        // services that read bodies through axum's extractors; the callback reads its own
        // under the same limit (`inbound::read_body`), which spares every message the layer.
        .fallback_service(
            DefaultBodyLimit::max(BODY_LIMIT).layer(crate::web::script_routes(state.web.clone())),
        )
        .with_state(state)
}

/// Serves until `shutdown` completes, then stops accepting, lets requests in flight finish and
/// returns once every connection has closed. Connections are bounded by the state's
/// [`ConnectionLimits`](connection::ConnectionLimits).
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.limits;
    connection::serve(listener, app(state), limits, shutdown).await
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
}
