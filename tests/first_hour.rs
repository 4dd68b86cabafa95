//! What a newcomer meets in the first hour (issue 17): start-up work in `wx.on_start` and
//! waiting calls refused at the top level every time, relative paths resolved from one place,
//! `check` judging the settings as `serve` does, per-message log lines, one warning per load
//! for a misspelt kind, reply fields checked, and `wx.session`.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::pool::{handle, host_with, reply, text, write};
use support::{element, text_xml, Server, TOKEN};
use wechat_lua::commands::ChatOptions;
use wechat_lua::config::{Config, Overrides};
use wechat_lua::script::{LuaPool, RuntimeOptions, Services};
use wechat_lua::store::script_data;

const BIN: &str = env!("CARGO_BIN_EXE_wechat-lua");

/// Runs the binary in `dir` with no WECHAT_* setting inherited from the caller.
fn run(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("WECHAT_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.envs(envs.iter().copied());
    cmd.output().unwrap()
}

fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, files);
    dir
}

/// Polls the store until `key` holds `want` (work done in the background), for up to 5 s.
async fn store_reaches(services: &Services, key: &str, want: serde_json::Value) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if script_data::get(services.store.as_ref(), key)
            .await
            .unwrap()
            == Some(want.clone())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

// ---- item 1: the top level and wx.on_start ----

#[test]
fn a_waiting_call_at_the_top_level_fails_check_and_serve_the_same_way_twenty_times() {
    let dir = tree(&[(
        "scripts/main.lua",
        "wx.on('text', function() return 'hi' end)\nlocal v = wx.store.get('x')\n",
    )]);
    let expected = "scripts/main.lua:2";
    let pointer = "wx.store.get: only inside a handler or wx.on_start";
    for attempt in 0..20 {
        let out = run(dir.path(), &["check"], &[]);
        let text = all_output(&out);
        assert_eq!(out.status.code(), Some(1), "check run {attempt}: {text}");
        assert!(
            text.contains(expected) && text.contains(pointer),
            "check run {attempt}: {text}"
        );
    }
    for attempt in 0..20 {
        let out = run(
            dir.path(),
            &["serve", "--listen", "127.0.0.1:0"],
            &[("WECHAT_TOKEN", TOKEN)],
        );
        let text = all_output(&out);
        assert!(!out.status.success(), "serve run {attempt} started: {text}");
        assert!(
            text.contains(expected) && text.contains(pointer),
            "serve run {attempt}: {text}"
        );
        assert!(!text.contains("yield"), "serve run {attempt}: {text}");
    }
}

#[tokio::test]
async fn on_start_runs_once_per_load_in_one_state_and_may_wait() {
    let dir = tempfile::tempdir().unwrap();
    let main = "wx.on_start(function(info)\n\
                  wx.sleep(0)\n\
                  wx.store.incr('starts')\n\
                  wx.store.set('generation', info.generation)\n\
                  started_here = true\n\
                end)\n\
                wx.on('text', function()\n\
                  return tostring(wx.store.get('starts')) .. '/' .. tostring(started_here)\n\
                end)\n";
    write(&dir, &[("main.lua", main)]);
    let services = Services::in_memory().unwrap();
    let pool = LuaPool::start(dir.path(), RuntimeOptions::default(), 3, services.clone()).unwrap();
    assert!(pool.run_start().await.is_empty());
    assert!(
        pool.run_start().await.is_empty(),
        "a second call runs nothing"
    );
    // Once, not once per state; and its globals are its own state's.
    assert_eq!(reply(&pool, &text_xml("u", "x", 1)).await, text("1/nil"));
    for id in 2..6 {
        assert_eq!(reply(&pool, &text_xml("u", "x", id)).await, text("1/nil"));
    }

    // A successful reload runs them again (in the background), with the new generation.
    write(&dir, &[("main.lua", &format!("{main}-- edited\n"))]);
    assert_eq!(pool.reload().unwrap(), 2);
    assert!(store_reaches(&services, "generation", 2.into()).await);
    assert!(store_reaches(&services, "starts", 2.into()).await);
    // A rejected reload runs nothing.
    write(
        &dir,
        &[(
            "main.lua",
            "wx.on_start(function() end)\nsyntax error here\n",
        )],
    );
    assert!(pool.reload().is_err());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        script_data::get(services.store.as_ref(), "starts")
            .await
            .unwrap(),
        Some(2.into())
    );
}

#[tokio::test]
async fn an_on_start_error_is_logged_with_its_line_and_stops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        &[(
            "main.lua",
            "wx.on_start(function()\n  error('no menu today')\nend)\n\
             wx.on_start(function() wx.store.set('second', true) end)\n\
             wx.on('text', function() return 'up' end)\n",
        )],
    );
    let services = Services::in_memory().unwrap();
    let pool = LuaPool::start(dir.path(), RuntimeOptions::default(), 1, services.clone()).unwrap();
    let errors = pool.run_start().await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let error = errors[0].to_string();
    assert!(
        error.contains("main.lua:2") && error.contains("no menu today"),
        "{error}"
    );
    assert!(store_reaches(&services, "second", true.into()).await);
    assert_eq!(reply(&pool, &text_xml("u", "x", 1)).await, text("up"));
}

#[test]
fn on_start_is_for_the_top_level_and_takes_a_function() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, &[("main.lua", "wx.on_start('menu')\n")]);
    let err = LuaPool::start(
        dir.path(),
        RuntimeOptions::default(),
        1,
        Services::in_memory().unwrap(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("main.lua:1") && err.contains("takes a function"),
        "{err}"
    );
}

#[test]
fn serve_runs_on_start_before_the_first_message() {
    let dir = tree(&[(
        "scripts/main.lua",
        "wx.on_start(function() wx.store.set('ready', 'menu made') end)\n\
         wx.on('text', function() return wx.store.get('ready') or 'not ready' end)\n",
    )]);
    let server = Server::start(dir.path(), &[], &[("WECHAT_TOKEN", TOKEN)]);
    let (status, body) = server.post(&text_xml("u", "x", 1));
    assert_eq!(status, 200);
    assert_eq!(element(&body, "Content").as_deref(), Some("menu made"));
}

// ---- item 7: relative paths ----

/// A bot made as `new` makes it, plus a default bot in the working directory that must not
/// be the one used.
fn two_bots() -> tempfile::TempDir {
    tree(&[
        (
            "cfgbot/wechat-lua.toml",
            "scripts = \"bot_scripts\"\ndata = \"state\"\nreply_timeout = 3\n",
        ),
        (
            "cfgbot/bot_scripts/main.lua",
            "wx.on('text', function() return 'cfgbot' end)\n",
        ),
        (
            "mybot/wechat-lua.toml",
            "# as new writes it: every setting commented out\n",
        ),
        (
            "mybot/scripts/main.lua",
            "wx.on('text', function() return 'mybot' end)\nwx.on('image', function() end)\n",
        ),
        (
            "elsewhere/scripts/main.lua",
            "wx.on('text', function() return 'the wrong bot' end)\n",
        ),
    ])
}

#[test]
fn a_config_file_s_paths_are_relative_to_its_directory_from_any_working_directory() {
    let root = two_bots();
    let cwd = root.path().join("elsewhere");
    let out = run(
        &cwd,
        &["check", "--config", "../cfgbot/wechat-lua.toml"],
        &[],
    );
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("cfgbot/bot_scripts: 1 script, 1 handler, 0 errors"),
        "{text}"
    );

    let overrides = Overrides {
        config: Some(root.path().join("cfgbot/wechat-lua.toml")),
        ..Overrides::default()
    };
    let config = Config::load_with_env(&overrides, &Default::default()).unwrap();
    assert_eq!(config.scripts, root.path().join("cfgbot/bot_scripts"));
    assert_eq!(config.data, root.path().join("cfgbot/state"));
    // Flags and the environment stay relative to the working directory.
    let overrides = Overrides {
        data: Some("flagdata".into()),
        ..overrides
    };
    let env = [("WECHAT_SCRIPTS".to_string(), "envscripts".to_string())].into();
    let config = Config::load_with_env(&overrides, &env).unwrap();
    assert_eq!(config.data, Path::new("flagdata"));
    assert_eq!(config.scripts, Path::new("envscripts"));
}

#[test]
fn a_bot_directory_stands_for_its_config_and_scripts_in_check_and_chat() {
    let root = two_bots();
    let cwd = root.path().join("elsewhere");
    let out = run(&cwd, &["check", "../mybot"], &[]);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("mybot/scripts: 1 script, 2 handlers"),
        "{text}"
    );

    // `chat --scripts DIR` resolves the way `check DIR` does, the bot's settings included.
    let options = ChatOptions {
        scripts: Some(root.path().join("cfgbot")),
        ..ChatOptions::default()
    };
    let config = wechat_lua::commands::chat::chat_config(&options, &Default::default()).unwrap();
    assert_eq!(config.scripts, root.path().join("cfgbot/bot_scripts"));
    assert_eq!(config.reply_timeout, Duration::from_secs(3), "its own file");
    let options = ChatOptions {
        scripts: Some(root.path().join("mybot")),
        ..ChatOptions::default()
    };
    let config = wechat_lua::commands::chat::chat_config(&options, &Default::default()).unwrap();
    assert_eq!(config.scripts, root.path().join("mybot/scripts"));
}

// ---- item 8: check judges the settings; the account commands' flags; the log ----

#[test]
fn check_refuses_an_unknown_key_in_the_config_as_serve_does() {
    let dir = tree(&[
        ("wechat-lua.toml", "serve = true\n"),
        ("scripts/main.lua", "wx.on('text', function() end)\n"),
    ]);
    for args in [&["check"][..], &["check", "scripts"][..]] {
        let out = run(dir.path(), args, &[]);
        let text = all_output(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(
            text.contains("wechat-lua.toml") && text.contains("unknown field `serve`"),
            "{args:?}: {text}"
        );
    }
    let out = run(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[("WECHAT_TOKEN", TOKEN)],
    );
    assert!(all_output(&out).contains("unknown field `serve`"));
}

/// The line of a message whose handler failed names that handler, as configuration.md
/// promises for every line ("the handler that took it"), so the error above it can be found.
#[test]
fn a_failed_handler_is_named_in_its_message_line() {
    let dir = tree(&[(
        "scripts/main.lua",
        "wx.on('text', function(msg)\n  local order = nil\n  return order.id\nend)\n",
    )]);
    let server = Server::start(dir.path(), &[], &[("WECHAT_TOKEN", TOKEN)]);
    let (status, _) = server.post(&text_xml("someone", "x", 1));
    assert_eq!(status, 200);
    assert!(server.wait_for_log("message handled", Duration::from_secs(10)));
    let lines = server.log.lock().unwrap().clone();
    let line = lines
        .iter()
        .find(|l| l.contains("message handled"))
        .unwrap();
    assert!(line.contains("outcome=script-error"), "{line}");
    assert!(line.contains("handler=scripts/main.lua:1"), "{line}");
}

#[test]
fn menu_and_token_list_only_the_flags_that_apply_to_them() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["menu", "token"] {
        let help = all_output(&run(dir.path(), &[command, "--help"], &[]));
        for flag in ["--config", "--data", "--store"] {
            assert!(help.contains(flag), "{command} --help lacks {flag}: {help}");
        }
        for flag in ["--listen", "--scripts", "--log-format"] {
            assert!(
                !help.contains(flag),
                "{command} --help shows {flag}: {help}"
            );
        }
    }
}

// ---- item 10 and 11: the log ----

#[test]
fn the_log_has_one_plain_line_per_message_the_mode_as_written_and_one_warning_per_load() {
    let dir = tree(&[
        ("wechat-lua.toml", "workers = 4\n"),
        (
            "scripts/main.lua",
            "wx.on('txt', function() end)\nwx.on('text', function(msg) return 'hi' end)\n",
        ),
    ]);
    let server = Server::start(dir.path(), &[], &[("WECHAT_TOKEN", TOKEN)]);
    let (status, _) = server.post(&text_xml("someone", "x", 1));
    assert_eq!(status, 200);
    assert!(server.wait_for_log("message handled", Duration::from_secs(10)));
    let lines = server.log.lock().unwrap().clone();
    let handled: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("message handled"))
        .collect();
    assert_eq!(handled.len(), 1, "{lines:#?}");
    let line = handled[0];
    for field in [
        "type=text",
        "handler=scripts/main.lua:2",
        "outcome=reply:text",
        "ms=",
        "openid=",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    assert!(!line.contains("someone"), "the OpenID itself: {line}");
    assert!(!line.contains("message{"), "no span prefix: {line}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("listening") && l.contains("mode=plain")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains('\u{1b}')),
        "no colour codes when stderr is not a terminal: {lines:#?}"
    );
    let hints = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("wx.on(\\\"txt\\\")") || l.contains("wx.on(\"txt\")"))
            .inspect(|l| assert!(l.contains("did you mean"), "{l}"))
            .count()
    };
    assert_eq!(
        hints(&lines),
        1,
        "one warning per load, not per state: {lines:#?}"
    );

    std::fs::write(
        dir.path().join("scripts/main.lua"),
        "wx.on('txt', function() end)\nwx.on('text', function(msg) return 'again' end)\n",
    )
    .unwrap();
    assert!(server.wait_for_log("scripts reloaded", Duration::from_secs(10)));
    let lines = server.log.lock().unwrap().clone();
    assert_eq!(hints(&lines), 2, "one more for the reload: {lines:#?}");
}

#[test]
fn no_color_is_honoured() {
    use std::ffi::OsStr;
    assert!(wechat_lua::logging::no_color(Some(OsStr::new("1"))));
    assert!(!wechat_lua::logging::no_color(Some(OsStr::new(""))));
    assert!(!wechat_lua::logging::no_color(None));
}

#[tokio::test]
async fn handler_tracebacks_show_only_the_script_s_frames() {
    let (_d, pool) = host_with(
        &[(
            "main.lua",
            "local function encode(v)\n  return wx.json.encode(v)\nend\n\
             wx.on('text', function()\n  local s = encode({x = 0/0})\n  return s\nend)\n",
        )],
        RuntimeOptions::default(),
        1,
    );
    let err = handle(&pool, &text_xml("u", "x", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("main.lua:2") && err.contains("NaN"), "{err}");
    assert!(
        err.contains("main.lua:5"),
        "the script's frames stay: {err}"
    );
    assert!(!err.contains("wechat-lua:"), "a host frame: {err}");
    assert!(!err.contains("[C]"), "a C frame: {err}");
}

#[tokio::test]
async fn a_filter_on_a_misspelt_kind_reports_the_misspelling_first() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        &[("main.lua", "wx.on('txt', '^hi', function() end)\n")],
    );
    let err = LuaPool::start(
        dir.path(),
        RuntimeOptions::default(),
        1,
        Services::in_memory().unwrap(),
    )
    .err()
    .unwrap()
    .to_string();
    let misspelling = err.find("did you mean \"text\"?").expect(&err);
    let filter = err.find("a filter applies").expect(&err);
    assert!(misspelling < filter, "{err}");
}

// ---- item 12: reply fields ----

#[tokio::test]
async fn unknown_reply_fields_are_errors_at_their_line_naming_the_field_meant() {
    let (_d, pool) = host_with(
        &[(
            "main.lua",
            "wx.on('text', '^news', function()\n  return wx.reply.news{{titel = 'Hi', url = 'https://e.com'}}\nend)\n\
             wx.on('text', '^lit', function()\n  return {type = 'text', content = 'x', contnet = 'y'}\nend)\n\
             wx.on('text', '^video', function()\n  return wx.reply.video{media_id = 'm', thumb_media_id = 't'}\nend)\n\
             wx.on('text', function()\n  return wx.reply.music{thumb_media_id = 't', musicurl = 'u'}\nend)\n",
        )],
        RuntimeOptions::default(),
        1,
    );
    let err = handle(&pool, &text_xml("u", "news", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("main.lua:2")
            && err.contains("article 1 has no field `titel` (did you mean `title`?)"),
        "{err}"
    );
    let err = handle(&pool, &text_xml("u", "lit", 2))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("main.lua:4") && err.contains("no field `contnet` (did you mean `content`?)"),
        "{err}"
    );
    // A video for customer service may carry its thumbnail.
    assert!(handle(&pool, &text_xml("u", "video", 3)).await.is_ok());
    let err = handle(&pool, &text_xml("u", "other", 4))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`musicurl` (did you mean `music_url`?)"),
        "{err}"
    );
}

// ---- item 13: wx.session ----

#[tokio::test]
async fn a_session_is_per_user_saved_when_the_handler_returns_and_expires() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        &[(
            "main.lua",
            "wx.on('text', '^boom', function(msg)\n\
               local s = wx.session(msg)\n  s.visits = 100\n  error('no')\n\
             end)\n\
             wx.on('text', '^forget', function(msg)\n\
               local s = wx.session(msg)\n  s.visits = nil\n\
             end)\n\
             wx.on('text', function(msg)\n\
               local s = wx.session(msg)\n\
               s.visits = (s.visits or 0) + 1\n\
               assert(wx.session(msg) == s, 'one table per run')\n\
               return 'visit ' .. s.visits\n\
             end)\n",
        )],
    );
    let services = Services::in_memory()
        .unwrap()
        .with_session_ttl(Duration::from_millis(300));
    let pool = LuaPool::start(dir.path(), RuntimeOptions::default(), 2, services.clone()).unwrap();
    let visit = |from: &'static str, content: &'static str, id: u64| {
        let pool = pool.clone();
        async move { reply(&pool, &text_xml(from, content, id)).await }
    };
    assert_eq!(visit("a", "x", 1).await, text("visit 1"));
    assert_eq!(visit("a", "x", 2).await, text("visit 2"));
    assert_eq!(visit("b", "x", 3).await, text("visit 1"), "per user");
    assert!(handle(&pool, &text_xml("a", "boom", 4)).await.is_err());
    assert_eq!(
        visit("a", "x", 5).await,
        text("visit 3"),
        "a handler that failed saved nothing"
    );
    let stored = services
        .store
        .get("session:gh_account:a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, r#"{"visits":3}"#);
    // Emptied, it is deleted.
    assert_eq!(reply(&pool, &text_xml("a", "forget", 6)).await, None);
    assert_eq!(
        services.store.get("session:gh_account:a").await.unwrap(),
        None
    );
    // It expires session_ttl after the last save (the store's clock is the wall clock).
    assert_eq!(visit("b", "x", 7).await, text("visit 2"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(visit("b", "x", 8).await, text("visit 1"));
}

#[test]
fn a_session_cannot_be_opened_at_the_top_level() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        &[("main.lua", "local s = wx.session({from = 'a', to = 'b'})\n")],
    );
    let err = LuaPool::start(
        dir.path(),
        RuntimeOptions::default(),
        1,
        Services::in_memory().unwrap(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("main.lua:1") && err.contains("wx.session: only inside a handler"),
        "{err}"
    );
}

#[test]
fn the_session_ttl_setting_is_read_and_bounded() {
    let load = |value: &str| {
        let env = [("WECHAT_SESSION_TTL".to_string(), value.to_string())].into();
        Config::load_with_env(&Overrides::default(), &env)
    };
    assert_eq!(load("3600").unwrap().session_ttl, Duration::from_secs(3600));
    let err = load("0").unwrap_err().to_string();
    assert!(err.contains("session_ttl"), "{err}");
    let config = Config::load_with_env(&Overrides::default(), &Default::default()).unwrap();
    assert_eq!(config.session_ttl, Duration::from_secs(30 * 86_400));
}
