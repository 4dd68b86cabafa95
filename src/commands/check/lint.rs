//! The name lint of `check`: a small Lua lexer that finds every `wx.a.b` chain in code (not in
//! comments or strings), the names the host really defines (walked from the `wx` table of a
//! freshly built state, so the lint never drifts from the bindings), and the chains that name
//! something `wx` does not have, with the likely name when one is within a typo.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mlua::{Lua, Table, Value};

use crate::script::{bindings, ScriptSources, Services};

/// How deep the walk of `wx` goes; the bindings nest two or three levels.
const MAX_WALK_DEPTH: usize = 8;

/// What a name in `wx` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A table; `open` when it has an `__index` metamethod, so any field may exist.
    Table {
        /// Fields are computed, not listed.
        open: bool,
    },
    /// A function or plain value: nothing can be looked up in it.
    Value,
}

/// Every name the host defines under `wx` (`wx`, `wx.reply`, `wx.reply.text`, …).
#[derive(Debug, Clone, Default)]
pub struct WxNames {
    /// Full dotted name to what it is.
    pub names: HashMap<String, NameKind>,
}

/// Walks the `wx` table of a freshly built state (host bindings only, no user code run).
pub fn host_names(sources: Arc<ScriptSources>) -> mlua::Result<WxNames> {
    let lua = Lua::new();
    let services = Services::in_memory().map_err(|e| mlua::Error::RuntimeError(e.to_string()))?;
    let wx = bindings::install(&lua, sources, &Arc::new(services))?;
    let mut out = WxNames::default();
    let mut seen = HashSet::new();
    walk(&wx, "wx", 0, &mut seen, &mut out)?;
    Ok(out)
}

fn walk(
    table: &Table,
    name: &str,
    depth: usize,
    seen: &mut HashSet<usize>,
    out: &mut WxNames,
) -> mlua::Result<()> {
    let open = table
        .metatable()
        .map(|mt| !matches!(mt.raw_get::<Value>("__index"), Ok(Value::Nil)))
        .unwrap_or(false);
    out.names.insert(name.to_string(), NameKind::Table { open });
    if depth >= MAX_WALK_DEPTH || !seen.insert(table.to_pointer() as usize) {
        return Ok(());
    }
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair?;
        let Value::String(key) = key else {
            continue;
        };
        let Ok(key) = key.to_str() else {
            continue;
        };
        let full = format!("{name}.{}", &*key);
        match value {
            Value::Table(sub) => walk(&sub, &full, depth + 1, seen, out)?,
            _ => {
                out.names.insert(full, NameKind::Value);
            }
        }
    }
    Ok(())
}

/// A `wx.a.b` chain found in a script's code (not in a comment or string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WxUse {
    /// 1-based line of `wx`.
    pub line: u32,
    /// The dotted chain, e.g. `wx.reply.text`.
    pub chain: String,
    /// Whether the script defines it (`wx.x = …`, `function wx.x(…)`) rather than reads it.
    pub defines: bool,
}

/// Finds every `wx.name(.name)*` chain in Lua code, skipping comments and strings.
pub fn wx_chains(source: &str) -> Vec<WxUse> {
    let b = source.as_bytes();
    let mut out = Vec::new();
    let mut line = 1u32;
    let mut i = 0;
    // The last word token and whether anything else came after it, for `function wx.x`.
    let mut last_word: Option<(usize, usize)> = None;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i += 2;
                if let Some(level) = long_bracket(b, i) {
                    i = skip_long(b, i + level + 2, level, &mut line);
                } else {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                continue;
            }
            b'[' if long_bracket(b, i).is_some() => {
                let level = long_bracket(b, i).unwrap_or_default();
                i = skip_long(b, i + level + 2, level, &mut line);
                last_word = None;
            }
            b'"' | b'\'' => {
                i += 1;
                while i < b.len() && b[i] != c && b[i] != b'\n' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        if b[i + 1] == b'\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                last_word = None;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = &source[start..i];
                let after_field = preceded_by_field_access(b, start);
                if word == "wx" && !after_field && b.get(i) == Some(&b'.') {
                    let mut end = i;
                    while b.get(end) == Some(&b'.')
                        && b.get(end + 1)
                            .is_some_and(|n| n.is_ascii_alphabetic() || *n == b'_')
                    {
                        end += 1;
                        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                            end += 1;
                        }
                    }
                    if end > i {
                        let after_function = last_word.is_some_and(|(s, e)| {
                            &source[s..e] == "function" && only_space(b, e, start)
                        });
                        out.push(WxUse {
                            line,
                            chain: source[start..end].to_string(),
                            defines: after_function || is_assigned(b, end),
                        });
                        i = end;
                        last_word = None;
                        continue;
                    }
                }
                last_word = Some((start, i));
            }
            c if c.is_ascii_digit() => {
                // Numbers such as 0x1Fe3 must not start a word.
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_')
                {
                    i += 1;
                }
                last_word = None;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                i += 1;
                last_word = None;
            }
        }
    }
    out
}

/// `[[`, `[=[`, …: the level (number of `=`) of a long bracket opening at `i`.
fn long_bracket(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let level = b[i + 1..].iter().take_while(|&&c| c == b'=').count();
    (b.get(i + 1 + level) == Some(&b'[')).then_some(level)
}

/// Skips to just after the `]=*]` closing a long bracket of `level`, counting lines.
fn skip_long(b: &[u8], mut i: usize, level: usize, line: &mut u32) -> usize {
    while i < b.len() {
        if b[i] == b'\n' {
            *line += 1;
        } else if b[i] == b']'
            && b[i + 1..].iter().take_while(|&&c| c == b'=').count() == level
            && b.get(i + 1 + level) == Some(&b']')
        {
            return i + level + 2;
        }
        i += 1;
    }
    b.len()
}

/// Whether the word at `start` is a field (`t.wx`, `t:wx`) rather than the global; `..` is
/// concatenation, not field access.
fn preceded_by_field_access(b: &[u8], start: usize) -> bool {
    let mut j = start;
    while j > 0 && (b[j - 1] == b' ' || b[j - 1] == b'\t') {
        j -= 1;
    }
    match j.checked_sub(1).map(|k| b[k]) {
        Some(b':') => true,
        Some(b'.') => !(j >= 2 && b[j - 2] == b'.'),
        _ => false,
    }
}

fn only_space(b: &[u8], from: usize, to: usize) -> bool {
    b[from..to].iter().all(|c| c.is_ascii_whitespace())
}

/// Whether an `=` (not `==`) follows the chain ending at `end`.
fn is_assigned(b: &[u8], end: usize) -> bool {
    let mut j = end;
    while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
        j += 1;
    }
    b.get(j) == Some(&b'=') && b.get(j + 1) != Some(&b'=')
}

/// `(line, message)` for each chain in `source` naming something `wx` does not have. Names
/// a script itself defines under `wx` (anywhere in the text) count as known.
pub fn unknown_names(source: &str, names: &WxNames) -> Vec<(u32, String)> {
    let uses = wx_chains(source);
    let defined: Vec<&str> = uses
        .iter()
        .filter(|u| u.defines)
        .map(|u| u.chain.as_str())
        .collect();
    let mut out = Vec::new();
    for u in &uses {
        if u.defines {
            continue;
        }
        if let Some(message) = unknown_in_chain(&u.chain, names, &defined) {
            out.push((u.line, message));
        }
    }
    out
}

fn unknown_in_chain(chain: &str, names: &WxNames, defined: &[&str]) -> Option<String> {
    let parts: Vec<&str> = chain.split('.').collect();
    for end in 2..=parts.len() {
        let prefix = parts[..end].join(".");
        if defined
            .iter()
            .any(|d| *d == prefix || d.starts_with(&format!("{prefix}.")))
        {
            // The script puts something there itself; what it holds is its own business.
            return None;
        }
        match names.names.get(&prefix) {
            Some(NameKind::Table { open: true }) => return None,
            Some(NameKind::Table { open: false }) => continue,
            Some(NameKind::Value) if end == parts.len() => return None,
            Some(NameKind::Value) => {
                return Some(format!(
                    "{chain}: {prefix} is a function, not a table with fields"
                ))
            }
            None => {
                let parent = parts[..end - 1].join(".");
                let hint = closest_sibling(&parent, parts[end - 1], names)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                let subject = if prefix == chain {
                    String::new()
                } else {
                    format!("{chain}: ")
                };
                return Some(format!(
                    "{subject}unknown name {prefix}: the host defines no such field in {parent}{hint}"
                ));
            }
        }
    }
    None
}

/// The name under `parent` closest to `field`, if one is within a typo's reach.
fn closest_sibling(parent: &str, field: &str, names: &WxNames) -> Option<String> {
    let prefix = format!("{parent}.");
    names
        .names
        .keys()
        .filter_map(|name| {
            let rest = name.strip_prefix(&prefix)?;
            (!rest.contains('.')).then(|| (edit_distance(rest, field), name))
        })
        .filter(|(d, _)| *d <= 1.max(field.len() / 3))
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, name)| name.clone())
}

pub use crate::script::suggest::edit_distance;

#[cfg(test)]
mod tests {
    use super::*;

    fn chains(src: &str) -> Vec<(u32, String, bool)> {
        wx_chains(src)
            .into_iter()
            .map(|u| (u.line, u.chain, u.defines))
            .collect()
    }

    fn owned(expected: &[(u32, &str, bool)]) -> Vec<(u32, String, bool)> {
        expected
            .iter()
            .map(|(l, c, d)| (*l, c.to_string(), *d))
            .collect()
    }

    #[test]
    fn finds_chains_in_code_only() {
        let src = "-- wx.commented.out\n\
                   local s = \"wx.in.string\" .. 'wx.too'\n\
                   --[==[ wx.long.comment\n ]] still comment wx.x ]==]\n\
                   local t = [[wx.long.string]]\n\
                   wx.reply.text('hi') local n = 0x1e wx.log.info(n)\n\
                   x = s .. wx.sleep\n";
        assert_eq!(
            chains(src),
            owned(&[
                (6, "wx.reply.text", false),
                (6, "wx.log.info", false),
                (7, "wx.sleep", false)
            ])
        );
    }

    #[test]
    fn fields_named_wx_and_definitions_are_told_apart() {
        let src = "local a = t.wx.nope\nlocal b = t:wx()\nwx.helpers = {}\n\
                   function wx.helpers.greet() end\nif wx.x == 1 then end\n";
        assert_eq!(
            chains(src),
            owned(&[
                (3, "wx.helpers", true),
                (4, "wx.helpers.greet", true),
                (5, "wx.x", false)
            ])
        );
    }

    #[test]
    fn escaped_quotes_and_line_continuations_keep_lines_right() {
        let src = "local s = \"a\\\"wx.no\\\nmore\"\nwx.on('text', f)\n";
        assert_eq!(chains(src), owned(&[(3, "wx.on", false)]));
    }

    #[test]
    fn unknown_names_are_reported_with_a_suggestion() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.lua"), "").unwrap();
        let sources = Arc::new(ScriptSources::read(dir.path()).unwrap());
        let names = host_names(sources).unwrap();
        assert!(names.names.contains_key("wx.reply.text"));
        assert!(names.names.contains_key("wx.log.info"));
        assert_eq!(names.names.get("wx.on"), Some(&NameKind::Value));

        let src = "wx.replay.text('x')\nwx.reply.txt('x')\nwx.on.x()\nwx.reply.text('ok')\n\
                   wx.mine = {}\nwx.mine.anything()\n";
        let found = unknown_names(src, &names);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].0, 1);
        assert!(found[0].1.contains("did you mean wx.reply?"), "{found:?}");
        assert!(
            found[1].1.contains("did you mean wx.reply.text?"),
            "{found:?}"
        );
        assert!(found[2].1.contains("wx.on is a function"), "{found:?}");
    }

    #[test]
    fn edit_distance_counts_typos() {
        assert_eq!(edit_distance("replay", "reply"), 1);
        assert_eq!(edit_distance("sendd", "send"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }
}
