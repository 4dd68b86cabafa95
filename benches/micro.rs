//! Micro benchmarks of one message's path through the host, piece by piece: the signature
//! check, XML parsing, reply rendering, safe-mode crypto, Lua dispatch (a state alone and
//! borrowed from `LuaPool`'s pool), a handler using `wx.store`, one using `wx.http` against a
//! loopback server, the whole router in process (no TCP), and the embedded store's calls.
//!
//! `cargo bench --bench micro` (a few minutes at most); `docs/benchmarks.md` says what each
//! figure means and which targets they are held to. Under `cargo test --all-targets` criterion
//! runs each routine once, so setup here stays light (one Lua state, one worker).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wechat_lua::config::{Config, Overrides};
use wechat_lua::net::{HttpSettings, Rules};
use wechat_lua::protocol::crypto::MessageCrypto;
use wechat_lua::protocol::message::InboundMessage;
use wechat_lua::protocol::reply::Reply;
use wechat_lua::protocol::signature;
use wechat_lua::script::runtime::LuaRuntime;
use wechat_lua::script::{LuaPool, RuntimeOptions, ScriptSources, Services};
use wechat_lua::server::{self, AppState};

const TOKEN: &str = "benchtoken";
const TIMESTAMP: &str = "1700000000";
const NONCE: &str = "1234567890";
/// A valid EncodingAESKey (43 characters), the one from WeChat's own sample.
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APPID: &str = "wx0123456789abcdef";

/// The typical message: a user's short text.
const TEXT_XML: &[u8] = include_bytes!("../tests/fixtures/messages/text.xml");
/// The largest fixture: a mass-send report with nested copyright-check results.
const LARGE_EVENT_XML: &[u8] =
    include_bytes!("../tests/fixtures/messages/event_masssendjobfinish.xml");

fn echo_bot() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/echo.lua")
}

fn text_message() -> InboundMessage {
    InboundMessage::parse(TEXT_XML).expect("the text fixture parses")
}

fn text_reply() -> Reply {
    Reply::Text {
        content: "this is a test".into(),
    }
}

fn protocol(c: &mut Criterion) {
    let received = signature::sign(&[TOKEN, TIMESTAMP, NONCE]);
    c.bench_function("signature/verify", |b| {
        b.iter(|| signature::verify(black_box(&[TOKEN, TIMESTAMP, NONCE]), black_box(&received)))
    });

    let mut parse = c.benchmark_group("parse");
    parse.throughput(Throughput::Bytes(TEXT_XML.len() as u64));
    parse.bench_function("text", |b| {
        b.iter(|| InboundMessage::parse(black_box(TEXT_XML)))
    });
    parse.throughput(Throughput::Bytes(LARGE_EVENT_XML.len() as u64));
    parse.bench_function("event_masssendjobfinish", |b| {
        b.iter(|| InboundMessage::parse(black_box(LARGE_EVENT_XML)))
    });
    parse.finish();

    let reply = text_reply();
    c.bench_function("render/text", |b| {
        b.iter(|| {
            black_box(&reply).render(black_box("fromUser"), black_box("toUser"), 1_700_000_000)
        })
    });

    // What the host itself does for a plaintext message, Lua aside: one target is < 5 µs.
    c.bench_function("host_overhead/plain_text", |b| {
        b.iter(|| {
            let ok = signature::verify(&[TOKEN, TIMESTAMP, black_box(NONCE)], &received);
            let msg = InboundMessage::parse(black_box(TEXT_XML)).ok();
            let to = msg.as_ref().map_or("", |m| m.from_user.as_str());
            let from = msg.as_ref().map_or("", |m| m.to_user.as_str());
            (ok, reply.render(to, from, 1_700_000_000))
        })
    });

    let crypto = MessageCrypto::new(AES_KEY, APPID).expect("the sample key is valid");
    let inbound = crypto.encrypt(std::str::from_utf8(TEXT_XML).expect("fixture is UTF-8"));
    let reply_xml = reply.render("fromUser", "toUser", 1_700_000_000);
    // Safe mode adds, per message: decrypt the request, encrypt the reply, sign it.
    c.bench_function("crypto/decrypt_encrypt_text", |b| {
        b.iter(|| {
            let plain = crypto.decrypt(black_box(&inbound)).ok();
            let encrypt = crypto.encrypt(black_box(&reply_xml));
            let msg_signature = signature::sign(&[TOKEN, TIMESTAMP, NONCE, &encrypt]);
            (plain, msg_signature)
        })
    });
}

fn lua(c: &mut Criterion) {
    let options = RuntimeOptions::default();
    let msg = text_message();
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");

    // Lua alone: one state on this thread, no channel.
    let sources = Arc::new(ScriptSources::read(&echo_bot()).expect("examples/echo.lua reads"));
    let services = Services::in_memory().expect("an in-memory store");
    let runtime = LuaRuntime::load(sources, &options, &Arc::new(services.clone()))
        .expect("examples/echo.lua loads");
    c.bench_function("lua/runtime_handle_text", |b| {
        b.iter_custom(|iters| {
            current.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let handled = runtime.handle(black_box(&msg)).await;
                    assert!(matches!(handled, Ok(ref h) if h.reply.is_some()));
                }
                started.elapsed()
            })
        })
    });

    // The same through `LuaPool`: the message cloned, a state borrowed from the pool and
    // given back. The difference to the one above is what the pool costs.
    let host = LuaPool::start(&echo_bot(), options.clone(), 1, services.clone())
        .expect("examples/echo.lua starts");
    c.bench_function("lua/pool_handle_text", |b| {
        b.iter_custom(|iters| {
            current.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let handled = host.handle(black_box(msg.clone())).await;
                    assert!(matches!(handled, Ok(ref h) if h.reply.is_some()));
                }
                started.elapsed()
            })
        })
    });

    // A handler that counts in `wx.store` (the embedded SQLite store, in memory): what a
    // store round trip adds to a message.
    let store_bot = tempfile::tempdir().expect("a scratch scripts dir");
    std::fs::write(
        store_bot.path().join("main.lua"),
        "wx.on('text', function(msg) return 'n=' .. wx.store.incr('bench') end)\n",
    )
    .expect("the store bot is written");
    let store_host = LuaPool::start(store_bot.path(), options.clone(), 1, services.clone())
        .expect("the store bot starts");
    c.bench_function("lua/store_incr_text", |b| {
        b.iter_custom(|iters| {
            current.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let handled = store_host.handle(black_box(msg.clone())).await;
                    assert!(matches!(handled, Ok(ref h) if h.reply.is_some()));
                }
                started.elapsed()
            })
        })
    });

    // One `wx.http.get` to a loopback server in the handler. The server runs on the same
    // current-thread runtime, so the wall time is all the CPU the message costs, the
    // server's minimal handler included (an upper bound on what the host adds); the
    // connection is kept alive between messages, as reqwest pools it. Minus
    // `pool_handle_text` ≈ one `wx.http` call.
    let upstream = current.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        let app = axum::Router::new().route("/ok", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    });
    let http_bot = tempfile::tempdir().expect("a scratch scripts dir");
    std::fs::write(
        http_bot.path().join("main.lua"),
        format!(
            "wx.on('text', function(msg) return 'n=' .. assert(wx.http.get('{upstream}/ok')).body end)\n"
        ),
    )
    .expect("the http bot is written");
    let loopback = HttpSettings {
        rules: Rules {
            allow: vec!["127.0.0.1".parse().expect("a host rule")],
            deny: Vec::new(),
        },
        ..HttpSettings::default()
    };
    let http_host = LuaPool::start(
        http_bot.path(),
        options.clone(),
        1,
        services.clone().with_http(loopback),
    )
    .expect("the http bot starts");
    c.bench_function("lua/http_get_text", |b| {
        b.iter_custom(|iters| {
            current.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let handled = http_host.handle(black_box(msg.clone())).await;
                    assert!(
                        matches!(handled, Ok(ref h) if h.reply == Some(Reply::Text { content: "n=ok".into() }))
                    );
                }
                started.elapsed()
            })
        })
    });

    // The whole router in process: query parsing and the signature extractor, the handler,
    // the Lua hop, rendering and the response body; everything of a request except TCP and
    // HTTP/1 framing.
    let data = tempfile::tempdir().expect("a scratch data dir");
    let overrides = Overrides {
        data: Some(data.path().to_path_buf()),
        ..Default::default()
    };
    let env = [("WECHAT_TOKEN".to_string(), TOKEN.to_string())].into();
    let config = Config::load_with_env(&overrides, &env).expect("bench config");
    let state = Arc::new(AppState::new(&config, host, &services).expect("state"));
    let app = server::app(state);
    // Every request a new message: the same MsgId twice is a retry, answered from memory.
    let text = std::str::from_utf8(TEXT_XML).expect("utf-8 fixture");
    let mut msg_id = 0u64;
    // Every request a new signed query too: the host refuses one it has seen (a replay).
    // Signing is done before the timer starts; it is the sender's work, not the host's.
    let mut next_uri = {
        let timestamp = now_secs();
        let mut nonce = 0u64;
        move || {
            nonce += 1;
            let nonce = nonce.to_string();
            let signature = signature::sign(&[TOKEN, &timestamp, &nonce]);
            format!(
                "{}?signature={signature}&timestamp={timestamp}&nonce={nonce}&openid=fromUser",
                server::CALLBACK_PATH
            )
        }
    };
    c.bench_function("router/plain_text", |b| {
        b.iter_custom(|iters| {
            let requests: Vec<_> = (0..iters)
                .map(|_| {
                    msg_id += 1;
                    let body = text.replace("1234567890123456", &msg_id.to_string());
                    Request::post(next_uri())
                        .body(Body::from(body))
                        .expect("a valid request")
                })
                .collect();
            current.block_on(async {
                let started = Instant::now();
                for request in requests {
                    let response = app.clone().oneshot(request).await.expect("infallible");
                    assert!(response.status().is_success());
                    let body = response.into_body().collect().await.expect("a body");
                    black_box(body.to_bytes());
                }
                started.elapsed()
            })
        })
    });
}

/// `wx.store`'s backend alone: one `incr`, `set` and `get` on the embedded SQLite store in a
/// file (WAL, as `serve` opens it), awaited on a current-thread runtime. The target is at
/// most 10 µs each; `lua/store_incr_text` minus `lua/pool_handle_text` is the same call
/// seen from a script.
fn store(c: &mut Criterion) {
    use wechat_lua::store::{SqliteStore, Store};
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a scratch data dir");
    let store = SqliteStore::open(&dir.path().join("bench.db")).expect("the store opens");
    let mut group = c.benchmark_group("store");
    group.bench_function("sqlite_incr", |b| {
        b.iter(|| current.block_on(store.incr(black_box("bench:n"), 1)))
    });
    // A new value each time: SQLite skips writing a row rewritten with the same bytes, which
    // would leave out the WAL append every real write pays.
    let mut n = 0_u64;
    group.bench_function("sqlite_set", |b| {
        b.iter(|| {
            n += 1;
            current.block_on(store.set(black_box("bench:s"), &n.to_string(), None))
        })
    });
    group.bench_function("sqlite_get", |b| {
        b.iter(|| current.block_on(store.get(black_box("bench:s"))))
    });
    group.finish();
}

fn now_secs() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        .to_string()
}

fn quick() -> Criterion {
    // Short runs: every routine here takes microseconds, so 2 s gives tight intervals.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = micro;
    config = quick();
    targets = protocol, lua, store
}
criterion_main!(micro);
