//! Log lines as the host writes them: one event is one line, whatever text it carries.
//!
//! Scripts (`wx.log`, `print`, their errors) and requests put text of their choosing into log
//! events. Written as is, a `\n` in it starts a forged line and a 20 MB error is one 20 MB
//! line. [`SafeLines`] sits between the formatter and stderr: in text lines every control
//! character is escaped (`\n`, `\u{1b}`, …), and a line longer than [`MAX_LINE`] is cut, noting
//! its original length. JSON lines are already escaped by the encoder; an oversized one has its
//! long string values cut instead, so it stays valid JSON.

use std::fmt::Write as _;
use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;

/// Longest line written, in bytes, before the truncation note and the newline.
pub const MAX_LINE: usize = 8 * 1024;
/// In an oversized JSON line, the longest string value kept.
const MAX_JSON_VALUE: usize = 2 * 1024;

/// A short, stable, non-reversible tag of an OpenID, so logs can follow one user without
/// holding their identity. Every log line that concerns a user names them by this tag.
pub fn openid_tag(openid: &str) -> String {
    crate::protocol::signature::sign(&["wechat-lua-log", openid])[..12].to_string()
}

/// Whether the `NO_COLOR` convention (<https://no-color.org>) asks for no colours: the
/// variable is set to anything but the empty string.
pub fn no_color(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

/// The text of a line as it should be written: control characters escaped (except the ESC of
/// the formatter's own colours when `keep_ansi`), at most [`MAX_LINE`] bytes plus a note of the
/// original length, ending in one newline.
pub fn text_line(line: &str, keep_ansi: bool) -> String {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let mut out = String::with_capacity(body.len().min(MAX_LINE) + 40);
    let mut truncated = false;
    for (at, c) in body.char_indices() {
        if out.len() >= MAX_LINE {
            truncated = at < body.len();
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' if keep_ansi => out.push(c),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    if truncated || out.len() > MAX_LINE {
        cut(&mut out, MAX_LINE);
        let _ = write!(out, "…[truncated, {} bytes]", body.len());
    }
    out.push('\n');
    out
}

/// A JSON line as it should be written: as is when short enough, else with every string value
/// longer than 2 KiB cut and its original length noted.
pub fn json_line(line: &str) -> String {
    let body = line.strip_suffix('\n').unwrap_or(line);
    if body.len() <= MAX_LINE {
        return format!("{body}\n");
    }
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(mut value) => {
            shorten_strings(&mut value);
            format!("{value}\n")
        }
        // Not JSON after all (cannot happen with the JSON formatter): cut as text.
        Err(_) => text_line(body, false),
    }
}

fn shorten_strings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.len() > MAX_JSON_VALUE => {
            let original = s.len();
            cut(s, MAX_JSON_VALUE);
            let _ = write!(s, "…[truncated, {original} bytes]");
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(shorten_strings),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(shorten_strings),
        _ => {}
    }
}

/// Truncates `s` to at most `max` bytes, on a character boundary.
fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Writes each formatted event to stderr as one safe line (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct SafeLines {
    /// The formatter writes JSON.
    pub json: bool,
    /// The formatter colours text with ANSI escapes, which are kept.
    pub keep_ansi: bool,
}

impl<'a> MakeWriter<'a> for SafeLines {
    type Writer = LineBuffer;

    fn make_writer(&'a self) -> LineBuffer {
        LineBuffer {
            bytes: Vec::new(),
            format: *self,
        }
    }
}

/// One event's output, collected and written as a whole when dropped (the formatter writes an
/// event and drops its writer).
pub struct LineBuffer {
    bytes: Vec<u8>,
    format: SafeLines,
}

impl Write for LineBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        if self.bytes.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.bytes);
        let line = if self.format.json {
            json_line(&text)
        } else {
            text_line(&text, self.format.keep_ansi)
        };
        // Nowhere to report a failed log write.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_cannot_start_a_new_line_or_carry_escapes() {
        let line = text_line(
            "INFO script: hi\nERROR forged: root login\r\t\u{1b}[2J\u{7}\u{85}end\n",
            false,
        );
        assert_eq!(
            line,
            "INFO script: hi\\nERROR forged: root login\\r\\t\\u{1b}[2J\\u{7}\\u{85}end\n"
        );
        assert_eq!(line.matches('\n').count(), 1);
        // The formatter's own colours survive when asked for.
        assert_eq!(
            text_line("\u{1b}[32mINFO\u{1b}[0m x\n", true),
            "\u{1b}[32mINFO\u{1b}[0m x\n"
        );
        assert_eq!(text_line("plain 你好 😀\n", false), "plain 你好 😀\n");
    }

    #[test]
    fn long_lines_are_cut_with_their_length() {
        let huge = format!("ERROR handler failed: {}\n", "é".repeat(10 * 1024 * 1024));
        let line = text_line(&huge, false);
        assert!(line.len() <= MAX_LINE + 64, "{}", line.len());
        assert!(
            line.ends_with(&format!("…[truncated, {} bytes]\n", huge.len() - 1)),
            "{}",
            &line[line.len() - 60..]
        );
        // Escapes count toward the cap: a line of newlines is cut too.
        let line = text_line(&"\n".repeat(100_000), false);
        assert!(line.len() <= MAX_LINE + 64);
    }

    #[test]
    fn long_json_lines_stay_json() {
        let event = serde_json::json!({
            "level": "ERROR",
            "fields": {"message": "x".repeat(20 * 1024 * 1024), "at": "main.lua:3"},
        });
        let line = json_line(&format!("{event}\n"));
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        let back: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        let message = back["fields"]["message"].as_str().unwrap();
        assert!(
            message.ends_with("…[truncated, 20971520 bytes]"),
            "{message:.80}"
        );
        assert_eq!(back["fields"]["at"], "main.lua:3");
        assert_eq!(json_line("{\"a\":1}\n"), "{\"a\":1}\n");
    }
}
