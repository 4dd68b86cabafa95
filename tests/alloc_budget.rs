//! Heap allocations per message: a budget CI enforces.
//!
//! Most cases start at the router (`oneshot`); one sends plaintext messages over a kept-alive
//! TCP connection to `connection::serve`, so what the connection adds (hyper's head parsing
//! and buffers, the body deadline) is counted too.
//!
//! Timing is noisy on shared machines; allocation counts are not. Each case sends messages
//! through the whole Router (`server::app` with `oneshot`: query parsing, the signature and
//! replay checks, parsing, dedup, the deadline, the Lua call, rendering, the response body)
//! with `examples/echo.lua`, after a warm-up, and counts every allocation the process makes
//! (all threads: the store's worker thread included). Requests are built before counting, so
//! only the host's work is counted; collecting the response body is counted (a few
//! allocations, the same in every case).
//!
//! The budgets sit just above the counts measured when each was set. A change that adds
//! allocations to the hot path fails here with the new count; raise a budget on purpose,
//! saying why in the commit, or better, lower it when the count goes down.
//!
//! One `#[test]` on purpose: the counter is process-wide, so cases must not run in parallel.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use support::host::{echo_bot, test_config, test_router};
use support::{fresh_nonce, now, sign, signed_query_at, text_xml, TOKEN};
use tower::ServiceExt;
use wechat_lua::protocol::crypto::MessageCrypto;
use wechat_lua::server::connection::{serve, ConnectionLimits};

/// Counts allocations (and reallocations, which allocate) of the whole process.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Messages sent before counting (pool, maps and Lua strings warm) and while counting.
const WARM_UP: usize = 300;
const COUNTED: usize = 2000;

// Budgets, allocations per message (measured when set: see each case).
/// A plaintext text message answered with a text reply.
const PLAIN_TEXT_BUDGET: f64 = 34.0; // 104.1 when first set; 65.2, 48.2, 51.2 with the handler back on a task of its own (cheaper in CPU: docs/benchmarks.md), 49.3 without axum's unused request extensions, 47.3, 46.3 with the message shared with its task, then 40.3 with values as views into the body (39.3 in a release build), 36.3 with the query borrowed, 35.3 with the retry channel made only for a retry, 34.3 with the handler's arguments passed straight, 33.2 with timers armed only for a handler that waits
/// The plaintext text message over a kept-alive TCP connection: the router's work and the
/// connection's (hyper's head parsing and read buffer, the body's deadline and box).
const PLAIN_TEXT_OVER_TCP_BUDGET: f64 = 38.0; // 41.2 when first set, 37.2 with the arrival stamped by its extractor, the peer in a task-local and the body boxed once
/// The same in safe mode: decrypting the request, encrypting and signing the reply.
const SAFE_TEXT_BUDGET: f64 = 47.0; // 126.1 when first set; 80.2, 63.2, 66.2, 64.3, 62.3, 61.3, then 54.3 with values as views into the body (53.3 in a release build), 49.3 with the query borrowed, 48.3 with the retry channel made only for a retry, 47.3 with the handler's arguments passed straight, 46.2 with timers armed only for a handler that waits
/// An event no handler takes (answered `success`).
const EVENT_NO_REPLY_BUDGET: f64 = 22.0; // 82.0 when first set; 51.0, 33.0, 36.0, 33.0, 32.0, 31.0, then 26.0 with values as views into the body (25.0 in a release build), 23.0 with the query borrowed, 22.0 with the retry channel made only for a retry, 21.0 with timers armed only for a handler that waits

const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APPID: &str = "wxb11529c136998cb6";

/// One request, built before counting.
struct Prepared {
    uri: String,
    body: String,
}

fn plain_text(i: usize) -> Prepared {
    let query = signed_query_at(TOKEN, now(), &fresh_nonce());
    Prepared {
        uri: format!("/wechat?{query}&openid=user{}", i % 50),
        body: text_xml(&format!("user{}", i % 50), "hello", 1_000_000 + i as u64),
    }
}

/// [`plain_text`] with MsgIds of its own: the router that answered those remembers them in
/// its retry cache and would answer them from it without running Lua.
fn plain_text_again(i: usize) -> Prepared {
    plain_text(i + WARM_UP + COUNTED)
}

fn unhandled_event(i: usize) -> Prepared {
    let query = signed_query_at(TOKEN, now(), &fresh_nonce());
    // Events carry no MsgId: FromUserName + CreateTime tell them apart, so each gets its own.
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[user{}]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[unsubscribe]]></Event></xml>",
        i % 50,
        1_700_000_000 + i
    );
    Prepared {
        uri: format!("/wechat?{query}"),
        body,
    }
}

fn safe_text(i: usize) -> Prepared {
    let crypto = MessageCrypto::new(AES_KEY, APPID).expect("the sample key");
    let encrypt = crypto.encrypt(&text_xml(
        &format!("user{}", i % 50),
        "hello",
        2_000_000 + i as u64,
    ));
    let ts = now().to_string();
    let nonce = fresh_nonce();
    let signature = sign(&[TOKEN, &ts, &nonce]);
    let msg_signature = sign(&[TOKEN, &ts, &nonce, &encrypt]);
    Prepared {
        uri: format!(
            "/wechat?signature={signature}&timestamp={ts}&nonce={nonce}&openid=user{}&encrypt_type=aes&msg_signature={msg_signature}",
            i % 50
        ),
        body: format!(
            "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ),
    }
}

/// Sends `WARM_UP` then `COUNTED` prepared requests; returns allocations per counted one.
/// Every answer must be a 200 containing `expect`.
async fn allocations_per_message(
    router: &axum::Router,
    make: fn(usize) -> Prepared,
    expect: &str,
) -> f64 {
    let requests: Vec<Request<Body>> = (0..WARM_UP + COUNTED)
        .map(|i| {
            let p = make(i);
            Request::post(p.uri)
                .body(Body::from(p.body))
                .expect("a valid request")
        })
        .collect();
    let mut requests = requests.into_iter();
    for request in requests.by_ref().take(WARM_UP) {
        send(router, request, expect).await;
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for request in requests {
        send(router, request, expect).await;
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    (after - before) as f64 / COUNTED as f64
}

/// Sends one request; the answer must be a 200 containing `expect`.
async fn send(router: &axum::Router, request: Request<Body>, expect: &str) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    assert!(
        status.is_success() && body.windows(expect.len()).any(|w| w == expect.as_bytes()),
        "{status} {}",
        String::from_utf8_lossy(&body)
    );
}

/// Sends `WARM_UP` then `COUNTED` prepared requests over one kept-alive TCP connection to
/// `connection::serve`; returns allocations per counted one. The client is a thread of its
/// own that allocates nothing while counting: requests are built before, answers are read
/// into one buffer. Every answer must be a 200 containing `expect`.
async fn allocations_per_message_over_tcp(
    router: axum::Router,
    make: fn(usize) -> Prepared,
    expect: &'static str,
) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ConnectionLimits {
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        max_connections: 4,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router, limits, async {
        let _ = stopped.await;
    }));
    let requests: Vec<Vec<u8>> = (0..WARM_UP + COUNTED)
        .map(|i| {
            let p = make(i);
            format!(
                "POST {} HTTP/1.1\r\nhost: test\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\r\n{}",
                p.uri,
                p.body.len(),
                p.body
            )
            .into_bytes()
        })
        .collect();
    let client = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut buffer = vec![0u8; 64 * 1024];
        let mut before = 0;
        for (i, request) in requests.iter().enumerate() {
            if i == WARM_UP {
                before = ALLOCATIONS.load(Ordering::Relaxed);
            }
            stream.write_all(request).expect("write");
            let answer = read_answer(&mut stream, &mut buffer);
            assert!(
                answer.starts_with(b"HTTP/1.1 200") && find(answer, expect.as_bytes()).is_some(),
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
        ALLOCATIONS.load(Ordering::Relaxed) - before
    });
    let counted = tokio::task::spawn_blocking(move || client.join())
        .await
        .expect("the client's thread")
        .expect("the client ran");
    let _ = stop.send(());
    server.await.expect("the server").expect("served");
    counted as f64 / COUNTED as f64
}

/// One HTTP/1.1 answer (its head and its `content-length` body) read whole into `buffer`,
/// without allocating.
fn read_answer<'b>(stream: &mut std::net::TcpStream, buffer: &'b mut [u8]) -> &'b [u8] {
    let mut got = 0;
    loop {
        let n = stream.read(&mut buffer[got..]).expect("read");
        assert!(n > 0, "the server closed the connection");
        got += n;
        let Some(end) = find(&buffer[..got], b"\r\n\r\n") else {
            continue;
        };
        let head = &buffer[..end];
        let at = find(head, b"content-length: ").expect("a content-length") + 16;
        let length = head[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0, |n, d| n * 10 + usize::from(d - b'0'));
        if got >= end + 4 + length {
            return &buffer[..end + 4 + length];
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn allocations_per_message_stay_within_budget() {
    let plain_data = tempfile::tempdir().unwrap();
    let plain = test_router(&test_config(plain_data.path(), &[]), &echo_bot());
    let safe_data = tempfile::tempdir().unwrap();
    let safe = test_router(
        &test_config(
            safe_data.path(),
            &[
                ("WECHAT_AES_KEY", AES_KEY),
                ("WECHAT_APPID", APPID),
                ("WECHAT_MODE", "safe"),
            ],
        ),
        &echo_bot(),
    );

    let plain_text =
        allocations_per_message(&plain, plain_text, "<Content><![CDATA[hello]]>").await;
    let safe_text = allocations_per_message(&safe, safe_text, "<Encrypt>").await;
    let event = allocations_per_message(&plain, unhandled_event, "success").await;
    let plain_tcp =
        allocations_per_message_over_tcp(plain, plain_text_again, "<Content><![CDATA[hello]]>")
            .await;
    eprintln!(
        "allocations per message: plain text {plain_text:.1}, safe text {safe_text:.1}, \
         event without reply {event:.1}, plain text over TCP {plain_tcp:.1}"
    );

    let over: Vec<String> = [
        ("plain text", plain_text, PLAIN_TEXT_BUDGET),
        ("plain text over TCP", plain_tcp, PLAIN_TEXT_OVER_TCP_BUDGET),
        ("safe text", safe_text, SAFE_TEXT_BUDGET),
        ("event without reply", event, EVENT_NO_REPLY_BUDGET),
    ]
    .iter()
    .filter(|(_, count, budget)| count > budget)
    .map(|(case, count, budget)| {
        format!("{case}: {count:.1} allocations per message, budget {budget}")
    })
    .collect();
    assert!(over.is_empty(), "over the allocation budget: {over:#?}");
}
