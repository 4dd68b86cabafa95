//! `wx.http` against local axum servers: scripts in a `LuaPool` (loopback allowed by the
//! test's `[http]` settings) make real requests; the refusals (private addresses, redirects to
//! them), `too_large`, timeouts, DNS failures, caps and a late reply through the real binary.

mod support;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::AppendHeaders;
use axum::routing::{any, get};
use axum::Router;
use support::text_xml;
use tempfile::TempDir;
use wechat_lua::net::{HttpClient, HttpSettings, OutboundRequest, Rules};
use wechat_lua::protocol::message::InboundMessage;
use wechat_lua::protocol::reply::Reply;
use wechat_lua::script::runtime::Handled;
use wechat_lua::script::{LuaPool, RuntimeOptions, ScriptError, Services};

static MSG_ID: AtomicU64 = AtomicU64::new(1);

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    /// Bodies and content types POSTed to `/echo`.
    posts: Mutex<Vec<(String, String)>>,
    /// Requests in `/concurrent` right now, and the most at once.
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

/// An upstream on 127.0.0.1:0 with one route per case; its base URL.
async fn upstream() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let app = Router::new()
        .route(
            "/echo",
            any(move |headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move {
                    let ct = headers
                        .get(CONTENT_TYPE)
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default();
                    let text = String::from_utf8(body.to_vec()).unwrap();
                    s.posts.lock().unwrap().push((text, ct));
                    ([(CONTENT_TYPE, "application/json")], body)
                }
            }),
        )
        .route(
            "/missing",
            get(|| async {
                (
                    StatusCode::NOT_FOUND,
                    AppendHeaders([
                        ("set-cookie", "a=1"),
                        ("set-cookie", "b=2"),
                        ("X-Mixed-Case", "v"),
                    ]),
                    Bytes::from_static(b"\0\xffgone"),
                )
            }),
        )
        .route("/text", get(|| async { "this is not json" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/big", get(|| async { vec![b'x'; 100_000] }))
        .route(
            "/stream",
            get(|| async {
                let chunks =
                    (0..100).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'y'; 1000])));
                Body::from_stream(futures::stream::iter(chunks))
            }),
        )
        .route(
            "/to-metadata",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(LOCATION, "http://169.254.169.254/latest/meta-data")],
                )
            }),
        )
        .route(
            "/to-denied",
            get(|| async { (StatusCode::FOUND, [(LOCATION, "http://localhost/")]) }),
        )
        .route(
            "/loop",
            get(|| async { (StatusCode::FOUND, [(LOCATION, "/loop")]) }),
        )
        .route(
            "/hop",
            get(|| async { (StatusCode::FOUND, [(LOCATION, "/text")]) }),
        );
    let s = seen.clone();
    let app = app.route(
        "/concurrent",
        get(move || {
            let s = s.clone();
            async move {
                let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                s.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                s.in_flight.fetch_sub(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

/// `[http]` settings letting scripts reach the test's loopback servers.
fn loopback_allowed() -> HttpSettings {
    HttpSettings {
        rules: Rules {
            allow: vec!["127.0.0.1".parse().unwrap()],
            deny: vec!["localhost".parse().unwrap()],
        },
        ..HttpSettings::default()
    }
}

fn start_host(main: &str, services: Services) -> (TempDir, Arc<LuaPool>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.lua"), main).unwrap();
    let host =
        LuaPool::start(dir.path(), RuntimeOptions::default(), 1, services).expect("scripts load");
    (dir, host)
}

async fn handle(host: &LuaPool, content: &str) -> Result<Handled, ScriptError> {
    let xml = text_xml("oUSER", content, MSG_ID.fetch_add(1, Ordering::Relaxed));
    host.handle(InboundMessage::parse(xml.as_bytes()).unwrap())
        .await
}

async fn ask(host: &LuaPool, content: &str) -> String {
    match handle(host, content).await {
        Ok(Handled {
            reply: Some(Reply::Text { content }),
            ..
        }) => content,
        other => panic!("{content}: unexpected {other:?}"),
    }
}

/// Cases chosen by the first word of the message; the rest is the upstream's base URL.
const MAIN: &str = r#"
local cases = {}
local function failed(resp, err)
    if resp then return "status " .. resp.status end
    return err.kind .. "|" .. err.url .. "|" .. err.message
end

cases.post = function(base)
    local resp, err = wx.http.post(base .. "/echo?k=v", {
        nested = {1, {2, {3}}}, none = wx.json.null, empty = wx.json.array{},
        list = {wx.json.null, "x"}, n = 1.5, i = 7,
    })
    if not resp then return failed(resp, err) end
    local back = resp:json()
    assert(#back.list == 2 and back.list[1] == wx.json.null)
    return resp.status .. " " .. resp.headers["content-type"] .. " " .. wx.json.encode(back)
end

cases.missing = function(base)
    local resp = assert(wx.http.get(base .. "/missing"))
    return table.concat({resp.status, resp.headers["set-cookie"], resp.headers["x-mixed-case"],
        tostring(resp.body == "\0\255gone")}, "|")
end

cases.notjson = function(base)
    local resp = assert(wx.http.get(base .. "/text"))
    local v = resp:json()
    return "unreachable"
end

cases.pcalljson = function(base)
    local resp = assert(wx.http.get(base .. "/text"))
    local ok, e = pcall(resp.json, resp)
    return tostring(ok) .. " " .. tostring(e)
end

cases.get = function(url, opts) return failed(wx.http.request{url = url, timeout = tonumber(opts)}) end
cases.big = function(base) return failed(wx.http.get(base .. "/big", {max_bytes = 1000})) end
cases.stream = function(base) return failed(wx.http.get(base .. "/stream", {max_bytes = 50000})) end
cases.slow = function(base) return failed(wx.http.get(base .. "/slow", {timeout = 0.3})) end
cases.hop = function(base)
    local resp = assert(wx.http.get(base .. "/hop"))
    return resp.status .. " " .. resp.body
end
cases.form = function(base)
    local resp = assert(wx.http.request{method = "put", url = base .. "/echo",
        form = {b = "x y", a = 1}, query = {z = "1"}})
    return resp.body
end
cases.concurrent = function(base) return failed(wx.http.get(base .. "/concurrent")) end

cases.mistake = function(which)
    local mistakes = {
        option = function() return wx.http.request{url = "http://x.test/", retries = 3} end,
        crlf = function() return wx.http.get("http://x.test/", {headers = {["x-a"] = "1\r\nx-b: 2"}}) end,
        method = function() return wx.http.request{url = "http://x.test/", method = "GE T"} end,
        scheme = function() return wx.http.get("file:///etc/passwd") end,
        type = function() return wx.http.get(42) end,
        timeout = function() return wx.http.get("http://x.test/", {timeout = 61}) end,
        several = function() return wx.http.request{url = "http://x.test/", body = "a", json = {}} end,
        sparse = function() return wx.http.post("http://x.test/", {1, nil, 3}) end,
    }
    return mistakes[which]()
end

wx.on("text", function(msg)
    local name, rest, extra = msg.content:match("^(%S+) (%S+) ?(%S*)$")
    return cases[name](rest, extra)
end)
"#;

async fn setup() -> (String, Arc<Seen>, Arc<LuaPool>, TempDir) {
    let (base, seen) = upstream().await;
    let services = Services::in_memory().unwrap().with_http(loopback_allowed());
    let (dir, host) = start_host(MAIN, services);
    (base, seen, host, dir)
}

#[tokio::test]
async fn a_json_post_round_trips_nested_arrays_null_and_an_empty_array() {
    let (base, seen, host, _dir) = setup().await;
    let expected =
        r#"{"empty":[],"i":7,"list":[null,"x"],"n":1.5,"nested":[1,[2,[3]]],"none":null}"#;
    assert_eq!(
        ask(&host, &format!("post {base}")).await,
        format!("200 application/json {expected}")
    );
    let posts = seen.posts.lock().unwrap().clone();
    assert_eq!(
        posts,
        vec![(expected.to_string(), "application/json".to_string())]
    );
    let metrics = wechat_lua::metrics::metrics().render();
    assert!(
        metrics.contains(r#"wechat_lua_http_requests_total{host="127.0.0.1",outcome="2xx"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn any_status_is_a_response_with_joined_lower_case_headers_and_exact_bytes() {
    let (base, seen, host, _dir) = setup().await;
    assert_eq!(
        ask(&host, &format!("missing {base}")).await,
        "404|a=1, b=2|v|true"
    );
    // A redirect to an allowed place is followed; forms and queries are encoded, sorted.
    assert_eq!(
        ask(&host, &format!("hop {base}")).await,
        "200 this is not json"
    );
    assert_eq!(ask(&host, &format!("form {base}")).await, "a=1&b=x+y");
    let posts = seen.posts.lock().unwrap().clone();
    assert_eq!(posts[0].1, "application/x-www-form-urlencoded");
}

#[tokio::test]
async fn resp_json_on_a_body_that_is_not_json_raises_at_the_scripts_line() {
    let (base, _seen, host, _dir) = setup().await;
    let err = handle(&host, &format!("notjson {base}")).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("main.lua:27: resp:json(): the body is not JSON: expected ident at byte 2"),
        "{text}"
    );
    let caught = ask(&host, &format!("pcalljson {base}")).await;
    assert!(
        caught.starts_with("false ")
            && caught.contains("main.lua:33: resp:json(): the body is not JSON"),
        "{caught}"
    );
}

#[tokio::test]
async fn private_and_loopback_addresses_are_refused_by_default() {
    let (base, _seen) = upstream().await;
    let services = Services::in_memory().unwrap();
    let (_dir, host) = start_host(MAIN, services);
    let port = base.rsplit(':').next().unwrap();
    for (url, class) in [
        (format!("{base}/text"), "127.0.0.1 is a loopback address"),
        (
            "http://10.0.0.1/".to_string(),
            "10.0.0.1 is a private address",
        ),
        ("http://[::1]:1/".to_string(), "::1 is a loopback address"),
        (
            format!("http://localhost:{port}/text"),
            "a loopback address; list the host in [http] allow",
        ),
    ] {
        let out = ask(&host, &format!("get {url}")).await;
        assert!(out.starts_with("denied|"), "{url}: {out}");
        assert!(out.contains(class), "{url}: {out}");
    }
}

#[tokio::test]
async fn redirects_to_refused_addresses_and_endless_redirects_fail() {
    let (base, _seen, host, _dir) = setup().await;
    let out = ask(&host, &format!("get {base}/to-metadata")).await;
    assert!(out.starts_with(&format!("denied|{base}/to-metadata|redirect to http://169.254.169.254/latest/meta-data refused: 169.254.169.254 is a link-local address")), "{out}");
    let out = ask(&host, &format!("get {base}/to-denied")).await;
    assert!(
        out.contains("denied by [http] deny rule `localhost`"),
        "{out}"
    );
    let out = ask(&host, &format!("get {base}/loop")).await;
    assert!(out.starts_with("redirect|"), "{out}");
    assert!(out.contains("more than 5 redirects"), "{out}");
}

#[tokio::test]
async fn a_body_over_max_bytes_is_too_large_whether_announced_or_streamed() {
    let (base, _seen, host, _dir) = setup().await;
    let out = ask(&host, &format!("big {base}")).await;
    assert!(out.starts_with("too_large|"), "{out}");
    assert!(out.contains("larger than max_bytes (1000)"), "{out}");
    let out = ask(&host, &format!("stream {base}")).await;
    assert!(out.starts_with("too_large|"), "{out}");
}

#[tokio::test]
async fn a_timeout_shorter_than_the_servers_delay_is_a_timeout() {
    let (base, _seen, host, _dir) = setup().await;
    let started = std::time::Instant::now();
    let out = ask(&host, &format!("slow {base}")).await;
    assert!(out.starts_with(&format!("timeout|{base}/slow|")), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_a_dns_error_and_a_bad_url_is_invalid_url() {
    let (_base, _seen, host, _dir) = setup().await;
    let out = ask(&host, "get http://no-such-host.invalid/x?key=secret").await;
    assert!(
        out.starts_with("dns|http://no-such-host.invalid/x|"),
        "{out}"
    );
    assert!(!out.contains("secret"), "{out}");
    let out = ask(&host, "get http://exa[mple/").await;
    assert!(out.starts_with("invalid_url|"), "{out}");
}

#[tokio::test]
async fn a_closed_port_is_connect_and_tls_to_a_plain_server_is_tls() {
    let (base, _seen, host, _dir) = setup().await;
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let out = ask(&host, &format!("get http://127.0.0.1:{port}/")).await;
    assert!(out.starts_with("connect|"), "{out}");
    let https = base.replace("http://", "https://");
    let out = ask(&host, &format!("get {https}/text")).await;
    assert!(out.starts_with("tls|"), "{out}");
}

#[tokio::test]
async fn script_mistakes_raise_at_the_scripts_line() {
    let (_base, _seen, host, _dir) = setup().await;
    for (which, message) in [
        ("option", "wx.http.request: unknown option `retries`"),
        ("crlf", "wx.http.get: header `x-a` contains a line break"),
        (
            "method",
            "wx.http.request: method `GE T` is not an HTTP method name",
        ),
        (
            "scheme",
            "wx.http.get: url must be http:// or https://, not file:",
        ),
        ("type", "wx.http.get: url must be a string, not a number"),
        (
            "timeout",
            "wx.http.get: timeout must be a number of seconds in (0, 60], not 61",
        ),
        ("several", "give one of body, json and form"),
        ("sparse", "wx.http.post: json is a sparse array"),
    ] {
        let err = handle(&host, &format!("mistake {which}"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&"main.lua:".to_string()), "{which}: {err}");
        assert!(err.contains(message), "{which}: {err}");
    }
}

/// Starts `n` GETs of `/concurrent` at once through `client`, each with the per-worker cap
/// `worker(i)` gives it; waits for all of them.
async fn concurrent_calls(
    base: &str,
    client: &Arc<HttpClient>,
    n: usize,
    worker: impl Fn(usize) -> Arc<tokio::sync::Semaphore>,
) {
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let client = client.clone();
            let worker = worker(i);
            let url = format!("{base}/concurrent").parse().unwrap();
            tokio::spawn(async move {
                let request = OutboundRequest {
                    method: reqwest::Method::GET,
                    url,
                    headers: Default::default(),
                    body: None,
                    timeout: Duration::from_secs(10),
                    max_bytes: 1024,
                };
                client.send(&worker, request).await.unwrap().status
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn calls_beyond_the_per_worker_cap_wait_for_a_slot() {
    let (base, seen) = upstream().await;
    let client = Arc::new(HttpClient::new(HttpSettings {
        max_requests_per_worker: 2,
        ..loopback_allowed()
    }));
    // All from one Lua state: its cap binds.
    let one_state = client.worker_slots();
    concurrent_calls(&base, &client, 6, |_| one_state.clone()).await;
    assert_eq!(seen.most.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn calls_beyond_the_process_cap_wait_for_a_slot() {
    let (base, seen) = upstream().await;
    let client = Arc::new(HttpClient::new(HttpSettings {
        max_requests: 3,
        ..loopback_allowed()
    }));
    // Each from its own Lua state: only the process cap binds.
    let c = client.clone();
    concurrent_calls(&base, &client, 8, move |_| c.worker_slots()).await;
    assert_eq!(seen.most.load(Ordering::SeqCst), 3);
}

/// Through the real binary: a handler waiting on a slow upstream past `reply_timeout` is
/// answered `success` in time, and its reply goes out later through customer service.
#[test]
fn a_slow_wx_http_call_past_the_reply_timeout_is_delivered_late_through_customer_service() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let slow_base = runtime.block_on(async {
        let app = Router::new().route(
            "/answer",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(2500)).await;
                r#"{"answer": 42}"#
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    });
    let api = support::FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    std::fs::write(
        dir.path().join("scripts/main.lua"),
        format!(
            r#"wx.on("text", function(msg)
    local resp = assert(wx.http.get("{slow_base}/answer?key=secret123"))
    return "upstream says " .. resp:json().answer
end)
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("wechat-lua.toml"),
        "reply_timeout = 1.0\n[http]\nallow = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    let mut env = api.env();
    env.push(("RUST_LOG", "info,wechat_lua::net=debug".to_string()));
    let server = support::Server::start(dir.path(), &[], &support::env_refs(&env));
    let started = std::time::Instant::now();
    let (status, body) = server.post(&text_xml("slowuser", "hello", 7001));
    assert_eq!((status, body.as_str()), (200, "success"));
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
    let kf = "/cgi-bin/message/custom/send";
    assert!(
        api.wait_for_calls(kf, 1, Duration::from_secs(15)),
        "late reply delivered"
    );
    let sends = api.fake.calls_to(kf);
    let body = sends[0].body.clone().unwrap();
    assert_eq!(body["touser"], "slowuser");
    assert_eq!(body["text"]["content"], "upstream says 42");
    // One debug line for the call: method, host, status, time, bytes; never the query.
    assert!(server.wait_for_log("wx.http", Duration::from_secs(5)));
    let log = server.log.lock().unwrap().join("\n");
    let line = log.lines().find(|l| l.contains("wx.http")).unwrap();
    for part in [
        "method=GET",
        "host=\"127.0.0.1\"",
        "status=200",
        "ms=",
        "bytes=14",
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    assert!(!log.contains("secret123"), "{log}");
}
