//! Developer commands beside `serve`: `check` (load the scripts, report errors and doubtful
//! names with `file:line`), `new` (scaffold a bot from templates built into the binary), and
//! the account commands `menu` and `token`, `chat` (talk to the bot in the terminal against
//! a fake WeChat API) and `play` (the same in a browser, as a WeChat chat window).

pub mod account;
pub mod chat;
pub mod check;
pub mod new;
pub mod play;

pub use chat::{ChatError, ChatOptions};
pub use check::{check, CheckReport, Diagnostic, Severity};
pub use new::{scaffold, NewError};
