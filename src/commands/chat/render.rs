//! How `wechat-lua chat` shows what the bot does: a passive reply (the XML of the callback
//! answer) as the lines a user would read, and each call the scripts made to the (fake)
//! WeChat API as one line marked by kind: `[客服]` customer service, `[模板]` template
//! messages, `[订阅通知]` subscription notifications, `[群发]` mass sends, `[api]` anything
//! else.

use serde_json::Value;

use crate::fake_wechat::RecordedCall;
use crate::protocol::xml_fields::{parse_fields, Field, Fields};

/// What a callback answer shows as.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyView {
    /// `success` or an empty body: the bot answered nothing.
    NoReply,
    /// Lines to show, in order.
    Lines(Vec<String>),
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
        "news" => articles(&fields)
            .iter()
            .enumerate()
            .flat_map(|(i, article)| {
                let mut lines = vec![format!("{}. {}", i + 1, text(article, "Title"))];
                for name in ["Description", "Url"] {
                    if let Some(value) = article.text(name).filter(|v| !v.is_empty()) {
                        lines.extend(value.lines().map(|l| format!("   {l}")));
                    }
                }
                lines
            })
            .collect(),
        "transfer_customer_service" => match group("TransInfo").and_then(|g| g.text("KfAccount")) {
            Some(account) => vec![format!("[transferred to customer service {account}]")],
            None => vec!["[transferred to customer service]".to_string()],
        },
        other => vec![format!("[{other} reply] {trimmed}")],
    };
    ReplyView::Lines(lines)
}

/// The `<item>`s of a news reply's `<Articles>`.
fn articles(fields: &Fields) -> Vec<Fields> {
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

/// Paths that fetch the access_token: the host's business, not the bot's.
const TOKEN_PATHS: [&str; 2] = ["/cgi-bin/token", "/cgi-bin/stable_token"];

/// One line for a call the scripts made, or `None` for calls not worth showing (token
/// fetches, the typing indicator being switched off). `user` is the current user: sends to
/// someone else name the recipient.
pub fn describe_call(call: &RecordedCall, user: &str) -> Option<String> {
    if TOKEN_PATHS.contains(&call.path.as_str()) {
        return None;
    }
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
                "[{}{}] template_id={} data: {data}",
                if subscribe { "订阅通知" } else { "模板" },
                to(&str_of(&body, "touser")),
                str_of(&body, "template_id"),
            );
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
            let titles: Vec<String> = payload
                .get("articles")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .enumerate()
                        .map(|(i, article)| {
                            let title = article.get("title").map(plain).unwrap_or_default();
                            match article.get("url").map(plain) {
                                Some(url) if !url.is_empty() => {
                                    format!("{}. {title} ({url})", i + 1)
                                }
                                _ => format!("{}. {title}", i + 1),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("news: {}", titles.join(" | "))
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
    use crate::protocol::reply::{Article, Reply};
    use serde_json::json;

    fn lines(reply: &Reply) -> Vec<String> {
        match describe_reply(&reply.render("o_u", "gh_a", 1)) {
            ReplyView::Lines(lines) => lines,
            ReplyView::NoReply => panic!("no reply for {reply:?}"),
        }
    }

    fn call(path: &str, body: Value) -> RecordedCall {
        RecordedCall {
            method: "POST".into(),
            path: path.into(),
            query: Vec::new(),
            body: Some(body),
            parts: Vec::new(),
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
    fn news_is_numbered_with_description_and_url() {
        let article = |title: &str, description: &str| Article {
            title: title.into(),
            description: description.into(),
            pic_url: String::new(),
            url: format!("http://x/{title}"),
        };
        for articles in [
            vec![article("One", "first")],
            vec![article("One", "first"), article("Two", "")],
        ] {
            let n = articles.len();
            let shown = lines(&Reply::News { articles });
            assert_eq!(shown[..3], ["1. One", "   first", "   http://x/One"]);
            if n == 2 {
                assert_eq!(shown[3..], ["2. Two", "   http://x/Two"]);
            }
        }
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
