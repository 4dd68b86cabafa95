//! The documentation as a newcomer uses it: every relative link in README.md and docs/
//! reaches a file (and, with `#anchor`, a heading in it), and every Lua snippet in them loads
//! under `wechat-lua check --strict`, so a snippet pasted into a bot works as written.
//!
//! A snippet that is deliberately a fragment can opt out with the fence ```` ```lua fragment ````
//! (still highlighted as Lua).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use wechat_lua::commands::check;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page of docs/, as (path relative to the repository, text).
fn pages() -> Vec<(PathBuf, String)> {
    let mut paths = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.strip_prefix(repo()).unwrap().to_path_buf())
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(repo().join(&p)).unwrap();
            (p, text)
        })
        .collect()
}

/// One fenced code block: its info string, first line number (of the fence) and body.
struct Fence {
    info: String,
    line: usize,
    /// Spaces before the opening fence (inside a list item), stripped from the body's lines.
    indent: usize,
    body: String,
}

/// Splits `text` into its prose lines (numbered from 1; fenced blocks left out) and its fenced
/// code blocks.
fn split(text: &str) -> (Vec<(usize, &str)>, Vec<Fence>) {
    let mut prose = Vec::new();
    let mut fences = Vec::new();
    let mut open: Option<(String, Fence)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            Some((marker, fence)) => {
                if trimmed.starts_with(marker.as_str()) && trimmed.trim() == marker.as_str() {
                    fences.push(open.take().unwrap().1);
                } else {
                    let spaces = line.len() - line.trim_start_matches(' ').len();
                    fence.body.push_str(&line[spaces.min(fence.indent)..]);
                    fence.body.push('\n');
                }
            }
            None if trimmed.starts_with("```") => {
                let marker: String = trimmed.chars().take_while(|&c| c == '`').collect();
                let info = trimmed[marker.len()..].trim().to_string();
                open = Some((
                    marker,
                    Fence {
                        info,
                        line: i + 1,
                        indent: line.len() - trimmed.len(),
                        body: String::new(),
                    },
                ));
            }
            None => prose.push((i + 1, line)),
        }
    }
    (prose, fences)
}

/// `text` without its inline code spans, so `[a](b)` written as code is not a link.
fn without_code_spans(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped (letters of any script,
/// digits, `-` and `_` kept), spaces as `-`.
fn slug(heading: &str) -> String {
    // A link in a heading anchors by its text.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(start) = rest.find("](") {
        let end = rest[start..]
            .find(')')
            .map_or(rest.len(), |e| start + e + 1);
        text.push_str(&rest[..start]);
        rest = &rest[end..];
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings, with GitHub's `-1`, `-2` for repeated ones.
fn anchors(text: &str) -> Vec<String> {
    let (prose, _) = split(text);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (_, line) in prose {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(&heading.replace('`', ""));
        let n = seen.entry(base.clone()).or_insert(0);
        out.push(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of the inline links `[text](target)` on one line of prose.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut out = Vec::new();
    let mut rest = line.as_str();
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let end = after.find(')').unwrap_or(after.len());
        out.push(after[..end].to_string());
        rest = &after[end..];
    }
    out
}

#[test]
fn every_relative_link_reaches_a_file_and_a_heading() {
    let pages = pages();
    let mut broken = Vec::new();
    let mut checked = 0;
    for (page, text) in &pages {
        let (prose, _) = split(text);
        for (line_no, line) in prose {
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (file, anchor) = match target.split_once('#') {
                    Some((file, anchor)) => (file, Some(anchor)),
                    None => (target.as_str(), None),
                };
                let file_path = if file.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap_or(Path::new("")).join(file)
                };
                let full = repo().join(&file_path);
                if !full.exists() {
                    broken.push(format!(
                        "{}:{line_no}: ({target}): no file {}",
                        page.display(),
                        file_path.display()
                    ));
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                let target_text = std::fs::read_to_string(&full).unwrap_or_default();
                if !anchors(&target_text).iter().any(|a| a == anchor) {
                    broken.push(format!(
                        "{}:{line_no}: ({target}): {} has no heading #{anchor}",
                        page.display(),
                        file_path.display()
                    ));
                }
            }
        }
    }
    assert!(
        checked > 40,
        "only {checked} relative links found: is the scan broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_anchor_rule_is_githubs() {
    assert_eq!(
        slug("Logging, wx.sleep, wx.store"),
        "logging-wxsleep-wxstore"
    );
    assert_eq!(slug("wx.http: the [http] table"), "wxhttp-the-http-table");
    assert_eq!(
        slug("Start-up work: wx.on_start"),
        "start-up-work-wxon_start"
    );
    assert_eq!(
        slug("Web pages: wx.oauth, wx.jssdk"),
        "web-pages-wxoauth-wxjssdk"
    );
    assert_eq!(slug("Static files: public/"), "static-files-public");
    assert_eq!(
        anchors("# A\n```\n# not a heading\n```\n## A\n#no\n"),
        vec!["a", "a-1"]
    );
}

#[test]
fn every_lua_snippet_in_the_docs_loads_under_check_strict() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (page, text) in pages() {
        let (_, fences) = split(&text);
        for fence in fences.iter().filter(|f| f.info == "lua") {
            checked += 1;
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("main.lua"), &fence.body).unwrap();
            let report = check::check(dir.path());
            if !report.passed(true) {
                failures.push(format!(
                    "{}:{}: the snippet does not check:\n{report}\n--- snippet:\n{}",
                    page.display(),
                    fence.line,
                    fence.body
                ));
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} Lua snippets found: is the scan broken?"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
