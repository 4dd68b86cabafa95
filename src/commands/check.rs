//! `wechat-lua check`: loads a script set the way `serve` would, without a server or network,
//! and reports what is wrong with `file:line`: syntax errors in every script, errors raised
//! while the entry runs, handlers for kinds WeChat never sends, and `wx.*` names the host does
//! not define (`wx.replay.text`). The lexer and the name lint live in [`lint`]; this file
//! loads the set and turns what goes wrong into [`Diagnostic`]s.

pub mod lint;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlua::Lua;

use lint::{host_names, unknown_names};

use crate::script::error::is_host_frame;
use crate::script::runtime::LuaRuntime;
use crate::script::{
    bindings, LoadError, LoadWarning, RuntimeOptions, ScriptError, ScriptSources, Services,
};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Doubtful but loadable: `serve` would run these scripts.
    Warning,
    /// `serve` would refuse these scripts.
    Error,
}

/// One finding, printed as `file:line: severity: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The script as the user named it (`scripts/lib/menu.lua`), or the location at fault.
    pub file: String,
    /// 1-based line, when the finding has one.
    pub line: Option<u32>,
    /// Warning or error.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// Further lines (a Lua traceback), printed indented under the message.
    pub detail: Vec<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match self.line {
            Some(line) => write!(f, "{}:{line}: {severity}: {}", self.file, self.message)?,
            None => write!(f, "{}: {severity}: {}", self.file, self.message)?,
        }
        for extra in &self.detail {
            write!(f, "\n    {extra}")?;
        }
        Ok(())
    }
}

/// The outcome of checking one script set.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The scripts location that was checked.
    pub location: PathBuf,
    /// How many `.lua` files the set holds (0 when it could not be read).
    pub scripts: usize,
    /// Handlers registered by the entry, when it ran to the end.
    pub handlers: Option<usize>,
    /// Web routes (`wx.route`) registered by the entry; shown when there are any.
    pub routes: usize,
    /// Findings in the order they were made.
    pub diagnostics: Vec<Diagnostic>,
}

impl CheckReport {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }

    /// Whether the check passes: no errors, and with `strict` no warnings either.
    pub fn passed(&self, strict: bool) -> bool {
        self.errors() == 0 && !(strict && self.warnings() > 0)
    }

    /// The last line of the output, e.g. `scripts: 2 scripts, 9 handlers, 0 errors, 1 warning`.
    pub fn summary(&self) -> String {
        let plural = |n: usize, word: &str| {
            if n == 1 {
                format!("{n} {word}")
            } else {
                format!("{n} {word}s")
            }
        };
        let mut parts = vec![plural(self.scripts, "script")];
        if let Some(handlers) = self.handlers {
            parts.push(plural(handlers, "handler"));
        }
        if self.routes > 0 {
            parts.push(plural(self.routes, "route"));
        }
        parts.push(plural(self.errors(), "error"));
        parts.push(plural(self.warnings(), "warning"));
        format!("{}: {}", self.location.display(), parts.join(", "))
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        write!(f, "{}", self.summary())
    }
}

/// A bot directory (as `new` makes: `wechat-lua.toml` and `scripts/`, no `main.lua` of its
/// own) stands for its scripts, so `wechat-lua check mybot` does what one expects.
fn resolve_bot_dir(location: &Path) -> Result<PathBuf, String> {
    match crate::config::bot_dir(location) {
        Ok(Some(bot)) => Ok(bot.scripts),
        Ok(None) => Ok(location.to_path_buf()),
        Err(e) => Err(e.to_string()),
    }
}

/// Checks the scripts at `location` (a scripts directory, one `.lua` file, or a bot directory
/// made by `new`). Never fails: everything wrong becomes a [`Diagnostic`].
pub fn check(location: &Path) -> CheckReport {
    let mut report = CheckReport {
        location: location.to_path_buf(),
        scripts: 0,
        handlers: None,
        routes: 0,
        diagnostics: Vec::new(),
    };
    let location = match resolve_bot_dir(location) {
        Ok(resolved) => resolved,
        Err(message) => {
            report.diagnostics.push(from_load_error(
                &LoadError::parse(&message),
                Severity::Error,
                location,
            ));
            return report;
        }
    };
    report.location = location.clone();
    let sources = match ScriptSources::read(&location) {
        Ok(sources) => Arc::new(sources),
        Err(e) => {
            report.diagnostics.push(Diagnostic {
                file: location.display().to_string(),
                line: None,
                severity: Severity::Error,
                message: e.to_string(),
                detail: Vec::new(),
            });
            return report;
        }
    };
    let mut files: Vec<&str> = sources.files().collect();
    files.sort_unstable();
    report.scripts = files.len();

    // `wx.sleep` at top level polls a tokio timer, which panics without a reactor; with one
    // it fails as a script error (a yield outside a handler) that can be reported.
    let reactor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let _entered = reactor.as_ref().ok().map(|r| r.enter());

    // Every script is compiled on its own, so each broken file is reported, not just the
    // first one the entry happens to require.
    let mut reported: HashSet<String> = HashSet::new();
    let compiler = Lua::new();
    for rel in &files {
        if let Err(e) = bindings::stdlib::compile(&compiler, &sources, rel) {
            let error = LoadError::parse(&crate::script::runtime::describe_error(&e));
            let d = from_load_error(
                &error,
                Severity::Error,
                Path::new(&sources.display_path(rel)),
            );
            reported.insert(finding_key(&d));
            report.diagnostics.push(d);
        }
    }

    // A private in-memory store: checking must not touch the bot's data.
    let services = match Services::in_memory() {
        Ok(services) => services,
        Err(e) => {
            report.diagnostics.push(Diagnostic {
                file: location.display().to_string(),
                line: None,
                severity: Severity::Error,
                message: format!("cannot set up a scratch store: {e}"),
                detail: Vec::new(),
            });
            return report;
        }
    };
    match LuaRuntime::load(
        sources.clone(),
        &RuntimeOptions::default(),
        &std::sync::Arc::new(services),
    ) {
        Ok(runtime) => {
            report.handlers = Some(runtime.handler_count());
            report.routes = runtime.routes().count();
            for warning in runtime.warnings() {
                report.diagnostics.push(from_warning(
                    warning,
                    Path::new(&sources.display_path(sources.entry())),
                ));
            }
        }
        Err(e) => {
            let error = match e {
                ScriptError::Load(error) => error,
                // Loading fails only with a LoadError; anything else is the host's own text.
                other => LoadError::host(other.to_string()),
            };
            let d = from_load_error(
                &error,
                Severity::Error,
                Path::new(&sources.display_path(sources.entry())),
            );
            // A syntax error met again through `require` is the same finding.
            if !reported.contains(&finding_key(&d)) {
                report.diagnostics.push(d);
            }
        }
    }

    match host_names(sources.clone()) {
        Ok(names) => {
            for rel in &files {
                let Some(text) = sources.get(rel) else {
                    continue;
                };
                let file = sources.display_path(rel);
                for (line, message) in unknown_names(text, &names) {
                    report.diagnostics.push(Diagnostic {
                        file: file.clone(),
                        line: Some(line),
                        severity: Severity::Warning,
                        message,
                        detail: Vec::new(),
                    });
                }
            }
        }
        Err(e) => report.diagnostics.push(Diagnostic {
            file: location.display().to_string(),
            line: None,
            severity: Severity::Error,
            message: format!("cannot build the wx table to compare names against: {e}"),
            detail: Vec::new(),
        }),
    }
    report
}

/// What makes two findings the same: place and message, not the traceback that led there.
fn finding_key(d: &Diagnostic) -> String {
    format!("{}:{:?}: {}", d.file, d.line, d.message)
}

/// A load error as a diagnostic, its traceback shown under it; an error without a place of
/// its own is charged to the innermost script frame, else to `fallback`.
fn from_load_error(error: &LoadError, severity: Severity, fallback: &Path) -> Diagnostic {
    // Nested errors (a failing `require`) carry one traceback each, mostly the same frames.
    let mut seen = HashSet::new();
    let detail: Vec<String> = error
        .detail
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !is_host_frame(l) && seen.insert(*l))
        .map(str::to_string)
        .collect();
    let message = error.message.trim_start().to_string();
    let (file, line) = match error.blame() {
        Some((file, line)) => (file.to_string(), Some(line)),
        None => (fallback.display().to_string(), None),
    };
    // A traceback that only repeats the error's own line says nothing.
    let frames: Vec<&String> = detail.iter().filter(|l| *l != "stack traceback:").collect();
    let here = line.map(|l| format!("{file}:{l}:"));
    let detail = match (frames.as_slice(), &here) {
        ([], _) => Vec::new(),
        ([only], Some(here)) if only.starts_with(here.as_str()) => Vec::new(),
        _ => detail,
    };
    Diagnostic {
        file,
        line,
        severity,
        message,
        detail,
    }
}

/// A load warning as a diagnostic, at its own place or else at `fallback`.
fn from_warning(warning: &LoadWarning, fallback: &Path) -> Diagnostic {
    Diagnostic {
        file: warning
            .file
            .clone()
            .unwrap_or_else(|| fallback.display().to_string()),
        line: warning.line,
        severity: Severity::Warning,
        message: warning.message.clone(),
        detail: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_errors_become_located_diagnostics() {
        let located = |text: &str, severity, fallback| {
            from_load_error(&LoadError::parse(text), severity, fallback)
        };
        let d = located(
            "main.lua:2: boom\nstack traceback:\n\t[C]: in ?",
            Severity::Error,
            Path::new("x"),
        );
        assert_eq!(d.to_string(), "main.lua:2: error: boom");
        let d = located(
            "attempt to yield from outside a coroutine\nstack traceback:\n\t[C]: in ?\n\
             \t__mlua_async_poll:29: in field 'sleep'\n\tmain.lua:7: in main chunk",
            Severity::Error,
            Path::new("x"),
        );
        assert_eq!(
            d.to_string(),
            "main.lua:7: error: attempt to yield from outside a coroutine"
        );
    }

    #[test]
    fn warnings_become_diagnostics_from_their_fields() {
        let warning = LoadWarning {
            file: Some("scripts/lib/bot.lua".into()),
            line: Some(3),
            message: crate::script::bindings::handlers::unknown_kind_message("txt"),
            unknown_kind: Some("txt".into()),
        };
        let d = from_warning(&warning, Path::new("scripts/main.lua"));
        assert_eq!(
            d.to_string(),
            "scripts/lib/bot.lua:3: warning: wx.on(\"txt\"): WeChat sends no message of this kind (did you mean \"text\"?)"
        );
        let far = LoadWarning {
            file: None,
            line: None,
            ..warning
        };
        let d = from_warning(&far, Path::new("scripts/main.lua"));
        assert_eq!((d.file.as_str(), d.line), ("scripts/main.lua", None));
    }
}
