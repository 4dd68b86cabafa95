//! The "floor" for the end-to-end benchmark: the least any Lua bot host must do with a
//! plaintext message, written the short way on the same HTTP stack as `wechat-lua serve`.
//! It checks the query's signature (SHA-1 of the sorted token, timestamp and nonce), reads
//! ToUserName, FromUserName, MsgType and Content with quick-xml, calls one Lua 5.4 function
//! (a state per worker thread) with a three-field table, and renders the text it returns
//! as a passive reply. No retry cache, no replay memory, no deadline, no metrics, no logs,
//! no reload, one handler. Entities are left as sent and a field that is not UTF-8 reads as
//! empty: enough for the benchmark's messages, not for WeChat's. It uses none of the host's
//! code (not `protocol::signature`, not the parser): it measures the work, not the host's
//! way of doing it.
//!
//! `bench/e2e.sh` runs it beside the ceiling: the ceiling is what the HTTP stack costs, the
//! floor what the work a message needs costs on top of it, and what the host spends over
//! the floor is its own layers (the "minimal server").
//!
//! `WECHAT_TOKEN=… cargo run --release --example floor -- --listen 127.0.0.1:18082`

use std::cell::RefCell;
use std::process::ExitCode;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use mlua::{Function, Lua};
use quick_xml::events::Event;
use quick_xml::Reader;
use serde::Deserialize;
use sha1::{Digest, Sha1};

#[path = "standalone.rs"]
mod standalone;

/// The echo handler, as `examples/echo.lua` answers a text message.
const SCRIPT: &str = "return function(msg) return msg.content end";

static TOKEN: OnceLock<String> = OnceLock::new();

thread_local! {
    /// One Lua state per worker thread, with the handler loaded.
    static HANDLER: RefCell<Option<(Lua, Function)>> = const { RefCell::new(None) };
}

#[derive(Deserialize)]
struct Signed {
    signature: String,
    timestamp: String,
    nonce: String,
}

/// The four elements a text reply needs.
#[derive(Default)]
struct Text {
    to: String,
    from: String,
    msg_type: String,
    content: String,
}

fn signed(token: &str, query: &Signed) -> bool {
    let mut parts = [token, query.timestamp.as_str(), query.nonce.as_str()];
    parts.sort_unstable();
    let digest = Sha1::digest(parts.concat().as_bytes());
    let mut given = [0u8; 20];
    hex::decode_to_slice(&query.signature, &mut given).is_ok() && given[..] == digest[..]
}

fn parse(body: &[u8]) -> Option<Text> {
    let mut reader = Reader::from_reader(body);
    let mut text = Text::default();
    let mut current: Option<Vec<u8>> = None;
    loop {
        match reader.read_event().ok()? {
            Event::Start(start) => current = Some(start.name().as_ref().to_vec()),
            Event::End(_) => current = None,
            Event::CData(data) => set(&mut text, current.as_deref(), &data),
            Event::Text(data) => set(&mut text, current.as_deref(), &data),
            Event::Eof => return Some(text),
            _ => {}
        }
    }
}

fn set(text: &mut Text, element: Option<&[u8]>, value: &[u8]) {
    let slot = match element {
        Some(b"ToUserName") => &mut text.to,
        Some(b"FromUserName") => &mut text.from,
        Some(b"MsgType") => &mut text.msg_type,
        Some(b"Content") => &mut text.content,
        _ => return,
    };
    *slot = std::str::from_utf8(value).unwrap_or_default().to_owned();
}

fn call_handler(text: &Text) -> mlua::Result<String> {
    HANDLER.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            let lua = Lua::new();
            let handler: Function = lua.load(SCRIPT).eval()?;
            *cell = Some((lua, handler));
        }
        let (lua, handler) = cell.as_ref().expect("made above");
        let msg = lua.create_table_with_capacity(0, 3)?;
        msg.raw_set("type", text.msg_type.as_str())?;
        msg.raw_set("from", text.from.as_str())?;
        msg.raw_set("content", text.content.as_str())?;
        handler.call::<String>(msg)
    })
}

fn cdata(value: &str) -> String {
    value.replace("]]>", "]]]]><![CDATA[>")
}

async fn callback(Query(query): Query<Signed>, body: Bytes) -> Response {
    if !signed(TOKEN.get().expect("set in main"), &query) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let Some(text) = parse(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let answer = match call_handler(&text) {
        Ok(answer) => answer,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let reply = format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[{}]]></FromUserName>\
         <CreateTime>{created}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[{}]]></Content></xml>",
        cdata(&text.from),
        cdata(&text.to),
        cdata(&answer),
    );
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        reply,
    )
        .into_response()
}

fn main() -> ExitCode {
    let Ok(token) = std::env::var("WECHAT_TOKEN") else {
        eprintln!("floor: WECHAT_TOKEN is not set");
        return ExitCode::FAILURE;
    };
    TOKEN.get_or_init(|| token);
    standalone::serve(
        "floor",
        "WECHAT_TOKEN=… floor --listen ADDR",
        Router::new().route("/wechat", post(callback)),
    )
}
