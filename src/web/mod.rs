//! `wx.route`'s HTTP side: a web request the host does not serve itself becomes a
//! [`RouteRequest`] (path and query decoded strictly, headers, cookies, body, client address,
//! the signed-in visitor), is offered to the scripts' routes on the Lua pool within
//! `route_timeout`, and the route's answer becomes the response. Also the static files of
//! `public/` ([`public`]), the client address behind trusted proxies ([`client_ip`]), the
//! hook sign-in fills ([`session`]) and sign-in with WeChat itself ([`oauth`]: `/oauth/login`,
//! `/oauth/callback` and the signed session cookie).
//!
//! Nothing here can take `/wechat` down: routes run on tasks of their own, at most
//! [`MAX_ROUTES_IN_FLIGHT`] at once so they cannot take every Lua state from messages, each
//! stopped at its deadline; every failure is a short plain answer, details in the log only.

pub mod client_ip;
pub mod oauth;
pub mod public;
pub mod session;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::header::{ALLOW, CONTENT_TYPE, COOKIE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use ipnet::IpNet;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::script::routes::{
    is_reserved, parse_form, DecodeError, RouteError, RouteOutcome, RoutePath, RouteRequest,
    RouteResponse,
};
use crate::script::LuaPool;
pub use public::{public_files, PUBLIC_PATH};
pub use session::{Sessions, SignedOut, Visitor};

/// Default of `route_timeout`.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most route handlers running at once; beyond it requests are answered 503. Half the Lua
/// states the pool may build, so a flood of slow pages leaves states for messages.
pub const MAX_ROUTES_IN_FLIGHT: usize = crate::script::pool::MAX_STATES / 2;

/// Methods a request may have; anything else is refused before the scripts see it.
const KNOWN_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// What the route handler shares.
pub struct Web {
    /// The Lua states routes run on, shared with messages.
    scripts: Arc<LuaPool>,
    /// How long a route may take, waiting for a Lua state included.
    route_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<IpNet>,
    /// Who is signed in.
    sessions: Arc<dyn Sessions>,
    /// Routes running now, at most [`MAX_ROUTES_IN_FLIGHT`].
    in_flight: Arc<Semaphore>,
    /// The `public/` directory beside the entry script.
    public_dir: PathBuf,
    /// Sign-in with WeChat (`/oauth/login`, `/oauth/callback`), when `[oauth]` is configured.
    sign_in: Option<Arc<oauth::SignIn>>,
    /// The site's origin as visitors reach it (`[oauth] public_url`), so routes see the
    /// page's full URL (`req.page_url`, what the JS-SDK signs).
    public_url: Option<String>,
}

impl Web {
    /// Routes of `scripts` under the settings' `route_timeout` and `trusted_proxies`, with
    /// every visitor signed out until [`Web::with_sessions`] says otherwise.
    pub fn new(config: &Config, scripts: Arc<LuaPool>) -> Web {
        let location = scripts.location();
        let beside_entry = if location.is_dir() {
            location
        } else {
            location.parent().unwrap_or(Path::new("."))
        };
        let public_dir = beside_entry.join(public::PUBLIC_DIR);
        Web {
            public_dir,
            scripts,
            route_timeout: config.route_timeout,
            trusted_proxies: config.trusted_proxies.clone(),
            sessions: Arc::new(SignedOut),
            in_flight: Arc::new(Semaphore::new(MAX_ROUTES_IN_FLIGHT)),
            sign_in: None,
            public_url: config.oauth.as_ref().map(|o| o.public_url.clone()),
        }
    }

    /// The same, serving sign-in with WeChat and reading visitors from its session cookie.
    pub fn with_sign_in(mut self, sign_in: Arc<oauth::SignIn>) -> Web {
        self.sessions = sign_in.clone();
        self.sign_in = Some(sign_in);
        self
    }

    /// The same, reading visitors with `sessions` (sign-in with WeChat).
    pub fn with_sessions(mut self, sessions: Arc<dyn Sessions>) -> Web {
        self.sessions = sessions;
        self
    }

    /// The same, with at most `routes` route handlers running at once instead of
    /// [`MAX_ROUTES_IN_FLIGHT`].
    pub fn with_route_cap(mut self, routes: usize) -> Web {
        self.in_flight = Arc::new(Semaphore::new(routes.max(1)));
        self
    }

    /// Where the static files are read from.
    pub fn public_dir(&self) -> &Path {
        &self.public_dir
    }
}

/// Every way a web request fails, each a short plain answer; the log has the details.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A method no route can have (`FOO`, `CONNECT`, `TRACE`).
    #[error("method not allowed")]
    UnknownMethod,
    /// The path's percent-encoding is broken or not UTF-8.
    #[error("bad path: {0}")]
    BadPath(DecodeError),
    /// The query's percent-encoding is broken or not UTF-8.
    #[error("bad query string: {0}")]
    BadQuery(DecodeError),
    /// The body could not be read (too large: 413, or the connection failed).
    #[error("request body: {0}")]
    Body(#[from] axum::extract::rejection::BytesRejection),
    /// No route has this path (or it is one of the host's own).
    #[error("not found")]
    NotFound,
    /// Routes have the path, not the method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The methods they have.
        allow: Vec<&'static str>,
    },
    /// Too many routes are running.
    #[error("busy, try again")]
    Busy,
    /// The route did not answer within `route_timeout` (or was stopped by the run limit).
    #[error("the page took too long")]
    TimedOut,
    /// The route raised an error or returned something that is not a response.
    #[error("internal error")]
    Failed,
}

impl WebError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::UnknownMethod | WebError::MethodNotAllowed { .. } => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            WebError::BadPath(_) | WebError::BadQuery(_) => StatusCode::BAD_REQUEST,
            WebError::Body(rejection) => rejection.status(),
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            WebError::TimedOut => StatusCode::GATEWAY_TIMEOUT,
            WebError::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        let text = match &self {
            // The rejection's own text can name internals; the status says enough.
            WebError::Body(_) => status
                .canonical_reason()
                .unwrap_or("bad request")
                .to_string(),
            other => other.to_string(),
        };
        let mut response = (status, text).into_response();
        if let WebError::MethodNotAllowed { allow } = &self {
            if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                response.headers_mut().insert(ALLOW, value);
            }
        }
        response
    }
}

/// The service behind every path the host does not serve itself: the scripts' routes.
/// With sign-in configured, `/oauth/login` and `/oauth/callback` are served here too.
pub fn script_routes(web: Arc<Web>) -> Router {
    let routes = Router::new().fallback(serve_route).with_state(web.clone());
    match &web.sign_in {
        Some(sign_in) => oauth::routes(sign_in.clone()).fallback_service(routes),
        None => routes,
    }
}

/// One web request, offered to the scripts' routes.
async fn serve_route(State(web): State<Arc<Web>>, request: Request) -> Response {
    let method = request.method().as_str().to_string();
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let response = match route(&web, request).await {
        Ok(response) => response,
        Err(e) => {
            let status = e.status().as_u16();
            match &e {
                WebError::NotFound | WebError::MethodNotAllowed { .. } => {
                    tracing::info!(status, %method, path = %target, "web request: {e}")
                }
                // Route failures were logged with their file:line where they happened.
                WebError::TimedOut | WebError::Failed => {}
                _ => tracing::warn!(status, %method, path = %target, "refused web request: {e}"),
            }
            e.into_response()
        }
    };
    crate::metrics::metrics().web_request(response.status().as_u16());
    response
}

async fn route(web: &Arc<Web>, request: Request) -> Result<Response, WebError> {
    if !KNOWN_METHODS.contains(&request.method().as_str()) {
        return Err(WebError::UnknownMethod);
    }
    let path = RoutePath::parse(request.uri().path()).map_err(WebError::BadPath)?;
    // The host's own paths never reach a script, also when a script's `/*rest` would match
    // (`/%77echat` included).
    if is_reserved(request.uri().path()) || is_reserved(&path.decoded) {
        return Err(WebError::NotFound);
    }
    let query = parse_form(request.uri().query().unwrap_or("")).map_err(WebError::BadQuery)?;
    let url = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.decoded.clone());
    let (parts, body) = request.into_parts();
    let visitor = web.sessions.visitor(&parts);
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let cookies = parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .map(|c| (c.name().to_string(), c.value().to_string()))
        .collect();
    // The connection's peer; a router served otherwise may say it with `ConnectInfo`.
    let peer = crate::server::connection::peer().or_else(|| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer)
    });
    let ip = peer.map(|peer| {
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        client_ip::client_ip(peer.ip(), forwarded, &web.trusted_proxies).to_string()
    });
    let method = parts.method.as_str().to_string();
    let body = Bytes::from_request(Request::from_parts(parts, body), &()).await?;
    let page_url = web
        .public_url
        .as_ref()
        .map(|origin| format!("{origin}{url}"));
    let req = RouteRequest {
        method,
        path,
        page_url,
        url,
        query,
        headers,
        cookies,
        body,
        ip,
        visitor,
    };

    let permit = web
        .in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| WebError::Busy)?;
    let deadline = tokio::time::Instant::now() + web.route_timeout;
    let scripts = web.scripts.clone();
    // On a task of its own, so a client that hangs up cannot cut a Lua run in the middle;
    // the run stops itself at the deadline, and the task logs what happened even when the
    // answer is no longer awaited.
    let running = tokio::spawn(async move {
        let _permit = permit;
        let outcome = scripts.handle_route(&req, deadline).await;
        match &outcome {
            Err(e @ RouteError::TimedOut { .. }) => {
                tracing::warn!(status = 504, method = %req.method, path = %req.url, "{e}")
            }
            Err(RouteError::Script(e)) => {
                tracing::error!(status = 500, method = %req.method, path = %req.url, "route failed: {e}")
            }
            Ok(_) => {}
        }
        outcome
    });
    let outcome = match tokio::time::timeout_at(deadline, running).await {
        // The task logs the route's own line when its run stops, a moment later.
        Err(_) => return Err(WebError::TimedOut),
        Ok(Err(join)) => {
            tracing::error!(status = 500, "route task failed: {join}");
            return Err(WebError::Failed);
        }
        Ok(Ok(outcome)) => outcome,
    };
    match outcome {
        Ok(RouteOutcome::Answered { route, response }) => Ok(into_response(&route, response)),
        Ok(RouteOutcome::NotFound) => Err(WebError::NotFound),
        Ok(RouteOutcome::MethodNotAllowed { allow }) => Err(WebError::MethodNotAllowed { allow }),
        Err(RouteError::TimedOut { .. }) => Err(WebError::TimedOut),
        Err(RouteError::Script(_)) => Err(WebError::Failed),
    }
}

/// A route's answer as an HTTP response; `X-Content-Type-Options: nosniff` unless the route
/// set it, so a browser never runs a body as another type than the one declared.
fn into_response(route: &str, answer: RouteResponse) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        // Checked on the script side already; a header that still fails is dropped, said once.
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => tracing::warn!(route, "route header {name} dropped: not valid HTTP"),
        }
    }
    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(crate::script::bindings::web::HTML),
        );
    }
    if !headers.contains_key(X_CONTENT_TYPE_OPTIONS) {
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    }
    response
}
