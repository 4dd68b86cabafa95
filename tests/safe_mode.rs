//! Safe mode (安全模式) and compatible mode (兼容模式) end to end: encrypted requests through the
//! Router and the real binary, encrypted replies, and every refusal.

mod support;

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use support::host::{test_config, test_router};
use support::{element, now, sign, text_xml, Server, TOKEN};
use tower::ServiceExt;
use wechat_lua::protocol::crypto::MessageCrypto;
use wechat_lua::protocol::message::InboundMessage;
use wechat_lua::protocol::reply::{Article, Reply};
use wechat_lua::protocol::xml_fields::parse_fields;

/// The EncodingAESKey and AppID of the WeChat documentation's sample.
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APPID: &str = "wxb11529c136998cb6";

fn echo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/echo.lua")
}

fn router(mode: &str) -> axum::Router {
    let data = tempfile::tempdir().unwrap();
    let config = test_config(
        data.path(),
        &[
            ("WECHAT_AES_KEY", AES_KEY),
            ("WECHAT_APPID", APPID),
            ("WECHAT_MODE", mode),
        ],
    );
    test_router(&config, &echo())
}

fn crypto() -> MessageCrypto {
    MessageCrypto::new(AES_KEY, APPID).unwrap()
}

/// Query and body of an encrypted callback, as WeChat sends it.
struct Encrypted {
    query: String,
    body: String,
}

fn encrypted(plain_xml: &str, compatible: bool) -> Encrypted {
    let encrypt = crypto().encrypt(plain_xml);
    let ts = now().to_string();
    let nonce = &support::fresh_nonce();
    let signature = sign(&[TOKEN, &ts, nonce]);
    let msg_signature = sign(&[TOKEN, &ts, nonce, &encrypt]);
    let query = format!(
        "signature={signature}&timestamp={ts}&nonce={nonce}&openid=u1&encrypt_type=aes&msg_signature={msg_signature}"
    );
    let body = if compatible {
        // 兼容模式: the plaintext fields with Encrypt beside them; the decrypted copy wins.
        plain_xml
            .replacen("<Content><![CDATA[", "<Content><![CDATA[decoy ", 1)
            .replace(
                "</xml>",
                &format!("<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"),
            )
    } else {
        format!("<xml><ToUserName><![CDATA[gh_account]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
    };
    Encrypted { query, body }
}

async fn post(router: &axum::Router, query: &str, body: String) -> (StatusCode, String) {
    let resp = router
        .clone()
        .oneshot(
            Request::post(format!("/wechat?{query}"))
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Checks the reply envelope's signature and returns the decrypted reply XML.
fn open_envelope(xml: &str) -> String {
    let fields = parse_fields(xml.as_bytes()).unwrap();
    let encrypt = fields.text("Encrypt").unwrap();
    let ts = fields.text("TimeStamp").unwrap();
    let nonce = fields.text("Nonce").unwrap();
    let ts_num: i64 = ts.parse().unwrap();
    assert!((ts_num - now()).abs() < 10, "TimeStamp is in seconds: {ts}");
    assert_eq!(
        fields.text("MsgSignature").unwrap(),
        sign(&[TOKEN, ts, nonce, encrypt])
    );
    crypto().decrypt(encrypt).unwrap()
}

#[tokio::test]
async fn encrypted_message_gets_an_encrypted_reply_in_both_body_shapes() {
    for mode in ["safe", "compatible"] {
        let router = router(mode);
        for compatible_body in [false, true] {
            let req = encrypted(&text_xml("user1", "secret ]]> 你好", 1), compatible_body);
            let (status, xml) = post(&router, &req.query, req.body).await;
            assert_eq!(status, StatusCode::OK, "{mode}: {xml}");
            let inner = open_envelope(&xml);
            assert_eq!(
                element(&inner, "Content").as_deref(),
                Some("secret ]]> 你好"),
                "{mode}"
            );
            assert_eq!(element(&inner, "ToUserName").as_deref(), Some("user1"));
        }
    }
}

#[tokio::test]
async fn fresh_random_bytes_each_reply_and_success_stays_plain() {
    let router = router("safe");
    let a = encrypted(&text_xml("u", "same", 1), false);
    let b = encrypted(&text_xml("u", "same", 2), false);
    let (_, xa) = post(&router, &a.query, a.body).await;
    let (_, xb) = post(&router, &b.query, b.body).await;
    assert_ne!(element(&xa, "Encrypt"), element(&xb, "Encrypt"));
    let unsub = "<xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>unsubscribe</Event></xml>";
    let req = encrypted(unsub, false);
    let (status, body) = post(&router, &req.query, req.body).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "success"));
}

#[tokio::test]
async fn an_encrypted_retry_gets_the_same_answer_without_a_second_run() {
    let router = router("safe");
    let first = encrypted(&text_xml("retryuser", "once", 31337), false);
    let (_, a) = post(&router, &first.query, first.body).await;
    // WeChat's retry carries the same message, encrypted afresh.
    let retry = encrypted(&text_xml("retryuser", "once", 31337), false);
    let (_, b) = post(&router, &retry.query, retry.body).await;
    let (a, b) = (open_envelope(&a), open_envelope(&b));
    assert_eq!(element(&a, "Content").as_deref(), Some("once"));
    assert_eq!(a, b, "the same reply XML, encrypted again");
}

#[tokio::test]
async fn refusals_before_msg_signature_say_which() {
    // Before msg_signature passes, the caller proved nothing, and the reasons only concern
    // what they sent themselves, so they are named.
    let router = router("safe");
    let plain = text_xml("u", "hi", 1);
    let (status, body) = post(&router, &support::signed_query(), plain.clone()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "safe mode refuses plaintext: {body}"
    );

    let good = encrypted(&plain, false);
    let tampered_sig = good.query.replace("msg_signature=", "msg_signature=0");
    let (status, body) = post(&router, &tampered_sig, good.body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("msg_signature"), "{body}");

    let no_encrypt = encrypted(&plain, false);
    let (status, body) = post(&router, &no_encrypt.query, plain.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Encrypt"), "{body}");
    let good = encrypted(&plain, false);
    let missing = good
        .query
        .split("&msg_signature")
        .next()
        .unwrap()
        .to_string();
    let (status, body) = post(&router, &missing, good.body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("msg_signature"), "{body}");
}

/// AES-CBC-encrypts block-aligned bytes with the sample key, to forge plaintexts that no
/// honest sender produces (bad padding, lying length field, invalid UTF-8).
fn forge(mut plain: Vec<u8>) -> String {
    use aes::cipher::{BlockEncryptMut, KeyIvInit};
    use base64::Engine as _;
    assert_eq!(plain.len() % 16, 0);
    use base64::engine::{general_purpose, GeneralPurpose};
    // The console key's last character carries trailing bits a strict decoder refuses.
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        general_purpose::PAD.with_decode_allow_trailing_bits(true),
    );
    let key = lenient.decode(format!("{AES_KEY}=")).unwrap();
    let mut cipher = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &key[..16]).unwrap();
    for block in plain.chunks_exact_mut(16) {
        cipher.encrypt_block_mut(block.into());
    }
    base64::engine::general_purpose::STANDARD.encode(&plain)
}

/// Random prefix, length field, message and appid, as WeChat frames a plaintext (unpadded).
fn framed(msg: &[u8], len_field: u32, appid: &[u8]) -> Vec<u8> {
    let mut v = vec![7u8; 16];
    v.extend_from_slice(&len_field.to_be_bytes());
    v.extend_from_slice(msg);
    v.extend_from_slice(appid);
    v
}

/// PKCS#7 to 32 bytes with `pad_byte` in every pad position.
fn padded(mut v: Vec<u8>, pad_byte: Option<u8>) -> Vec<u8> {
    let pad = 32 - v.len() % 32;
    v.resize(v.len() + pad, pad_byte.unwrap_or(pad as u8));
    v
}

/// A safe-mode request carrying `encrypt`, signed correctly with a nonce of its own (a signed
/// query is single-use), so decryption is reached.
fn signed_envelope(encrypt: &str) -> (String, String) {
    let ts = now().to_string();
    // A fresh nonce per request, as WeChat sends: a signed query is single-use.
    let n = support::fresh_nonce();
    let query = format!(
        "signature={}&timestamp={ts}&nonce={n}&encrypt_type=aes&msg_signature={}",
        sign(&[TOKEN, &ts, &n]),
        sign(&[TOKEN, &ts, &n, encrypt])
    );
    let body =
        format!("<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
    (query, body)
}

#[tokio::test]
async fn every_failure_after_msg_signature_is_one_answer() {
    // With the token alone anyone can sign any ciphertext; if the answers differed by reason
    // they would be a padding oracle on captured messages (CBC without a MAC).
    let msg = text_xml("u", "hi", 1);
    let appid = APPID.as_bytes();
    let cases: Vec<(&str, String)> = vec![
        ("bad base64", "not base64 !!".into()),
        ("bad block length", "QUJD".into()),
        (
            "bad padding",
            forge(padded(
                framed(msg.as_bytes(), msg.len() as u32, appid),
                Some(0),
            )),
        ),
        (
            "length field past the end",
            forge(padded(
                framed(msg.as_bytes(), msg.len() as u32 + 40, appid),
                None,
            )),
        ),
        (
            "another appid",
            MessageCrypto::new(AES_KEY, "wxsomeoneelse")
                .unwrap()
                .encrypt(&msg),
        ),
        (
            "invalid UTF-8",
            forge(padded(framed(&[0xff, 0xfe, 0xfd], 3, appid), None)),
        ),
        ("plaintext not XML", crypto().encrypt("hello, not xml")),
        (
            "XML but no message",
            crypto().encrypt("<xml><Anything>1</Anything></xml>"),
        ),
    ];
    for mode in ["safe", "compatible"] {
        let router = router(mode);
        let mut answers = Vec::new();
        for (why, encrypt) in &cases {
            let (query, body) = signed_envelope(encrypt);
            let (status, text) = post(&router, &query, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{mode}, {why}: {text}");
            answers.push((why, status, text));
        }
        let (_, status, text) = &answers[0];
        for (why, s, t) in &answers {
            assert_eq!((s, t), (status, text), "{mode}: {why} answers differently");
        }
        for word in ["padding", "appid", "length", "base64", "UTF", "XML"] {
            assert!(!text.contains(word), "the answer names a reason: {text}");
        }
        // The honest message still goes through.
        let (query, body) = signed_envelope(&crypto().encrypt(&msg));
        assert_eq!(post(&router, &query, body).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn compatible_mode_still_answers_plaintext_and_verification_echo_is_plain() {
    let compatible = router("compatible");
    let (status, xml) = post(
        &compatible,
        &support::signed_query(),
        text_xml("u", "plain", 1),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(element(&xml, "Content").as_deref(), Some("plain"));
    let resp = router("safe")
        .oneshot(
            Request::get(format!("/wechat?{}&echostr=echo1", support::signed_query()))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"echo1");
}

#[test]
fn every_reply_type_round_trips_through_encryption() {
    let replies = [
        Reply::Text {
            content: "t ]]> <&> 😀".into(),
        },
        Reply::Image {
            media_id: "m".into(),
        },
        Reply::Voice {
            media_id: "v".into(),
        },
        Reply::Video {
            media_id: "vid".into(),
            title: Some("T".into()),
            description: None,
        },
        Reply::Music {
            title: None,
            description: None,
            music_url: Some("u".into()),
            hq_music_url: None,
            thumb_media_id: "th".into(),
        },
        Reply::News {
            articles: vec![
                Article {
                    title: "a".into(),
                    ..Default::default()
                };
                3
            ],
        },
        Reply::TransferCustomerService {
            kf_account: Some("kf@acct".into()),
        },
    ];
    let c = crypto();
    for reply in replies {
        let xml = reply.render("user", "gh", 1_700_000_000);
        let back = c.decrypt(&c.encrypt(&xml)).unwrap();
        assert_eq!(back, xml);
        let fields = parse_fields(back.as_bytes()).unwrap();
        assert_eq!(fields.text("MsgType"), Some(reply.kind()));
    }
    // The decrypted inbound message parses like a plaintext one.
    let inner = c.decrypt(&c.encrypt(&text_xml("u", "x", 5))).unwrap();
    assert_eq!(
        InboundMessage::parse(inner.as_bytes()).unwrap().content(),
        Some("x")
    );
}

#[test]
fn the_binary_answers_encrypted_messages_and_refuses_a_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("WECHAT_TOKEN", TOKEN),
        ("WECHAT_AES_KEY", AES_KEY),
        ("WECHAT_APPID", APPID),
        ("WECHAT_MODE", "safe"),
    ];
    let server = Server::start(dir.path(), &["--scripts", echo().to_str().unwrap()], &envs);
    let req = encrypted(&text_xml("user9", "over the wire", 1), false);
    let (status, xml) = server.post_with_query(&req.query, &req.body);
    assert_eq!(status, 200, "{xml}");
    assert_eq!(
        element(&open_envelope(&xml), "Content").as_deref(),
        Some("over the wire")
    );
    let (status, _) = server.post(&text_xml("u", "plain", 2));
    assert_eq!(status, 403);
    assert!(
        !server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(AES_KEY)),
        "the key is not logged"
    );
    drop(server);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wechat-lua"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--scripts",
            echo().to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .env("WECHAT_TOKEN", TOKEN)
        .env("WECHAT_AES_KEY", "tooshort")
        .env("WECHAT_APPID", APPID)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("encoding_aes_key") && stderr.contains("43"),
        "{stderr}"
    );
}
