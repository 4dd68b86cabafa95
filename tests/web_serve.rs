//! `wx.route` pages on the real `wechat-lua serve` binary: a route saved into the scripts
//! appears without a restart, a removed one answers 404, static files are served, and the
//! peer address reaches `req.ip`.

mod support;

use std::time::{Duration, Instant};

use support::{http, Server, TOKEN};

/// Polls `url` until it answers `status` (a reload takes a moment after the save).
fn wait_for_status(url: &str, status: u16) -> (u16, String) {
    let start = Instant::now();
    loop {
        let (got, body) = http("GET", url, "");
        if got == status || start.elapsed() > Duration::from_secs(10) {
            return (got, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_saved_route_appears_and_a_removed_one_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("bot");
    std::fs::create_dir_all(scripts.join("public")).unwrap();
    std::fs::write(scripts.join("public/hi.txt"), "static hi").unwrap();
    std::fs::write(
        scripts.join("main.lua"),
        "wx.route('GET', '/ip', function(req) return req.ip end)\n",
    )
    .unwrap();
    let server = Server::start(
        dir.path(),
        &["--scripts", "bot"],
        &[("WECHAT_TOKEN", TOKEN)],
    );
    let base = server.base.clone();
    assert_eq!(
        http("GET", &format!("{base}/ip"), ""),
        (200, "127.0.0.1".into())
    );
    assert_eq!(
        http("GET", &format!("{base}/public/hi.txt"), ""),
        (200, "static hi".into())
    );
    assert_eq!(http("GET", &format!("{base}/hello/ann"), "").0, 404);

    std::fs::write(
        scripts.join("main.lua"),
        "wx.route('GET', '/ip', function(req) return req.ip end)\n\
         wx.route('GET', '/hello/:name', function(req) return 'hello ' .. req.params.name end)\n",
    )
    .unwrap();
    assert_eq!(
        wait_for_status(&format!("{base}/hello/ann"), 200),
        (200, "hello ann".into()),
        "the new route is served after the save"
    );

    std::fs::write(
        scripts.join("main.lua"),
        "wx.route('GET', '/hello/:name', function(req) return 'hi ' .. req.params.name end)\n",
    )
    .unwrap();
    assert_eq!(
        wait_for_status(&format!("{base}/ip"), 404).0,
        404,
        "removed"
    );
    assert_eq!(
        http("GET", &format!("{base}/hello/bo"), ""),
        (200, "hi bo".into())
    );

    // A broken save keeps the last good routes.
    std::fs::write(
        scripts.join("main.lua"),
        "wx.route('GET', '/healthz', print)\n",
    )
    .unwrap();
    assert!(
        server.wait_for_log(
            "/healthz is served by the host itself",
            Duration::from_secs(10)
        ),
        "{:?}",
        server.log.lock().unwrap()
    );
    assert_eq!(
        http("GET", &format!("{base}/hello/cy"), ""),
        (200, "hi cy".into())
    );
    assert_eq!(server.terminate().code(), Some(0));
}
