//! Replies that missed the 5-second deadline, delivered through the customer-service API:
//! the typing indicator while the handler still runs, the reply in its customer-service form
//! when it returns, the outbox when WeChat is briefly unavailable, and the scripts'
//! `late_reply_failed` handlers when customer service refuses for good (45015: the user has not
//! written within 48 hours; 45047: the customer-service quota is used up).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::deadline::LateReplies;
use crate::api::outbox::Outbox;
use crate::api::{KfMessage, WechatClient};
use crate::script::runtime::{Handled, LateReplyFailure};
use crate::script::{ScriptError, ScriptHost};

/// Late replies over the customer-service API.
pub struct KfLateReplies {
    api: WechatClient,
    outbox: Arc<Outbox>,
    scripts: Arc<ScriptHost>,
}

impl KfLateReplies {
    /// Late replies sent with `api`, retried through `outbox`, failures reported to `scripts`.
    pub fn new(api: WechatClient, outbox: Arc<Outbox>, scripts: Arc<ScriptHost>) -> KfLateReplies {
        KfLateReplies {
            api,
            outbox,
            scripts,
        }
    }
}

impl LateReplies for KfLateReplies {
    fn started(&self, openid: &str) -> BoxFuture<'static, ()> {
        let api = self.api.clone();
        let openid = openid.to_string();
        Box::pin(async move {
            if let Err(e) = api.kf().typing(&openid, true).await {
                tracing::debug!(errcode = e.errcode(), "typing indicator not shown: {e}");
            }
        })
    }

    fn finished(
        &self,
        openid: &str,
        result: Result<Handled, ScriptError>,
    ) -> BoxFuture<'static, ()> {
        let api = self.api.clone();
        let outbox = self.outbox.clone();
        let scripts = self.scripts.clone();
        let openid = openid.to_string();
        Box::pin(async move {
            let reply = match result {
                Ok(Handled {
                    reply: Some(reply), ..
                }) => reply,
                Ok(_) => {
                    let _ = api.kf().typing(&openid, false).await;
                    return;
                }
                Err(e) => {
                    tracing::error!("late handler failed: {e}");
                    let _ = api.kf().typing(&openid, false).await;
                    return;
                }
            };
            let Some(message) = KfMessage::from_reply(&reply) else {
                tracing::error!(
                    "a transfer to customer service cannot be sent after the deadline; dropped"
                );
                return;
            };
            match api.kf().send(&openid, &message).await {
                Ok(()) => tracing::info!(
                    kind = reply.kind(),
                    "late reply delivered through customer service"
                ),
                Err(e) if e.is_transient() => {
                    let call =
                        message.queued_send(&openid, None, format!("late {} reply", reply.kind()));
                    if let Err(store_error) = outbox.enqueue(&call, &e).await {
                        tracing::error!(
                            "late reply lost: cannot queue it ({store_error}) after {e}"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        errcode = e.errcode(),
                        "customer service refused the late reply; asking the scripts' late_reply_failed handlers"
                    );
                    let failure = LateReplyFailure {
                        openid,
                        reply,
                        errcode: e.errcode(),
                        errmsg: e.errmsg(),
                    };
                    match scripts.late_reply_failed(failure).await {
                        Ok(Handled { handler: None, .. }) => tracing::error!(
                            errcode = e.errcode(),
                            "late reply undeliverable and no late_reply_failed handler is registered"
                        ),
                        Ok(_) => {}
                        Err(script_error) => tracing::error!("late_reply_failed handler failed: {script_error}"),
                    }
                }
            }
        })
    }
}
