//! Developer commands beside `serve`: `check` (load the scripts, report errors and doubtful
//! names with `file:line`), `new` (scaffold a bot from templates built into the binary), and
//! the account commands `menu` and `token`.

pub mod account;
pub mod check;
pub mod new;

pub use check::{check, scripts_location, CheckReport, Diagnostic, Severity};
pub use new::{scaffold, NewError};
