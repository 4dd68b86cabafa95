//! How `wechat-lua chat` shows what the bot does: a passive reply (the XML of the callback
//! answer) as the lines a user would read, and each call the scripts made to the (fake)
//! WeChat API as one line marked by kind: `[客服]` customer service, `[模板]` template
//! messages, `[订阅通知]` subscription notifications, `[群发]` mass sends, `[api]` anything
//! else; a call WeChat refused ends with `→ errcode errmsg`, so a failed send never reads as
//! delivered. `wx.http` requests are `[http]` lines. What WeChat would not show (the articles
//! of a news message after the first) is said, not shown.

use serde_json::Value;

use crate::fake_wechat::RecordedCall;
use crate::net::SeenRequest;
use crate::protocol::xml_fields::{parse_fields, Field, Fields};

/// What a callback answer shows as.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyView {
    /// `success` or an empty body: the bot answered nothing.
    NoReply,
    /// Lines to show, in order.
    Lines(Vec<String>),
    /// Lines to show, and a warning about what WeChat leaves out of them.
    Trimmed {
        /// What the user sees.
        lines: Vec<String>,
        /// What was sent but not shown, and why.
        warning: String,
    },
}

/// The warning for a news message of `sent` articles, of which WeChat shows only the first
/// (passive replies and customer-service messages alike, since 2018).
fn first_article_only(what: &str, sent: usize) -> String {
    format!(
        "(WeChat shows only the first article of a {what}: {} more not shown)",
        sent - 1
    )
}

/// Reads a passive reply (plaintext reply XML, or `success`) as lines for the user.
pub fn describe_reply(body: &str) -> ReplyView {
    let trimmed = body.trim();
    if trimmed.is_empty() || trimmed == "success" {
        return ReplyView::NoReply;
    }
    let fields = match parse_fields(trimmed.as_bytes()) {
        Ok(fields) => fields,
        Err(e) => return ReplyView::Lines(vec![format!("[unreadable reply: {e}] {trimmed}")]),
    };
    let text = |f: &Fields, name: &str| f.text(name).unwrap_or_default().to_string();
    let group = |name: &str| fields.get(name).and_then(Field::as_group);
    let msg_type = text(&fields, "MsgType");
    let lines = match msg_type.as_str() {
        "text" => text(&fields, "Content")
            .lines()
            .map(str::to_string)
            .collect(),
        "image" | "voice" => {
            let tag = if msg_type == "image" {
                "Image"
            } else {
                "Voice"
            };
            let media_id = group(tag).map(|g| text(g, "MediaId")).unwrap_or_default();
            vec![format!("[{msg_type} media_id={media_id}]")]
        }
        "video" => {
            let g = group("Video").cloned().unwrap_or_default();
            let mut line = format!("[video media_id={}", text(&g, "MediaId"));
            for (name, label) in [("Title", "title"), ("Description", "description")] {
                if let Some(value) = g.text(name).filter(|v| !v.is_empty()) {
                    line.push_str(&format!(" {label}={value}"));
                }
            }
            line.push(']');
            vec![line]
        }
        "music" => {
            let g = group("Music").cloned().unwrap_or_default();
            let mut lines = vec![format!("♪ {}", text(&g, "Title"))];
            for (name, label) in [
                ("Description", ""),
                ("MusicUrl", "url: "),
                ("HQMusicUrl", "hq: "),
            ] {
                if let Some(value) = g.text(name).filter(|v| !v.is_empty()) {
                    lines.push(format!("  {label}{value}"));
                }
            }
            lines.push(format!("  thumb_media_id={}", text(&g, "ThumbMediaId")));
            lines
        }
        "news" => {
            let articles = articles(&fields);
            let lines = articles
                .first()
                .map(|article| {
                    let mut lines = vec![text(article, "Title")];
                    for name in ["Description", "Url"] {
                        if let Some(value) = article.text(name).filter(|v| !v.is_empty()) {
                            lines.extend(value.lines().map(|l| format!("   {l}")));
                        }
                    }
                    lines
                })
                .unwrap_or_default();
            if articles.len() > 1 {
                return ReplyView::Trimmed {
                    lines,
                    warning: first_article_only("news reply", articles.len()),
                };
            }
            lines
        }
        "transfer_customer_service" => match group("TransInfo").and_then(|g| g.text("KfAccount")) {
            Some(account) => vec![format!("[transferred to customer service {account}]")],
            None => vec!["[transferred to customer service]".to_string()],
        },
        other => vec![format!("[{other} reply] {trimmed}")],
    };
    ReplyView::Lines(lines)
}

/// The account's menu as `/menu` shows it: one line per button, sub-buttons indented, each
/// with the chat command that sends what tapping it sends.
pub fn describe_menu(menu: &Value) -> Vec<String> {
    let buttons = menu
        .get("button")
        .or_else(|| menu.get("menu").and_then(|m| m.get("button")))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut lines = vec!["(menu)".to_string()];
    for button in &buttons {
        lines.push(menu_button(button, "  "));
        if let Some(subs) = button.get("sub_button").and_then(Value::as_array) {
            lines.extend(subs.iter().map(|sub| menu_button(sub, "    ")));
        }
    }
    lines
}

fn menu_button(button: &Value, indent: &str) -> String {
    let field = |key: &str| button.get(key).map(plain).unwrap_or_default();
    let name = field("name");
    let kind = field("type");
    let key = field("key");
    let command = match kind.as_str() {
        "" => String::new(),
        "click" => format!("/click {key}"),
        "view" => format!("/view {}", field("url")),
        "scancode_push" | "scancode_waitmsg" | "pic_sysphoto" | "pic_photo_or_album"
        | "pic_weixin" => format!("/{kind} {key}"),
        "location_select" => format!("/location_select {key} LAT LNG"),
        other => format!("({other}: opens in WeChat, no message to the bot)"),
    };
    if command.is_empty() {
        format!("{indent}{name}")
    } else {
        let pad = 16usize.saturating_sub(display_width(&name));
        format!("{indent}{name}{} {command}", " ".repeat(pad))
    }
}

/// Columns a terminal gives `text`: two for East Asian wide characters (menu names are
/// mostly Chinese), one for the rest, so the commands after them line up.
fn display_width(text: &str) -> usize {
    text.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x1F300..=0x1FAFF
            | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

/// The `<item>`s of a news reply's `<Articles>`.
pub(crate) fn articles(fields: &Fields) -> Vec<Fields> {
    let Some(articles) = fields.get("Articles") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut take = |field: &Field| match field {
        Field::Group(g) => match g.get("item") {
            Some(item) => collect_items(item, &mut out),
            None => out.push(g.clone()),
        },
        other => collect_items(other, &mut out),
    };
    take(articles);
    out
}

fn collect_items(field: &Field, out: &mut Vec<Fields>) {
    match field {
        Field::Group(g) => out.push(g.clone()),
        Field::List(items) => items.iter().for_each(|item| collect_items(item, out)),
        Field::Text(_) => {}
    }
}

/// Paths that fetch the access_token (an account's, the open platform's, an authorizer's): the
/// host's business, not the bot's.
const TOKEN_PATHS: [&str; 4] = [
    "/cgi-bin/token",
    "/cgi-bin/stable_token",
    crate::api::component::COMPONENT_TOKEN_PATH,
    crate::api::component::AUTHORIZER_TOKEN_PATH,
];

/// One line for a call the scripts made, or `None` for calls not worth showing (token
/// fetches, the typing indicator being switched off). `user` is the current user: sends to
/// someone else name the recipient.
pub fn describe_call(call: &RecordedCall, user: &str) -> Option<String> {
    if TOKEN_PATHS.contains(&call.path.as_str()) {
        return None;
    }
    let mut line = describe_request_body(call, user)?;
    match &call.answer {
        None => line.push_str(" → (no answer yet)"),
        Some(answer) => match answer.refusal() {
            Some((code, errmsg)) => line.push_str(&format!(" → {code} {errmsg}")),
            None if answer.status != 200 => line.push_str(&format!(" → HTTP {}", answer.status)),
            None => {}
        },
    }
    Some(line)
}

/// One line for a `wx.http` request: method, URL without query, status or error kind, ms.
pub fn describe_http(seen: &SeenRequest) -> String {
    let ms = seen.elapsed.as_millis();
    match &seen.outcome {
        Ok(status) => format!("[http] {} {} → {status}, {ms} ms", seen.method, seen.url),
        Err((kind, message)) => format!(
            "[http] {} {} → {}, {ms} ms: {message}",
            seen.method,
            seen.url,
            kind.as_str()
        ),
    }
}

/// What a call asked for, without its outcome.
fn describe_request_body(call: &RecordedCall, user: &str) -> Option<String> {
    let body = call.body.clone().unwrap_or(Value::Null);
    let str_of =
        |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let to = |touser: &str| {
        if touser.is_empty() || touser == user {
            String::new()
        } else {
            format!(" → {touser}")
        }
    };
    match call.path.as_str() {
        "/cgi-bin/message/custom/send" => Some(format!(
            "[客服{}] {}",
            to(&str_of(&body, "touser")),
            describe_message(&body)
        )),
        "/cgi-bin/message/custom/typing" => match str_of(&body, "command").as_str() {
            "Typing" => Some(format!("[客服{}] (typing…)", to(&str_of(&body, "touser")))),
            _ => None,
        },
        path @ ("/cgi-bin/message/template/send" | "/cgi-bin/message/subscribe/bizsend") => {
            let subscribe = path.ends_with("bizsend");
            let data = body
                .get("data")
                .and_then(Value::as_object)
                .map(|data| {
                    data.iter()
                        .map(|(k, v)| {
                            let value = v.get("value").unwrap_or(v);
                            format!("{k}={}", plain(value))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let mut line = format!(
                "[{}{}] template_id={}",
                if subscribe { "订阅通知" } else { "模板" },
                to(&str_of(&body, "touser")),
                str_of(&body, "template_id"),
            );
            if !data.is_empty() {
                line.push_str(&format!(" data: {data}"));
            }
            let link = if subscribe { "page" } else { "url" };
            if let Some(url) = body.get(link).and_then(Value::as_str) {
                line.push_str(&format!(" {link}: {url}"));
            }
            Some(line)
        }
        path if path.starts_with("/cgi-bin/message/mass/") => {
            let action = &path["/cgi-bin/message/mass/".len()..];
            let audience = match (body.get("filter"), body.get("touser")) {
                (Some(filter), _) if filter.get("is_to_all") == Some(&Value::Bool(true)) => {
                    " to all".to_string()
                }
                (Some(filter), _) => format!(
                    " to tag {}",
                    plain(filter.get("tag_id").unwrap_or(&Value::Null))
                ),
                (None, Some(Value::Array(users))) => format!(" to {} users", users.len()),
                (None, Some(one)) => format!(" to {}", plain(one)),
                (None, None) => String::new(),
            };
            if body.get("msgtype").is_some() {
                Some(format!(
                    "[群发] {action}{audience}: {}",
                    describe_message(&body)
                ))
            } else {
                Some(format!("[群发] {action}{audience} {}", compact(&body)))
            }
        }
        _ => {
            let mut line = format!("[api] {} {}", call.method, call.path);
            let query: Vec<String> = call.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if !query.is_empty() {
                line.push('?');
                line.push_str(&query.join("&"));
            }
            if call.body.is_some() {
                line.push(' ');
                line.push_str(&compact(&body));
            }
            for part in &call.parts {
                line.push_str(&format!(
                    " [{} {} bytes{}]",
                    part.name,
                    part.data.len(),
                    part.filename
                        .as_deref()
                        .map(|f| format!(" {f}"))
                        .unwrap_or_default()
                ));
            }
            Some(line)
        }
    }
}

/// A message in the API's JSON form (`{"msgtype": "text", "text": {...}}`) as `kind: gist`.
fn describe_message(body: &Value) -> String {
    let msgtype = body.get("msgtype").and_then(Value::as_str).unwrap_or("?");
    let payload = body.get(msgtype).cloned().unwrap_or(Value::Null);
    let field = |key: &str| payload.get(key).map(plain).unwrap_or_default();
    match msgtype {
        "text" => format!("text: {}", field("content")),
        "news" => {
            let articles = payload
                .get("articles")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let first = articles
                .first()
                .map(|article| {
                    let title = article.get("title").map(plain).unwrap_or_default();
                    match article.get("url").map(plain) {
                        Some(url) if !url.is_empty() => format!("{title} ({url})"),
                        _ => title,
                    }
                })
                .unwrap_or_default();
            if articles.len() > 1 {
                format!(
                    "news: {first} {}",
                    first_article_only("news message", articles.len())
                )
            } else {
                format!("news: {first}")
            }
        }
        "music" => format!(
            "music: {} url: {} hq: {}",
            field("title"),
            field("musicurl"),
            field("hqmusicurl")
        ),
        _ if payload.get("media_id").is_some() => {
            format!("{msgtype} media_id={}", field("media_id"))
        }
        _ => format!("{msgtype}: {}", compact(&payload)),
    }
}

/// A JSON value as text without quotes around strings.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => compact(other),
    }
}

/// Compact JSON, cut to a readable length.
fn compact(value: &Value) -> String {
    const MAX: usize = 300;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_wechat::RecordedAnswer;
    use crate::protocol::reply::{Article, Reply};
    use serde_json::json;

    fn lines(reply: &Reply) -> Vec<String> {
        match describe_reply(&reply.render("o_u", "gh_a", 1)) {
            ReplyView::Lines(lines) => lines,
            other => panic!("{other:?} for {reply:?}"),
        }
    }

    fn call(path: &str, body: Value) -> RecordedCall {
        RecordedCall {
            appid: None,
            method: "POST".into(),
            path: path.into(),
            query: Vec::new(),
            body: Some(body),
            parts: Vec::new(),
            answer: Some(RecordedAnswer {
                status: 200,
                json: Some(json!({"errcode": 0, "errmsg": "ok"})),
            }),
        }
    }

    #[test]
    fn replies_read_as_a_user_sees_them() {
        assert_eq!(describe_reply("success"), ReplyView::NoReply);
        assert_eq!(describe_reply(""), ReplyView::NoReply);
        assert_eq!(
            lines(&Reply::Text {
                content: "a\nb <&>".into()
            }),
            ["a", "b <&>"]
        );
        assert_eq!(
            lines(&Reply::Image {
                media_id: "M1".into()
            }),
            ["[image media_id=M1]"]
        );
        assert_eq!(
            lines(&Reply::Voice {
                media_id: "V".into()
            }),
            ["[voice media_id=V]"]
        );
        assert_eq!(
            lines(&Reply::TransferCustomerService { kf_account: None }),
            ["[transferred to customer service]"]
        );
        let music = lines(&Reply::Music {
            title: Some("Song".into()),
            description: None,
            music_url: Some("http://m".into()),
            hq_music_url: None,
            thumb_media_id: "T".into(),
        });
        assert_eq!(music, ["♪ Song", "  url: http://m", "  thumb_media_id=T"]);
    }

    #[test]
    fn news_shows_its_first_article_only_and_says_so() {
        let article = |title: &str, description: &str| Article {
            title: title.into(),
            description: description.into(),
            pic_url: String::new(),
            url: format!("http://x/{title}"),
        };
        let one = Reply::News {
            articles: vec![article("One", "first")],
        };
        assert_eq!(lines(&one), ["One", "   first", "   http://x/One"]);
        let three = Reply::News {
            articles: vec![
                article("One", "first"),
                article("Two", ""),
                article("3", ""),
            ],
        };
        assert_eq!(
            describe_reply(&three.render("o_u", "gh_a", 1)),
            ReplyView::Trimmed {
                lines: vec!["One".into(), "   first".into(), "   http://x/One".into()],
                warning: "(WeChat shows only the first article of a news reply: 2 more not shown)"
                    .into()
            }
        );
        let kf = call(
            "/cgi-bin/message/custom/send",
            json!({"touser": "o_u", "msgtype": "news", "news": {"articles": [
                {"title": "A", "url": "http://a"}, {"title": "B"}
            ]}}),
        );
        assert_eq!(
            describe_call(&kf, "o_u").unwrap(),
            "[客服] news: A (http://a) \
             (WeChat shows only the first article of a news message: 1 more not shown)"
        );
    }

    #[test]
    fn the_menu_names_the_command_each_button_sends() {
        let menu = json!({"button": [
            {"type": "click", "name": "Today", "key": "TODAY"},
            {"name": "More", "sub_button": [
                {"type": "view", "name": "Site", "url": "https://x/"},
                {"type": "scancode_waitmsg", "name": "Scan", "key": "SCAN"},
                {"type": "location_select", "name": "Where", "key": "LOC"},
                {"type": "media_id", "name": "Pic", "media_id": "M"},
            ]},
        ]});
        assert_eq!(
            describe_menu(&menu),
            [
                "(menu)",
                "  Today            /click TODAY",
                "  More",
                "    Site             /view https://x/",
                "    Scan             /scancode_waitmsg SCAN",
                "    Where            /location_select LOC LAT LNG",
                "    Pic              (media_id: opens in WeChat, no message to the bot)",
            ]
        );
        let chinese = json!({"button": [{"type": "click", "name": "今日特价", "key": "T"}]});
        assert_eq!(
            describe_menu(&chinese)[1],
            "  今日特价         /click T",
            "wide characters take two columns"
        );
    }

    #[test]
    fn refused_calls_end_with_the_errcode_never_as_delivered() {
        let mut tpl = call(
            "/cgi-bin/message/template/send",
            json!({"touser": "o_u", "template_id": "T9", "data": {}}),
        );
        tpl.answer = Some(RecordedAnswer {
            status: 200,
            json: Some(json!({"errcode": 40037, "errmsg": "invalid template_id rid: 5f3a"})),
        });
        assert_eq!(
            describe_call(&tpl, "o_u").unwrap(),
            "[模板] template_id=T9 → 40037 invalid template_id"
        );
        let mut lost = call("/cgi-bin/nope", json!({}));
        lost.answer = Some(RecordedAnswer {
            status: 404,
            json: None,
        });
        assert!(describe_call(&lost, "o_u")
            .unwrap()
            .ends_with(" → HTTP 404"));
        lost.answer = None;
        assert!(describe_call(&lost, "o_u")
            .unwrap()
            .ends_with(" → (no answer yet)"));
    }

    #[test]
    fn http_requests_show_status_or_error_kind_and_time() {
        let mut seen = SeenRequest {
            method: "GET".into(),
            url: "http://127.0.0.1:9/x".into(),
            outcome: Ok(200),
            elapsed: std::time::Duration::from_millis(12),
        };
        assert_eq!(
            describe_http(&seen),
            "[http] GET http://127.0.0.1:9/x → 200, 12 ms"
        );
        seen.outcome = Err((crate::net::ErrorKind::Denied, "10.0.0.1 is private".into()));
        assert_eq!(
            describe_http(&seen),
            "[http] GET http://127.0.0.1:9/x → denied, 12 ms: 10.0.0.1 is private"
        );
    }

    #[test]
    fn api_calls_are_marked_by_kind() {
        let kf = call(
            "/cgi-bin/message/custom/send",
            json!({"touser": "o_u", "msgtype": "text", "text": {"content": "later"}}),
        );
        assert_eq!(describe_call(&kf, "o_u").unwrap(), "[客服] text: later");
        assert_eq!(
            describe_call(&kf, "other").unwrap(),
            "[客服 → o_u] text: later"
        );
        let tpl = call(
            "/cgi-bin/message/template/send",
            json!({"touser": "o_u", "template_id": "T1", "data": {"name": {"value": "Ann"}}}),
        );
        assert_eq!(
            describe_call(&tpl, "o_u").unwrap(),
            "[模板] template_id=T1 data: name=Ann"
        );
        let sub = call(
            "/cgi-bin/message/subscribe/bizsend",
            json!({"touser": "o_v", "template_id": "S1", "page": "https://shop.example/o/42",
                   "data": {"thing1": {"value": "shipped"}}}),
        );
        assert_eq!(
            describe_call(&sub, "o_u").unwrap(),
            "[订阅通知 → o_v] template_id=S1 data: thing1=shipped page: https://shop.example/o/42"
        );
        let mass = call(
            "/cgi-bin/message/mass/sendall",
            json!({"filter": {"is_to_all": true}, "msgtype": "text", "text": {"content": "hi all"}}),
        );
        assert_eq!(
            describe_call(&mass, "o_u").unwrap(),
            "[群发] sendall to all: text: hi all"
        );
        let other = call("/cgi-bin/menu/create", json!({"button": []}));
        assert_eq!(
            describe_call(&other, "o_u").unwrap(),
            "[api] POST /cgi-bin/menu/create {\"button\":[]}"
        );
        let token = call("/cgi-bin/stable_token", json!({}));
        assert_eq!(describe_call(&token, "o_u"), None);
        let typing = |command: &str| {
            call(
                "/cgi-bin/message/custom/typing",
                json!({"touser": "o_u", "command": command}),
            )
        };
        assert_eq!(
            describe_call(&typing("Typing"), "o_u").unwrap(),
            "[客服] (typing…)"
        );
        assert_eq!(describe_call(&typing("CancelTyping"), "o_u"), None);
    }
}
