//! Log hygiene: the access_token and the AppSecret never appear in log lines, and a
//! credentials problem is logged once. Alone in its binary because tracing's callsite
//! cache makes thread-local subscribers unreliable while other tests run in parallel.

mod support;

use support::fake::{send, setup, SEND};

#[test]
fn log_lines_never_contain_the_token_or_the_secret() {
    let (token, logs) = support::logs::capture(async {
        let (fake, client) = setup().await;
        send(&client).await.unwrap();
        fake.invalidate_token();
        fake.fail_next(SEND, -1, 1);
        send(&client).await.unwrap();
        fake.fail_next(SEND, 45015, 1);
        let _ = send(&client).await;
        fake.fail_next("/cgi-bin/stable_token", 40164, 2);
        fake.invalidate_token();
        let _ = send(&client).await;
        let _ = send(&client).await;
        (fake.current_token().unwrap(), fake.secret())
    });
    assert!(logs.contains("WeChat"), "logs were captured: {logs}");
    assert!(!logs.contains(&token.0));
    assert!(!logs.contains("FAKE_ACCESS_TOKEN"));
    assert!(!logs.contains(&token.1));
    assert!(!logs.contains("access_token="));
    // The whitelist problem is logged once, not per call.
    let lines = logs.lines().filter(|l| l.contains("IP白名单")).count();
    assert_eq!(lines, 1, "{logs}");
}
