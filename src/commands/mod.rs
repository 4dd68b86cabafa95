//! Developer commands that work on a bot's files without serving it: `check` (load the
//! scripts, report errors and doubtful names with `file:line`) and `new` (scaffold a bot
//! from templates built into the binary).

pub mod chat;
pub mod check;
pub mod new;

pub use chat::{ChatError, ChatOptions};
pub use check::{check, scripts_location, CheckReport, Diagnostic, Severity};
pub use new::{scaffold, NewError};
