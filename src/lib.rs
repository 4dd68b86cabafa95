//! wechat-lua: a host for WeChat Official Account (公众号) bots written in Lua.
//!
//! # Layout
//! - [`protocol`]: pure WeChat wire formats (signature, crypto, the encrypted envelope, the XML
//!   field tree, inbound messages and their kinds, reply XML). No I/O.
//! - [`account`]: the accounts one host serves: the implicit `default` at `/wechat` and the
//!   `[[accounts]]` at `/wechat/<name>`, each with its token, envelope and dispatcher.
//! - [`component`]: the open platform (第三方平台): pushed tickets and authorization events,
//!   the authorization flow, which authorizer a callback is for, the release test's answers.
//! - [`api`]: the outbound WeChat API (access_token lifecycle, one module per API family).
//! - [`net`]: the outbound HTTP client scripts use (`wx.http`): allow/deny rules checked on
//!   every resolved address and redirect hop, caps on requests in flight.
//! - [`script`]: the Lua runtime, the `wx` bindings, handler dispatch and hot reload.
//! - [`dispatch`]: one message to one answer: retry dedup, the reply deadline, late replies,
//!   the customer-service window note and metrics. Knows no HTTP.
//! - [`web`]: `wx.route`'s HTTP side: a request the host does not serve itself offered to the
//!   scripts' routes within `route_timeout`, static files of `public/`, the client address
//!   behind trusted proxies and the sign-in hook (`req.openid`).
//! - [`server`]: HTTP only: the router, the extractors that check and open requests, errors
//!   as responses, connections and shutdown.
//! - [`store`]: persistent state (embedded default, Redis).
//! - [`fake_wechat`]: a fake WeChat API, one file per family as in [`api`], for tests, `chat`
//!   and local prototyping.
//! - [`playground`]: the browser playground (`play`): the embedded page, its endpoints and the
//!   events pushed to it (messages, replies, API calls, logs, reloads).
//! - [`clock`]: Unix seconds and milliseconds, read one way everywhere.
//! - [`sync`]: the one way a std `Mutex` is locked (poison recovered).
//! - [`prehashed`]: tables keyed by hashes the host computed itself (retry cache, replay
//!   memory): the process's random hasher and a pass-through one for the tables.
//! - [`timeout`]: timeouts armed only once a future waits (the reply deadline, the handler's
//!   time budget): most handlers answer in their first poll and need no timer.
//! - [`config`]: settings from the TOML file, the environment and flags.
//! - [`logging`]: log lines that text from scripts or requests cannot forge or bloat.
//! - [`host`]: assembling store, API client, Lua pool, dispatcher and HTTP state into a host,
//!   through a builder that takes what differs (store, API base, late-reply sink).
//! - [`metrics`]: counters and histograms for `GET /metrics`.
//! - [`commands`]: developer commands that need no server (`check`, `new`).

pub mod account;
pub mod api;
pub mod clock;
pub mod commands;
pub mod component;
pub mod config;
pub mod dispatch;
pub mod fake_wechat;
pub mod host;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod playground;
pub mod prehashed;
pub mod protocol;
pub mod script;
pub mod server;
pub mod store;
pub mod sync;
pub mod timeout;
pub mod web;
