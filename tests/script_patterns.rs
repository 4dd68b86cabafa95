//! Lua pattern matching through the script workers: the budgeted `string.find`, `match`,
//! `gmatch` and `gsub` behave as Lua's, and neither a script nor the host's own text filter
//! can spend seconds in one match. (A file of its own: these tests burn CPU up to the step
//! budget, which would slow the run-limit tests beside them.)

mod support;

use support::pool::{handle, host, reply, text};
use support::text_xml;
use wechat_lua::protocol::reply::Reply;
use wechat_lua::script::{LuaPool, RuntimeOptions, ScriptError, Services};

/// Issue 15: the host's own filter ran the C matcher, which the run limit never reaches (2.9 s
/// on a 25 KB text); now the matcher's step budget stops it, reported like a bad pattern.
#[tokio::test]
async fn a_costly_text_filter_stops_at_the_pattern_budget() {
    let (_d, host) = host(
        "wx.on(\"text\", \"^(.-)(.-)!$\", function() return \"never\" end)\n\
         wx.on(\"text\", \"^hi (%a+)()\", function(msg, name, at) return name .. math.type(at) .. at end)\n",
    );
    let long = "a".repeat(40_000);
    // The C matcher took 110 s here in a debug build before answering "no match".
    let err = handle(&host, &text_xml("u", &long, 1)).await.unwrap_err();
    let ScriptError::Handler { handler, message } = &err else {
        panic!("{err:?}")
    };
    assert!(handler.ends_with("main.lua:1"), "{handler}");
    assert!(
        message.contains("bad pattern: pattern matching exceeded its budget of 10000000 steps (subject of 40000 bytes)"),
        "{message}"
    );
    // Filters that fit the budget still pass their captures, positions as integers.
    assert_eq!(
        reply(&host, &text_xml("u", "hi Ann", 2)).await,
        text("Anninteger7")
    );
}

#[tokio::test]
async fn string_pattern_functions_work_in_scripts_as_in_lua() {
    let (_d, host) = host(
        r#"
        wx.on("text", "^budget", function(msg)
            return ("a"):rep(40000):find("^(.-)(.-)!$")
        end)
        wx.on("text", function(msg)
            local out = {}
            out[#out + 1] = (msg.content:gsub("(%w+)=(%w+)", "%2=%1"))
            for k, v in string.gmatch(msg.content, "(%w+)=(%w+)") do out[#out + 1] = k .. ":" .. v end
            out[#out + 1] = select(2, ("a,b,,c"):gsub(",", ";"))
            out[#out + 1] = ("a.b"):find(".", 1, true)
            out[#out + 1] = msg.content:match("^(%w+)")
            out[#out + 1] = (string.gsub("hello", "l", { l = "L" }))
            out[#out + 1] = (("abc"):gsub("%w", function(c) return c:upper() end, 2))
            local _, err = pcall(string.find, "x", "%")
            out[#out + 1] = type(err) .. ":" .. err
            local _, located = pcall(function() return ("x"):find("[") end)
            out[#out + 1] = located
            return table.concat(out, "|")
        end)
        "#,
    );
    let Some(Reply::Text { content }) = reply(&host, &text_xml("u", "a=1 b=2", 1)).await else {
        panic!("a text reply")
    };
    let (results, located) = content.rsplit_once('|').unwrap();
    assert_eq!(
        results,
        "1=a 2=b|a:1|b:2|3|2|a|heLLo|ABc|string:malformed pattern (ends with '%')"
    );
    assert!(
        located.ends_with("main.lua:16: malformed pattern (missing ']')"),
        "{located}"
    );
    let err = handle(&host, &text_xml("u", "budget", 2))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("main.lua:3: pattern matching exceeded its budget"),
        "{err}"
    );
}

/// A loop of budget-sized matches caught with `pcall` meets the run limit: each call checks
/// it as it starts, so the loop cannot run many budgets between two hook checks.
#[tokio::test]
async fn a_loop_of_costly_matches_is_stopped_at_the_run_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.lua"),
        "local s = ('a'):rep(40000)\n\
         wx.on(\"text\", function()\n  \
           for i = 1, 1e6 do pcall(string.find, s, '^(.-)(.-)!$') end\n\
         end)\n",
    )
    .unwrap();
    let options = RuntimeOptions {
        run_limit: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let host = LuaPool::start(dir.path(), options, 1, Services::in_memory().unwrap()).unwrap();
    let xml = text_xml("u", "x", 1);
    let err = tokio::time::timeout(std::time::Duration::from_secs(20), handle(&host, &xml))
        .await
        .expect("the loop was not stopped")
        .unwrap_err()
        .to_string();
    assert!(err.contains("stopped"), "{err}");
}
