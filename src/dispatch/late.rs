//! Replies that missed the 5-second deadline, delivered through the customer-service API:
//! the typing indicator while the handler still runs, the reply in its customer-service form
//! when it returns, and the outbox when WeChat is briefly unavailable. When customer service
//! refuses for good (45015: the user has not written within 48 hours; 45047: the
//! customer-service quota is used up) the failure goes back to the dispatcher, which asks the
//! scripts' `late_reply_failed` handlers.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::deadline::{LateReplies, LogLateReplies};
use crate::api::outbox::Outbox;
use crate::api::{KfMessage, WechatClient};
use crate::script::runtime::{Handled, LateReplyFailure};
use crate::script::{ScriptError, Services};

/// Late replies over the customer-service API.
pub struct KfLateReplies {
    api: WechatClient,
    outbox: Arc<Outbox>,
}

impl KfLateReplies {
    /// Late replies sent with `api`, retried through `outbox`.
    pub fn new(api: WechatClient, outbox: Arc<Outbox>) -> KfLateReplies {
        KfLateReplies { api, outbox }
    }
}

/// The late-reply sink of these services: customer service when the WeChat API is configured,
/// the log otherwise.
pub fn for_services(services: &Services) -> Arc<dyn LateReplies> {
    match (&services.api, &services.outbox) {
        (Some(api), Some(outbox)) => Arc::new(KfLateReplies::new(api.clone(), outbox.clone())),
        _ => Arc::new(LogLateReplies),
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
    ) -> BoxFuture<'static, Option<LateReplyFailure>> {
        let api = self.api.clone();
        let outbox = self.outbox.clone();
        let openid = openid.to_string();
        Box::pin(async move {
            let reply = match result {
                Ok(Handled {
                    reply: Some(reply), ..
                }) => reply,
                Ok(_) => {
                    let _ = api.kf().typing(&openid, false).await;
                    return None;
                }
                Err(e) => {
                    tracing::error!("late handler failed: {e}");
                    let _ = api.kf().typing(&openid, false).await;
                    return None;
                }
            };
            let Some(message) = KfMessage::from_reply(&reply) else {
                tracing::error!(
                    "a transfer to customer service cannot be sent after the deadline; dropped"
                );
                return None;
            };
            match api.kf().send(&openid, &message).await {
                Ok(()) => {
                    tracing::info!(
                        kind = reply.kind(),
                        "late reply delivered through customer service"
                    );
                    None
                }
                Err(e) if e.is_transient() => {
                    let call =
                        message.queued_send(&openid, None, format!("late {} reply", reply.kind()));
                    if !call.may_send_again(&e) {
                        // The request went out and no answer came: it may have arrived, and a
                        // customer-service message has no key to deduplicate it. At most once.
                        tracing::warn!(
                            kind = reply.kind(),
                            errcode = e.errcode(),
                            "late reply's outcome unknown (the request went out, no answer came); not sent again"
                        );
                        crate::metrics::metrics().send_unknown_outcome(
                            crate::api::kf::SEND_PATH,
                            crate::api::outbox::unknown_reason::ANSWER_LOST,
                        );
                        return None;
                    }
                    if let Err(store_error) = outbox.enqueue(&call, &e).await {
                        tracing::error!(
                            "late reply lost: cannot queue it ({store_error}) after {e}"
                        );
                    }
                    None
                }
                Err(e) => {
                    tracing::warn!(
                        errcode = e.errcode(),
                        "customer service refused the late reply; asking the scripts' late_reply_failed handlers"
                    );
                    Some(LateReplyFailure {
                        openid,
                        reply,
                        errcode: e.errcode(),
                        errmsg: e.errmsg(),
                    })
                }
            }
        })
    }
}
