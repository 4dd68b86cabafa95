//! A pool of Lua states over scripts written to a temporary directory, and the calls the
//! script-level tests make on it.

use std::sync::Arc;

use tempfile::TempDir;
use wechat_lua::protocol::message::InboundMessage;
use wechat_lua::protocol::reply::Reply;
use wechat_lua::script::runtime::Handled;
use wechat_lua::script::{LuaPool, RuntimeOptions, ScriptError, Services};

/// Writes `files` (path relative to `dir`, contents) into `dir`.
pub fn write(dir: &TempDir, files: &[(&str, &str)]) {
    for (name, body) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
}

/// A pool of `workers` states over `files`, with an in-memory store; the directory lives as
/// long as the returned `TempDir`.
pub fn host_with(
    files: &[(&str, &str)],
    options: RuntimeOptions,
    workers: usize,
) -> (TempDir, Arc<LuaPool>) {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, files);
    let host = LuaPool::start(dir.path(), options, workers, Services::in_memory().unwrap())
        .expect("scripts load");
    (dir, host)
}

/// A pool of one state over a `main.lua`, default limits.
pub fn host(main: &str) -> (TempDir, Arc<LuaPool>) {
    host_with(&[("main.lua", main)], RuntimeOptions::default(), 1)
}

/// The message `xml` handled on `host`.
pub async fn handle(host: &LuaPool, xml: &str) -> Result<Handled, ScriptError> {
    host.handle(InboundMessage::parse(xml.as_bytes()).unwrap())
        .await
}

/// The reply to `xml`; the handler must succeed.
pub async fn reply(host: &LuaPool, xml: &str) -> Option<Reply> {
    handle(host, xml).await.expect("handler ok").reply
}

/// A text reply.
pub fn text(s: &str) -> Option<Reply> {
    Some(Reply::Text { content: s.into() })
}

/// A pool of one state over a `main.lua` with `services` (the WeChat API of a fake, say).
pub fn host_on(main: &str, services: Services) -> (TempDir, Arc<LuaPool>) {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, &[("main.lua", main)]);
    let host =
        LuaPool::start(dir.path(), RuntimeOptions::default(), 1, services).expect("scripts load");
    (dir, host)
}
