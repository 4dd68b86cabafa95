//! A handler's return value as a [`Reply`]: `nil` (answer `success`), a string (a text reply),
//! or a table with a `type` field, as `wx.reply.*` builds it or a script writes it literally.

use mlua::{Lua, Table, Value};

use crate::protocol::reply::{Article, Reply};

/// Converts a returned value; the error says what is wrong in a script author's terms.
pub fn reply_from_lua(value: &Value) -> Result<Option<Reply>, String> {
    let reply = match value {
        Value::Nil => return Ok(None),
        Value::String(s) => Reply::Text {
            content: utf8(s, "the reply text")?,
        },
        Value::Integer(i) => Reply::Text {
            content: i.to_string(),
        },
        Value::Number(n) => Reply::Text {
            content: n.to_string(),
        },
        Value::Table(t) => reply_from_table(t)?,
        other => {
            return Err(format!(
                "a handler returns nil, a string or a wx.reply table, not a {}",
                other.type_name()
            ))
        }
    };
    reply.validate().map_err(|e| e.to_string())?;
    Ok(Some(reply))
}

fn reply_from_table(t: &Table) -> Result<Reply, String> {
    let kind = match t.raw_get::<Value>("type").map_err(|e| e.to_string())? {
        Value::String(s) => utf8(&s, "type")?,
        Value::Nil => return Err(
            "a reply table needs a `type` field (build it with wx.reply.text, wx.reply.news, ...)"
                .into(),
        ),
        other => {
            return Err(format!(
                "`type` must be a string, not a {}",
                other.type_name()
            ))
        }
    };
    Ok(match kind.as_str() {
        "text" => Reply::Text {
            content: required(t, "content")?,
        },
        "image" => Reply::Image {
            media_id: required(t, "media_id")?,
        },
        "voice" => Reply::Voice {
            media_id: required(t, "media_id")?,
        },
        "video" => Reply::Video {
            media_id: required(t, "media_id")?,
            title: optional(t, "title")?,
            description: optional(t, "description")?,
        },
        "music" => Reply::Music {
            title: optional(t, "title")?,
            description: optional(t, "description")?,
            music_url: optional(t, "music_url")?,
            hq_music_url: optional(t, "hq_music_url")?,
            thumb_media_id: required(t, "thumb_media_id")?,
        },
        "news" => Reply::News {
            articles: articles(t)?,
        },
        "transfer_customer_service" | "transfer" => Reply::TransferCustomerService {
            kf_account: optional(t, "kf_account")?,
        },
        other => {
            return Err(format!(
                "unknown reply type \"{other}\" (text, image, voice, video, music, news, transfer_customer_service)"
            ))
        }
    })
}

fn articles(t: &Table) -> Result<Vec<Article>, String> {
    let list = match t.raw_get::<Value>("articles").map_err(|e| e.to_string())? {
        Value::Table(list) => list,
        Value::Nil => return Err("a news reply needs `articles`, a list of 1 to 8 articles".into()),
        other => {
            return Err(format!(
                "`articles` must be a list, not a {}",
                other.type_name()
            ))
        }
    };
    let mut out = Vec::new();
    for (i, item) in list.sequence_values::<Value>().enumerate() {
        let item = match item.map_err(|e| e.to_string())? {
            Value::Table(item) => item,
            other => {
                return Err(format!(
                    "article {} must be a table {{title=, description=, pic_url=, url=}}, not a {}",
                    i + 1,
                    other.type_name()
                ))
            }
        };
        let field = |name: &str| {
            optional(&item, name)
                .map(Option::unwrap_or_default)
                .map_err(|e| format!("article {}: {e}", i + 1))
        };
        out.push(Article {
            title: field("title")?,
            description: field("description")?,
            pic_url: field("pic_url")?,
            url: field("url")?,
        });
    }
    Ok(out)
}

fn utf8(s: &mlua::LuaString, what: &str) -> Result<String, String> {
    s.to_str()
        .map(|s| s.to_string())
        .map_err(|_| format!("{what} is not valid UTF-8"))
}

fn optional(t: &Table, name: &str) -> Result<Option<String>, String> {
    match t.raw_get::<Value>(name).map_err(|e| e.to_string())? {
        Value::Nil => Ok(None),
        Value::String(s) => utf8(&s, name).map(Some),
        Value::Integer(i) => Ok(Some(i.to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(format!(
            "`{name}` must be a string, not a {}",
            other.type_name()
        )),
    }
}

fn required(t: &Table, name: &str) -> Result<String, String> {
    optional(t, name)?.ok_or_else(|| format!("`{name}` is required"))
}

/// A reply as the table `wx.reply.*` would have built (for `late_reply_failed`).
pub fn reply_to_lua(lua: &Lua, reply: &Reply) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("type", reply.kind())?;
    match reply {
        Reply::Text { content } => t.set("content", content.as_str())?,
        Reply::Image { media_id } | Reply::Voice { media_id } => {
            t.set("media_id", media_id.as_str())?
        }
        Reply::Video {
            media_id,
            title,
            description,
        } => {
            t.set("media_id", media_id.as_str())?;
            t.set("title", title.as_deref())?;
            t.set("description", description.as_deref())?;
        }
        Reply::Music {
            title,
            description,
            music_url,
            hq_music_url,
            thumb_media_id,
        } => {
            t.set("title", title.as_deref())?;
            t.set("description", description.as_deref())?;
            t.set("music_url", music_url.as_deref())?;
            t.set("hq_music_url", hq_music_url.as_deref())?;
            t.set("thumb_media_id", thumb_media_id.as_str())?;
        }
        Reply::News { articles } => {
            let list = lua.create_table()?;
            for (i, a) in articles.iter().enumerate() {
                let item = lua.create_table()?;
                item.set("title", a.title.as_str())?;
                item.set("description", a.description.as_str())?;
                item.set("pic_url", a.pic_url.as_str())?;
                item.set("url", a.url.as_str())?;
                list.set(i + 1, item)?;
            }
            t.set("articles", list)?;
        }
        Reply::TransferCustomerService { kf_account } => {
            t.set("kf_account", kf_account.as_deref())?
        }
    }
    Ok(t)
}
