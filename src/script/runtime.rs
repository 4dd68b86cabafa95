//! One sandboxed Lua state with a loaded script set, the dispatch of one message to the first
//! matching handler, and of one web request to the first matching route. A state is built whole from a [`ScriptSources`] snapshot and never
//! patched: reload builds a new one.

use std::sync::Arc;
use std::time::Duration;

use mlua::thread::ThreadStatus;
use mlua::{Function, Lua, LuaOptions, MultiValue, StdLib, Thread, Value};

use super::bindings::handlers::{Filter, Handler, HandlerRegistry, Selector, StartHook};
use super::bindings::web::{request_table, response_from_lua, Route};
use super::bindings::{self, pattern};
use super::error::is_host_frame;
use super::message_table::{message_table, MessageKeys};
use super::reply_value::{reply_from_lua, reply_to_lua};
use super::routes::{RouteError, RouteOutcome, RouteRequest};
use super::run_limit::{self, RunClock, StopReason};
use super::services::RunAccount;
use super::{LoadError, LoadWarning, ScriptError, ScriptSources, Services};
use crate::protocol::message::InboundMessage;
use crate::protocol::reply::Reply;

/// Limits applied to every Lua state.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Memory cap of one Lua state, in bytes.
    pub memory_limit: usize,
    /// How long Lua may run without yielding (a handler waiting on I/O yields) before it is
    /// stopped; also bounds the top level of a script while loading.
    pub run_limit: Duration,
    /// The most one handler run may take in all, waiting included (a late reply can take
    /// long, but not for ever); past it the handler is cancelled and its state discarded.
    pub time_budget: Duration,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            memory_limit: 64 * 1024 * 1024,
            run_limit: Duration::from_millis(4500),
            time_budget: DEFAULT_TIME_BUDGET,
        }
    }
}

/// The default of [`RuntimeOptions::time_budget`].
pub const DEFAULT_TIME_BUDGET: Duration = Duration::from_secs(180);

/// Wraps a handler call in `xpcall` with a traceback builder as the message handler.
const CALL_WRAPPER: &str = r#"
local xpcall, traceback = xpcall, ...
return function(f, ...) return xpcall(f, traceback, ...) end
"#;

/// The outcome of one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    /// The reply, or `None` for `success`.
    pub reply: Option<Reply>,
    /// `file:line` of the handler that took the message, if any did.
    pub handler: Option<String>,
}

/// A loaded script set in its own Lua state.
pub struct LuaRuntime {
    lua: Lua,
    handlers: Vec<Handler>,
    /// `wx.on_start` functions, run once per load of the set by [`LuaRuntime::run_start`].
    start: Vec<StartHook>,
    /// Web routes (`wx.route`), in registration order.
    routes: Vec<Route>,
    /// `xpcall` wrapper that adds a traceback to handler errors.
    call: Function,
    /// The keys of message tables, made once in this state.
    message_keys: MessageKeys,
    /// Warnings found while loading (e.g. handlers for unknown kinds).
    warnings: Vec<LoadWarning>,
    sources: Arc<ScriptSources>,
    /// What the state's hook measures the running handler by; also says whether a run went
    /// over a limit, after which the state is not used again.
    clock: Arc<RunClock>,
    /// The most a handler run may take in all, waiting included.
    time_budget: Duration,
    /// The coroutine of the last run that finished, reset and ready for the next: a new one
    /// per run cost a Lua thread, its stack and call-info blocks (five allocations).
    spare_thread: std::sync::Mutex<Option<Thread>>,
    /// The account this state acts for outside a message (loading, `wx.on_start`, web
    /// routes): its pool's own.
    own: Arc<Services>,
}

impl LuaRuntime {
    /// Builds a state, runs the entry script and collects its handlers.
    pub fn load(
        sources: Arc<ScriptSources>,
        options: &RuntimeOptions,
        services: &Arc<Services>,
    ) -> Result<Self, ScriptError> {
        let internal =
            |e: mlua::Error| ScriptError::Load(LoadError::host(format!("cannot set up Lua: {e}")));
        let lua = Lua::new_with(
            StdLib::STRING
                | StdLib::TABLE
                | StdLib::MATH
                | StdLib::UTF8
                | StdLib::OS
                | StdLib::COROUTINE,
            LuaOptions::default(),
        )
        .map_err(internal)?;
        bindings::install(&lua, sources.clone(), services).map_err(internal)?;
        let traceback = lua
            .create_function(|lua, err: Value| Ok(with_traceback(lua, &err)))
            .map_err(internal)?;
        let message_keys = MessageKeys::new(&lua).map_err(internal)?;
        let call: Function = lua
            .load(CALL_WRAPPER)
            .set_name("=wechat-lua")
            .call((traceback,))
            .map_err(internal)?;

        // One hook for the state: on the main thread it bounds the top level while loading
        // (a loop there would hang a reload forever); mlua gives it to every coroutine it
        // creates for handlers, rather than a hook closure per message.
        let clock = RunClock::new(options.run_limit);
        run_limit::install(&lua, &clock).map_err(internal)?;
        // Memory is capped only after the host's own setup, which is small and bounded.
        lua.set_memory_limit(options.memory_limit)
            .map_err(internal)?;
        let loaded = bindings::stdlib::compile(&lua, &sources, sources.entry())
            .and_then(|entry| entry.call::<()>(()));
        // The main thread runs only the host's own calls (pattern filters), not handlers.
        lua.remove_hook();
        loaded.map_err(|e| ScriptError::Load(LoadError::parse(&describe_error(&e))))?;

        let (handlers, start, routes, warnings) = {
            let mut registry = lua
                .app_data_mut::<HandlerRegistry>()
                .ok_or_else(|| ScriptError::Load(LoadError::host("handler registry missing")))?;
            registry.sealed = true;
            (
                std::mem::take(&mut registry.handlers),
                std::mem::take(&mut registry.start),
                std::mem::take(&mut registry.routes),
                registry.warnings.clone(),
            )
        };
        Ok(LuaRuntime {
            lua,
            handlers,
            start,
            routes,
            call,
            message_keys,
            warnings,
            sources,
            clock,
            time_budget: options.time_budget,
            spare_thread: std::sync::Mutex::new(None),
            own: services.clone(),
        })
    }

    /// Compiles every script of the set, so a syntax error in a module that is only
    /// `require`d later (inside a handler) still rejects the set now.
    pub fn check_syntax(&self) -> Result<(), ScriptError> {
        // A single-file bot's folder may hold unrelated scripts (examples/): only a
        // directory's scripts are all the bot's.
        if !self.sources.recursive() {
            return Ok(());
        }
        let mut names: Vec<&str> = self.sources.files().collect();
        names.sort_unstable();
        for rel in names {
            bindings::stdlib::compile(&self.lua, &self.sources, rel)
                .map_err(|e| ScriptError::Load(LoadError::parse(&describe_error(&e))))?;
        }
        Ok(())
    }

    /// Warnings found while loading.
    pub fn warnings(&self) -> &[LoadWarning] {
        &self.warnings
    }

    /// Number of registered handlers.
    pub fn handler_count(&self) -> usize {
        self.handlers.len()
    }

    /// Number of `wx.on_start` functions.
    pub fn start_count(&self) -> usize {
        self.start.len()
    }

    /// Runs the `wx.on_start` functions in registration order, each in its own coroutine with
    /// the limits of a handler (so they may wait), passing `{generation = n}`. An error is
    /// logged with its `file:line` and the next function still runs: start-up work that fails
    /// does not stop the host. Returns the errors, for tests and `chat`.
    pub async fn run_start(&self, generation: u64) -> Vec<ScriptError> {
        let mut errors = Vec::new();
        for hook in &self.start {
            let info = match self.lua.create_table().and_then(|t| {
                t.set("generation", generation)?;
                Ok(t)
            }) {
                Ok(info) => info,
                Err(e) => {
                    errors.push(ScriptError::Handler {
                        handler: hook.origin.clone(),
                        message: describe_error(&e),
                    });
                    continue;
                }
            };
            match self
                .run(
                    &hook.func,
                    &hook.origin,
                    [Value::Table(info)],
                    self.time_budget,
                    &self.own,
                )
                .await
            {
                Ok(_) => {
                    tracing::debug!(origin = %hook.origin, generation, "wx.on_start function ran")
                }
                Err(e) => {
                    let message = match &e {
                        ScriptError::Handler { message, .. } => message.clone(),
                        other => other.to_string(),
                    };
                    tracing::error!(
                        target: "script",
                        generation,
                        "wx.on_start function at {} failed: {message}",
                        hook.origin
                    );
                    errors.push(e);
                }
            }
        }
        errors
    }

    /// `(method, path)` of every registered route, in registration order.
    pub fn routes(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.routes
            .iter()
            .map(|r| (r.method.as_str(), r.pattern.text()))
    }

    /// The snapshot this state was built from.
    pub fn sources(&self) -> &Arc<ScriptSources> {
        &self.sources
    }

    /// Runs the first handler that matches `msg` for the state's own account; see
    /// [`LuaRuntime::handle_for`].
    pub async fn handle(&self, msg: &InboundMessage) -> Result<Handled, ScriptError> {
        let own = self.own.clone();
        self.handle_for(msg, &own).await
    }

    /// Runs the first handler that matches `msg`, a message to `account` (`msg.account`,
    /// `msg.appid`, and the account every binding acts for during the run), and converts its
    /// return value.
    pub async fn handle_for(
        &self,
        msg: &InboundMessage,
        account: &Arc<Services>,
    ) -> Result<Handled, ScriptError> {
        let Some((handler, captures)) = self.select(msg)? else {
            return Ok(Handled {
                reply: None,
                handler: None,
            });
        };
        let table = message_table(&self.lua, &self.message_keys, msg, &account.account)
            .map_err(|e| handler_error(handler, &e))?;
        let args = std::iter::once(Value::Table(table)).chain(captures);
        let value = self
            .run(
                &handler.func,
                &handler.origin,
                args,
                self.time_budget,
                account,
            )
            .await?;
        let reply = reply_from_lua(&value).map_err(|message| ScriptError::BadReply {
            handler: function_location(&handler.func).unwrap_or_else(|| handler.origin.clone()),
            message,
        })?;
        if let Some(Reply::News { articles }) = &reply {
            if articles.len() > 1
                && !matches!(msg.kind, crate::protocol::message::MsgType::Event(_))
            {
                tracing::warn!(
                    handler = %handler.origin,
                    "a news reply with {} articles answers a user's message: WeChat shows only the first",
                    articles.len()
                );
            }
        }
        Ok(Handled {
            reply,
            handler: Some(handler.origin.clone()),
        })
    }

    /// Offers a web request to the routes: the first whose path and method match runs, with
    /// until `deadline` (and at most the total time budget) to answer. A run stopped by a
    /// limit is [`RouteError::TimedOut`]; an error raised or a return value that is not a
    /// response is [`RouteError::Script`].
    pub async fn handle_route(
        &self,
        req: &RouteRequest,
        deadline: tokio::time::Instant,
    ) -> Result<RouteOutcome, RouteError> {
        let mut allow: Vec<&'static str> = Vec::new();
        let mut found = None;
        for route in &self.routes {
            let Some(params) = route.pattern.matches(&req.path) else {
                continue;
            };
            if route.method.allows(&req.method) {
                found = Some((route, params));
                break;
            }
            allow.push(route.method.as_str());
        }
        let Some((route, params)) = found else {
            if allow.is_empty() {
                return Ok(RouteOutcome::NotFound);
            }
            if allow.contains(&"GET") {
                allow.push("HEAD");
            }
            allow.sort_unstable();
            allow.dedup();
            return Ok(RouteOutcome::MethodNotAllowed { allow });
        };
        let timed_out = |message: String| RouteError::TimedOut {
            route: route.origin.clone(),
            message,
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(timed_out(
                "its deadline passed before a Lua state was free".into(),
            ));
        }
        let budget = (deadline - now).min(self.time_budget);
        let table = request_table(&self.lua, req, &params).map_err(|e| ScriptError::Handler {
            handler: route.origin.clone(),
            message: describe_error(&e),
        })?;
        match self
            .run(
                &route.func,
                &route.origin,
                [Value::Table(table)],
                budget,
                &self.own,
            )
            .await
        {
            Ok(value) => match response_from_lua(&self.lua, &value) {
                Ok(response) => Ok(RouteOutcome::Answered {
                    route: route.origin.clone(),
                    response,
                }),
                Err(message) => Err(RouteError::Script(ScriptError::BadReply {
                    handler: function_location(&route.func).unwrap_or_else(|| route.origin.clone()),
                    message,
                })),
            },
            // Stopped by the run limit or the deadline: the page never came.
            Err(ScriptError::Handler { message, .. }) if self.is_stopped() => {
                Err(timed_out(match self.clock.stop_reason() {
                    // The run limit's own error names the line it stopped at.
                    Some(StopReason::Cpu) => message,
                    _ => "still running at its deadline (route_timeout); stopped".into(),
                }))
            }
            Err(e) => Err(RouteError::Script(e)),
        }
    }

    /// Calls the `late_reply_failed` handlers (in order, until one returns a value other
    /// than nil) with `{openid=, reply=, error=}`, the reply table and the error table, so a
    /// script can fall back to, say, a template message.
    pub async fn late_reply_failed(
        &self,
        failure: &LateReplyFailure,
        account: &Arc<Services>,
    ) -> Result<Handled, ScriptError> {
        let mut ran = None;
        for handler in self
            .handlers
            .iter()
            .filter(|h| h.selector == Selector::LateReplyFailed)
        {
            let fail = |e: mlua::Error| handler_error(handler, &e);
            let reply = reply_to_lua(&self.lua, &failure.reply).map_err(fail)?;
            let error = self.lua.create_table().map_err(fail)?;
            error.set("errcode", failure.errcode).map_err(fail)?;
            error.set("errmsg", failure.errmsg.as_str()).map_err(fail)?;
            let event = self.lua.create_table().map_err(fail)?;
            event.set("openid", failure.openid.as_str()).map_err(fail)?;
            event.set("reply", &reply).map_err(fail)?;
            event.set("error", &error).map_err(fail)?;
            let value = self
                .run(
                    &handler.func,
                    &handler.origin,
                    [
                        Value::Table(event),
                        Value::Table(reply),
                        Value::Table(error),
                    ],
                    self.time_budget,
                    account,
                )
                .await?;
            ran = Some(handler.origin.clone());
            if !value.is_nil() {
                break;
            }
        }
        Ok(Handled {
            reply: None,
            handler: ran,
        })
    }

    /// Calls every `component.authorized` (for `authorized` and `updateauthorized`) or
    /// `component.unauthorized` handler, in order, with `{appid=, event=, func_info={…}}`,
    /// acting for `account`; what they return is ignored.
    pub async fn component_event(
        &self,
        event: &ComponentEvent,
        account: &Arc<Services>,
    ) -> Result<Handled, ScriptError> {
        let wanted = if event.event == "unauthorized" {
            "unauthorized"
        } else {
            "authorized"
        };
        let mut ran = None;
        for handler in self
            .handlers
            .iter()
            .filter(|h| h.selector == Selector::Component(wanted))
        {
            let fail = |e: mlua::Error| handler_error(handler, &e);
            let table = self.lua.create_table().map_err(fail)?;
            table.set("appid", event.appid.as_str()).map_err(fail)?;
            table.set("event", event.event).map_err(fail)?;
            table
                .set("func_info", event.func_info.clone())
                .map_err(fail)?;
            self.run(
                &handler.func,
                &handler.origin,
                [Value::Table(table)],
                self.time_budget,
                account,
            )
            .await?;
            ran = Some(handler.origin.clone());
        }
        Ok(Handled {
            reply: None,
            handler: ran,
        })
    }

    /// Whether a run on this state went over a limit: such a state is discarded, never
    /// lent again.
    pub fn is_stopped(&self) -> bool {
        self.clock.is_stopped()
    }

    /// Runs one handler (`func`, registered at `origin`) in its own coroutine, with the
    /// traceback wrapper, the run limit, time slices and `budget` for the whole run, waiting
    /// included, acting for `account`, and returns its first return value.
    async fn run(
        &self,
        func: &Function,
        origin: &str,
        args: impl IntoIterator<Item = Value>,
        budget: Duration,
        account: &Arc<Services>,
    ) -> Result<Value, ScriptError> {
        let fail = |e: mlua::Error| ScriptError::Handler {
            handler: origin.to_string(),
            message: describe_error(&e),
        };
        if self.is_stopped() {
            return Err(ScriptError::Unavailable);
        }
        // Sessions opened by a run that did not return are not this run's to save.
        bindings::session::forget(&self.lua);
        // Straight into the call's own list: no vector of arguments in between.
        let args = args.into_iter();
        let mut call_args = MultiValue::with_capacity(1 + args.size_hint().0);
        call_args.push_back(Value::Function(func.clone()));
        call_args.extend(args);

        // The hook yields only the handler's own coroutine for a time slice, so its thread
        // is known to the clock.
        let spare = crate::sync::lock(&self.spare_thread).take();
        let thread = match spare {
            Some(thread) => thread,
            None => self.lua.create_thread(self.call.clone()).map_err(fail)?,
        };
        self.clock.start(thread.to_pointer());
        let running = thread
            .clone()
            .into_async::<MultiValue>(call_args)
            .map_err(fail)?;
        // The budget's timer is armed only if the handler waits: one answering at once is
        // bounded by the run limit's hook alone.
        let outcome = crate::timeout::at(
            tokio::time::Instant::now() + budget,
            run_limit::drive(&self.clock, acting_for(&self.lua, account, running)),
        )
        .await;
        self.clock.finish();
        let results = match outcome {
            Some(results) => {
                let results = results.map_err(fail)?;
                // Only a coroutine that ran to its end is reused (the traceback wrapper
                // catches the handler's errors, so an erroring handler ends normally too).
                if thread.status() == ThreadStatus::Finished
                    && thread.reset(self.call.clone()).is_ok()
                {
                    *crate::sync::lock(&self.spare_thread) = Some(thread);
                }
                results
            }
            None => {
                // Cancelled while waiting (or sliced): whatever it holds, the state is not
                // used again, and dropping the coroutine closes it with the hook raising.
                self.clock.stop(StopReason::Wall);
                return Err(ScriptError::Handler {
                    handler: origin.to_string(),
                    message: format!(
                        "handler took more than its total time budget of {budget:?}; cancelled"
                    ),
                });
            }
        };

        let mut results = results.into_iter();
        match results.next() {
            Some(Value::Boolean(true)) => {
                bindings::session::save(&self.lua).await;
                Ok(results.next().unwrap_or(Value::Nil))
            }
            _ => {
                let message = results
                    .next()
                    .and_then(|v| v.to_string().ok())
                    .unwrap_or_else(|| "unknown error".into());
                Err(ScriptError::Handler {
                    handler: origin.to_string(),
                    message,
                })
            }
        }
    }

    fn select(&self, msg: &InboundMessage) -> Result<Option<(&Handler, Vec<Value>)>, ScriptError> {
        for handler in &self.handlers {
            if !handler.selector.matches(msg) {
                continue;
            }
            match &handler.filter {
                None => return Ok(Some((handler, Vec::new()))),
                Some(Filter::Key(key)) => {
                    if msg.event_key() == Some(key.as_str()) {
                        return Ok(Some((handler, Vec::new())));
                    }
                }
                Some(Filter::Pattern(text_pattern)) => {
                    // The budgeted matcher, called directly: no Lua call, and a costly
                    // pattern stops at its step budget like a malformed one.
                    let content = msg.content().unwrap_or("").as_bytes();
                    let found =
                        pattern::find(content, &text_pattern.as_bytes(), 1).map_err(|e| {
                            ScriptError::Handler {
                                handler: handler.origin.clone(),
                                message: format!("bad pattern: {e}"),
                            }
                        })?;
                    if let Some(found) = found {
                        let captures = found
                            .captures
                            .iter()
                            .map(|c| pattern::capture_value(&self.lua, content, c))
                            .collect::<mlua::Result<Vec<Value>>>()
                            .map_err(|e| handler_error(handler, &e))?;
                        return Ok(Some((handler, captures)));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Polls `running` (a run's coroutine) with `account` as the state's [`RunAccount`], putting
/// back the account that was there after every poll: whatever else resumes on the state while
/// this run waits, each resume of this run acts for its own account.
async fn acting_for<F: std::future::Future>(
    lua: &Lua,
    account: &Arc<Services>,
    running: F,
) -> F::Output {
    let mut running = std::pin::pin!(running);
    std::future::poll_fn(|cx| {
        let previous = swap_run_account(lua, account.clone());
        let polled = running.as_mut().poll(cx);
        if let Some(previous) = previous {
            swap_run_account(lua, previous);
        }
        polled
    })
    .await
}

/// Makes `account` the state's [`RunAccount`]; the one it replaces.
fn swap_run_account(lua: &Lua, account: Arc<Services>) -> Option<Arc<Services>> {
    match lua.app_data_mut::<RunAccount>() {
        Some(mut slot) => Some(std::mem::replace(&mut slot.0, account)),
        None => {
            lua.set_app_data(RunAccount(account));
            None
        }
    }
}

fn handler_error(handler: &Handler, e: &mlua::Error) -> ScriptError {
    ScriptError::Handler {
        handler: handler.origin.clone(),
        message: describe_error(e),
    }
}

/// An authorization change of the open platform, as `component.*` handlers receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentEvent {
    /// `authorized`, `updateauthorized` or `unauthorized`.
    pub event: &'static str,
    /// The account.
    pub appid: String,
    /// The permission sets granted.
    pub func_info: Vec<i64>,
}

/// A late reply that customer service refused for good (e.g. 45015: the user has not written
/// within 48 hours).
#[derive(Debug, Clone)]
pub struct LateReplyFailure {
    /// The user the reply was for.
    pub openid: String,
    /// The reply that could not be delivered.
    pub reply: Reply,
    /// WeChat's errcode.
    pub errcode: i64,
    /// WeChat's errmsg.
    pub errmsg: String,
}

/// `file:line` where a Lua function is defined.
fn function_location(f: &Function) -> Option<String> {
    let info = f.info();
    Some(format!("{}:{}", info.short_src?, info.line_defined?))
}

/// A Lua error as one readable text: the message with `file:line`, then the traceback.
pub fn describe_error(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(message) => message.clone(),
        mlua::Error::MemoryError(message) => {
            format!("out of memory (the Lua memory limit): {message}")
        }
        mlua::Error::CallbackError { traceback, cause } => {
            // The host's own frames (C functions, mlua's glue, the call wrapper `wechat-lua`)
            // say nothing to a script's author.
            let user_frames: Vec<&str> = traceback
                .lines()
                .filter(|l| !l.contains("__mlua") && !is_host_frame(l.trim()))
                .collect();
            format!("{}\n{}", describe_error(cause), user_frames.join("\n"))
        }
        other => other.to_string(),
    }
}

/// The message handler of the handler call: the error text plus a traceback of Lua frames.
fn with_traceback(lua: &Lua, err: &Value) -> String {
    let mut out = match err {
        Value::Error(e) => describe_error(e),
        other => other
            .to_string()
            .unwrap_or_else(|_| format!("(error object is a {})", other.type_name())),
    };
    if out.contains("stack traceback:") {
        return out;
    }
    out.push_str("\nstack traceback:");
    for level in 1..24 {
        let Some(frame) = lua.inspect_stack(level, |frame| {
            let source = frame.source();
            if source.what == "C" {
                return None;
            }
            let file = source.short_src.as_deref().unwrap_or("?").to_string();
            let line = frame
                .current_line()
                .map(|l| l.to_string())
                .unwrap_or_default();
            let name = frame.names().name.map(|n| n.to_string());
            Some((file, line, name))
        }) else {
            break;
        };
        if let Some((file, line, name)) = frame {
            if bindings::is_internal_chunk(&file) {
                continue;
            }
            let name = name
                .map(|n| format!("function '{n}'"))
                .unwrap_or_else(|| "function".into());
            out.push_str(&format!("\n\t{file}:{line}: in {name}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits `msg.content` seconds, then reports what the run sees as its account.
    const BOT: &str = r#"
        wx.on("text", function(msg)
          local name = msg.account
          wx.sleep(tonumber(msg.content))
          local n = wx.store.incr("n")
          return name .. " n=" .. n .. " window=" .. wx.kf.window("u").remaining
        end)
    "#;

    fn text(content: &str) -> InboundMessage {
        InboundMessage::parse(
            format!(
                "<xml><ToUserName>bot</ToUserName><FromUserName>u</FromUserName>\
                 <CreateTime>1</CreateTime><MsgType>text</MsgType>\
                 <Content>{content}</Content><MsgId>1</MsgId></xml>"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    async fn answer(rt: &LuaRuntime, content: &str, account: &Arc<Services>) -> String {
        match rt.handle_for(&text(content), account).await.unwrap().reply {
            Some(Reply::Text { content }) => content,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    #[tokio::test]
    async fn interleaved_runs_on_one_state_each_keep_their_own_account() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.lua"), BOT).unwrap();
        let sources = Arc::new(ScriptSources::read(dir.path()).unwrap());
        let own = Services::in_memory().unwrap();
        let mut shop = own.clone().for_account("shop", Some("wxshop"));
        shop.kf_window = Arc::default();
        let shop = Arc::new(shop);
        let mut news = own.clone().for_account("news", Some("wxnews"));
        news.kf_window = Arc::default();
        let news = Arc::new(news);
        // The user wrote to shop, never to news: their windows differ.
        shop.kf_window.note_message("u", crate::clock::unix_secs());
        let rt = LuaRuntime::load(sources, &RuntimeOptions::default(), &Arc::new(own)).unwrap();

        // shop's run starts first and waits longest: news's run starts, waits, and ends while
        // shop's waits, so each resume of shop's coroutine follows one of news's.
        let (slow, quick) = tokio::join!(answer(&rt, "0.2", &shop), async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            answer(&rt, "0.05", &news).await
        });
        assert_eq!(quick, "news n=1 window=0");
        assert_eq!(slow, "shop n=1 window=5");
        // Each wrote its own store space; the state's own account (default) saw nothing.
        assert_eq!(answer(&rt, "0", &shop).await, "shop n=2 window=5");
        let default = rt.own.clone();
        assert_eq!(answer(&rt, "0", &default).await, "default n=1 window=0");
    }
}
