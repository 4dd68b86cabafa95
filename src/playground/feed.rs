//! Everything the page shows, as one numbered stream of events: kept in a capped ring for
//! pages that (re)connect or page back, and sent to the connected pages as it happens.
//!
//! A page connects to the server-sent events stream with the id of the last event it has
//! (`Last-Event-ID`, which `EventSource` sends by itself when it reconnects). Ids carry the
//! session they belong to (`boot:seq`): a page left open across a restart of `play` is told
//! to start over (`reset`) rather than wait for numbers the new session has not reached.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use super::reply::View;
use crate::sync::lock;

/// How many events the ring keeps: what a page that connects late, or pages back, can get.
pub const FEED_CAP: usize = 5000;
/// How many of the newest events a page gets when it starts over.
pub const INITIAL_EVENTS: usize = 400;
/// How many events a live page may fall behind before it catches up from the ring.
const LIVE_CAPACITY: usize = 256;

/// One event, numbered.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Its number in this session, from 1.
    pub seq: u64,
    /// Unix milliseconds when it happened.
    pub at_ms: i64,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
}

/// The XML one message and its reply were sent as, for the page's raw view.
#[derive(Debug, Clone, Serialize)]
pub struct Raw {
    /// The message XML the simulated user sent, before any encryption.
    pub message: String,
    /// The signed query string (as WeChat signs it).
    pub query: String,
    /// The body POSTed (the envelope when encrypted).
    pub request_body: String,
    /// The body the host answered (the envelope when encrypted).
    pub response_body: String,
    /// The reply in plaintext.
    pub reply: String,
}

/// One part of a multipart call, without its bytes.
#[derive(Debug, Clone, Serialize)]
pub struct PartSummary {
    /// Form field name.
    pub name: String,
    /// File name.
    pub filename: Option<String>,
    /// Content type.
    pub content_type: Option<String>,
    /// Size in bytes.
    pub size: usize,
}

/// What happened, by kind.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// A simulated user sent a message or an event.
    User {
        /// Their OpenID.
        user: String,
        /// What their bubble (or system line, for events) shows.
        message: Value,
        /// Pairs the message with its reply.
        exchange: u64,
    },
    /// The account answered a message (`via` passive), or sent one later (`via` kf).
    Reply {
        /// To whom.
        user: String,
        /// What it shows as.
        reply: View,
        /// `passive` (the callback's answer) or `kf` (customer service, late replies too).
        via: &'static str,
        /// The message it answers (passive replies only).
        exchange: Option<u64>,
        /// The XML exchanged (passive replies only).
        raw: Option<Raw>,
    },
    /// A message did not get through to the host.
    Failed {
        /// Whose.
        user: String,
        /// Why.
        error: String,
        /// The message.
        exchange: u64,
    },
    /// `wx.kf.typing`: the indicator on or off.
    Typing {
        /// For whom.
        user: String,
        /// On or off.
        on: bool,
    },
    /// A template message or subscription notification.
    Notice {
        /// To whom.
        user: String,
        /// `template` or `subscribe`.
        notice: &'static str,
        /// The template's title (or id).
        title: String,
        /// The data fields, in order.
        fields: Vec<(String, String)>,
        /// Where a tap goes, if anywhere.
        url: Option<String>,
    },
    /// A mass send that reached this simulated user.
    Broadcast {
        /// To whom.
        user: String,
        /// What it shows as.
        reply: View,
    },
    /// A call the scripts made to the (fake) WeChat API, with its answer.
    Api {
        /// HTTP method.
        method: String,
        /// Path.
        path: String,
        /// Query parameters (no access_token; secrets masked).
        query: Vec<(String, String)>,
        /// JSON body.
        body: Option<Value>,
        /// Multipart parts, without their bytes.
        parts: Vec<PartSummary>,
        /// HTTP status of the answer.
        status: u16,
        /// The JSON answer (tokens and tickets masked).
        answer: Option<Value>,
    },
    /// A `wx.http` request the scripts made.
    Http {
        /// One line: method, URL, outcome.
        line: String,
    },
    /// A log line.
    Log {
        /// error, warn, info, debug.
        level: String,
        /// Where it came from (`script` for the scripts' own).
        target: String,
        /// The message.
        message: String,
        /// The script's file:line, when it names one.
        at: Option<String>,
        /// Other fields, `key=value`.
        fields: String,
    },
    /// A saved script set was rejected (the message names file:line); the last good one
    /// keeps serving.
    ReloadError {
        /// The error.
        message: String,
    },
    /// The scripts were (re)loaded.
    Generation {
        /// Their generation.
        generation: u64,
    },
    /// The account's menu changed (`wx.menu.create` or `delete`).
    Menu {
        /// The menu as `menu/create` took it; `None` once deleted.
        menu: Option<Value>,
    },
    /// A simulated user was added, or followed or unfollowed.
    UserState {
        /// Who.
        user: String,
        /// Whether they follow the account now.
        following: bool,
    },
}

/// The ring of recent events and the channel to the connected pages.
pub struct Feed {
    /// This session's id, in every event id.
    pub boot: u64,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<Event>>,
}

struct Ring {
    next_seq: u64,
    events: VecDeque<Arc<Event>>,
}

/// Where a (re)connecting page stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Carry on after this event: everything since is still in the ring.
    After(u64),
    /// Start over: a new page, another session, or too far behind.
    Reset,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new(rand::random::<u32>().into())
    }
}

impl Feed {
    /// An empty feed for the session `boot`.
    pub fn new(boot: u64) -> Feed {
        Feed {
            boot,
            ring: Mutex::new(Ring {
                next_seq: 1,
                events: VecDeque::new(),
            }),
            live: broadcast::channel(LIVE_CAPACITY).0,
        }
    }

    /// Numbers the event, keeps it (dropping the oldest past [`FEED_CAP`]) and sends it to
    /// the connected pages.
    pub fn push(&self, body: EventBody) -> Arc<Event> {
        let event = {
            let mut ring = lock(&self.ring);
            let event = Arc::new(Event {
                seq: ring.next_seq,
                at_ms: crate::clock::unix_millis(),
                body,
            });
            ring.next_seq += 1;
            ring.events.push_back(event.clone());
            while ring.events.len() > FEED_CAP {
                ring.events.pop_front();
            }
            // Sent while the ring is locked, so the live order is the numbering order.
            let _ = self.live.send(event.clone());
            event
        };
        event
    }

    /// The live events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.live.subscribe()
    }

    /// The number of the newest event (0 when none).
    pub fn last_seq(&self) -> u64 {
        lock(&self.ring).next_seq - 1
    }

    /// The events after `seq`, oldest first.
    pub fn after(&self, seq: u64) -> Vec<Arc<Event>> {
        let ring = lock(&self.ring);
        let skip = ring.events.partition_point(|e| e.seq <= seq);
        ring.events.iter().skip(skip).cloned().collect()
    }

    /// Up to `limit` events before `seq`, oldest first: a page paging back.
    pub fn before(&self, seq: u64, limit: usize) -> Vec<Arc<Event>> {
        let ring = lock(&self.ring);
        let end = ring.events.partition_point(|e| e.seq < seq);
        let start = end.saturating_sub(limit);
        ring.events.range(start..end).cloned().collect()
    }

    /// The newest `limit` events, oldest first.
    pub fn latest(&self, limit: usize) -> Vec<Arc<Event>> {
        self.before(u64::MAX, limit)
    }

    /// Where a page whose last event id is `last_event_id` carries on.
    pub fn resume(&self, last_event_id: Option<&str>) -> Resume {
        let Some((boot, seq)) = last_event_id.and_then(|id| id.split_once(':')) else {
            return Resume::Reset;
        };
        let (Ok(boot), Ok(seq)) = (boot.parse::<u64>(), seq.parse::<u64>()) else {
            return Resume::Reset;
        };
        let ring = lock(&self.ring);
        let oldest = ring.events.front().map_or(ring.next_seq, |e| e.seq);
        // Events after `seq` must all still be in the ring, and `seq` must have been sent.
        if boot == self.boot && seq < ring.next_seq && seq + 1 >= oldest {
            Resume::After(seq)
        } else {
            Resume::Reset
        }
    }

    /// An event's id as the stream sends it.
    pub fn event_id(&self, seq: u64) -> String {
        format!("{}:{seq}", self.boot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(n: u64) -> EventBody {
        EventBody::Generation { generation: n }
    }

    #[test]
    fn the_ring_is_capped_and_pages_back() {
        let feed = Feed::new(7);
        for n in 0..(FEED_CAP as u64 + 10) {
            feed.push(generation(n));
        }
        assert_eq!(feed.last_seq(), FEED_CAP as u64 + 10);
        assert_eq!(feed.latest(usize::MAX).len(), FEED_CAP);
        let page = feed.before(100, 5);
        assert_eq!(
            page.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![95, 96, 97, 98, 99]
        );
        assert!(feed.before(5, 5).is_empty(), "dropped from the ring");
        assert_eq!(feed.after(feed.last_seq() - 2).len(), 2);
    }

    #[test]
    fn a_page_resumes_in_its_session_and_starts_over_otherwise() {
        let feed = Feed::new(7);
        for n in 0..3 {
            feed.push(generation(n));
        }
        assert_eq!(feed.resume(Some("7:2")), Resume::After(2));
        assert_eq!(feed.resume(Some("7:3")), Resume::After(3));
        assert_eq!(feed.resume(Some("7:0")), Resume::After(0));
        assert_eq!(feed.resume(Some("8:2")), Resume::Reset, "another session");
        assert_eq!(feed.resume(Some("7:9")), Resume::Reset, "not sent yet");
        assert_eq!(feed.resume(Some("junk")), Resume::Reset);
        assert_eq!(feed.resume(None), Resume::Reset);
        for n in 0..FEED_CAP as u64 {
            feed.push(generation(n));
        }
        assert_eq!(
            feed.resume(Some("7:2")),
            Resume::Reset,
            "fell out of the ring"
        );
    }
}
