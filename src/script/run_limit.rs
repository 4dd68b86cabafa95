//! The run limit of a Lua state: one instruction-count hook per state that
//! - stops a handler that ran longer than its limit without waiting on anything, and keeps it
//!   stopped: once over, the hook raises on *every* later instruction of the thread, so
//!   `pcall`, `xpcall` or a coroutine can catch one error but never run on (the way Redis stops
//!   a script that catches its kill error);
//! - yields the handler's coroutine back to the scheduler every [`TIME_SLICE`], so a spinning
//!   handler never holds a tokio worker and `/healthz` and other messages keep being served;
//! - marks the state stopped, so the pool discards it instead of lending it again.
//!
//! The handler's wall-clock budget (waiting included) is enforced by the caller with a timer;
//! when it fires it calls [`RunClock::stop`] too.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use mlua::{ffi, HookTriggers, Lua, VmState};

/// How often (in VM instructions) the hook runs: rare enough to cost little, often enough to
/// notice a spent limit or slice within tens of microseconds.
const HOOK_INSTRUCTIONS: u32 = 10_000;

/// How long a handler runs before its coroutine yields to let other tasks on the same worker
/// run; it is resumed at once when nothing else is waiting.
pub const TIME_SLICE: Duration = Duration::from_millis(2);

/// Why a run was stopped, for the error the script and the log get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Ran longer than the run limit without waiting on anything.
    Cpu,
    /// Took longer than the wall-clock budget in all, waiting included.
    Wall,
    /// The top level of a script ran too long while loading.
    Load,
}

/// The clock the hook of one Lua state reads, shared with the code that resumes handlers.
pub struct RunClock {
    base: Instant,
    /// How long Lua may run without waiting on anything.
    limit: Duration,
    /// Nanoseconds since `base` when the handler last started running after a real wait:
    /// the run limit counts from here. Time slices do not reset it.
    running_since: AtomicU64,
    /// Nanoseconds since `base` when the handler's coroutine was last resumed: a time slice
    /// counts from here.
    resumed_at: AtomicU64,
    /// Set by the hook when it yielded for a time slice, so the next resume continues the
    /// same run instead of starting a new one.
    sliced: AtomicBool,
    /// The `lua_State` of the handler coroutine running now (0 when none): only that thread
    /// may yield for a slice; a yield inside a coroutine the script made would reach the
    /// script's own `coroutine.resume` as a spurious yield.
    handler_thread: AtomicUsize,
    /// Set once a run went over a limit: the hook raises on every instruction from then on
    /// and the pool discards the state. Never cleared.
    stopped: AtomicBool,
    /// What stopped it and where (`file:line` of the script when known), once `stopped`
    /// is set.
    reason: std::sync::Mutex<Option<(StopReason, String)>>,
}

impl RunClock {
    /// A clock for a state whose handlers may run `limit` without waiting.
    pub fn new(limit: Duration) -> Arc<RunClock> {
        Arc::new(RunClock {
            base: Instant::now(),
            limit,
            running_since: AtomicU64::new(0),
            resumed_at: AtomicU64::new(0),
            sliced: AtomicBool::new(false),
            handler_thread: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            reason: std::sync::Mutex::new(None),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// A handler run starts on `thread` (its coroutine's `lua_State`, from
    /// [`mlua::Thread::to_pointer`]).
    pub fn start(&self, thread: *const std::ffi::c_void) {
        let now = self.now();
        self.running_since.store(now, Ordering::Relaxed);
        self.resumed_at.store(now, Ordering::Relaxed);
        self.sliced.store(false, Ordering::Relaxed);
        self.handler_thread
            .store(thread as usize, Ordering::Relaxed);
    }

    /// The handler's coroutine is about to be resumed. After a real wait (I/O, a timer) the
    /// run limit starts afresh; after a time slice the same run goes on.
    pub fn resuming(&self) {
        let now = self.now();
        if !self.sliced.swap(false, Ordering::Relaxed) {
            self.running_since.store(now, Ordering::Relaxed);
        }
        self.resumed_at.store(now, Ordering::Relaxed);
    }

    /// Whether the last resume ended in a yield for a time slice.
    fn was_sliced(&self) -> bool {
        self.sliced.load(Ordering::Relaxed)
    }

    /// The handler run ended (finished, failed or cancelled).
    pub fn finish(&self) {
        self.handler_thread.store(0, Ordering::Relaxed);
        self.sliced.store(false, Ordering::Relaxed);
    }

    /// Stops the state for good: every later hook call raises and the pool discards it.
    pub fn stop(&self, reason: StopReason) {
        self.stop_at(reason, String::new());
    }

    fn stop_at(&self, reason: StopReason, site: String) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert((reason, site));
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Whether the running handler (or the loading top level) is still within its limit;
    /// stops it, and says so, when not. For host functions that work without reaching the
    /// hook (the pattern functions).
    pub fn check(&self) -> mlua::Result<()> {
        if !self.is_stopped() {
            let running = self
                .now()
                .saturating_sub(self.running_since.load(Ordering::Relaxed));
            if running <= self.limit.as_nanos() as u64 {
                return Ok(());
            }
            let reason = if self.handler_thread.load(Ordering::Relaxed) != 0 {
                StopReason::Cpu
            } else {
                StopReason::Load
            };
            self.stop_at(reason, String::new());
        }
        Err(self.stopped_error())
    }

    /// Whether a run of this state went over a limit.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// What stopped the state, if anything did.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(reason, _)| *reason)
    }

    /// The error a stopped run raises: where it was stopped, then why. Every later raise
    /// repeats it, so whichever one leaves the coroutine names the script line.
    fn stopped_error(&self) -> mlua::Error {
        let limit = self.limit;
        let site = self
            .reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, site)| site.clone())
            .unwrap_or_default();
        let prefix = if site.is_empty() {
            String::new()
        } else {
            format!("{site}: ")
        };
        mlua::Error::RuntimeError(
            prefix
                + &match self.stop_reason() {
                    Some(StopReason::Load) => {
                        format!("the script's top level ran for more than {limit:?}; stopped")
                    }
                    Some(StopReason::Wall) => {
                        "handler exceeded its total time budget; stopped".to_string()
                    }
                    _ => {
                        format!("handler ran for more than {limit:?} without waiting on anything; stopped")
                    }
                },
        )
    }
}

/// Drives a handler's coroutine (`running`, started with [`RunClock::start`]) to its end:
/// each resume is marked on the clock, and a yield for a time slice becomes
/// `tokio::task::yield_now`, which lets the worker poll for I/O and run other tasks before
/// the handler is resumed.
pub async fn drive<F: Future>(clock: &RunClock, running: F) -> F::Output {
    let mut running = std::pin::pin!(running);
    let waker = Arc::new(SliceWaker::default());
    loop {
        let step = std::future::poll_fn(|cx| {
            clock.resuming();
            waker.polling(cx.waker());
            let polled = running
                .as_mut()
                .poll(&mut Context::from_waker(&Waker::from(waker.clone())));
            let woken = waker.polled();
            match polled {
                Poll::Ready(output) => Poll::Ready(Some(output)),
                Poll::Pending if clock.was_sliced() => Poll::Ready(None),
                Poll::Pending => {
                    if woken {
                        // Woken before it even waited (a bare `coroutine.yield()`, or a future
                        // out of its scheduling budget): the same run goes on, so a yield
                        // loop meets the run limit like any other loop.
                        clock.sliced.store(true, Ordering::Relaxed);
                        cx.waker().wake_by_ref();
                    }
                    Poll::Pending
                }
            }
        })
        .await;
        match step {
            Some(output) => return output,
            None => tokio::task::yield_now().await,
        }
    }
}

/// Forwards wakes to the task, except those made while the coroutine is being polled: mlua
/// wakes the task itself after a hook yield, which would put it straight back in the run
/// queue and skip the I/O poll that `yield_now` gets. A wake during the poll that was not a
/// slice (a future that woke itself) is passed on after the poll.
#[derive(Default)]
struct SliceWaker {
    task: std::sync::Mutex<Option<Waker>>,
    in_poll: AtomicBool,
    woken_in_poll: AtomicBool,
}

impl SliceWaker {
    fn polling(&self, task: &Waker) {
        let mut slot = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if !slot.as_ref().is_some_and(|w| w.will_wake(task)) {
            *slot = Some(task.clone());
        }
        self.woken_in_poll.store(false, Ordering::SeqCst);
        self.in_poll.store(true, Ordering::SeqCst);
    }

    /// Ends a poll; whether something woke the task during it.
    fn polled(&self) -> bool {
        self.in_poll.store(false, Ordering::SeqCst);
        self.woken_in_poll.swap(false, Ordering::SeqCst)
    }
}

impl Wake for SliceWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.in_poll.load(Ordering::SeqCst) {
            self.woken_in_poll.store(true, Ordering::SeqCst);
            // A wake from another thread may land after the poll ended but before the flag
            // was read: `polled` then reports it, or this forwards it; either way it is kept.
            if self.in_poll.load(Ordering::SeqCst) {
                return;
            }
        }
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            task.wake_by_ref();
        }
    }
}

/// Installs the state's hook: on the main thread now (it bounds the scripts' top level while
/// loading, `load_started` being when loading began) and, through mlua's global hook, on every
/// coroutine mlua creates for handlers (and the coroutines those create, which inherit it).
///
/// Lua runs two kinds of script code with hooks off, where no limit could reach them: the
/// message handler of `xpcall` when the error was raised by the hook itself, and `__gc`
/// finalizers. So the scripts' `xpcall` skips their message handler once the run is stopped,
/// and `setmetatable` refuses a metatable with `__gc`.
pub fn install(lua: &Lua, clock: &Arc<RunClock>) -> mlua::Result<()> {
    let stopped = {
        let clock = clock.clone();
        lua.create_function(move |_, ()| Ok(clock.is_stopped()))?
    };
    lua.load(GUARDS)
        .set_name("=wechat-lua")
        .call::<()>(stopped)?;
    lua.set_app_data(clock.clone());
    let clock = clock.clone();
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(HOOK_INSTRUCTIONS),
        move |lua, _| hook(lua, &clock),
    )
}

/// The scripts' `xpcall` and `setmetatable` (see [`install`]).
const GUARDS: &str = r#"
local stopped = ...
local xpcall, setmetatable, rawget, type, error = xpcall, setmetatable, rawget, type, error
_G.xpcall = function(f, handler, ...)
    return xpcall(f, function(e)
        if stopped() then return e end
        return handler(e)
    end, ...)
end
_G.setmetatable = function(t, mt)
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
        error("__gc finalizers are not available to scripts (Lua runs them outside every limit)", 2)
    end
    return setmetatable(t, mt)
end
"#;

fn hook(lua: &Lua, clock: &RunClock) -> mlua::Result<VmState> {
    if !clock.is_stopped() {
        let now = clock.now();
        let running = now.saturating_sub(clock.running_since.load(Ordering::Relaxed));
        if running <= clock.limit.as_nanos() as u64 {
            let resumed = now.saturating_sub(clock.resumed_at.load(Ordering::Relaxed));
            if resumed > TIME_SLICE.as_nanos() as u64 {
                let thread = current_state(lua);
                let handler = clock.handler_thread.load(Ordering::Relaxed);
                // SAFETY: `thread` is the live thread this hook runs on.
                if handler != 0
                    && thread as usize == handler
                    && unsafe { ffi::lua_isyieldable(thread) } != 0
                {
                    clock.sliced.store(true, Ordering::Relaxed);
                    return Ok(VmState::Yield);
                }
            }
            return Ok(VmState::Continue);
        }
        let in_handler = clock.handler_thread.load(Ordering::Relaxed) != 0;
        let reason = if in_handler {
            StopReason::Cpu
        } else {
            StopReason::Load
        };
        clock.stop_at(reason, script_site(lua));
    }
    // From now on this thread raises before every instruction: an error caught by `pcall`
    // is raised again in the catching frame at once, until it leaves the coroutine.
    let thread = current_state(lua);
    // SAFETY: `thread` is the live thread this hook runs on; changing a thread's own hook
    // count from inside its hook is allowed by the Lua API (debug.sethook does it).
    unsafe {
        let mask = ffi::lua_gethookmask(thread);
        ffi::lua_sethook(thread, ffi::lua_gethook(thread), mask, 1);
    }
    Err(clock.stopped_error())
}

/// `file:line` of the script code the hook interrupted (level 0 is the running function).
fn script_site(lua: &Lua) -> String {
    lua.inspect_stack(0, |frame| {
        let source = frame.source();
        let line = frame.current_line()?;
        Some(format!("{}:{line}", source.short_src?))
    })
    .flatten()
    .unwrap_or_default()
}

/// The `lua_State` the hook runs on (mlua points its handle at the hooked thread during a
/// hook callback).
fn current_state(lua: &Lua) -> *mut ffi::lua_State {
    let mut state = std::ptr::null_mut();
    // SAFETY: the closure only copies the pointer out; nothing is pushed or popped.
    let _ = unsafe { lua.exec_raw::<()>((), |s| state = s) };
    state
}
