//! Errors of the script side, each carrying the file and line at fault when there is one,
//! and what of a load error may be shown outside the log ([`public_summary`]).

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
    /// A script failed to load: a syntax error or an error at top level (message has file:line).
    #[error("{0}")]
    Load(String),
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
        if let Some((file, line)) = first_line.strip_prefix(prefix.as_str()).and_then(located) {
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

/// `file:LINE: …` → (`file`, `LINE`).
fn located(text: &str) -> Option<(&str, &str)> {
    let mut from = 0;
    while let Some(colon) = text[from..].find(':').map(|i| from + i) {
        let after = &text[colon + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(':') {
            return Some((&text[..colon], &after[..digits]));
        }
        from = colon + 1;
    }
    None
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
}
