//! Capturing log output, for the tests that check what log lines never contain. A test that
//! uses it should be alone in its binary: tracing's callsite cache makes thread-local
//! subscribers unreliable while other tests run in parallel.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

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

/// Runs `work` on a runtime of its own with every log line down to TRACE captured; returns
/// its output and the log text.
pub fn capture<F: Future>(work: F) -> (F::Output, String) {
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
    let out = tracing::subscriber::with_default(subscriber, || rt.block_on(work));
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, logs)
}
