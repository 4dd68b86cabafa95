//! `wechat-lua check` and `wechat-lua new` through the real binary, and the editor types
//! (`editor/wx.lua`) against the host they describe, so neither drifts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use wechat_lua::config::{Config, Overrides};
use wechat_lua::protocol::message::{EventType, InboundMessage, MsgType};
use wechat_lua::protocol::xml_fields::{snake_case, Field, Fields};
use wechat_lua::script::ScriptSources;

const BIN: &str = env!("CARGO_BIN_EXE_wechat-lua");
const TYPES: &str = include_str!("../editor/wx.lua");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Run {
    code: i32,
    out: String,
}

/// Runs the binary in `dir` with no WECHAT_* setting inherited from the caller.
fn run(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("WECHAT_") {
            cmd.env_remove(key);
        }
    }
    let output = cmd.output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// A temporary directory holding `files` (path, contents).
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, contents) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    dir
}

#[test]
fn a_clean_set_passes_without_warnings() {
    let dir = tree(&[
        (
            "bot/main.lua",
            "local lib = require('lib.util')\n\
             -- wx.not.checked in a comment\n\
             wx.on('text', function(msg) return lib.echo(msg.content) end)\n\
             wx.on('event.click', 'K', function() return wx.reply.text('k') end)\n\
             wx.on('*', function() wx.log.info(\"wx.in.a.string\") end)\n",
        ),
        (
            "bot/lib/util.lua",
            "local M = {}\nfunction M.echo(s) wx.sleep(0) return s end\nreturn M\n",
        ),
    ]);
    let r = run(dir.path(), &["check", "bot"]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(!r.out.contains("warning:"), "{}", r.out);
    assert!(
        r.out
            .contains("bot: 2 scripts, 3 handlers, 0 errors, 0 warnings"),
        "{}",
        r.out
    );
}

#[test]
fn the_repository_scripts_and_the_echo_example_check_clean() {
    for location in ["scripts", "examples/echo.lua", "examples/shop"] {
        let r = run(&repo(), &["check", "--strict", location]);
        assert_eq!(r.code, 0, "{location}: {}", r.out);
        assert!(r.out.contains("0 errors, 0 warnings"), "{}", r.out);
    }
}

#[test]
fn a_syntax_error_in_a_required_module_fails_with_its_file_and_line() {
    let dir = tree(&[
        (
            "s/main.lua",
            "local x = require('lib.x')\nwx.on('text', function(m) return x.f(m) end)\n",
        ),
        (
            "s/lib/x.lua",
            "local M = {}\nfunction M.f(m)\n  return m.content +\nend\nreturn M\n",
        ),
    ]);
    let r = run(dir.path(), &["check", "s"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains("s/lib/x.lua:4: error:"), "{}", r.out);
    // Met once by compiling every file and again through require: reported once.
    assert_eq!(r.out.matches("error:").count(), 1, "{}", r.out);
}

#[test]
fn a_syntax_error_in_a_module_nobody_requires_yet_still_fails() {
    let dir = tree(&[
        ("s/main.lua", "wx.on('text', function() return 'ok' end)\n"),
        ("s/later.lua", "return {\n"),
    ]);
    let r = run(dir.path(), &["check", "s"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains("s/later.lua:2: error:"), "{}", r.out);
}

#[test]
fn a_top_level_runtime_error_fails_with_its_file_and_line() {
    let dir = tree(&[
        ("s/main.lua", "local a = 1\nundefined_function(a)\n"),
        ("t/main.lua", "require('lib.y')\n"),
        ("t/lib/y.lua", "local M = {}\n\nM.a = nil + 1\nreturn M\n"),
    ]);
    let r = run(dir.path(), &["check", "s"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out
            .contains("s/main.lua:2: error: attempt to call a nil value"),
        "{}",
        r.out
    );
    let r = run(dir.path(), &["check", "t"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains("t/lib/y.lua:3: error:"), "{}", r.out);
    assert!(r.out.contains("t/main.lua:1: in main chunk"), "{}", r.out);
}

#[test]
fn sleeping_at_top_level_is_a_located_error_not_a_crash() {
    let dir = tree(&[(
        "s/main.lua",
        "wx.on('text', function() end)
wx.sleep(0.01)
",
    )]);
    let r = run(dir.path(), &["check", "s"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out
            .contains("s/main.lua:2: error: wx.sleep: only inside a handler or wx.on_start"),
        "{}",
        r.out
    );
}

#[test]
fn a_handler_for_an_unknown_kind_warns_and_fails_only_when_strict() {
    let dir = tree(&[(
        "s/main.lua",
        "wx.on('text', function() end)\nwx.on('txt', function() end)\n",
    )]);
    let r = run(dir.path(), &["check", "s"]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        r.out.contains("s/main.lua:2: warning: wx.on(\"txt\")"),
        "{}",
        r.out
    );
    assert!(r.out.contains("0 errors, 1 warning"), "{}", r.out);
    let r = run(dir.path(), &["check", "--strict", "s"]);
    assert_eq!(r.code, 1, "{}", r.out);
}

#[test]
fn unknown_wx_names_warn_with_file_line_and_a_suggestion() {
    let dir = tree(&[(
        "s/main.lua",
        "wx.on('text', function()\n\
         \x20 return wx.replay.text('hi')\n\
         end)\n\
         wx.helpers = {}\n\
         function wx.helpers.greet() return wx.reply.txt('x') end\n\
         local s = 'wx.fine.in.string' .. tostring(wx.helpers.greet)\n",
    )]);
    let r = run(dir.path(), &["check", "s"]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        r.out
            .contains("s/main.lua:2: warning: wx.replay.text: unknown name wx.replay"),
        "{}",
        r.out
    );
    assert!(r.out.contains("did you mean wx.reply?"), "{}", r.out);
    assert!(
        r.out
            .contains("s/main.lua:5: warning: unknown name wx.reply.txt"),
        "{}",
        r.out
    );
    assert!(r.out.contains("did you mean wx.reply.text?"), "{}", r.out);
    assert_eq!(r.out.matches("warning:").count(), 2, "{}", r.out);
}

#[test]
fn missing_scripts_are_an_error_not_a_crash() {
    let dir = tree(&[("s/notes.txt", "x")]);
    let r = run(dir.path(), &["check", "s"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains("main.lua"), "{}", r.out);
    let r = run(dir.path(), &["check", "nowhere"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains("nowhere: error: cannot read scripts"),
        "{}",
        r.out
    );
}

#[test]
fn without_a_path_check_uses_the_configured_scripts() {
    let dir = tree(&[
        ("wechat-lua.toml", "scripts = \"mybot\"\n"),
        ("mybot/main.lua", "wx.on('txt', function() end)\n"),
        ("other/main.lua", "wx.on('text', function() end)\n"),
    ]);
    let r = run(dir.path(), &["check"]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("mybot/main.lua:1: warning:"), "{}", r.out);
    let r = Command::new(BIN)
        .args(["check", "--strict"])
        .current_dir(dir.path())
        .env("WECHAT_SCRIPTS", "other")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "{out}");
    assert!(out.contains("other: 1 script"), "{out}");
}

#[test]
fn new_scaffolds_a_bot_that_checks_clean_and_whose_config_serve_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &["new", "mybot"]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("cd mybot"), "{}", r.out);
    assert!(r.out.contains("wechat-lua serve"), "{}", r.out);
    let bot = dir.path().join("mybot");
    for rel in [
        "scripts/main.lua",
        "wechat-lua.toml",
        "types/wx.lua",
        ".luarc.json",
        ".gitignore",
    ] {
        assert!(bot.join(rel).is_file(), "{rel} missing");
    }
    assert_eq!(
        std::fs::read_to_string(bot.join("types/wx.lua")).unwrap(),
        TYPES
    );
    assert!(std::fs::read_to_string(bot.join(".gitignore"))
        .unwrap()
        .lines()
        .any(|l| l == "data/"));

    // From outside, naming the bot, and from inside, with no argument.
    let r = run(dir.path(), &["check", "--strict", "mybot"]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("mybot/scripts: 1 script"), "{}", r.out);
    let r = run(&bot, &["check", "--strict"]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("0 errors, 0 warnings"), "{}", r.out);

    let luarc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bot.join(".luarc.json")).unwrap()).unwrap();
    assert_eq!(luarc["runtime.version"], "Lua 5.4");
    assert_eq!(luarc["diagnostics.globals"], serde_json::json!(["wx"]));
    assert_eq!(luarc["workspace.library"], serde_json::json!(["types"]));

    // As written (everything commented) and with every setting uncommented, the file is one
    // `serve` accepts: this catches a key that FileConfig does not know.
    let config = bot.join("wechat-lua.toml");
    let data = dir.path().join("data");
    let load = |path: &Path| {
        Config::load_with_env(
            &Overrides {
                config: Some(path.to_path_buf()),
                data: Some(data.clone()),
                ..Default::default()
            },
            &HashMap::new(),
        )
    };
    let as_written = load(&config).unwrap();
    assert_eq!(as_written.scripts, PathBuf::from("scripts"));
    let text = std::fs::read_to_string(&config).unwrap();
    let uncommented: String = text
        .lines()
        .map(|l| {
            let setting = l.strip_prefix("# ").filter(|s| {
                s.split_once(" = ").is_some_and(|(key, _)| {
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
            });
            setting.unwrap_or(l).to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut keys: Vec<&str> = uncommented
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(" = "))
        .filter_map(|l| l.split_once(" = ").map(|(key, _)| key))
        .collect();
    keys.sort_unstable();
    // The settings the file may hold, as the parser lists them for an unknown key.
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "no_such_setting = 1\n").unwrap();
    let refusal = load(&unknown).unwrap_err().to_string();
    let known = refusal
        .split_once("expected one of ")
        .map(|(_, list)| list)
        .unwrap_or_else(|| panic!("{refusal}"));
    let mut settings: Vec<&str> = known
        .split(", ")
        .map(|k| k.trim().trim_matches('`'))
        .collect();
    settings.sort_unstable();
    assert_eq!(
        keys, settings,
        "every FileConfig setting is in the template (docs/configuration.md says so)"
    );
    let full = dir.path().join("full.toml");
    std::fs::write(&full, &uncommented).unwrap();
    let loaded = load(&full).unwrap();
    assert_eq!(loaded.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(loaded.workers, 2);
    assert_eq!(loaded.route_timeout, std::time::Duration::from_secs(10));
    assert_eq!(loaded.trusted_proxies.len(), 1);
}

#[test]
fn new_refuses_a_non_empty_directory_and_leaves_it_alone() {
    let dir = tree(&[("taken/notes.txt", "mine")]);
    let r = run(dir.path(), &["new", "taken"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains("not empty"), "{}", r.out);
    assert!(!dir.path().join("taken/scripts").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken/notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn the_types_name_every_kind_the_host_knows() {
    for kind in MsgType::MESSAGE_NAMES {
        assert!(TYPES.contains(&format!("---| \"{kind}\"\n")), "{kind}");
    }
    for event in EventType::NAMES {
        assert!(
            TYPES.contains(&format!("---| \"event.{event}\"\n")),
            "event.{event}"
        );
    }
    assert!(TYPES.contains("---| \"*\"\n"));
}

#[test]
fn the_types_describe_every_name_the_host_defines() {
    let dir = tree(&[("main.lua", "")]);
    let sources = Arc::new(ScriptSources::read(dir.path()).unwrap());
    let names = wechat_lua::commands::check::lint::host_names(sources).unwrap();
    assert!(names.names.len() > 10, "{:?}", names.names.keys());
    for name in names.names.keys() {
        // A function, a table, or a plain value (`wx.json.null`) assigned at a line's start.
        let described = TYPES.contains(&format!("function {name}("))
            || TYPES.contains(&format!("{name} = {{}}\n"))
            || TYPES.contains(&format!("\n{name} = "));
        assert!(described, "{name} is bound but not in editor/wx.lua");
    }
}

/// Every field name under `fields`, with its nesting, snake_cased as scripts see it.
fn field_names(fields: &Fields, out: &mut Vec<String>) {
    for (name, field) in fields.iter() {
        out.push(snake_case(name).into_owned());
        nested_names(field, out);
    }
}

fn nested_names(field: &Field, out: &mut Vec<String>) {
    match field {
        Field::Text(_) => {}
        Field::Group(fields) => field_names(fields, out),
        Field::List(items) => items.iter().for_each(|item| nested_names(item, out)),
    }
}

#[test]
fn the_types_describe_every_field_of_every_documented_message() {
    let fixtures = repo().join("tests/fixtures/messages");
    let mut checked = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Made-up kinds that show unknown fields are kept; `[string] any` covers them.
        if name.starts_with("unknown") || name == "event_unknown.xml" {
            continue;
        }
        let msg = InboundMessage::parse(&std::fs::read(&path).unwrap()).unwrap();
        let mut names = Vec::new();
        field_names(&msg.fields, &mut names);
        for field in names {
            assert!(
                TYPES.contains(&format!("---@field {field} "))
                    || TYPES.contains(&format!("---@field {field}? ")),
                "{name}: field {field} is not in editor/wx.lua"
            );
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} fixtures");
}

#[test]
fn the_types_file_is_valid_lua() {
    let lua = mlua::Lua::new();
    lua.load(TYPES).set_name("@editor/wx.lua").exec().unwrap();
    let wx: mlua::Table = lua.globals().get("wx").unwrap();
    assert!(wx.get::<mlua::Function>("on").is_ok());
}

#[test]
fn check_knows_the_outside_world_names() {
    let dir = tree(&[(
        "s/main.lua",
        "wx.on('text', function(msg)\n\
         \x20 local resp, err = wx.http.request{url = 'https://example.com/'}\n\
         \x20 local r2 = wx.http.get('https://example.com/') or wx.http.post('https://example.com/', {})\n\
         \x20 local j = wx.json.encode({wx.json.null, wx.json.array(), wx.json.object()}) .. tostring(wx.json.decode('1'))\n\
         \x20 local h = wx.crypto.sha1('a') .. wx.crypto.sha256('a') .. wx.crypto.md5('a')\n\
         \x20 h = h .. wx.crypto.hmac_sha256('k', 'a') .. wx.crypto.hmac_sha1('k', 'a') .. wx.crypto.random_hex(4)\n\
         \x20 local b = wx.base64.encode('a') .. tostring(wx.base64.decode('YQ=='))\n\
         \x20 return wx.url.encode('a b') .. wx.url.decode('a') .. wx.url.query({a = 1}) .. j .. h .. b\n\
         end)\n",
    )]);
    let r = run(dir.path(), &["check", "s"]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains(" 0 warnings"), "{}", r.out);
    assert!(!r.out.contains("unknown name"), "{}", r.out);
}

#[test]
fn check_also_checks_each_accounts_own_scripts() {
    let dir = tree(&[
        (
            "scripts/main.lua",
            "wx.on('text', function() return 'ok' end)\n",
        ),
        (
            "shop/main.lua",
            "wx.on('text', function()\n  return 'broken'\nend\nend\n",
        ),
        (
            "wechat-lua.toml",
            "scripts = \"scripts\"\n\n[[accounts]]\nname = \"shop\"\nappid = \"wxshop\"\n\
             token = \"shoptoken1\"\nscripts = \"shop\"\n",
        ),
    ]);
    let r = run(dir.path(), &["check", "--config", "wechat-lua.toml"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains("shop/main.lua:4"), "{}", r.out);
}
