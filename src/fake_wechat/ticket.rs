//! The fake's ticket endpoint (`/cgi-bin/ticket/getticket`), as [`crate::api::ticket`] calls
//! it: a new ticket on every call, so a test sees every fetch the client makes.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{FakeWechat, DEFAULT_TOKEN_TTL};
use crate::api::ticket::GETTICKET_PATH;

/// What the fake keeps of tickets.
#[derive(Debug, Default)]
pub(super) struct TicketState {
    /// Tickets handed out.
    fetches: u64,
    /// The jsapi_ticket most recently handed out.
    current_jsapi: Option<String>,
}

impl FakeWechat {
    /// How many tickets `getticket` handed out.
    pub fn ticket_fetches(&self) -> u64 {
        self.lock().ticket.fetches
    }

    /// The jsapi_ticket most recently handed out, to check a JS-SDK signature against.
    pub fn current_jsapi_ticket(&self) -> Option<String> {
        self.lock().ticket.current_jsapi.clone()
    }
}

pub(super) fn routes() -> Router<FakeWechat> {
    Router::new().route(GETTICKET_PATH, any(getticket))
}

/// `GET /cgi-bin/ticket/getticket?type=jsapi|wx_card`.
async fn getticket(
    State(fake): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let mut s = fake.lock();
    let kind = q.get("type").map(String::as_str).unwrap_or_default();
    if !matches!(kind, "jsapi" | "wx_card") {
        return Json(s.err(40097));
    }
    s.ticket.fetches += 1;
    let serial = s.next_serial();
    let ticket = format!(
        "FAKE_{}_TICKET_{}_{serial:x}",
        kind.to_ascii_uppercase(),
        s.ticket.fetches,
    );
    if kind == "jsapi" {
        s.ticket.current_jsapi = Some(ticket.clone());
    }
    Json(json!({
        "errcode": 0, "errmsg": "ok", "ticket": ticket,
        "expires_in": DEFAULT_TOKEN_TTL.as_secs(),
    }))
}
