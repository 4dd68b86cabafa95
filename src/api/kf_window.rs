//! The customer-service window (客服消息下发窗口): after a user writes, WeChat lets the account
//! send 5 customer-service messages within 48 hours; after a menu click, subscribe or QR scan,
//! 3 within one minute. This tracker remembers those moments per OpenID, counts sends, and
//! answers whether a send is currently allowed. In memory and bounded: old entries are evicted.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::sync::lock;

/// How long the window opened by a user's message lasts.
pub const MESSAGE_WINDOW_SECS: i64 = 48 * 3600;
/// Sends allowed in a message window.
pub const MESSAGE_WINDOW_QUOTA: u32 = 5;
/// How long the window opened by a click/subscribe/scan event lasts.
pub const EVENT_WINDOW_SECS: i64 = 60;
/// Sends allowed in an event window.
pub const EVENT_WINDOW_QUOTA: u32 = 3;
/// Default number of OpenIDs remembered.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Whether customer-service messages may be sent to a user right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KfWindow {
    /// At least one send is allowed.
    pub open: bool,
    /// Sends left across the open windows.
    pub remaining: u32,
    /// Unix seconds when the last open window closes (`None` when closed).
    pub closes_at: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct Grant {
    opened_at: i64,
    sent: u32,
    secs: i64,
    quota: u32,
}

impl Grant {
    fn closes_at(&self) -> i64 {
        self.opened_at + self.secs
    }
    fn remaining(&self, now: i64) -> u32 {
        if now >= self.opened_at && now < self.closes_at() {
            self.quota.saturating_sub(self.sent)
        } else {
            0
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    message: Option<Grant>,
    event: Option<Grant>,
    last_seen: i64,
}

impl Entry {
    fn grants(&self) -> impl Iterator<Item = &Grant> {
        self.message.iter().chain(self.event.iter())
    }
    fn any_open(&self, now: i64) -> bool {
        self.grants().any(|g| now < g.closes_at())
    }
}

/// Per-user customer-service windows; share one per process (`Arc<KfWindowTracker>`).
#[derive(Debug)]
pub struct KfWindowTracker {
    entries: Mutex<HashMap<String, Entry>>,
    capacity: usize,
}

impl Default for KfWindowTracker {
    fn default() -> Self {
        KfWindowTracker::new(DEFAULT_CAPACITY)
    }
}

impl KfWindowTracker {
    /// A tracker remembering at most `capacity` users (at least 1).
    pub fn new(capacity: usize) -> KfWindowTracker {
        KfWindowTracker {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The user sent a message at `at` (Unix seconds): 5 sends within 48 hours.
    pub fn note_message(&self, openid: &str, at: i64) {
        self.open(openid, at, MESSAGE_WINDOW_SECS, MESSAGE_WINDOW_QUOTA, true);
    }

    /// The user clicked a menu, subscribed or scanned a code at `at`: 3 sends within a minute.
    pub fn note_event(&self, openid: &str, at: i64) {
        self.open(openid, at, EVENT_WINDOW_SECS, EVENT_WINDOW_QUOTA, false);
    }

    /// Count one send at `at`; returns false (and counts nothing) when no window is open.
    /// The window closing soonest is used first so the long one lasts.
    pub fn note_sent(&self, openid: &str, at: i64) -> bool {
        let mut map = lock(&self.entries);
        let Some(e) = map.get_mut(openid) else {
            return false;
        };
        let mut candidates: Vec<&mut Grant> = e
            .event
            .iter_mut()
            .chain(e.message.iter_mut())
            .filter(|g| g.remaining(at) > 0)
            .collect();
        candidates.sort_by_key(|g| g.closes_at());
        match candidates.into_iter().next() {
            Some(g) => {
                g.sent += 1;
                true
            }
            None => false,
        }
    }

    /// The user's window at `now`.
    pub fn window(&self, openid: &str, now: i64) -> KfWindow {
        let closed = KfWindow {
            open: false,
            remaining: 0,
            closes_at: None,
        };
        let map = lock(&self.entries);
        let Some(e) = map.get(openid) else {
            return closed;
        };
        let remaining: u32 = e.grants().map(|g| g.remaining(now)).sum();
        let closes_at = e
            .grants()
            .filter(|g| g.remaining(now) > 0)
            .map(Grant::closes_at)
            .max();
        KfWindow {
            open: remaining > 0,
            remaining,
            closes_at,
        }
    }

    /// Users currently remembered.
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// Whether no user is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn open(&self, openid: &str, at: i64, secs: i64, quota: u32, message: bool) {
        let mut map = lock(&self.entries);
        // Looked up before inserting, so a user seen before (most messages) costs no copy
        // of the OpenID.
        if !map.contains_key(openid) {
            if map.len() >= self.capacity {
                evict(&mut map, at, self.capacity);
            }
            map.insert(openid.to_string(), Entry::default());
        }
        let Some(e) = map.get_mut(openid) else {
            return;
        };
        let grant = Grant {
            opened_at: at,
            sent: 0,
            secs,
            quota,
        };
        // An older interaction arriving late must not replace a newer window.
        let slot = if message {
            &mut e.message
        } else {
            &mut e.event
        };
        if slot.is_none_or(|g| g.opened_at <= at) {
            *slot = Some(grant);
        }
        e.last_seen = e.last_seen.max(at);
    }
}

/// Make room: drop closed windows, then the least recently seen users down to 90 %.
fn evict(map: &mut HashMap<String, Entry>, now: i64, capacity: usize) {
    map.retain(|_, e| e.any_open(now));
    let target = capacity - capacity / 10;
    if map.len() >= capacity {
        let mut by_age: Vec<(i64, String)> =
            map.iter().map(|(k, e)| (e.last_seen, k.clone())).collect();
        by_age.sort();
        let excess = map.len().saturating_sub(target.min(capacity - 1));
        for (_, k) in by_age.into_iter().take(excess) {
            map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000;

    #[test]
    fn message_allows_five_within_48_hours() {
        let t = KfWindowTracker::default();
        assert!(!t.window("u", T0).open);
        assert!(!t.note_sent("u", T0));
        t.note_message("u", T0);
        let w = t.window("u", T0 + 10);
        assert_eq!(
            w,
            KfWindow {
                open: true,
                remaining: 5,
                closes_at: Some(T0 + 48 * 3600)
            }
        );
        for _ in 0..5 {
            assert!(t.note_sent("u", T0 + 20));
        }
        assert!(!t.note_sent("u", T0 + 21));
        assert!(!t.window("u", T0 + 21).open);
        // A new message reopens it.
        t.note_message("u", T0 + 100);
        assert_eq!(t.window("u", T0 + 100).remaining, 5);
        // ... until 48 hours have passed.
        assert!(t.window("u", T0 + 100 + 48 * 3600 - 1).open);
        assert!(!t.window("u", T0 + 100 + 48 * 3600).open);
    }

    #[test]
    fn event_allows_three_within_a_minute() {
        let t = KfWindowTracker::default();
        t.note_event("u", T0);
        assert_eq!(t.window("u", T0).remaining, 3);
        assert_eq!(t.window("u", T0).closes_at, Some(T0 + 60));
        assert!(t.note_sent("u", T0 + 1));
        assert_eq!(t.window("u", T0 + 1).remaining, 2);
        assert!(!t.window("u", T0 + 60).open);
        assert!(!t.note_sent("u", T0 + 61));
    }

    #[test]
    fn event_quota_is_spent_before_the_message_quota() {
        let t = KfWindowTracker::default();
        t.note_message("u", T0);
        t.note_event("u", T0 + 5);
        assert_eq!(t.window("u", T0 + 5).remaining, 8);
        assert_eq!(t.window("u", T0 + 5).closes_at, Some(T0 + 48 * 3600));
        for _ in 0..3 {
            assert!(t.note_sent("u", T0 + 6));
        }
        // Event window used up; the message window is untouched.
        assert_eq!(t.window("u", T0 + 6).remaining, 5);
        assert_eq!(t.window("u", T0 + 120).remaining, 5);
    }

    #[test]
    fn stale_note_does_not_replace_newer_window() {
        let t = KfWindowTracker::default();
        t.note_message("u", T0 + 1000);
        t.note_message("u", T0);
        assert_eq!(
            t.window("u", T0 + 1000).closes_at,
            Some(T0 + 1000 + 48 * 3600)
        );
    }

    #[test]
    fn bounded_by_capacity_evicting_closed_then_oldest() {
        let t = KfWindowTracker::new(10);
        for i in 0..10 {
            t.note_event(&format!("old{i}"), T0);
        }
        assert_eq!(t.len(), 10);
        // All event windows closed a minute later: they go first.
        t.note_message("new", T0 + 120);
        assert_eq!(t.len(), 1);
        for i in 0..30 {
            t.note_message(&format!("u{i}"), T0 + 200 + i);
        }
        assert!(t.len() <= 10);
        // The most recent users survive.
        assert!(t.window("u29", T0 + 300).open);
        assert!(!t.window("u0", T0 + 300).open);
    }
}
