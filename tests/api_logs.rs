//! Log hygiene: the access_token and the AppSecret never appear in log lines, and a
//! credentials problem is logged once. Alone in its binary because tracing's callsite
//! cache makes thread-local subscribers unreliable while other tests run in parallel.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use support::fake::{send, setup, SEND};

/// A `MakeWriter` collecting log output.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn log_lines_never_contain_the_token_or_the_secret() {
    let buf = Buf::default();
    let b2 = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || b2.clone())
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
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
        })
    });
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("WeChat"), "logs were captured: {logs}");
    assert!(!logs.contains(&token.0));
    assert!(!logs.contains("FAKE_ACCESS_TOKEN"));
    assert!(!logs.contains(&token.1));
    assert!(!logs.contains("access_token="));
    // The whitelist problem is logged once, not per call.
    let lines = logs.lines().filter(|l| l.contains("IP白名单")).count();
    assert_eq!(lines, 1, "{logs}");
}
