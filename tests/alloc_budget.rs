//! Heap allocations per message: a budget CI enforces.
//!
//! What the connection does before the router (the arrival stamp, the body deadline, hyper's
//! own buffers) is outside this count: `oneshot` starts at the router.
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
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use support::host::{echo_bot, test_config, test_router};
use support::{fresh_nonce, now, sign, signed_query_at, text_xml, TOKEN};
use tower::ServiceExt;
use wechat_lua::protocol::crypto::MessageCrypto;

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
const PLAIN_TEXT_BUDGET: f64 = 35.0; // 104.1 when first set; 65.2, 48.2, 51.2 with the handler back on a task of its own (cheaper in CPU: docs/benchmarks.md), 49.3 without axum's unused request extensions, 47.3, 46.3 with the message shared with its task, then 40.3 with values as views into the body (39.3 in a release build), 36.3 with the query borrowed, 35.3 with the retry channel made only for a retry, 34.3 with the handler's arguments passed straight
/// The same in safe mode: decrypting the request, encrypting and signing the reply.
const SAFE_TEXT_BUDGET: f64 = 48.0; // 126.1 when first set; 80.2, 63.2, 66.2, 64.3, 62.3, 61.3, then 54.3 with values as views into the body (53.3 in a release build), 49.3 with the query borrowed, 48.3 with the retry channel made only for a retry, 47.3 with the handler's arguments passed straight
/// An event no handler takes (answered `success`).
const EVENT_NO_REPLY_BUDGET: f64 = 23.0; // 82.0 when first set; 51.0, 33.0, 36.0, 33.0, 32.0, 31.0, then 26.0 with values as views into the body (25.0 in a release build), 23.0 with the query borrowed, 22.0 with the retry channel made only for a retry

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
    eprintln!(
        "allocations per message: plain text {plain_text:.1}, safe text {safe_text:.1}, \
         event without reply {event:.1}"
    );

    let over: Vec<String> = [
        ("plain text", plain_text, PLAIN_TEXT_BUDGET),
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
