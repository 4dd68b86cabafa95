//! What the page draws for one message from the account: a passive reply (reply XML), a
//! customer-service message or a mass send (the JSON the scripts sent the API), all turned
//! into one shape, [`View`], so the page has one renderer for every way a message arrives.

use serde::Serialize;
use serde_json::Value;

use crate::commands::chat::render::articles;
use crate::protocol::xml_fields::{parse_fields, Field, Fields};

/// One news article as a card shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Article {
    /// Title.
    pub title: String,
    /// Description (shown on a single-article card only, as WeChat does).
    pub description: String,
    /// Cover picture URL.
    pub picurl: String,
    /// Where a tap goes.
    pub url: String,
}

/// A message from the account, as the page draws it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum View {
    /// `success` or an empty body: nothing reaches the user.
    None,
    /// A text bubble (links and `<a href>` are made clickable by the page, as text nodes).
    Text {
        /// The text, newlines kept.
        content: String,
    },
    /// An image tile.
    Image {
        /// The media_id (the page shows the uploaded file when the fake has it).
        media_id: String,
    },
    /// A voice tile.
    Voice {
        /// The media_id.
        media_id: String,
    },
    /// A video card.
    Video {
        /// The media_id.
        media_id: String,
        /// Title, may be empty.
        title: String,
        /// Description, may be empty.
        description: String,
    },
    /// A music card.
    Music {
        /// Title.
        title: String,
        /// Description.
        description: String,
        /// The music URL.
        url: String,
        /// The high-quality music URL.
        hq_url: String,
        /// The cover's media_id.
        thumb_media_id: String,
    },
    /// News: one article is a large card, more are a stacked list.
    News {
        /// The articles, in order.
        articles: Vec<Article>,
    },
    /// The conversation was handed to customer service (a system line).
    Transfer {
        /// The customer-service account named, if any.
        kf_account: String,
    },
    /// Any other kind, summed up in a line.
    Other {
        /// What the line says.
        summary: String,
    },
}

/// A passive reply: plaintext reply XML, or `success`.
pub fn from_reply_xml(body: &str) -> View {
    let trimmed = body.trim();
    if trimmed.is_empty() || trimmed == "success" {
        return View::None;
    }
    let fields = match parse_fields(trimmed.as_bytes()) {
        Ok(fields) => fields,
        Err(e) => {
            return View::Other {
                summary: format!("unreadable reply ({e}): {trimmed}"),
            }
        }
    };
    let text = |f: &Fields, name: &str| f.text(name).unwrap_or_default().to_string();
    let group = |name: &str| {
        fields
            .get(name)
            .and_then(Field::as_group)
            .cloned()
            .unwrap_or_default()
    };
    match text(&fields, "MsgType").as_str() {
        "text" => View::Text {
            content: text(&fields, "Content"),
        },
        "image" => View::Image {
            media_id: text(&group("Image"), "MediaId"),
        },
        "voice" => View::Voice {
            media_id: text(&group("Voice"), "MediaId"),
        },
        "video" => {
            let g = group("Video");
            View::Video {
                media_id: text(&g, "MediaId"),
                title: text(&g, "Title"),
                description: text(&g, "Description"),
            }
        }
        "music" => {
            let g = group("Music");
            View::Music {
                title: text(&g, "Title"),
                description: text(&g, "Description"),
                url: text(&g, "MusicUrl"),
                hq_url: text(&g, "HQMusicUrl"),
                thumb_media_id: text(&g, "ThumbMediaId"),
            }
        }
        "news" => View::News {
            articles: articles(&fields)
                .iter()
                .map(|a| Article {
                    title: text(a, "Title"),
                    description: text(a, "Description"),
                    picurl: text(a, "PicUrl"),
                    url: text(a, "Url"),
                })
                .collect(),
        },
        "transfer_customer_service" => View::Transfer {
            kf_account: fields
                .get("TransInfo")
                .and_then(Field::as_group)
                .map(|g| text(g, "KfAccount"))
                .unwrap_or_default(),
        },
        other => View::Other {
            summary: format!("{other} reply"),
        },
    }
}

/// A customer-service message or mass send, as the JSON body the API was given
/// (`msgtype` and a member of that name).
pub fn from_message_json(body: &Value) -> View {
    let kind = body["msgtype"].as_str().unwrap_or_default();
    let part = &body[kind];
    let s = |v: &Value, name: &str| v[name].as_str().unwrap_or_default().to_string();
    match kind {
        "text" => View::Text {
            content: s(part, "content"),
        },
        "image" => View::Image {
            media_id: s(part, "media_id"),
        },
        "voice" => View::Voice {
            media_id: s(part, "media_id"),
        },
        "video" | "mpvideo" => View::Video {
            media_id: s(part, "media_id"),
            title: s(part, "title"),
            description: s(part, "description"),
        },
        "music" => View::Music {
            title: s(part, "title"),
            description: s(part, "description"),
            url: s(part, "musicurl"),
            hq_url: s(part, "hqmusicurl"),
            thumb_media_id: s(part, "thumb_media_id"),
        },
        "news" => View::News {
            articles: part["articles"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|a| Article {
                    title: s(a, "title"),
                    description: s(a, "description"),
                    picurl: s(a, "picurl"),
                    url: s(a, "url"),
                })
                .collect(),
        },
        "msgmenu" => {
            let mut content = s(part, "head_content");
            for item in part["list"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                content.push_str(&format!("\n[{}] {}", s(item, "id"), s(item, "content")));
            }
            let tail = s(part, "tail_content");
            if !tail.is_empty() {
                content.push('\n');
                content.push_str(&tail);
            }
            View::Text { content }
        }
        "mpnews" | "mpnewsarticle" => View::Other {
            summary: format!(
                "article (mpnews) {}",
                [s(part, "media_id"), s(part, "article_id")].concat()
            ),
        },
        "wxcard" => View::Other {
            summary: format!("card {}", s(part, "card_id")),
        },
        "miniprogrampage" => View::Other {
            summary: format!(
                "mini program page: {} ({})",
                s(part, "title"),
                s(part, "pagepath")
            ),
        },
        other => View::Other {
            summary: format!("{other} message"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn passive_replies_of_every_kind() {
        assert_eq!(from_reply_xml("success"), View::None);
        assert_eq!(from_reply_xml(""), View::None);
        let text = "<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[<script>alert(1)</script>\nline]]></Content></xml>";
        assert_eq!(
            from_reply_xml(text),
            View::Text {
                content: "<script>alert(1)</script>\nline".into()
            }
        );
        let news = "<xml><MsgType>news</MsgType><ArticleCount>2</ArticleCount><Articles>\
            <item><Title>A</Title><Description>a</Description><PicUrl>http://p/a.jpg</PicUrl><Url>http://u/a</Url></item>\
            <item><Title>B</Title><Description>b</Description><PicUrl></PicUrl><Url>http://u/b</Url></item>\
            </Articles></xml>";
        match from_reply_xml(news) {
            View::News { articles } => {
                assert_eq!(articles.len(), 2);
                assert_eq!(articles[0].title, "A");
                assert_eq!(articles[0].picurl, "http://p/a.jpg");
                assert_eq!(articles[1].url, "http://u/b");
            }
            other => panic!("{other:?}"),
        }
        let music = "<xml><MsgType>music</MsgType><Music><Title>T</Title><Description>D</Description><MusicUrl>http://m</MusicUrl><HQMusicUrl>http://hq</HQMusicUrl><ThumbMediaId>th</ThumbMediaId></Music></xml>";
        assert_eq!(
            from_reply_xml(music),
            View::Music {
                title: "T".into(),
                description: "D".into(),
                url: "http://m".into(),
                hq_url: "http://hq".into(),
                thumb_media_id: "th".into()
            }
        );
        let image = "<xml><MsgType>image</MsgType><Image><MediaId>m1</MediaId></Image></xml>";
        assert_eq!(
            from_reply_xml(image),
            View::Image {
                media_id: "m1".into()
            }
        );
        let transfer = "<xml><MsgType>transfer_customer_service</MsgType></xml>";
        assert_eq!(
            from_reply_xml(transfer),
            View::Transfer {
                kf_account: String::new()
            }
        );
        assert!(matches!(
            from_reply_xml("<xml><MsgType>text"),
            View::Other { .. }
        ));
    }

    #[test]
    fn customer_service_and_mass_bodies() {
        assert_eq!(
            from_message_json(
                &json!({"touser": "o", "msgtype": "text", "text": {"content": "hi"}})
            ),
            View::Text {
                content: "hi".into()
            }
        );
        match from_message_json(&json!({"msgtype": "news", "news": {"articles": [
            {"title": "A", "url": "http://a", "picurl": "http://p"}]}}))
        {
            View::News { articles } => assert_eq!(articles[0].picurl, "http://p"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            from_message_json(
                &json!({"msgtype": "msgmenu", "msgmenu": {"head_content": "Pick",
                "list": [{"id": "1", "content": "yes"}], "tail_content": "thanks"}})
            ),
            View::Text {
                content: "Pick\n[1] yes\nthanks".into()
            }
        );
        assert!(matches!(
            from_message_json(&json!({"msgtype": "mpnews", "mpnews": {"media_id": "x"}})),
            View::Other { .. }
        ));
    }
}
