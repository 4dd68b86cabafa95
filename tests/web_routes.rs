//! `wx.route` pages driven through the Router with `oneshot`: what a handler gets in `req`,
//! what it may return, the deadline, the sign-in hook, static files, and bad input answered
//! with a short 4xx while `/wechat` keeps working.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use support::host::{test_config, test_state};
use support::{element, signed_query, text_xml};
use tower::ServiceExt;
use wechat_lua::script::{LuaPool, RuntimeOptions, Services};
use wechat_lua::server::app;
use wechat_lua::web::{Sessions, Visitor, Web};

/// A bot directory with `main.lua` and, optionally, files under `public/`.
fn bot(main: &str, public: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.lua"), main).unwrap();
    for (name, text) in public {
        let path = dir.path().join("public").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

struct Site {
    router: axum::Router,
    _data: tempfile::TempDir,
}

fn site_with(
    scripts: &Path,
    env: &[(&str, &str)],
    options: RuntimeOptions,
    workers: usize,
    sessions: Option<Arc<dyn Sessions>>,
) -> Site {
    let data = tempfile::tempdir().unwrap();
    let config = test_config(data.path(), env);
    let (mut state, pool) = test_state(&config, scripts, options, workers);
    if let Some(sessions) = sessions {
        state.web = Arc::new(Web::new(&config, pool).with_sessions(sessions));
    }
    Site {
        router: app(Arc::new(state)),
        _data: data,
    }
}

fn site(scripts: &Path) -> Site {
    site_with(scripts, &[], RuntimeOptions::default(), 1, None)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn request(site: &Site, request: Request<Body>) -> Answer {
    let resp = site.router.clone().oneshot(request).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(site: &Site, uri: &str) -> Answer {
    request(site, Request::get(uri).body(Body::empty()).unwrap()).await
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

const PAGES: &str = r#"
wx.route("GET", "/", function(req) return "<h1>home</h1>" end)
wx.route("GET", "/hello/:name", function(req)
    return "<p>hello " .. wx.web.escape(req.params.name) .. "</p>"
end)
wx.route("POST", "/made", function(req)
    return {status = 201, headers = {["X-Id"] = 7, ["Set-Cookie"] = {"a=1", "b=2"}}, body = "made"}
end)
wx.route("GET", "/api/status", function(req) return {json = {ok = true, n = 2}} end)
wx.route("GET", "/old", function(req) return wx.web.redirect("/new") end)
wx.route("GET", "/moved", function(req) return wx.web.redirect("https://example.com/x", 301) end)
"#;

#[tokio::test]
async fn a_string_is_a_page_and_tables_set_status_headers_json_or_a_redirect() {
    let dir = bot(PAGES, &[]);
    let site = site(dir.path());

    let home = get(&site, "/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert_eq!(header(&home, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&home, "x-content-type-options"), "nosniff");
    assert_eq!(home.body, "<h1>home</h1>");

    let hello = get(&site, "/hello/%3Cb%3E%26").await;
    assert_eq!(hello.body, "<p>hello &lt;b&gt;&amp;</p>", "escaped capture");

    let made = request(&site, Request::post("/made").body(Body::empty()).unwrap()).await;
    assert_eq!(made.status, StatusCode::CREATED);
    assert_eq!(header(&made, "x-id"), "7");
    let cookies: Vec<_> = made.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"], "a list is a repeated header");
    assert_eq!(made.body, "made");

    let json = get(&site, "/api/status").await;
    assert_eq!(header(&json, "content-type"), "application/json");
    let value: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(value, serde_json::json!({"ok": true, "n": 2}));

    let metrics = get(&site, "/metrics").await.body;
    assert!(
        metrics.contains(r#"wechat_lua_web_requests_total{status="201"}"#),
        "{metrics}"
    );

    let old = get(&site, "/old").await;
    assert_eq!(old.status, StatusCode::FOUND);
    assert_eq!(header(&old, "location"), "/new");
    let moved = get(&site, "/moved").await;
    assert_eq!(moved.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(header(&moved, "location"), "https://example.com/x");
}

const ECHO_REQUEST: &str = r#"
wx.route("*", "/echo/:id/*rest", function(req)
    local json, json_err = req:json()
    local form, form_err = req:form()
    return {json = {
        method = req.method, path = req.path, url = req.url,
        query = req.query, query_all = req.query_all,
        agent = req.headers["user-agent"], accept = req.headers["accept"],
        cookies = req.cookies, body = req.body,
        params = req.params, ip = req.ip or "none", openid = req.openid or "none",
        json = json or json_err, form = form or form_err,
    }}
end)
"#;

async fn echo(site: &Site, request_: Request<Body>) -> serde_json::Value {
    let answer = request(site, request_).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    serde_json::from_str(&answer.body).unwrap()
}

#[tokio::test]
async fn the_request_table_has_every_field() {
    let dir = bot(ECHO_REQUEST, &[]);
    let site = site(dir.path());
    let seen = echo(
        &site,
        Request::post("/echo/a%2Fb/x/y%20z?q=1&tag=a&tag=b&sp=a+b")
            .header("User-Agent", "Test/1")
            .header("Accept", "text/html")
            .header("Accept", "application/json")
            .header("Cookie", "sid=abc; theme=dark")
            .header("Cookie", "sid=later")
            .body(Body::from(r#"{"n": "100%"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/echo/a/b/x/y z", "decoded");
    assert_eq!(seen["url"], "/echo/a%2Fb/x/y%20z?q=1&tag=a&tag=b&sp=a+b");
    assert_eq!(
        seen["params"]["id"], "a/b",
        "an encoded / stays in its capture"
    );
    assert_eq!(seen["params"]["rest"], "x/y z");
    assert_eq!(seen["query"]["q"], "1");
    assert_eq!(seen["query"]["tag"], "b", "the last of repeated keys");
    assert_eq!(seen["query"]["sp"], "a b");
    assert_eq!(seen["query_all"]["tag"], serde_json::json!(["a", "b"]));
    assert_eq!(seen["agent"], "Test/1");
    assert_eq!(seen["accept"], "text/html, application/json");
    assert_eq!(
        seen["cookies"]["sid"], "abc",
        "the first of repeated cookies"
    );
    assert_eq!(seen["cookies"]["theme"], "dark");
    assert_eq!(seen["body"], r#"{"n": "100%"}"#);
    assert_eq!(seen["json"], serde_json::json!({"n": "100%"}));
    assert!(
        seen["form"].as_str().unwrap().starts_with("req:form(): "),
        "{seen}"
    );
    assert_eq!(seen["ip"], "none", "no socket under oneshot");
    assert_eq!(seen["openid"], "none");

    let seen = echo(
        &site,
        Request::put("/echo/1")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(Body::from("a=1&b=%E4%BD%A0+x"))
            .unwrap(),
    )
    .await;
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["params"]["rest"], "", "*rest may be empty");
    assert_eq!(seen["form"], serde_json::json!({"a": "1", "b": "你 x"}));
    assert!(seen["json"]
        .as_str()
        .unwrap()
        .starts_with("req:json(): not JSON"));
}

fn from_peer(uri: &str, peer: &str, forwarded: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(uri);
    if let Some(forwarded) = forwarded {
        builder = builder.header("X-Forwarded-For", forwarded);
    }
    let mut req = builder.body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    req
}

#[tokio::test]
async fn req_ip_believes_x_forwarded_for_only_from_trusted_proxies() {
    let dir = bot(ECHO_REQUEST, &[]);
    let direct = site(dir.path());
    let seen = echo(
        &direct,
        from_peer("/echo/1", "203.0.113.5:4000", Some("1.2.3.4")),
    )
    .await;
    assert_eq!(
        seen["ip"], "203.0.113.5",
        "a client cannot claim another address"
    );

    let behind_proxy = site_with(
        dir.path(),
        &[("WECHAT_TRUSTED_PROXIES", "127.0.0.1")],
        RuntimeOptions::default(),
        1,
        None,
    );
    let seen = echo(
        &behind_proxy,
        from_peer("/echo/1", "127.0.0.1:5000", Some("6.6.6.6, 198.51.100.7")),
    )
    .await;
    assert_eq!(seen["ip"], "198.51.100.7", "the address the proxy appended");
    let seen = echo(
        &behind_proxy,
        from_peer("/echo/1", "203.0.113.5:4000", Some("198.51.100.7")),
    )
    .await;
    assert_eq!(
        seen["ip"], "203.0.113.5",
        "not from the proxy: header ignored"
    );
}

#[tokio::test]
async fn the_first_matching_route_answers_and_others_are_404_or_405() {
    let dir = bot(
        r#"
        wx.route("GET", "/orders/new", function() return "form" end)
        wx.route("GET", "/orders/:id", function(req) return "order " .. req.params.id end)
        wx.route("POST", "/orders/:id", function(req) return "updated " .. req.params.id end)
        wx.route("DELETE", "/gone", function() return "deleted" end)
        "#,
        &[],
    );
    let site = site(dir.path());
    assert_eq!(get(&site, "/orders/new").await.body, "form");
    assert_eq!(get(&site, "/orders/42").await.body, "order 42");
    let head = request(
        &site,
        Request::head("/orders/42").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK, "GET routes answer HEAD");
    let missing = get(&site, "/orders/42/items").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body, "not found");
    assert_eq!(get(&site, "/orders/").await.status, StatusCode::NOT_FOUND);
    let wrong = get(&site, "/gone").await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&wrong, "allow"), "DELETE");
    let put = request(
        &site,
        Request::put("/orders/1").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&put, "allow"), "GET, HEAD, POST");
}

#[tokio::test]
async fn a_failing_route_is_a_500_without_details_and_the_next_request_is_served() {
    let dir = bot(
        r#"
        wx.route("GET", "/boom", function() error("secret detail") end)
        wx.route("GET", "/nothing", function() end)
        wx.route("GET", "/number", function() return 42 end)
        wx.route("GET", "/typo", function() return {stauts = 200} end)
        wx.route("GET", "/bad-header", function() return {headers = {["x-a"] = "1\r\nx-b: 2"}} end)
        wx.route("GET", "/late", function() wx.route("GET", "/x", function() end) return "no" end)
        wx.route("GET", "/ok", function() return "ok" end)
        "#,
        &[],
    );
    let site = site(dir.path());
    for path in [
        "/boom",
        "/nothing",
        "/number",
        "/typo",
        "/bad-header",
        "/late",
    ] {
        let answer = get(&site, path).await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(
            answer.body, "internal error",
            "{path}: no file:line or message"
        );
        assert_eq!(header(&answer, "content-type"), "text/plain; charset=utf-8");
        assert_eq!(get(&site, "/ok").await.body, "ok", "after {path}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_route_past_route_timeout_is_a_504_and_the_next_request_is_served() {
    let dir = bot(
        r#"
        wx.route("GET", "/slow", function() wx.sleep(60) return "late" end)
        wx.route("GET", "/ok", function() return "ok" end)
        "#,
        &[],
    );
    let site = site_with(
        dir.path(),
        &[("WECHAT_ROUTE_TIMEOUT", "2")],
        RuntimeOptions::default(),
        2,
        None,
    );
    let started = tokio::time::Instant::now();
    let slow = get(&site, "/slow").await;
    assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(slow.body, "the page took too long");
    assert!(started.elapsed() <= Duration::from_secs(2) + Duration::from_millis(50));
    assert_eq!(get(&site, "/ok").await.body, "ok");
}

#[tokio::test]
async fn a_spinning_route_is_stopped_and_wechat_keeps_answering_meanwhile() {
    let dir = bot(
        r#"
        wx.route("GET", "/spin", function() while true do end end)
        wx.on("text", function(msg) return "still here" end)
        "#,
        &[],
    );
    let options = RuntimeOptions {
        run_limit: Duration::from_millis(300),
        ..RuntimeOptions::default()
    };
    let site = Arc::new(site_with(dir.path(), &[], options, 2, None));
    let spinning = tokio::spawn({
        let site = site.clone();
        async move { get(&site, "/spin").await.status }
    });
    let reply = request(
        &site,
        Request::post(format!("/wechat?{}", signed_query()))
            .body(Body::from(text_xml("u1", "hi", 1)))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        element(&reply.body, "Content").as_deref(),
        Some("still here")
    );
    assert_eq!(spinning.await.unwrap(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn bad_input_is_a_short_4xx() {
    let dir = bot(
        r#"
        wx.route("*", "/*rest", function(req) return "caught " .. req.path end)
        "#,
        &[],
    );
    let site = site(dir.path());
    let big = request(
        &site,
        Request::post("/upload")
            .body(Body::from(vec![b'x'; 1024 * 1024 + 1]))
            .unwrap(),
    )
    .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(big.body, "Payload Too Large");

    let query = get(&site, "/page?a=%zz").await;
    assert_eq!(query.status, StatusCode::BAD_REQUEST);
    assert!(query.body.starts_with("bad query string"), "{}", query.body);
    let query = get(&site, "/page?a=%FF").await;
    assert_eq!(query.status, StatusCode::BAD_REQUEST);

    let path = get(&site, "/caf%FF").await;
    assert_eq!(path.status, StatusCode::BAD_REQUEST);
    assert_eq!(path.body, "bad path: not UTF-8 once decoded");

    let odd = request(
        &site,
        Request::builder()
            .method("BREW")
            .uri("/pot")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(odd.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(odd.body, "method not allowed");

    // The host's own paths never reach a script, even one that takes every path.
    for own in ["/oauth/login", "/wechat/other", "/public/x.js"] {
        let answer = get(&site, own).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{own}");
        assert!(!answer.body.contains("caught"), "{own}");
    }
    let ready = get(&site, "/readyz").await;
    assert_eq!(
        ready.status,
        StatusCode::OK,
        "the host answers its own /readyz"
    );
    assert!(ready.body.contains("ready"), "{}", ready.body);
    assert_eq!(
        get(&site, "/anything/else").await.body,
        "caught /anything/else"
    );
}

#[tokio::test]
async fn host_paths_and_bad_routes_are_located_errors_at_load() {
    for (main, expected) in [
        (
            "wx.route('GET', '/healthz', function() end)",
            "main.lua:1: wx.route(\"GET\", \"/healthz\"): /healthz is served by the host itself",
        ),
        (
            "\nwx.route('POST', '/oauth/callback', function() end)",
            "main.lua:2: wx.route(\"POST\", \"/oauth/callback\"): /oauth is served by the host",
        ),
        ("wx.route('GET', '/wechat', function() end)", "main.lua:1:"),
        (
            "wx.route('GET', '/public/*f', function() end)",
            "main.lua:1:",
        ),
        (
            "wx.route('FETCH', '/x', function() end)",
            "main.lua:1: wx.route: `FETCH` is not a method",
        ),
        (
            "wx.route('GET', 'x', function() end)",
            "main.lua:1: wx.route(\"GET\", \"x\"): the path must start with /",
        ),
        (
            "wx.route('GET', '/x', 'page')",
            "main.lua:1: wx.route(\"GET\", \"/x\", fn): fn must be a function, not a string",
        ),
        (
            "wx.route('GET', '/x', function() end)\nwx.route('get', '/x', function() end)",
            "main.lua:2: wx.route: GET /x is already registered at /",
        ),
    ] {
        let dir = bot(main, &[]);
        let error = LuaPool::start(
            dir.path(),
            RuntimeOptions::default(),
            1,
            Services::in_memory().unwrap(),
        )
        .err()
        .unwrap_or_else(|| panic!("{main} loaded"))
        .to_string();
        assert!(error.contains(expected), "{main}: {error}");
    }
}

/// Signs in whoever sends `Cookie: who=<openid>`; a stand-in for the signed session cookie.
struct CookieSessions;

impl Sessions for CookieSessions {
    fn visitor(&self, request: &Parts) -> Option<Visitor> {
        let cookie = request.headers.get("cookie")?.to_str().ok()?;
        let openid = cookie.strip_prefix("who=")?;
        Some(Visitor {
            openid: openid.to_string(),
            unionid: None,
        })
    }
}

#[tokio::test]
async fn require_login_redirects_to_sign_in_and_a_session_fills_req_openid() {
    let dir = bot(
        r#"
        wx.route("GET", "/orders", function(req)
            local login = wx.web.require_login(req)
            if login then return login end
            return "orders of " .. req.openid
        end)
        "#,
        &[],
    );
    let site = site_with(
        dir.path(),
        &[],
        RuntimeOptions::default(),
        1,
        Some(Arc::new(CookieSessions)),
    );
    let anonymous = get(&site, "/orders?page=2").await;
    assert_eq!(anonymous.status, StatusCode::FOUND);
    assert_eq!(
        header(&anonymous, "location"),
        "/oauth/login?next=%2Forders%3Fpage%3D2"
    );
    let signed_in = request(
        &site,
        Request::get("/orders")
            .header("Cookie", "who=o_user_1")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(signed_in.body, "orders of o_user_1");
}

#[tokio::test]
async fn public_files_have_types_and_etags_and_stay_inside_public() {
    let dir = bot(
        "wx.route('GET', '/*rest', function() return 'route' end)\n-- secret script",
        &[("app.js", "console.log(1)"), ("css/site.css", "body{}")],
    );
    let site = site(dir.path());
    let js = get(&site, "/public/app.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(js.body, "console.log(1)");
    assert!(
        header(&js, "content-type").starts_with("text/javascript"),
        "{:?}",
        js.headers
    );
    let etag = header(&js, "etag").to_string();
    assert!(etag.starts_with("W/\""), "{etag}");
    let css = get(&site, "/public/css/site.css").await;
    assert!(header(&css, "content-type").starts_with("text/css"));

    let again = request(
        &site,
        Request::get("/public/app.js")
            .header("If-None-Match", &etag)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(again.body, "");
    let changed = request(
        &site,
        Request::get("/public/app.js")
            .header("If-None-Match", "W/\"other\"")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK);

    for escape in [
        "/public/../main.lua",
        "/public/%2e%2e/main.lua",
        "/public/..%2fmain.lua",
        "/public/css/../../main.lua",
    ] {
        let answer = get(&site, escape).await;
        assert!(!answer.body.contains("secret script"), "{escape} escaped");
        assert!(
            answer.status.is_client_error(),
            "{escape}: {}",
            answer.status
        );
    }
    assert_eq!(
        get(&site, "/public/missing.js").await.status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn check_counts_routes_and_names_a_reserved_path_with_its_line() {
    let good = bot(
        "wx.route('GET', '/', function() return 'home' end)\nwx.on('text', function() end)\n",
        &[],
    );
    let report = wechat_lua::commands::check::check(good.path());
    assert!(
        report
            .summary()
            .ends_with("1 script, 1 handler, 1 route, 0 errors, 0 warnings"),
        "{report}"
    );
    let bad = bot("\n\nwx.route('GET', '/metrics', function() end)\n", &[]);
    let report = wechat_lua::commands::check::check(bad.path()).to_string();
    assert!(report.contains("main.lua:3"), "{report}");
    assert!(
        report.contains("/metrics is served by the host itself"),
        "{report}"
    );
}

#[tokio::test]
async fn a_method_the_hosts_own_paths_do_not_take_is_a_plain_405() {
    let dir = bot("", &[]);
    let site = site(dir.path());
    for path in ["/wechat", "/healthz", "/metrics"] {
        let answer = request(&site, Request::delete(path).body(Body::empty()).unwrap()).await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(answer.body, "method not allowed", "{path}");
    }
    let answer = request(&site, Request::put("/wechat").body(Body::empty()).unwrap()).await;
    assert!(
        header(&answer, "allow").contains("POST"),
        "{:?}",
        answer.headers
    );
}

#[tokio::test(start_paused = true)]
async fn past_the_cap_on_routes_running_a_request_is_a_503_and_messages_still_run() {
    let dir = bot(
        r#"
        wx.route("GET", "/slow", function() wx.sleep(5) return "done" end)
        wx.on("text", function() return "message answered" end)
        "#,
        &[],
    );
    let data = tempfile::tempdir().unwrap();
    let config = test_config(data.path(), &[]);
    let (mut state, pool) = test_state(&config, dir.path(), RuntimeOptions::default(), 3);
    state.web = Arc::new(Web::new(&config, pool).with_route_cap(2));
    let site = Arc::new(Site {
        router: app(Arc::new(state)),
        _data: data,
    });
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let site = site.clone();
            tokio::spawn(async move { get(&site, "/slow").await.body })
        })
        .collect();
    // Let both take their place and start sleeping (no time passes meanwhile).
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    let third = get(&site, "/slow").await;
    assert_eq!(third.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(third.body, "busy, try again");
    let reply = request(
        &site,
        Request::post(format!("/wechat?{}", signed_query()))
            .body(Body::from(text_xml("u1", "hi", 7)))
            .unwrap(),
    )
    .await;
    assert_eq!(
        element(&reply.body, "Content").as_deref(),
        Some("message answered")
    );
    for task in slow {
        assert_eq!(task.await.unwrap(), "done");
    }
    assert_eq!(
        get(&site, "/slow").await.body,
        "done",
        "places are given back"
    );
}
