//! Spinning handlers cannot starve the HTTP side: with more spinning handlers than the
//! runtime has workers, `/healthz` still answers promptly, because a running handler yields
//! its worker every time slice. Its own test binary, so no other test shares the cores.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::host::{test_config, test_state};
use support::{signed_query, text_xml};
use wechat_lua::script::RuntimeOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_spinning_handlers_outnumber_the_workers() {
    let scripts = tempfile::tempdir().unwrap();
    std::fs::write(
        scripts.path().join("main.lua"),
        "wx.on(\"text\", function() while true do pcall(function() while true do end end) end end)\n",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let options = RuntimeOptions {
        run_limit: Duration::from_secs(4),
        ..Default::default()
    };
    let (state, _) = test_state(&test_config(data.path(), &[]), scripts.path(), options, 2);
    let state = Arc::new(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(wechat_lua::server::run(
        listener,
        state,
        std::future::pending::<()>(),
    ));

    let client = reqwest::Client::new();
    let spinning: Vec<_> = (1..=4)
        .map(|id| {
            let request = client
                .post(format!("{base}/wechat?{}", signed_query()))
                .body(text_xml("u", "spin", id))
                .send();
            tokio::spawn(request)
        })
        .collect();
    // Both handlers are running (and spinning) well before this.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let status = client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(100),
        "/healthz took {slowest:?} while four handlers spun on two workers"
    );
    for request in spinning {
        // Answered `success` at the reply deadline; the handlers are stopped at their limit.
        assert_eq!(request.await.unwrap().unwrap().status(), 200);
    }
}
