//! The terminal side of `wechat-lua chat`: the prompt and `bot> ` prefixes when a person is
//! typing, bare lines when piped, dimmed asides, and the log lines (warnings, errors, script
//! output, reloads) that must not run into the prompt.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::lock;

/// The terminal: prompts and prefixes when a person is typing, bare lines when piped.
pub(super) struct Screen {
    /// stdin is a terminal: show the prompt and `bot> `.
    pub(super) interactive: bool,
    /// stdout is a terminal: dim the asides.
    color: bool,
    /// One writer at a time, so background lines never split a reply.
    out: Mutex<()>,
    /// The prompt is on screen waiting for a line: output arriving now must clear it first
    /// and draw it again after.
    prompting: AtomicBool,
}

const PROMPT: &str = "you> ";
const BOT: &str = "bot> ";

impl Screen {
    pub(super) fn new() -> Screen {
        Screen {
            interactive: std::io::stdin().is_terminal(),
            color: std::io::stdout().is_terminal(),
            out: Mutex::new(()),
            prompting: AtomicBool::new(false),
        }
    }

    fn write(&self, text: &str) {
        let _guard = lock(&self.out);
        let mut stdout = std::io::stdout().lock();
        // A closed stdout (the reader went away) is no reason to stop the bot mid-session.
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }

    pub(super) fn prompt(&self) {
        if self.interactive {
            self.write(PROMPT);
            self.prompting.store(true, Ordering::SeqCst);
        }
    }

    /// A line was entered: the terminal has moved past the prompt.
    pub(super) fn answered(&self) {
        self.prompting.store(false, Ordering::SeqCst);
    }

    /// A piped line, echoed as `> line` before what it brings, so a transcript reads as a
    /// conversation (at a terminal the typed line is on screen already).
    pub(super) fn echo(&self, line: &str) {
        if !self.interactive {
            self.write(&format!("> {line}\n"));
        }
    }

    pub(super) fn end_prompt(&self) {
        if self.prompting.swap(false, Ordering::SeqCst) {
            self.write("\n");
        }
    }

    fn prefix(&self) -> &'static str {
        if self.interactive {
            BOT
        } else {
            ""
        }
    }

    /// The bot's reply, one block.
    pub(super) fn bot<'a>(&self, lines: impl IntoIterator<Item = &'a str>) {
        let mut text = String::new();
        for line in lines {
            text.push_str(self.prefix());
            text.push_str(line);
            text.push('\n');
        }
        if text.is_empty() {
            text = format!("{}\n", self.prefix());
        }
        self.write(&text);
    }

    /// An aside from the chat itself (hints, help, `(no reply)`).
    pub(super) fn notes<'a>(&self, lines: impl IntoIterator<Item = &'a str>) {
        let text: String = lines.into_iter().map(|l| self.dimmed(l) + "\n").collect();
        self.write(&text);
    }

    pub(super) fn dim(&self, line: &str) {
        self.write(&format!("{}{}\n", self.prefix(), self.dimmed(line)));
    }

    fn dimmed(&self, line: &str) -> String {
        if self.color {
            format!("\x1b[2m{line}\x1b[0m")
        } else {
            line.to_string()
        }
    }

    /// API calls; arriving while the prompt waits, they go above a fresh prompt.
    pub(super) fn api(&self, lines: &[String]) {
        let mut text = String::new();
        let redraw = self.prompting.load(Ordering::SeqCst);
        if redraw {
            text.push_str("\r\x1b[K");
        }
        for line in lines {
            text.push_str(self.prefix());
            text.push_str(line);
            text.push('\n');
        }
        if redraw {
            text.push_str(PROMPT);
        }
        self.write(&text);
    }

    /// A log line for stderr, above a fresh prompt when one waits.
    fn log(&self, line: &[u8]) {
        let _guard = lock(&self.out);
        let redraw = self.prompting.load(Ordering::SeqCst);
        let mut stderr = std::io::stderr().lock();
        if redraw {
            let _ = stderr.write_all(b"\r\x1b[K");
        }
        let _ = stderr.write_all(line);
        let _ = stderr.flush();
        if redraw {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(PROMPT.as_bytes());
            let _ = stdout.flush();
        }
    }
}

/// Where log lines go: through the [`Screen`], so they do not run into the prompt.
struct LogSink(Arc<Screen>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LogLine<'a>;

    fn make_writer(&'a self) -> LogLine<'a> {
        LogLine {
            screen: &self.0,
            buf: Vec::new(),
        }
    }
}

/// One event's text, written out whole when the formatter is done with it.
struct LogLine<'a> {
    screen: &'a Screen,
    buf: Vec<u8>,
}

impl Write for LogLine<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.screen.log(&self.buf);
        }
    }
}

/// Logs for a person chatting: warnings and errors (script errors included), script output,
/// and reloads — concise, on stderr, without the server's request log.
pub(super) fn init_logging(screen: Arc<Screen>) {
    let filter = tracing_subscriber::EnvFilter::new("warn,wechat_lua::script=info,script=info");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogSink(screen))
        .event_format(ChatLogFormat)
        .try_init();
}

/// `[error] message (file:line) key=value`, one line per event.
struct ChatLogFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for ChatLogFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::ERROR => Some("error"),
            tracing::Level::WARN => Some("warn"),
            _ => None,
        };
        let tag = match (meta.target() == "script", level) {
            (true, Some(level)) => format!("script {level}"),
            (true, None) => "script".to_string(),
            (false, Some(level)) => level.to_string(),
            (false, None) => "info".to_string(),
        };
        let mut fields = LogFields::default();
        event.record(&mut fields);
        write!(writer, "[{tag}] {}", fields.message)?;
        if let Some(at) = fields.at.filter(|at| !at.is_empty()) {
            write!(writer, " ({at})")?;
        }
        for (name, value) in fields.rest {
            write!(writer, " {name}={value}")?;
        }
        writeln!(writer)
    }
}

#[derive(Default)]
struct LogFields {
    message: String,
    /// A script's file:line, shown in parentheses.
    at: Option<String>,
    rest: Vec<(&'static str, String)>,
}

impl tracing::field::Visit for LogFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(field.name(), value.to_string());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.put(field.name(), format!("{value:?}"));
    }
}

impl LogFields {
    fn put(&mut self, name: &'static str, value: String) {
        match name {
            "message" => self.message = value,
            "at" => self.at = Some(value),
            _ => self.rest.push((name, value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_are_short_and_name_the_script_place() {
        let out = Shared::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(ChatLogFormat)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "script", at = "bot.lua:3", "boom");
            tracing::info!(target: "script", at = "bot.lua:9", "printed");
            tracing::warn!(timeout_ms = 500u64, "slow");
            tracing::info!(generation = 2u64, "scripts reloaded");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "[script error] boom (bot.lua:3)\n[script] printed (bot.lua:9)\n\
             [warn] slow timeout_ms=500\n[info] scripts reloaded generation=2\n"
        );
    }
}
