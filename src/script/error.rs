//! Errors of the script side, each carrying the file and line at fault when there is one.

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
