//! Connections over a real socket: idle, slow-head and slow-body clients are cut off by their
//! deadlines, the connection cap holds new clients back while open ones are served, and
//! shutdown returns once connections have drained.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::host::{echo_bot, test_config, test_state};
use support::{signed_query, text_xml};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use wechat_lua::config::ConnectionLimits;
use wechat_lua::script::RuntimeOptions;
use wechat_lua::server::run;

/// A server on 127.0.0.1:0 with `limits`; dropping `stop` (or sending) shuts it down.
struct TestServer {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
    _data: tempfile::TempDir,
}

async fn start(limits: ConnectionLimits) -> TestServer {
    let data = tempfile::tempdir().unwrap();
    let (mut state, _) = test_state(
        &test_config(data.path(), &[]),
        &echo_bot(),
        RuntimeOptions::default(),
        1,
    );
    state.limits = limits;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(run(listener, Arc::new(state), async {
        let _ = stopped.await;
    }));
    TestServer {
        addr,
        stop: Some(stop),
        done,
        _data: data,
    }
}

fn limits(header_ms: u64, body_ms: u64, idle_ms: u64, max_connections: usize) -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: Duration::from_millis(header_ms),
        body_timeout: Duration::from_millis(body_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        max_connections,
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

/// Reads one HTTP/1.1 response (head and a Content-Length body) from a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a whole response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length: usize = text[..head_end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + length {
                return text.into_owned();
            }
        }
    }
}

/// Waits for the server to close the connection; returns how long that took and what it sent.
async fn until_closed(stream: &mut TcpStream, at_most: Duration) -> (Duration, String) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(at_most, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("still open after {at_most:?}"),
        }
    }
    (
        started.elapsed(),
        String::from_utf8_lossy(&received).into_owned(),
    )
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = start(limits(2_000, 2_000, 400, 100)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(HEALTHZ).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    let (waited, sent) = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(sent, "");
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn a_partial_or_missing_head_is_cut_off_after_the_header_timeout() {
    let server = start(limits(300, 5_000, 5_000, 100)).await;
    // Half a head, never finished.
    let mut partial = TcpStream::connect(server.addr).await.unwrap();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    // A connection that sends nothing at all.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    for stream in [&mut partial, &mut silent] {
        let (waited, sent) = until_closed(stream, Duration::from_secs(4)).await;
        assert_eq!(sent, "", "no answer to an unfinished head");
        assert!(waited < Duration::from_secs(2), "closed after {waited:?}");
    }
    // Trickling the head a byte at a time does not extend the deadline.
    let mut trickle = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if trickle.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    if !closed {
        let (_, sent) = until_closed(&mut trickle, Duration::from_secs(2)).await;
        assert_eq!(sent, "");
    }
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_half_sent_body_is_answered_408_after_the_body_timeout() {
    let server = start(limits(2_000, 300, 5_000, 100)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let body = text_xml("u", "hi", 1);
    let head = format!(
        "POST /wechat?{} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        signed_query(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .unwrap();
    let started = Instant::now();
    let (waited, sent) = until_closed(&mut stream, Duration::from_secs(4)).await;
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    assert!(
        started.elapsed() >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "answered after {waited:?}"
    );

    // A whole body in time is answered as usual (a new delivery: a new signed query).
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /wechat?{} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        signed_query(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn at_the_cap_new_clients_wait_while_open_connections_are_served() {
    let server = start(limits(1_200, 5_000, 10_000, 2)).await;
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(HEALTHZ).await.unwrap();
    assert!(read_response(&mut kept).await.starts_with("HTTP/1.1 200"));
    // The second slot goes to a client that says nothing (closed by the header timeout).
    let silent_opened = Instant::now();
    let _silent = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A third client connects (the kernel's backlog takes it) but is not served yet.
    let mut waiting = TcpStream::connect(server.addr).await.unwrap();
    waiting.write_all(HEALTHZ).await.unwrap();
    let mut chunk = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(400), waiting.read(&mut chunk))
            .await
            .is_err(),
        "served beyond the cap"
    );
    // The connections already open still are.
    kept.write_all(HEALTHZ).await.unwrap();
    assert!(read_response(&mut kept).await.starts_with("HTTP/1.1 200"));

    // Once the silent client is cut off, the waiting one gets its slot and its answer.
    let answer = tokio::time::timeout(Duration::from_secs(5), read_response(&mut waiting))
        .await
        .expect("served once a slot freed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(silent_opened.elapsed() >= Duration::from_millis(1_000));
}

#[tokio::test]
async fn shutdown_stops_accepting_and_returns_once_connections_are_done() {
    let mut server = start(limits(10_000, 10_000, 60_000, 100)).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(HEALTHZ).await.unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    let _ = server.stop.take().unwrap().send(());
    // The idle kept-alive connection is closed at once rather than after its 60 s.
    let (waited, _) = until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    tokio::time::timeout(Duration::from_secs(5), &mut server.done)
        .await
        .expect("run returned")
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still accepting"
    );
}
