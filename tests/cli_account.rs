//! `wechat-lua menu push|show|delete` and `wechat-lua token` against the fake WeChat API.

mod support;

use std::process::{Command, Output};

use support::FakeApi;

fn run(dir: &std::path::Path, api: &FakeApi, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wechat-lua"));
    cmd.args(args).current_dir(dir).env("RUST_LOG", "warn");
    for (k, v) in api.env() {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn menu_push_show_delete_and_token_status() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("menu.toml"),
        r#"
[[button]]
type = "click"
name = "今日歌曲"
key = "V1001_TODAY_MUSIC"

[[button]]
name = "菜单"
[[button.sub_button]]
type = "view"
name = "搜索"
url = "http://www.soso.com/"
"#,
    )
    .unwrap();

    let out = run(dir.path(), &api, &["token"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("no access_token cached")
            && stdout(&out).contains("no jsapi_ticket cached"),
        "{}",
        stdout(&out)
    );

    let out = run(dir.path(), &api, &["menu", "push", "menu.toml"]);
    assert!(out.status.success(), "{out:?}");
    let created = api.fake.calls_to("/cgi-bin/menu/create");
    assert_eq!(created.len(), 1);
    let body = created[0].body.clone().unwrap();
    assert_eq!(body["button"][0]["key"], "V1001_TODAY_MUSIC");
    assert_eq!(
        body["button"][1]["sub_button"][0]["url"],
        "http://www.soso.com/"
    );

    let out = run(dir.path(), &api, &["menu", "show"]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("今日歌曲"), "{}", stdout(&out));

    // The token fetched for the push is kept: a status without it, then with --show.
    let token = api.fake.current_token().unwrap();
    let out = run(dir.path(), &api, &["token"]);
    assert!(
        stdout(&out).contains("cached") && stdout(&out).contains("expires"),
        "{}",
        stdout(&out)
    );
    assert!(
        !stdout(&out).contains(&token) && !String::from_utf8_lossy(&out.stderr).contains(&token)
    );
    let out = run(dir.path(), &api, &["token", "--show"]);
    assert!(stdout(&out).contains(&token));
    assert_eq!(
        api.fake.token_fetches(),
        1,
        "commands reuse the stored token"
    );

    let out = run(dir.path(), &api, &["menu", "delete"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(api.fake.calls_to("/cgi-bin/menu/delete").len(), 1);
}

#[test]
fn a_bad_menu_file_is_refused_before_any_call() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("menu.json"),
        r#"{"button": [{"name":"a"},{"name":"b"},{"name":"c"},{"name":"d"}]}"#,
    )
    .unwrap();
    let out = run(dir.path(), &api, &["menu", "push", "menu.json"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 to 3"),
        "{out:?}"
    );
    std::fs::write(dir.path().join("broken.json"), "{ nope").unwrap();
    let out = run(dir.path(), &api, &["menu", "push", "broken.json"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.json"),
        "{out:?}"
    );
    assert!(api.fake.calls_to("/cgi-bin/menu/create").is_empty());
}

/// `wechat-lua menu push FILE --data DIR` is how one writes it after reading `menu push FILE`:
/// the account flags are accepted after the action as well as before it.
#[test]
fn the_account_flags_go_before_or_after_the_menu_action() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("menu.json"),
        r#"{"button":[{"type":"click","name":"Today","key":"MENU_TODAY"}]}"#,
    )
    .unwrap();
    let out = run(
        dir.path(),
        &api,
        &["menu", "push", "menu.json", "--data", "after"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(dir.path().join("after").is_dir(), "--data after the action");
    let out = run(dir.path(), &api, &["menu", "--data", "before", "show"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        dir.path().join("before").is_dir(),
        "--data before the action"
    );
    assert!(stdout(&out).contains("MENU_TODAY"), "{}", stdout(&out));
}

#[test]
fn account_commands_act_for_the_account_named() {
    let api = FakeApi::start();
    api.fake
        .add_app("wxshop", "shopsecret000000000000000000000");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wechat-lua.toml"),
        "[[accounts]]\nname = \"shop\"\nappid = \"wxshop\"\n\
         appsecret = \"shopsecret000000000000000000000\"\ntoken = \"shoptoken1\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("menu.json"),
        r#"{"button": [{"type": "click", "name": "A", "key": "K"}]}"#,
    )
    .unwrap();

    let out = run(
        dir.path(),
        &api,
        &["menu", "push", "menu.json", "--account", "shop"],
    );
    assert!(out.status.success(), "{out:?}");
    let created = api.fake.calls_to("/cgi-bin/menu/create");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].appid.as_deref(), Some("wxshop"));

    let out = run(dir.path(), &api, &["token", "--account", "shop"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("cached for wxshop"),
        "{}",
        stdout(&out)
    );

    let out = run(dir.path(), &api, &["token", "--account", "nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no [[accounts]] table is named `nope` (accounts: default, shop)"),
        "{err}"
    );
}
