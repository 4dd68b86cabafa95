//! Prints the requests `bench/e2e.sh` drives through wrk, signed with the host's own
//! `protocol` code for a timestamp of now (the server refuses ones more than 10 minutes off).
//!
//! The server refuses a signed query it has seen before (replay guard), as WeChat never sends
//! one twice: every request gets its own nonce, so every path printed here is good once.
//!
//! - `payloads plain COUNT FIRST_NONCE [PER_SECOND]` prints COUNT lines `PATH<TAB>BODY`: a
//!   signed `/wechat?…` path with its own nonce (counting up from FIRST_NONCE) and a text
//!   message whose MsgId is that nonce. Bodies are built here, not by wrk's Lua per request:
//!   the load generator must stay cheaper than the fastest server it drives (the ceiling).
//! - `payloads safe COUNT [FIRST_MSG_ID [PER_SECOND]]` prints COUNT lines `PATH<TAB>BODY`:
//!   distinct encrypted text messages, each with its own MsgId (counting up from FIRST_MSG_ID,
//!   which is also its nonce) and `msg_signature`, which wrk's Lua cannot compute.
//!
//! Timestamps are those of traffic at PER_SECOND messages a second ending now: WeChat stamps
//! each request with the second it sends it, so a busy second's requests share a timestamp
//! and the next second's have the next one. The host's replay memory is grouped by timestamp;
//! one timestamp for a whole file (PER_SECOND 0, the default for one request) would put a
//! million signatures in one group, which real traffic never does.
//!
//! The token, EncodingAESKey and AppID come from `WECHAT_TOKEN`, `WECHAT_AES_KEY` and
//! `WECHAT_APPID`, as for the server.

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use wechat_lua::protocol::crypto::MessageCrypto;
use wechat_lua::protocol::signature;

/// The official account's original ID in the generated messages.
const TO_USER: &str = "gh_bench00000";
/// The sender's OpenID in the generated messages (28 characters, as real ones).
const FROM_USER: &str = "oBenchUser000000000000000000";
/// First MsgId of the encrypted messages when none is given; e2e.sh gives each run its own.
const FIRST_MSG_ID: u64 = 9_000_000_000;

/// One text message as WeChat sends it, on one line (the file format is line based).
fn text_xml(create_time: u64, msg_id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{TO_USER}]]></ToUserName>\
         <FromUserName><![CDATA[{FROM_USER}]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[hello from wrk {msg_id}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} is not set"))
}

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let token = env("WECHAT_TOKEN")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| format!("clock before 1970: {e}"))?
        .as_secs();
    let signed = |timestamp: u64, nonce: &str| {
        let ts = timestamp.to_string();
        format!(
            "/wechat?signature={}&timestamp={ts}&nonce={nonce}&openid={FROM_USER}",
            signature::sign(&[&token, &ts, nonce])
        )
    };
    let number = |what: &str, text: &str| -> Result<u64, String> {
        text.parse().map_err(|e| format!("{what} `{text}`: {e}"))
    };
    // The timestamp of the `i`th of `count` messages sent at `per_second` a second, the last
    // one now.
    let timestamp = |i: u64, count: u64, per_second: u64| match per_second {
        0 => now,
        rate => now - (count - 1 - i) / rate,
    };
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["plain", count, first, rest @ ..] if rest.len() <= 1 => {
            let (count, first) = (number("COUNT", count)?, number("FIRST_NONCE", first)?);
            let per_second = match rest.first() {
                Some(rate) => number("PER_SECOND", rate)?,
                None => 0,
            };
            let mut out = String::with_capacity(count as usize * 420);
            for i in 0..count {
                let (nonce, timestamp) = (first + i, timestamp(i, count, per_second));
                out.push_str(&signed(timestamp, &nonce.to_string()));
                out.push('\t');
                out.push_str(&text_xml(timestamp, nonce));
                out.push('\n');
            }
            Ok(out)
        }
        ["safe", count, rest @ ..] if rest.len() <= 2 => {
            let count = number("COUNT", count)?;
            // Each run of e2e.sh takes its own MsgId range: a MsgId seen in an earlier run
            // within 60 s would be answered from the retry cache without running Lua.
            let first = match rest.first() {
                Some(first) => number("FIRST", first)?,
                None => FIRST_MSG_ID,
            };
            let per_second = match rest.get(1) {
                Some(rate) => number("PER_SECOND", rate)?,
                None => 0,
            };
            let crypto = MessageCrypto::new(&env("WECHAT_AES_KEY")?, &env("WECHAT_APPID")?)
                .map_err(|e| format!("WECHAT_AES_KEY: {e}"))?;
            let mut out = String::new();
            for i in 0..count {
                let (msg_id, timestamp) = (first + i, timestamp(i, count, per_second));
                let (nonce, ts) = (msg_id.to_string(), timestamp.to_string());
                let encrypt = crypto.encrypt(&text_xml(timestamp, msg_id));
                let msg_signature = signature::sign(&[&token, &ts, &nonce, &encrypt]);
                out.push_str(&format!(
                    "{}&encrypt_type=aes&msg_signature={msg_signature}\t\
                     <xml><ToUserName><![CDATA[{TO_USER}]]></ToUserName>\
                     <Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>\n",
                    signed(timestamp, &nonce)
                ));
            }
            Ok(out)
        }
        _ => Err(
            "usage: payloads plain COUNT FIRST_NONCE [PER_SECOND] | payloads safe COUNT [FIRST_MSG_ID [PER_SECOND]]".into(),
        ),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(out) => match std::io::stdout().lock().write_all(out.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("payloads: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("payloads: {e}");
            ExitCode::FAILURE
        }
    }
}
