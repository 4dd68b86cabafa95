//! Log hygiene of the jsapi_ticket: neither the ticket nor the access_token it is fetched
//! with appears in a log line, through a fetch, a refetch after the access_token was
//! rejected, and a failed refresh ahead of expiry. Alone in its binary because tracing's
//! callsite cache makes thread-local subscribers unreliable while other tests run in parallel.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::fake::setup_with;
use wechat_lua::api::ticket::GETTICKET_PATH;
use wechat_lua::api::token::ManualClock;

#[test]
fn log_lines_never_contain_the_ticket_or_the_token() {
    let ((tickets, token), logs) = support::logs::capture(async {
        let clock = Arc::new(ManualClock::default());
        let c2 = clock.clone();
        let (fake, client) = setup_with(|cfg| cfg.clock = c2).await;
        let follower = fake.add_followers(1).remove(0);
        // getticket meets a rejected access_token: the token is replaced, the ticket
        // fetched with the new one.
        client.access_token().await.unwrap();
        fake.invalidate_token();
        let mut tickets = vec![client.jsapi_ticket().await.unwrap()];
        // Another call meets a rejected access_token: the ticket is fetched again.
        fake.invalidate_token();
        client.user().info(&follower, "zh_CN").await.unwrap();
        tickets.push(client.jsapi_ticket().await.unwrap());
        assert_eq!(fake.ticket_fetches(), 2);
        // A refresh ahead of expiry that fails is logged with its error.
        clock.advance(Duration::from_secs(7000));
        fake.fail_next(GETTICKET_PATH, 40097, 1);
        client.refresh_jsapi_ticket_if_due().await;
        tickets.push(client.jsapi_ticket().await.unwrap());
        (tickets, fake.current_token().unwrap())
    });
    assert!(
        logs.contains("refreshing jsapi_ticket ahead of expiry failed"),
        "logs were captured: {logs}"
    );
    assert!(logs.contains("fetched a new ticket"), "{logs}");
    for t in &tickets {
        assert!(!logs.contains(t.as_str()), "{logs}");
    }
    assert!(!logs.contains("FAKE_JSAPI_TICKET"), "{logs}");
    assert!(!logs.contains(&token), "{logs}");
    assert!(!logs.contains("FAKE_ACCESS_TOKEN"), "{logs}");
    assert!(!logs.contains("access_token="), "{logs}");
}
