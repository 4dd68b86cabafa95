//! The 5-second reply deadline. WeChat waits 5 s for a callback, then retries and finally shows
//! users "该公众号暂时无法提供服务". A handler that has not returned within `reply_timeout` gets
//! `success` sent for it at once; it keeps running, and when it returns its reply goes out
//! through customer service instead (see [`LateReplies`]). A reply customer service refuses for
//! good goes to the scripts' `late_reply_failed` handlers.
//!
//! The deadline is an instant, counted from the request's arrival, so the time spent before
//! the handler (the replay check, the retry-cache claim) comes out of the handler's share.
//! Every handler run is counted in [`RunningHandlers`] until it has returned and its late
//! reply has been handed over, so a shutdown can wait for them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::protocol::message::InboundMessage;
use crate::script::runtime::{Handled, LateReplyFailure};
use crate::script::{LuaPool, ScriptError, Services};

/// Where replies go that missed the deadline. Delivery only: a refusal for good is handed back
/// to the dispatcher, which owns the scripts and asks their `late_reply_failed` handlers.
pub trait LateReplies: Send + Sync + 'static {
    /// The deadline passed and the handler is still running: show the user it is coming.
    fn started(&self, openid: &str) -> BoxFuture<'static, ()>;
    /// The handler finished after the deadline: deliver its reply (or report its error).
    /// Resolves to the failure when the reply cannot be delivered, ever (45015, 45047, …).
    fn finished(
        &self,
        openid: &str,
        result: Result<Handled, ScriptError>,
    ) -> BoxFuture<'static, Option<LateReplyFailure>>;
}

/// Used when no API credentials are configured: a late reply cannot be sent, so it is logged
/// in full as an error rather than dropped silently.
pub struct LogLateReplies;

impl LateReplies for LogLateReplies {
    fn started(&self, _openid: &str) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    fn finished(
        &self,
        _openid: &str,
        result: Result<Handled, ScriptError>,
    ) -> BoxFuture<'static, Option<LateReplyFailure>> {
        match result {
            Ok(Handled { reply: Some(reply), handler }) => tracing::error!(
                handler = handler.as_deref().unwrap_or("-"),
                "a late {} reply cannot be delivered: no appid/appsecret for the customer-service API: {reply:?}",
                reply.kind()
            ),
            Ok(_) => {}
            Err(e) => tracing::error!("late handler failed: {e}"),
        }
        Box::pin(async { None })
    }
}

/// Handler runs that have not finished (their late reply handed over included), so that a
/// shutdown can wait for them rather than cut them off with their replies.
#[derive(Default)]
pub struct RunningHandlers {
    count: AtomicUsize,
    /// Woken when the count drops to zero.
    idle: Notify,
}

/// One run counted in [`RunningHandlers`] until dropped.
struct Running(Arc<RunningHandlers>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl RunningHandlers {
    fn enter(self: &Arc<Self>) -> Running {
        self.count.fetch_add(1, Ordering::AcqRel);
        Running(self.clone())
    }

    /// Handler runs not finished now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until no handler runs or `until` comes; returns how many still run then.
    pub async fn wait_idle(&self, until: Instant) -> usize {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            // Registered before the count is read, so a drop to zero in between still wakes.
            idle.as_mut().enable();
            let running = self.count();
            if running == 0 {
                return 0;
            }
            if tokio::time::timeout_at(until, idle).await.is_err() {
                return self.count();
            }
        }
    }
}

/// The outcome of one handler run.
type Outcome = Result<Handled, ScriptError>;

/// Runs the handler for `msg`; returns its reply if it finishes by
/// `deadline`, otherwise `None` (answer `success`) while the handler goes on and its reply is
/// delivered late. The run is counted in `running` until its reply, on time or late, is
/// handed over.
///
/// The handler runs on a task of its own, the request waiting for its outcome on a oneshot
/// channel. That costs a task and a channel per message (about ten allocations), and it is
/// cheaper than racing the handler on the request's own task: measured with
/// `bench/compare.sh` (docs/benchmarks.md), the request's own task made every message about
/// a quarter dearer in server CPU. Tokio runs a spawned task after the connections already
/// ready, so under load the work goes in phases — every ready connection reads and parses,
/// then the handlers run, then the answers are written one after another — which keeps each
/// phase's code in the caches and wakes the client once per burst of answers, not per answer.
/// The task also keeps the run alive when the request is dropped (the client went away): its
/// reply then goes out late, and a panicking run fails only its message.
///
/// The task, not the request, watches the deadline, so one side decides whether the reply is
/// on time: it sends either the outcome or word that the deadline passed, and the request
/// answers accordingly. Its timer is armed only if the handler waits ([`crate::timeout`]):
/// a handler that answers at once costs no timer at all.
pub async fn handle_within(
    scripts: &Arc<LuaPool>,
    account: &Arc<Services>,
    late: &Arc<dyn LateReplies>,
    running: &Arc<RunningHandlers>,
    deadline: Instant,
    msg: &Arc<InboundMessage>,
) -> Outcome {
    let (done, result) = oneshot::channel::<OnTime>();
    {
        let scripts = scripts.clone();
        let account = account.clone();
        let late = late.clone();
        let counted = running.enter();
        let msg = msg.clone();
        tokio::spawn(async move {
            let _counted = counted;
            // In a block of its own, so the run is dropped before the late delivery starts
            // and the task need not hold both futures at once.
            let outcome = {
                let mut run = std::pin::pin!(scripts.handle_for(&msg, &account));
                match crate::timeout::at(deadline, run.as_mut()).await {
                    // In time: the request answers with it. If the request is gone (the
                    // client went away), the send hands the outcome back and the reply goes
                    // out late.
                    Some(outcome) => {
                        let Err(OnTime::Finished(outcome)) = done.send(OnTime::Finished(outcome))
                        else {
                            return;
                        };
                        outcome
                    }
                    None => {
                        // The request answers `success` now; the user is shown the reply is
                        // coming while the handler goes on.
                        if done.send(OnTime::DeadlinePassed).is_ok() {
                            tokio::spawn(late.started(&msg.from_user));
                        }
                        run.await
                    }
                }
            };
            if let Some(failure) = late.finished(&msg.from_user, outcome).await {
                // Boxed: a second Lua run held inline made every message's task 2,480
                // bytes instead of 1,696, and tokio moves a task's future whole (into
                // its cell, then stage by stage); a refused late reply is rare.
                Box::pin(report_undeliverable(&scripts, &account, failure)).await;
            }
        });
    }
    match result.await {
        Ok(OnTime::Finished(outcome)) => outcome,
        Ok(OnTime::DeadlinePassed) => {
            crate::metrics::metrics().deadline_fallback();
            tracing::warn!(
                "handler missed the reply deadline: answered success, its reply will go out through customer service"
            );
            Ok(Handled {
                reply: None,
                handler: None,
            })
        }
        // The task panicked: this message fails, nothing else.
        Err(_) => Err(ScriptError::Unavailable),
    }
}

/// What the handler's task tells the request waiting for it.
enum OnTime {
    /// The handler finished by the deadline: the request answers with this.
    Finished(Outcome),
    /// The deadline passed first: the request answers `success`, the reply will go out late.
    DeadlinePassed,
}

/// Asks the scripts' `late_reply_failed` handlers what to do with a reply customer service
/// refused for good; says so in the log when none is registered.
async fn report_undeliverable(
    scripts: &LuaPool,
    account: &Arc<Services>,
    failure: LateReplyFailure,
) {
    let errcode = failure.errcode;
    match scripts.late_reply_failed(failure, account).await {
        Ok(Handled { handler: None, .. }) => tracing::error!(
            errcode,
            "late reply undeliverable and no late_reply_failed handler is registered"
        ),
        Ok(_) => {}
        Err(script_error) => tracing::error!("late_reply_failed handler failed: {script_error}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::protocol::reply::Reply;
    use crate::script::{RuntimeOptions, Services};

    /// Records the late replies handed over.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<(String, Option<Reply>)>>);

    impl LateReplies for Recorded {
        fn started(&self, _openid: &str) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
        fn finished(
            &self,
            openid: &str,
            result: Result<Handled, ScriptError>,
        ) -> BoxFuture<'static, Option<LateReplyFailure>> {
            let reply = result.ok().and_then(|h| h.reply);
            self.0.lock().unwrap().push((openid.to_owned(), reply));
            Box::pin(async { None })
        }
    }

    /// A request dropped before its handler returned (the client went away) must still see
    /// the handler finish and its reply go out late.
    #[tokio::test(start_paused = true)]
    async fn a_request_dropped_mid_handler_still_delivers_the_reply_late() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.lua"),
            "wx.on('text', function(msg) wx.sleep(1) return 'late ' .. msg.content end)\n",
        )
        .unwrap();
        let services = Services::in_memory().unwrap();
        let account = Arc::new(services.clone());
        let scripts = LuaPool::start(dir.path(), RuntimeOptions::default(), 1, services).unwrap();
        let recorded = Arc::new(Recorded::default());
        let late: Arc<dyn LateReplies> = recorded.clone();
        let running = Arc::new(RunningHandlers::default());
        let msg = InboundMessage::parse(
            b"<xml><ToUserName>gh</ToUserName><FromUserName>u1</FromUserName><CreateTime>1</CreateTime>\
              <MsgType>text</MsgType><Content>hi</Content><MsgId>7</MsgId></xml>",
        )
        .unwrap();
        let msg = Arc::new(msg);
        let deadline = Instant::now() + Duration::from_secs(5);
        let request = handle_within(&scripts, &account, &late, &running, deadline, &msg);
        // The client goes away after 100 ms: the request's future is dropped.
        let dropped = tokio::time::timeout(Duration::from_millis(100), request).await;
        assert!(dropped.is_err(), "the handler was still sleeping");
        assert_eq!(running.count(), 1, "still counted while it runs elsewhere");

        assert_eq!(
            running
                .wait_idle(Instant::now() + Duration::from_secs(10))
                .await,
            0
        );
        let recorded = recorded.0.lock().unwrap();
        assert_eq!(
            *recorded,
            vec![(
                "u1".to_owned(),
                Some(Reply::Text {
                    content: "late hi".into()
                })
            )]
        );
    }
}
