//! The Lua side of the host: loading the user's scripts into sandboxed Lua states, the `wx`
//! bindings they call, dispatching each message to the first matching handler and each web
//! request to the first matching route, and hot reload.
//!
//! # Layout
//! - [`sources`]: a snapshot of every `.lua` file under the scripts root, read once per (re)load.
//! - [`runtime`]: one sandboxed Lua state with a loaded script set; dispatch of one message.
//! - [`bindings`]: the `wx` table (`wx.on`, `wx.reply`, `wx.log`, …), one file per family.
//! - [`routes`]: `wx.route`'s paths and methods, and the request and response values that
//!   cross between the web side and a Lua state.
//! - [`message_table`]: an inbound message as the Lua table handlers receive.
//! - [`reply_value`]: a handler's return value as a [`Reply`](crate::protocol::reply::Reply).
//! - [`run_limit`]: the hook that stops runaway handlers for good and slices long runs.
//! - [`pool`]: [`LuaPool`], the Lua states messages borrow; reload swaps states between messages.
//! - [`services`]: what the host lends scripts (store, API).
//! - [`reload`]: the file watcher that reloads, debounced, keeping the last good set on failure.
//! - [`suggest`]: the known name closest to a misspelt one ("did you mean …?").
//!
//! Lua states are pooled and replaced whole on reload, so nothing a script keeps in a Lua
//! global survives a reload or is shared between states: state shared between
//! messages goes through the host (`wx.store`).

pub mod bindings;
pub mod error;
pub mod message_table;
pub mod pool;
pub mod reload;
pub mod reply_value;
pub mod routes;
pub mod run_limit;
pub mod runtime;
pub mod services;
pub mod sources;
pub mod suggest;

pub use error::{LoadError, LoadWarning, ScriptError};
pub use pool::LuaPool;
pub use runtime::RuntimeOptions;
pub use services::Services;
pub use sources::ScriptSources;
