//! A handler's return value as a [`Reply`]: `nil` (answer `success`), a string (a text reply),
//! or a table with a `type` field, as `wx.reply.*` builds it or a script writes it literally.

use mlua::{Lua, Table, Value};

use crate::protocol::reply::{Article, Reply};
use crate::script::suggest::closest;

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
    check_fields(t, reply_fields(&kind), &format!("a {kind} reply"))?;
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
        check_fields(&item, ARTICLE_FIELDS, &format!("article {}", i + 1))?;
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

/// The fields of an article of a news reply.
const ARTICLE_FIELDS: &[&str] = &["title", "description", "pic_url", "url"];

/// The fields a reply table of `kind` may have besides `type`. A video may carry
/// `thumb_media_id`, which a passive reply ignores but `wx.kf.send` needs, so one table
/// serves both. An unknown kind has none to check (its error comes next).
fn reply_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "text" => &["type", "content"],
        "image" | "voice" => &["type", "media_id"],
        "video" => &["type", "media_id", "title", "description", "thumb_media_id"],
        "music" => &[
            "type",
            "title",
            "description",
            "music_url",
            "hq_music_url",
            "thumb_media_id",
        ],
        "news" => &["type", "articles"],
        "transfer_customer_service" | "transfer" => &["type", "kf_account"],
        _ => &[],
    }
}

/// Refuses a field `known` does not list (`titel` for `title`), naming the field likely
/// meant: misspelt, it would be dropped without a word and the reply sent without it.
fn check_fields(t: &Table, known: &[&str], what: &str) -> Result<(), String> {
    if known.is_empty() {
        return Ok(());
    }
    // Sorted, so the error names the same field whatever the table's order.
    let mut unknown = Vec::new();
    for pair in t.clone().pairs::<Value, Value>() {
        let (key, _) = pair.map_err(|e| e.to_string())?;
        let name = match &key {
            Value::String(s) => s.to_string_lossy(),
            other => format!(
                "[{}]",
                other
                    .to_string()
                    .unwrap_or_else(|_| other.type_name().into())
            ),
        };
        if !known.contains(&name.as_str()) {
            unknown.push(name);
        }
    }
    unknown.sort();
    let Some(first) = unknown.first() else {
        return Ok(());
    };
    let hint = closest(first, known.iter().copied())
        .map(|best| format!(" (did you mean `{best}`?)"))
        .unwrap_or_else(|| format!(" (known: {})", known.join(", ")));
    Err(format!("{what} has no field `{first}`{hint}"))
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
