//! The life of a TCP connection: the accept loop, the cap on open connections, the deadlines
//! that close connections which send nothing useful (idle, a head that never completes, a body
//! that never arrives) and graceful shutdown.
//!
//! A connection is closed when, with no request in flight:
//! - its next request's head is not complete [`ConnectionLimits::header_timeout`] after the
//!   connection was accepted or after the first byte of that head arrived, or
//! - no byte has moved either way for [`ConnectionLimits::idle_timeout`] (an idle keep-alive
//!   connection, or a client that stopped reading its answer).
//!
//! While a request is in flight its handler's own deadline bounds it, and its body must arrive
//! within [`ConnectionLimits::body_timeout`] ([`body_deadline`]) or it is answered 408.
//! At [`ConnectionLimits::max_connections`] the loop stops accepting: further clients wait in
//! the kernel's listen backlog until a connection closes, while the open ones keep being served.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

pub use crate::config::ConnectionLimits;

/// First pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// Longest pause between `accept` attempts while they keep failing.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` within `limits` until `shutdown` completes; then stops
/// accepting, lets every open connection finish its requests in flight and returns once they
/// have all closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut backoff = AcceptBackoff::default();
    tokio::pin!(shutdown);
    loop {
        // A slot first, then the accept: at the cap the loop waits, and new clients queue in
        // the listen backlog instead of taking a descriptor each.
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed; nothing left to serve if it were
            },
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff.reset();
                accepted
            }
            Err(e) if is_connection_error(&e) => {
                // That client gave up before we took it: nothing wrong with the listener.
                tracing::debug!("accept: {e}");
                continue;
            }
            Err(e) => {
                let pause = backoff.next_pause();
                tracing::warn!(
                    "accept failed: {e}; pausing {} ms before accepting again",
                    pause.as_millis()
                );
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let router = router.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let activity = Arc::new(Activity::new(Instant::now()));
            let io = TokioIo::new(TrackedIo {
                inner: stream,
                activity: activity.clone(),
            });
            let in_service = activity.clone();
            let service = hyper::service::service_fn(
                move |request: axum::http::Request<hyper::body::Incoming>| {
                    let request_guard = in_service.begin_request();
                    let router = router.clone();
                    let (request, expired) = with_body_deadline(request, limits.body_timeout);
                    // The peer, for `req.ip` of web routes: a task-local rather than a request
                    // extension, whose map costs every request three allocations.
                    PEER.scope(peer, async move {
                        let response = router.oneshot(request).await;
                        drop(request_guard);
                        if expired.load(Ordering::Relaxed) {
                            return Ok(body_timed_out(limits.body_timeout));
                        }
                        response
                    })
                },
            );
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = watcher.watch(builder.serve_connection(io, service));
            tokio::select! {
                result = connection => {
                    if let Err(e) = result {
                        tracing::debug!("connection ended: {e}");
                    }
                }
                expired = expiry(&activity, &limits) => {
                    tracing::debug!("closing connection: {}", expired.describe(&limits));
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Errors of `accept` that concern one client, not the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Pauses after failed accepts, doubling from [`ACCEPT_BACKOFF_FIRST`] to
/// [`ACCEPT_BACKOFF_MAX`], so a listener out of file descriptors neither spins a core nor
/// floods the log (one line per pause).
#[derive(Debug, Default)]
struct AcceptBackoff {
    last: Option<Duration>,
}

impl AcceptBackoff {
    fn next_pause(&mut self) -> Duration {
        let pause = match self.last {
            None => ACCEPT_BACKOFF_FIRST,
            Some(last) => (last * 2).min(ACCEPT_BACKOFF_MAX),
        };
        self.last = Some(pause);
        pause
    }

    fn reset(&mut self) {
        self.last = None;
    }
}

/// Why a connection was closed by its deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    /// A request head did not complete in time.
    Header,
    /// Nothing moved for too long with nothing in flight.
    Idle,
}

impl Expired {
    fn describe(self, limits: &ConnectionLimits) -> String {
        match self {
            Expired::Header => format!(
                "request head not received within {} ms",
                limits.header_timeout.as_millis()
            ),
            Expired::Idle => format!("idle for {} ms", limits.idle_timeout.as_millis()),
        }
    }
}

/// What one connection is doing; written by its I/O and its service, read by its deadline.
/// A std mutex: each connection has its own, held for a few instructions and never across an
/// await.
struct Activity {
    state: Mutex<ActivityState>,
}

#[derive(Debug)]
struct ActivityState {
    /// Requests whose handler has not answered yet (HTTP/2 may have several).
    in_flight: usize,
    /// When the head of the next request started to be awaited: the accept, or its first byte
    /// on a kept-alive connection. `None` while a request is in flight or before the next
    /// request's first byte.
    head_started: Option<Instant>,
    /// When a byte last moved either way, or a handler last answered.
    last_activity: Instant,
}

impl Activity {
    fn new(accepted: Instant) -> Activity {
        Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                head_started: Some(accepted),
                last_activity: accepted,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bytes_read(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        state.last_activity = now;
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(now);
        }
    }

    fn bytes_written(&self) {
        self.lock().last_activity = Instant::now();
    }

    /// A request's head is complete and its handler starts.
    fn begin_request(self: &Arc<Self>) -> RequestGuard {
        let mut state = self.lock();
        state.in_flight += 1;
        state.head_started = None;
        RequestGuard(self.clone())
    }

    /// When and why the connection must close if nothing happens meanwhile; `None` while a
    /// request is in flight (the handler's deadline and the body deadline bound it).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Expired)> {
        let state = self.lock();
        if state.in_flight > 0 {
            return None;
        }
        let idle = (state.last_activity + limits.idle_timeout, Expired::Idle);
        Some(match state.head_started {
            Some(started) if started + limits.header_timeout < idle.0 => {
                (started + limits.header_timeout, Expired::Header)
            }
            _ => idle,
        })
    }
}

/// Counts a request as in flight until its handler has answered (or was cancelled).
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.last_activity = Instant::now();
    }
}

/// Completes when the connection's deadline passes. Deadlines only move later as things
/// happen, so sleeping until the current one and looking again is enough.
async fn expiry(activity: &Activity, limits: &ConnectionLimits) -> Expired {
    loop {
        match activity.deadline(limits) {
            Some((at, why)) if Instant::now() >= at => return why,
            Some((at, _)) => tokio::time::sleep_until(at).await,
            None => tokio::time::sleep(limits.header_timeout.min(limits.idle_timeout)).await,
        }
    }
}

/// A connection's socket that tells its [`Activity`] when bytes move.
struct TrackedIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.bytes_written();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.bytes_written();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

tokio::task_local! {
    /// The peer of the connection whose request the task is serving.
    static PEER: SocketAddr;
}

/// The address of the client connected to the request being served (the peer of its
/// connection), when [`serve`] is serving it; `None` for a router driven otherwise (`oneshot`).
pub fn peer() -> Option<SocketAddr> {
    PEER.try_with(|peer| *peer).ok()
}

/// When a request's head was complete: the reply deadline is counted from here, so reading
/// the body, checking the signature and the replay memory all come out of it.
///
/// Stamped when the handler's extractors run, which is as the head completes: hyper calls the
/// service once it has parsed the head and polls the handler at once, and a handler takes
/// `Arrived` before the body extractor that reads the body (axum runs the head's extractors
/// first).
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub tokio::time::Instant);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Arrived {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        _parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Arrived(tokio::time::Instant::now()))
    }
}

/// The request with a body that must arrive whole within `timeout` of the head, and the flag
/// that says it did not: the request is then answered 408 (and, its body unread, the
/// connection closed). The body is not buffered here: it is read, as before, only by handlers
/// that want it, after the signature check. Done on the connection rather than as a router
/// layer: every layer costs each request a few boxed futures and service clones.
fn with_body_deadline(
    request: axum::http::Request<Incoming>,
    timeout: Duration,
) -> (Request, Arc<AtomicBool>) {
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Instant::now() + timeout,
            timer: None,
            expired: expired.clone(),
        })
    });
    (request, expired)
}

/// The answer to a request whose body missed its deadline.
fn body_timed_out(timeout: Duration) -> Response {
    tracing::warn!(
        status = 408,
        "refused request: body not received within {} ms",
        timeout.as_millis()
    );
    (StatusCode::REQUEST_TIMEOUT, "Request Timeout").into_response()
}

/// The body did not arrive within its deadline.
#[derive(Debug, thiserror::Error)]
#[error("request body not received in time")]
pub struct BodyTimedOut;

/// A request body that fails once its deadline has passed, and says so through `expired`.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Armed the first time the body has to wait for bytes: a body that came with its head,
    /// as WeChat's do, needs no timer.
    timer: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.expired.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(BodyTimedOut.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10,
        }
    }

    #[test]
    fn accept_backoff_doubles_to_a_second_and_resets() {
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<u128> = (0..6).map(|_| backoff.next_pause().as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_pause(), ACCEPT_BACKOFF_FIRST);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_connection_through_a_request() {
        let limits = limits();
        let accepted = Instant::now();
        let activity = Arc::new(Activity::new(accepted));
        // A fresh connection must send its first head within the header timeout.
        assert_eq!(
            activity.deadline(&limits),
            Some((accepted + limits.header_timeout, Expired::Header))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        activity.bytes_read();
        let guard = activity.begin_request();
        assert_eq!(activity.deadline(&limits), None, "in flight: no deadline");
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(guard);
        let answered = Instant::now();
        // Kept alive with nothing to do: the idle timeout.
        assert_eq!(
            activity.deadline(&limits),
            Some((answered + limits.idle_timeout, Expired::Idle))
        );
        // A byte of the next head starts its header timeout.
        tokio::time::advance(Duration::from_secs(5)).await;
        activity.bytes_read();
        let first_byte = Instant::now();
        assert_eq!(
            activity.deadline(&limits),
            Some((first_byte + limits.header_timeout, Expired::Header))
        );
        // Trickling more bytes does not extend it.
        tokio::time::advance(Duration::from_secs(5)).await;
        activity.bytes_read();
        assert_eq!(
            activity.deadline(&limits),
            Some((first_byte + limits.header_timeout, Expired::Header))
        );
        assert_eq!(expiry(&activity, &limits).await, Expired::Header);
        assert_eq!(Instant::now(), first_byte + limits.header_timeout);
    }
}
