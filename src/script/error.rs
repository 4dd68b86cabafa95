//! Errors of the script side, each carrying the file and line at fault when there is one:
//! [`ScriptError`], the [`LoadError`] of a script set that did not load and the
//! [`LoadWarning`]s of one that did, with their place as fields rather than text to parse
//! back; and what of a load error may be shown outside the log ([`public_summary`]).

use std::fmt;
use std::path::{Path, PathBuf};

/// Something went wrong loading or running scripts.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScriptError {
    /// The scripts could not be read from disk.
    #[error("cannot read scripts at {path}: {reason}")]
    Read {
        /// The file or directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// The entry file is missing.
    #[error("no entry script: {path} does not exist")]
    NoEntry {
        /// Where `main.lua` (or the given file) was expected.
        path: String,
    },
    /// A script failed to load: a syntax error, an error at top level, or the host could not
    /// set up a Lua state.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A handler raised an error (message has file:line and the Lua traceback).
    #[error("handler {handler} failed: {message}")]
    Handler {
        /// Where the handler was registered (`file:line`).
        handler: String,
        /// The Lua error and traceback.
        message: String,
    },
    /// A handler returned something that is not a reply.
    #[error("handler {handler} returned a bad reply: {message}")]
    BadReply {
        /// Where the handler was defined (`file:line`).
        handler: String,
        /// What is wrong with the value.
        message: String,
    },
    /// No script worker is running (the host is shutting down).
    #[error("script workers are not running")]
    Unavailable,
}

impl ScriptError {
    /// Where the handler at fault was registered (`file:line`), when a handler is at fault.
    pub fn handler(&self) -> Option<&str> {
        match self {
            ScriptError::Handler { handler, .. } | ScriptError::BadReply { handler, .. } => {
                Some(handler)
            }
            _ => None,
        }
    }
}

/// Why a script set did not load, located where Lua or the host could tell. Displays as the
/// text Lua wrote (`file:line: message`, then the traceback), which is what the log shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The script at fault as Lua names it (`scripts/lib/menu.lua`), when the message starts
    /// with a location.
    pub file: Option<String>,
    /// 1-based line in `file`.
    pub line: Option<u32>,
    /// What went wrong: the first line of the text, without the location.
    pub message: String,
    /// The lines after the first (for Lua's errors, the traceback), as written.
    pub detail: Vec<String>,
}

impl LoadError {
    /// Reads a Lua error's text: `file:line: message`, then the lines of its traceback.
    pub fn parse(text: &str) -> LoadError {
        let mut lines = text.split('\n');
        let first = lines.next().unwrap_or_default();
        let detail = lines.map(str::to_string).collect();
        // Only Lua's own `file:line: ` form is a location, so the text displays back exactly.
        match split_location(first) {
            Some((file, line, rest)) if rest.starts_with(' ') => LoadError {
                file: Some(file.to_string()),
                line: Some(line),
                message: rest[1..].to_string(),
                detail,
            },
            _ => LoadError {
                file: None,
                line: None,
                message: first.to_string(),
                detail,
            },
        }
    }

    /// An error the host words itself (a Lua state could not be set up): no location.
    pub fn host(text: impl Into<String>) -> LoadError {
        let text = text.into();
        let mut lines = text.split('\n');
        let message = lines.next().unwrap_or_default().to_string();
        LoadError {
            file: None,
            line: None,
            message,
            detail: lines.map(str::to_string).collect(),
        }
    }

    /// The place to blame: the error's own location, or else the innermost script frame of
    /// its traceback (an error raised inside the host, such as a yield outside a handler,
    /// has no location of its own).
    pub fn blame(&self) -> Option<(&str, u32)> {
        if let (Some(file), Some(line)) = (&self.file, self.line) {
            return Some((file, line));
        }
        self.detail
            .iter()
            .map(|l| l.trim())
            .filter(|l| !is_host_frame(l))
            .find_map(|l| split_location(l).map(|(file, line, _)| (file, line)))
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, self.file.as_deref(), self.line, &self.message)?;
        for line in &self.detail {
            write!(f, "\n{line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// A doubtful registration found while the scripts loaded: they load and run, but probably
/// not as meant. Displays as `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadWarning {
    /// The script that made the registration, as Lua names it.
    pub file: Option<String>,
    /// 1-based line of the call.
    pub line: Option<u32>,
    /// What is doubtful.
    pub message: String,
    /// The handler kind WeChat never sends, for a warning about one, so `check` can suggest
    /// the kind that was likely meant.
    pub unknown_kind: Option<String>,
}

impl fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, self.file.as_deref(), self.line, &self.message)
    }
}

fn write_located(
    f: &mut fmt::Formatter<'_>,
    file: Option<&str>,
    line: Option<u32>,
    message: &str,
) -> fmt::Result {
    match (file, line) {
        (Some(file), Some(line)) => write!(f, "{file}:{line}: {message}"),
        (Some(file), None) => write!(f, "{file}: {message}"),
        (None, _) => write!(f, "{message}"),
    }
}

/// Whether a traceback line is a frame of C or of the host's own chunks rather than of a script.
pub fn is_host_frame(line: &str) -> bool {
    line.starts_with("[C]:")
        || line.starts_with("wechat-lua:")
        || line.starts_with("[string \"wechat-lua\"]")
        || line.starts_with("__mlua")
}

/// Splits `some/file.lua:12: message` at the first `:<digits>:`, into the file, the line and
/// what follows the second colon (as written).
pub fn split_location(text: &str) -> Option<(&str, u32, &str)> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(offset) = text[start..].find(':') {
        let colon = start + offset;
        let digits = bytes[colon + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let after = colon + 1 + digits;
        if colon > 0 && digits > 0 && bytes.get(after) == Some(&b':') {
            let line = text[colon + 1..after].parse().ok()?;
            return Some((&text[..colon], line, &text[after + 1..]));
        }
        start = colon + 1;
    }
    None
}

/// What `/healthz` may show of a rejected load: the file, relative to the scripts directory,
/// and the line. Never the message itself: Lua quotes the source near a syntax error
/// (`near '"MY-SECRET'`) and a script's own `error(...)` text may hold anything. The whole
/// error is in the log. `scripts` is the scripts location (a directory or one `.lua` file).
pub fn public_summary(error: &str, scripts: &Path) -> String {
    const SEE_LOG: &str = "the scripts did not load; the log has the error";
    let root = if scripts.is_file() {
        scripts.parent().unwrap_or(Path::new("")).to_path_buf()
    } else {
        scripts.to_path_buf()
    };
    let mut roots: Vec<PathBuf> = vec![root.clone()];
    if let Ok(canonical) = root.canonicalize() {
        roots.push(canonical);
    }
    let first_line = error.lines().next().unwrap_or_default();
    let prefixes: Vec<String> = roots
        .iter()
        .map(|r| format!("{}{}", r.display(), std::path::MAIN_SEPARATOR))
        .collect();
    for prefix in &prefixes {
        if let Some((file, line, _)) = first_line
            .strip_prefix(prefix.as_str())
            .and_then(split_location)
        {
            return format!("{file}:{line}: {SEE_LOG}");
        }
    }
    // The two errors the host itself words, about the location rather than its contents.
    if first_line.starts_with("no entry script:") || first_line.starts_with("cannot read scripts") {
        return prefixes
            .iter()
            .fold(first_line.to_string(), |text, prefix| {
                text.replace(prefix, "")
            });
    }
    SEE_LOG.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_file_and_line_and_never_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let at = |rest: &str| format!("{}/{rest}", root.display());
        let summary = public_summary(
            &at("main.lua:2: unfinished string near '\"MY-HARDCODED-SECRET'"),
            root,
        );
        assert_eq!(
            summary,
            "main.lua:2: the scripts did not load; the log has the error"
        );
        let summary = public_summary(
            &format!(
                "{}: SECRET-IN-ERROR\nstack traceback:\n\t{}",
                at("lib/init.lua:12"),
                at("main.lua:1: in main chunk")
            ),
            root,
        );
        assert!(summary.starts_with("lib/init.lua:12: "), "{summary}");
        assert!(!summary.contains("SECRET"), "{summary}");
        assert_eq!(
            public_summary(
                &format!("no entry script: {} does not exist", at("main.lua")),
                root
            ),
            "no entry script: main.lua does not exist"
        );
        let odd = public_summary("[string \"x\"]:1: near 'SECRET'", root);
        assert!(!odd.contains("SECRET") && !odd.contains('/'), "{odd}");
    }

    #[test]
    fn load_errors_keep_file_line_and_traceback_as_fields_and_display_as_written() {
        let text =
            "scripts/lib/x.lua:3: unexpected symbol near 'end'\nstack traceback:\n\t[C]: in ?";
        let e = LoadError::parse(text);
        assert_eq!(e.file.as_deref(), Some("scripts/lib/x.lua"));
        assert_eq!(e.line, Some(3));
        assert_eq!(e.message, "unexpected symbol near 'end'");
        assert_eq!(e.detail, ["stack traceback:", "\t[C]: in ?"]);
        assert_eq!(e.to_string(), text);
        assert_eq!(e.blame(), Some(("scripts/lib/x.lua", 3)));
        assert_eq!(
            ScriptError::Load(e).to_string(),
            text,
            "the log line is what it was"
        );

        let windows = LoadError::parse("C:/bots/main.lua:12: boom");
        assert_eq!(windows.file.as_deref(), Some("C:/bots/main.lua"));
        assert_eq!(windows.line, Some(12));

        for text in [
            "no location here: at all",
            "main.lua:2:no space is not Lua's form",
            "trailing newline\n",
            "",
        ] {
            let e = LoadError::parse(text);
            assert_eq!(e.to_string(), text);
            assert_eq!((e.file.as_deref(), e.line), (None, None), "{text:?}");
        }

        // An error raised inside the host is blamed on the innermost script frame.
        let inside = LoadError::parse(
            "attempt to yield from outside a coroutine\nstack traceback:\n\t[C]: in ?\n\
             \t__mlua_async_poll:29: in field 'sleep'\n\tmain.lua:7: in main chunk",
        );
        assert_eq!(inside.file, None);
        assert_eq!(inside.blame(), Some(("main.lua", 7)));

        let host = LoadError::host("cannot set up Lua: main.lua:1: not a location\nmore");
        assert_eq!(host.file, None);
        assert_eq!(
            host.message,
            "cannot set up Lua: main.lua:1: not a location"
        );
        assert_eq!(host.blame(), None);
        assert_eq!(
            host.to_string(),
            "cannot set up Lua: main.lua:1: not a location\nmore"
        );
    }

    #[test]
    fn warnings_display_as_file_line_message() {
        let w = LoadWarning {
            file: Some("main.lua".into()),
            line: Some(4),
            message: "wx.on(\"txt\"): doubtful".into(),
            unknown_kind: Some("txt".into()),
        };
        assert_eq!(w.to_string(), "main.lua:4: wx.on(\"txt\"): doubtful");
    }

    #[test]
    fn locations_are_split_at_the_first_line_number() {
        assert_eq!(
            split_location("scripts/lib/x.lua:3: unexpected symbol near 'end'"),
            Some(("scripts/lib/x.lua", 3, " unexpected symbol near 'end'"))
        );
        assert_eq!(
            split_location("C:/bots/main.lua:12: boom"),
            Some(("C:/bots/main.lua", 12, " boom"))
        );
        assert_eq!(split_location("no location here: at all"), None);
    }
}
