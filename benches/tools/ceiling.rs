//! The "ceiling" for the end-to-end benchmark: the same HTTP stack as `wechat-lua serve`
//! (axum on a multi-threaded tokio runtime, the request body read) answering `POST /wechat`
//! with a constant text reply and doing nothing else. No real bot can beat it on this machine,
//! so `bench/e2e.sh` reports the host's figures as ratios to it.
//!
//! `cargo run --release --example ceiling -- --listen 127.0.0.1:18080`

use std::process::ExitCode;

use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;

#[path = "standalone.rs"]
mod standalone;

/// A passive text reply of the size the echo bot sends for the benchmark's messages.
const REPLY: &str = "<xml><ToUserName><![CDATA[oBenchUser0000000000000000000]]></ToUserName>\
<FromUserName><![CDATA[gh_bench00000]]></FromUserName><CreateTime>1700000000</CreateTime>\
<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello from wrk 1000000]]></Content></xml>";

async fn callback(body: Bytes) -> impl IntoResponse {
    // Taking the body makes the server read it, as the real callback does.
    drop(body);
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        REPLY,
    )
}

fn main() -> ExitCode {
    standalone::serve(
        "ceiling",
        "ceiling --listen ADDR",
        Router::new().route("/wechat", post(callback)),
    )
}
