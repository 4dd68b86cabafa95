//! The real binary's log: text from scripts and requests cannot forge a line or make one huge.

mod support;

use std::time::Duration;

use support::{text_xml, Server, TOKEN};

const BOT: &str = r#"
wx.on("text", "^forge$", function()
    wx.log.info("hello\nERROR FORGED: admin logged in\r\n\27[2J")
    print("tab\tand\nFORGED-TOO")
    return "ok"
end)
wx.on("text", "^huge$", function()
    print(("p"):rep(200000))
    error(("e"):rep(300000))
end)
"#;

#[test]
fn script_text_stays_on_one_escaped_line_of_bounded_size() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    std::fs::write(dir.path().join("scripts/main.lua"), BOT).unwrap();
    for format in ["text", "json"] {
        let server = Server::start(
            dir.path(),
            &["--log-format", format],
            &[("WECHAT_TOKEN", TOKEN)],
        );
        let (status, _) = server.post(&text_xml("u", "forge", 1));
        assert_eq!(status, 200);
        let (status, body) = server.post(&text_xml("u", "huge", 2));
        assert_eq!((status, body.as_str()), (200, "success"));
        assert!(server.wait_for_log("FORGED-TOO", Duration::from_secs(5)));
        assert!(server.wait_for_log("truncated, 300", Duration::from_secs(5)));
        let log = server.log.lock().unwrap().clone();
        for line in &log {
            assert!(
                !line.trim_start().starts_with("ERROR FORGED") && !line.starts_with("FORGED"),
                "{format}: a script started a line: {line}"
            );
            assert!(!line.contains('\u{1b}'), "{format}: raw escape in {line}");
            assert!(
                line.len() <= 9 * 1024,
                "{format}: a {} byte line",
                line.len()
            );
        }
        let forged = log.iter().find(|l| l.contains("ERROR FORGED")).unwrap();
        assert!(forged.contains(r"hello\nERROR FORGED"), "{forged}");
        // The handler error (300,000 'e's plus the location and traceback) is cut, its size noted.
        let error = log.iter().find(|l| l.contains("eeee")).unwrap();
        assert!(
            error.contains("…[truncated, 3"),
            "{}",
            &error[error.len() - 80..]
        );
    }
}
