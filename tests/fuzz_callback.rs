//! Fuzzing the callback's whole request path: `POST /wechat` with generated query strings and
//! bodies, driven through `server::app(state)` with `tower::ServiceExt::oneshot`, in plain and
//! safe mode.
//!
//! A proptest rather than a cargo-fuzz target, so it needs no nightly toolchain and runs with
//! every `cargo test`, bounded: [`CASES`] cases per property (a few seconds in a debug build;
//! set `FUZZ_CALLBACK_CASES` for a longer run). Three properties:
//! - any query and body: never a panic, never a 5xx, an answer within [`ANSWER_WITHIN`];
//! - a correctly signed plaintext message, mutated: the same, and only 200 or 400;
//! - a safe-mode envelope with a correct `msg_signature` around a mutated plaintext or a
//!   mutated ciphertext: 200, or exactly the one answer every post-signature failure gets.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::sample::Index;
use support::host::{echo_bot, test_config, test_router};
use support::{now, sign, TOKEN};
use tower::ServiceExt;
use wechat_lua::protocol::crypto::MessageCrypto;
use wechat_lua::server::error::UNREADABLE_SEALED;

/// The EncodingAESKey and AppID of the WeChat documentation's sample.
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APPID: &str = "wxb11529c136998cb6";

/// Cases per property unless `FUZZ_CALLBACK_CASES` says otherwise.
const CASES: u32 = 512;

/// The longest any one request may take, handler included.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

fn cases() -> u32 {
    std::env::var("FUZZ_CALLBACK_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES)
}

/// One runtime and one router per mode for all cases: building a host per case would make the
/// run about setup, not requests.
struct Hosts {
    runtime: tokio::runtime::Runtime,
    plain: axum::Router,
    safe: axum::Router,
    _data: tempfile::TempDir,
}

fn hosts() -> &'static Hosts {
    static HOSTS: OnceLock<Hosts> = OnceLock::new();
    HOSTS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let _guard = runtime.enter();
        let plain = router(&data, &[("WECHAT_MODE", "plain")]);
        let safe = router(
            &data,
            &[
                ("WECHAT_AES_KEY", AES_KEY),
                ("WECHAT_APPID", APPID),
                ("WECHAT_MODE", "safe"),
            ],
        );
        Hosts {
            runtime,
            plain,
            safe,
            _data: data,
        }
    })
}

fn router(data: &tempfile::TempDir, env: &[(&str, &str)]) -> axum::Router {
    test_router(&test_config(data.path(), env), &echo_bot())
}

/// POSTs one request; fails the case on a 5xx or a slow answer, returns status and body.
fn post(router: &axum::Router, query: &str, body: Vec<u8>) -> (StatusCode, String) {
    let hosts = hosts();
    hosts.runtime.block_on(async {
        // A query that is not even a valid URI is the client library's problem, not ours.
        let Ok(request) = Request::post(format!("/wechat?{query}")).body(Body::from(body)) else {
            return (StatusCode::BAD_REQUEST, String::new());
        };
        let response = tokio::time::timeout(ANSWER_WITHIN, router.clone().oneshot(request))
            .await
            .unwrap_or_else(|_| panic!("no answer within {ANSWER_WITHIN:?} for ?{query}"))
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(!status.is_server_error(), "{status} for ?{query}: {text}");
        (status, text)
    })
}

/// A nonce never used before in this run, so a replay guard never sees a repeat.
fn fresh_nonce() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("fz{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn signed_query(nonce: &str) -> String {
    let ts = now().to_string();
    format!(
        "signature={}&timestamp={ts}&nonce={nonce}",
        sign(&[TOKEN, &ts, nonce])
    )
}

/// The documented samples, as the starting points for mutation.
fn samples() -> &'static [Vec<u8>] {
    static SAMPLES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/messages");
        let mut all: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        all.sort();
        all
    })
}

/// Byte edits: (where, byte, 0 = overwrite / 1 = delete / 2 = insert).
fn edits() -> impl Strategy<Value = Vec<(Index, u8, u8)>> {
    proptest::collection::vec((any::<Index>(), any::<u8>(), 0u8..3), 0..8)
}

fn mutate(mut bytes: Vec<u8>, edits: &[(Index, u8, u8)]) -> Vec<u8> {
    for (at, byte, op) in edits {
        if bytes.is_empty() {
            bytes.push(*byte);
            continue;
        }
        let i = at.index(bytes.len());
        match op {
            0 => bytes[i] = *byte,
            1 => {
                bytes.remove(i);
            }
            _ => bytes.insert(i, *byte),
        }
    }
    bytes
}

/// Query strings: random text, a valid signed query mutated, or one with hostile extras.
fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_=&%0-9A-F.+;?#-]{0,120}",
        (edits(), any::<bool>()).prop_map(|(edits, aes)| {
            let mut q = signed_query(&fresh_nonce());
            if aes {
                q.push_str("&encrypt_type=aes&msg_signature=0000");
            }
            String::from_utf8_lossy(&mutate(q.into_bytes(), &edits)).into_owned()
        }),
        (
            "[0-9-]{0,25}",
            "[ -~]{0,40}",
            prop::sample::select(vec!["", "aes", "AES", "raw"])
        )
            .prop_map(|(ts, nonce, enc)| {
                let sig = sign(&[TOKEN, &ts, &nonce]);
                let nonce: String = url_escape(&nonce);
                format!("signature={sig}&timestamp={ts}&nonce={nonce}&encrypt_type={enc}&msg_signature={sig}")
            }),
    ]
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Bodies: random bytes or a mutated sample.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (any::<Index>(), edits()).prop_map(|(pick, edits)| {
            let samples = samples();
            mutate(samples[pick.index(samples.len())].clone(), &edits)
        }),
    ]
}

/// A safe-mode request around `encrypt`, with a correct `msg_signature`.
fn sealed(encrypt: &str) -> (String, Vec<u8>) {
    let nonce = fresh_nonce();
    let ts = now().to_string();
    let query = format!(
        "signature={}&timestamp={ts}&nonce={nonce}&encrypt_type=aes&msg_signature={}",
        sign(&[TOKEN, &ts, &nonce]),
        sign(&[TOKEN, &ts, &nonce, encrypt])
    );
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    (query, body.into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_query_and_body_is_answered_without_a_5xx(query in query(), body in body(), safe in any::<bool>()) {
        let hosts = hosts();
        let router = if safe { &hosts.safe } else { &hosts.plain };
        post(router, &query, body);
    }

    #[test]
    fn a_signed_mutated_plaintext_message_is_answered_or_refused_cleanly(
        pick in any::<Index>(),
        edits in edits(),
    ) {
        let samples = samples();
        let body = mutate(samples[pick.index(samples.len())].clone(), &edits);
        let (status, text) = post(&hosts().plain, &signed_query(&fresh_nonce()), body);
        prop_assert!(
            status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
            "{} {}", status, text
        );
    }

    #[test]
    fn after_msg_signature_safe_mode_has_one_failure_answer(
        pick in any::<Index>(),
        damage in 0u8..4,
        edits in edits(),
        text_edits in proptest::collection::vec((any::<Index>(), "[A-Za-z0-9+/= !_\n-]"), 1..4),
    ) {
        let samples = samples();
        let mut plain = samples[pick.index(samples.len())].clone();
        // One kind of damage per case, and a quarter of the cases none, so the handler path
        // is fuzzed as well as the refusals.
        if damage == 1 {
            plain = mutate(plain, &edits);
        }
        // Encrypting arbitrary bytes needs a str; lossy keeps the mutation's shape.
        let crypto = MessageCrypto::new(AES_KEY, APPID).unwrap();
        let mut encrypt = crypto.encrypt(&String::from_utf8_lossy(&plain));
        if damage == 2 {
            // Ciphertext edits reach the padding, length field and appid checks.
            let engine = base64::engine::general_purpose::STANDARD;
            let raw = engine.decode(&encrypt).unwrap();
            encrypt = engine.encode(mutate(raw, &edits));
        }
        if damage == 3 {
            // Text edits reach the base64 decoder.
            let mut bytes = encrypt.into_bytes();
            for (at, piece) in &text_edits {
                let i = at.index(bytes.len() + 1);
                bytes.splice(i..i, piece.bytes());
            }
            encrypt = String::from_utf8(bytes).unwrap();
        }
        let (query, body) = sealed(&encrypt);
        let (status, text) = post(&hosts().safe, &query, body);
        prop_assert!(
            status == StatusCode::OK
                || (status == StatusCode::BAD_REQUEST && text == UNREADABLE_SEALED),
            "{} {}", status, text
        );
        if damage == 0 {
            prop_assert_eq!(status, StatusCode::OK, "an intact message is handled: {}", text);
        }
    }
}
