//! Log lines to the page: a `tracing` layer that puts each event in the feed, with the
//! script's file:line when it names one, and turns the reload watcher's lines into the
//! panel's generation and reload-error entries.

use std::fmt::Write as _;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

use super::feed::{EventBody, Feed};

/// The longest log message the page is sent; a script logging megabytes must not freeze it.
const MAX_MESSAGE: usize = 4000;

/// Sends log events to the feed.
pub struct FeedLayer {
    /// Where they go.
    pub feed: Arc<Feed>,
}

#[derive(Default)]
struct Fields {
    message: String,
    at: Option<String>,
    generation: Option<u64>,
    rest: String,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "generation" {
            self.generation = Some(value);
        }
        self.put(field.name(), value.to_string());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field.name(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field.name(), format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, name: &str, value: String) {
        match name {
            "message" => self.message = value,
            "at" => self.at = Some(value),
            _ => {
                let _ = write!(
                    self.rest,
                    "{}{name}={value}",
                    if self.rest.is_empty() { "" } else { " " }
                );
            }
        }
    }
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FeedLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = cut(fields.message);
        if message.starts_with("reload rejected") {
            self.feed.push(EventBody::ReloadError {
                message: message.clone(),
            });
        }
        if let (Some(generation), true) = (fields.generation, message == "scripts reloaded") {
            self.feed.push(EventBody::Generation { generation });
        }
        self.feed.push(EventBody::Log {
            level: meta.level().as_str().to_ascii_lowercase(),
            target: meta.target().to_string(),
            message,
            at: fields.at,
            fields: cut(fields.rest),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn log_lines_reloads_and_their_errors_reach_the_feed() {
        let feed = Arc::new(Feed::new(1));
        let subscriber = tracing_subscriber::registry().with(FeedLayer { feed: feed.clone() });
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "script", at = "main.lua:3", "hello");
            tracing::info!(generation = 2u64, "scripts reloaded");
            tracing::error!(
                "reload rejected, the last good scripts keep serving: main.lua:4: boom"
            );
            tracing::warn!("{}", "x".repeat(10_000));
        });
        let events = feed.latest(100);
        let kinds: Vec<String> = events
            .iter()
            .map(|e| {
                serde_json::to_value(&**e).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            ["log", "generation", "log", "reload_error", "log", "log"]
        );
        let first = serde_json::to_value(&*events[0]).unwrap();
        assert_eq!(first["at"], "main.lua:3");
        assert_eq!(first["target"], "script");
        let error = serde_json::to_value(&*events[3]).unwrap();
        assert!(error["message"].as_str().unwrap().contains("main.lua:4"));
        let long = serde_json::to_value(&*events[5]).unwrap();
        assert!(long["message"].as_str().unwrap().len() <= MAX_MESSAGE + 3);
    }
}
