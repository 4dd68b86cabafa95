//! The pool of Lua states. A message borrows an idle state, runs its handler on the caller's
//! own tokio task (no hop to another thread: the hop cost more than Lua itself), and gives the
//! state back. A handler waiting on I/O keeps its state meanwhile, so when every state is busy
//! another is built from the current snapshot, up to [`MAX_STATES`]. A reload publishes a new
//! snapshot with a new generation and replaces the idle states; a state of an older
//! generation still running a message finishes it and is dropped when it comes back.
//!
//! The `wx.on_start` functions of a set run once per load of it, in one state only: the state
//! built to validate the set, which serves no message. At start-up the host awaits them
//! ([`LuaPool::run_start`]); after a reload they run in the background on the host's runtime,
//! so the new set serves at once and the reload thread is never held up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::routes::{RouteError, RouteOutcome, RouteRequest};
use super::runtime::{Handled, LateReplyFailure, LuaRuntime};
use super::{LoadError, RuntimeOptions, ScriptError, ScriptSources, Services};
use crate::protocol::message::InboundMessage;

/// Most Lua states alive at once (each costs a few hundred KiB); beyond it messages wait for a
/// state to come back.
pub const MAX_STATES: usize = 256;

/// A published script set: the snapshot and its generation number.
#[derive(Clone)]
struct Published {
    generation: u64,
    sources: Arc<ScriptSources>,
}

/// A Lua state and the generation it was built from.
struct State {
    generation: u64,
    runtime: LuaRuntime,
}

/// What the pool lock guards.
struct Pool {
    /// The set new states are built from; replaced by a reload.
    published: Published,
    /// Idle states, all of `published.generation`.
    idle: Vec<State>,
    /// States alive (idle, running or being built), of any generation.
    alive: usize,
}

/// What the last reload attempt did, for logs, `check` and `/healthz`.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// Generation in service (1 for the first load).
    pub generation: u64,
    /// Reloads that succeeded.
    pub reloads_ok: u64,
    /// Reloads that were rejected (the last good set kept serving).
    pub reloads_failed: u64,
    /// The error of the last rejected reload, if the last attempt failed.
    pub last_error: Option<String>,
}

/// Handle to the pool of Lua states; cheap to share behind an `Arc`.
pub struct LuaPool {
    pool: Mutex<Pool>,
    /// Woken when a state comes back or is dropped, for messages waiting at [`MAX_STATES`].
    returned: Notify,
    /// How many states a reload builds up front.
    initial: usize,
    generation: AtomicU64,
    location: std::path::PathBuf,
    options: RuntimeOptions,
    /// The services of the account the pool belongs to (`default` for the shared scripts):
    /// what its states act for outside a message, and the shared store and HTTP client.
    services: Arc<Services>,
    status: Mutex<ReloadStatus>,
    /// Serialises reloads so two quick ones cannot publish out of order.
    reloading: Mutex<()>,
    /// The state that validated the first set, kept while it has `wx.on_start` functions
    /// still to run.
    first_start: Mutex<Option<LuaRuntime>>,
    /// The runtime the pool was started on, where a reloaded set's `wx.on_start` functions
    /// run (not the reload thread's own: connections the API client opens there would only
    /// make progress while that thread polls).
    handle: Option<tokio::runtime::Handle>,
}

/// A borrowed state; goes back to the pool when dropped, also if the message's task is
/// cancelled mid-handler.
struct Lease<'a> {
    pool: &'a LuaPool,
    state: Option<State>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            self.pool.give_back(state);
        }
    }
}

/// A place under [`MAX_STATES`] taken for a state being built.
struct Reserved<'a>(Option<&'a LuaPool>);

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            pool.lock().alive -= 1;
            pool.returned.notify_one();
        }
    }
}

impl LuaPool {
    /// Loads the scripts at `location` (validating them once here, so a broken set stops
    /// start-up with its file and line) and builds `workers` Lua states (at least one).
    pub fn start(
        location: &std::path::Path,
        options: RuntimeOptions,
        workers: usize,
        services: Services,
    ) -> Result<Arc<LuaPool>, ScriptError> {
        let services = Arc::new(services);
        let sources = Arc::new(ScriptSources::read(location)?);
        let first = LuaRuntime::load(sources.clone(), &options, &services)?;
        first.check_syntax()?;
        for warning in first.warnings() {
            tracing::warn!("{warning}");
        }
        let first_start = (first.start_count() > 0).then_some(first);
        let initial = workers.clamp(1, MAX_STATES);
        let idle = build_states(1, &sources, initial, &options, &services)?;
        Ok(Arc::new(LuaPool {
            pool: Mutex::new(Pool {
                published: Published {
                    generation: 1,
                    sources,
                },
                alive: idle.len(),
                idle,
            }),
            returned: Notify::new(),
            initial,
            generation: AtomicU64::new(1),
            location: location.to_path_buf(),
            options,
            services,
            status: Mutex::new(ReloadStatus {
                generation: 1,
                ..Default::default()
            }),
            reloading: Mutex::new(()),
            first_start: Mutex::new(first_start),
            handle: tokio::runtime::Handle::try_current().ok(),
        }))
    }

    /// Runs the first set's `wx.on_start` functions, once (later calls do nothing); errors
    /// are logged with their `file:line` and returned, never fatal.
    pub async fn run_start(&self) -> Vec<ScriptError> {
        let first = crate::sync::lock(&self.first_start).take();
        match first {
            Some(runtime) => runtime.run_start(1).await,
            None => Vec::new(),
        }
    }

    /// Runs the handler for one message to the pool's own account; see
    /// [`LuaPool::handle_for`].
    pub async fn handle(&self, msg: InboundMessage) -> Result<Handled, ScriptError> {
        self.handle_for(&msg, &self.services.clone()).await
    }

    /// Runs the handler for one message to `account` on an idle Lua state, on the caller's
    /// task: the handler sees `msg.account` and its bindings act for that account, whichever
    /// account the state last ran for (the states of the shared scripts serve them all).
    pub async fn handle_for(
        &self,
        msg: &InboundMessage,
        account: &Arc<Services>,
    ) -> Result<Handled, ScriptError> {
        let lease = self.take().await?;
        match &lease.state {
            Some(state) => state.runtime.handle_for(msg, account).await,
            None => Err(ScriptError::Unavailable),
        }
    }

    /// The services of the account the pool belongs to.
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Offers a web request to the scripts' routes on an idle Lua state, on the caller's task;
    /// the route has until `deadline`. Routes and messages share the states, so a reload
    /// changes both at once.
    pub async fn handle_route(
        &self,
        req: &RouteRequest,
        deadline: tokio::time::Instant,
    ) -> Result<RouteOutcome, RouteError> {
        let lease = self.take().await?;
        match &lease.state {
            Some(state) => state.runtime.handle_route(req, deadline).await,
            None => Err(ScriptError::Unavailable.into()),
        }
    }

    /// Runs the scripts' `late_reply_failed` handlers for a reply to `account` that could not
    /// be delivered.
    pub async fn late_reply_failed(
        &self,
        failure: LateReplyFailure,
        account: &Arc<Services>,
    ) -> Result<Handled, ScriptError> {
        let lease = self.take().await?;
        match &lease.state {
            Some(state) => state.runtime.late_reply_failed(&failure, account).await,
            None => Err(ScriptError::Unavailable),
        }
    }

    /// Runs the scripts' `component.authorized` / `component.unauthorized` handlers,
    /// acting for `account`.
    pub async fn component_event(
        &self,
        event: super::runtime::ComponentEvent,
        account: &Arc<Services>,
    ) -> Result<Handled, ScriptError> {
        let lease = self.take().await?;
        match &lease.state {
            Some(state) => state.runtime.component_event(&event, account).await,
            None => Err(ScriptError::Unavailable),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle state of the current generation, a new one if none is idle, or (at
    /// [`MAX_STATES`]) the next one given back.
    async fn take(&self) -> Result<Lease<'_>, ScriptError> {
        loop {
            let returned = self.returned.notified();
            tokio::pin!(returned);
            let build = {
                let mut pool = self.lock();
                if let Some(state) = pool.idle.pop() {
                    return Ok(Lease {
                        pool: self,
                        state: Some(state),
                    });
                }
                if pool.alive < MAX_STATES {
                    pool.alive += 1;
                    Some(pool.published.clone())
                } else {
                    // Registered under the pool lock, which `give_back` takes before it
                    // notifies, so a state given back after this look is not missed.
                    returned.as_mut().enable();
                    None
                }
            };
            let Some(published) = build else {
                returned.await;
                continue;
            };
            // Gives the reserved place back if the build fails or this message is cancelled.
            let mut reserved = Reserved(Some(self));
            // A state takes milliseconds to build: off the async worker, as a reload's are.
            let options = self.options.clone();
            let services = self.services.clone();
            let sources = published.sources.clone();
            let built =
                tokio::task::spawn_blocking(move || LuaRuntime::load(sources, &options, &services))
                    .await
                    .map_err(|e| {
                        ScriptError::Load(LoadError::host(format!("cannot build a Lua state: {e}")))
                    })
                    .and_then(|r| r);
            match built {
                Ok(runtime) => {
                    reserved.0 = None;
                    tracing::debug!(generation = published.generation, "built another Lua state");
                    return Ok(Lease {
                        pool: self,
                        state: Some(State {
                            generation: published.generation,
                            runtime,
                        }),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Puts a state back for the next message, or drops it if a reload replaced its set or a
    /// run on it went over a limit (its coroutine may have been cut anywhere).
    fn give_back(&self, state: State) {
        if state.runtime.is_stopped() {
            tracing::warn!("a Lua state whose handler was stopped is discarded; the next message gets a fresh one");
        }
        let stale = {
            let mut pool = self.lock();
            if state.generation == pool.published.generation && !state.runtime.is_stopped() {
                pool.idle.push(state);
                None
            } else {
                pool.alive -= 1;
                Some(state)
            }
        };
        // Closing a Lua state is not free: outside the lock.
        drop(stale);
        self.returned.notify_one();
    }

    /// Re-reads the scripts; if they load, new messages run on states built from them. If
    /// not, the last good set keeps serving and the error (with file:line) is returned.
    pub fn reload(&self) -> Result<u64, ScriptError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.generation.load(Ordering::SeqCst) + 1;
        let attempt = ScriptSources::read(&self.location)
            .map(Arc::new)
            .and_then(|sources| {
                let runtime = LuaRuntime::load(sources.clone(), &self.options, &self.services)?;
                runtime.check_syntax()?;
                for warning in runtime.warnings() {
                    tracing::warn!("{warning}");
                }
                let starter = (runtime.start_count() > 0).then_some(runtime);
                // The new set's states are built here, on the reloading thread, so messages
                // never wait for a build after a reload.
                let idle = build_states(
                    generation,
                    &sources,
                    self.initial,
                    &self.options,
                    &self.services,
                )?;
                Ok((sources, idle, starter))
            });
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        crate::metrics::metrics().reload(attempt.is_ok());
        match attempt {
            Ok((sources, idle, starter)) => {
                let old = {
                    let mut pool = self.lock();
                    pool.published = Published {
                        generation,
                        sources,
                    };
                    // The stored generation moves under the pool lock, with the states, so
                    // a message that sees it also finds the new states.
                    self.generation.store(generation, Ordering::SeqCst);
                    let old = std::mem::replace(&mut pool.idle, idle);
                    pool.alive = pool.alive - old.len() + pool.idle.len();
                    old
                };
                drop(old);
                self.returned.notify_waiters();
                status.generation = generation;
                status.reloads_ok += 1;
                status.last_error = None;
                if let Some(starter) = starter {
                    match &self.handle {
                        Some(handle) => {
                            handle.spawn(async move {
                                starter.run_start(generation).await;
                            });
                        }
                        None => tracing::warn!(
                            generation,
                            "wx.on_start functions not run: no async runtime to run them on"
                        ),
                    }
                }
                Ok(generation)
            }
            Err(e) => {
                status.reloads_failed += 1;
                status.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The generation in service.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// What reloads have done so far.
    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The scripts location this pool loads from.
    pub fn location(&self) -> &std::path::Path {
        &self.location
    }

    /// Lua states alive now (idle or running), for tests and `/healthz`.
    pub fn states(&self) -> usize {
        self.lock().alive
    }
}

fn build_states(
    generation: u64,
    sources: &Arc<ScriptSources>,
    count: usize,
    options: &RuntimeOptions,
    services: &Arc<Services>,
) -> Result<Vec<State>, ScriptError> {
    (0..count)
        .map(|_| {
            LuaRuntime::load(sources.clone(), options, services).map(|runtime| State {
                generation,
                runtime,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::reply::Reply;

    const BOT: &str = r#"
        wx.on("text", "^wait", function() wx.sleep(0.2) return "waited VERSION" end)
        wx.on("text", function(msg) return "VERSION " .. msg.content end)
    "#;

    fn write_bot(dir: &std::path::Path, version: &str) {
        std::fs::write(dir.join("main.lua"), BOT.replace("VERSION", version)).unwrap();
    }

    fn text(content: &str, id: u64) -> InboundMessage {
        InboundMessage::parse(
            format!(
                "<xml><ToUserName>bot</ToUserName><FromUserName>u</FromUserName>\
                 <CreateTime>1</CreateTime><MsgType>text</MsgType>\
                 <Content>{content}</Content><MsgId>{id}</MsgId></xml>"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    async fn answer(pool: &LuaPool, content: &str, id: u64) -> String {
        match pool.handle(text(content, id)).await.unwrap().reply {
            Some(Reply::Text { content }) => content,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_waiting_handler_keeps_its_state_and_the_next_message_gets_another() {
        let dir = tempfile::tempdir().unwrap();
        write_bot(dir.path(), "v1");
        let pool = LuaPool::start(
            dir.path(),
            RuntimeOptions::default(),
            1,
            Services::in_memory().unwrap(),
        )
        .unwrap();
        assert_eq!(pool.states(), 1);
        let (waited, quick) = tokio::join!(answer(&pool, "wait", 1), async {
            tokio::task::yield_now().await;
            answer(&pool, "hi", 2).await
        });
        assert_eq!((waited.as_str(), quick.as_str()), ("waited v1", "v1 hi"));
        assert_eq!(
            pool.states(),
            2,
            "the waiting handler's state was not shared"
        );
        // Both states are idle now and reused: no third one.
        assert_eq!(answer(&pool, "again", 3).await, "v1 again");
        assert_eq!(pool.states(), 2);
    }

    #[tokio::test]
    async fn a_state_running_across_a_reload_finishes_and_is_then_dropped() {
        let dir = tempfile::tempdir().unwrap();
        write_bot(dir.path(), "v1");
        let pool = LuaPool::start(
            dir.path(),
            RuntimeOptions::default(),
            2,
            Services::in_memory().unwrap(),
        )
        .unwrap();
        let running = tokio::spawn({
            let pool = pool.clone();
            async move { answer(&pool, "wait", 1).await }
        });
        // Let the spawned message take its state and start waiting.
        while pool.lock().idle.len() == 2 {
            tokio::task::yield_now().await;
        }
        write_bot(dir.path(), "v2");
        assert_eq!(pool.reload().unwrap(), 2);
        // Two fresh states plus the one still running the old set.
        assert_eq!(pool.states(), 3);
        assert_eq!(answer(&pool, "hi", 2).await, "v2 hi");
        assert_eq!(running.await.unwrap(), "waited v1");
        assert_eq!(pool.states(), 2, "the old state was kept after its message");
        assert_eq!(answer(&pool, "wait", 3).await, "waited v2");
    }
}
