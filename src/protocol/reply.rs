//! Passive replies (被动回复用户消息): the reply value a script returns, its validation against
//! what WeChat accepts, and its rendering to the reply XML.
//!
//! Rendering pushes into one `String`; every text value goes into CDATA so `<`, `&`, emoji and
//! CJK survive byte for byte, a `]]>` inside a value is split across two CDATA sections, and
//! characters XML 1.0 forbids are dropped (WeChat rejects the whole reply otherwise).

use std::fmt::Write as _;

/// Most articles WeChat accepts in one news reply.
pub const MAX_ARTICLES: usize = 8;

/// One article of a news reply.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Article {
    /// 图文消息标题.
    pub title: String,
    /// 图文消息描述.
    pub description: String,
    /// Picture link; WeChat shows it 360x200 (large) or 200x200 (small).
    pub pic_url: String,
    /// Link opened when the article is tapped.
    pub url: String,
}

/// A passive reply, named as the WeChat documentation names its MsgType.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `text`.
    Text { content: String },
    /// `image`: an uploaded media id.
    Image { media_id: String },
    /// `voice`: an uploaded media id.
    Voice { media_id: String },
    /// `video`: an uploaded media id with an optional title and description.
    Video {
        media_id: String,
        title: Option<String>,
        description: Option<String>,
    },
    /// `music`: the thumbnail is required, everything else optional.
    Music {
        title: Option<String>,
        description: Option<String>,
        music_url: Option<String>,
        hq_music_url: Option<String>,
        thumb_media_id: String,
    },
    /// `news` (图文消息).
    News { articles: Vec<Article> },
    /// `transfer_customer_service`: hand the conversation to 客服, optionally to one account.
    TransferCustomerService { kf_account: Option<String> },
}

/// Why a reply cannot be sent to WeChat.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReplyError {
    /// A required field is empty (or only characters XML cannot carry).
    #[error("reply field `{0}` must not be empty")]
    EmptyField(&'static str),
    /// A news reply without articles.
    #[error("a news reply needs at least one article")]
    NoArticles,
    /// A news reply with more articles than WeChat takes.
    #[error("a news reply takes at most {max} articles, got {0}", max = MAX_ARTICLES)]
    TooManyArticles(usize),
}

impl Reply {
    /// Every [`Reply::kind`], in the variants' order.
    pub const KINDS: [&'static str; 7] = [
        "text",
        "image",
        "voice",
        "video",
        "music",
        "news",
        "transfer_customer_service",
    ];

    /// The MsgType this reply renders as ("text", "image", ..., "news", "transfer_customer_service").
    pub fn kind(&self) -> &'static str {
        match self {
            Reply::Text { .. } => "text",
            Reply::Image { .. } => "image",
            Reply::Voice { .. } => "voice",
            Reply::Video { .. } => "video",
            Reply::Music { .. } => "music",
            Reply::News { .. } => "news",
            Reply::TransferCustomerService { .. } => "transfer_customer_service",
        }
    }

    /// Checks what WeChat requires (non-empty media_id/thumb_media_id, 1..=8 articles, ...).
    pub fn validate(&self) -> Result<(), ReplyError> {
        match self {
            Reply::Text { content } => require("content", content),
            Reply::Image { media_id }
            | Reply::Voice { media_id }
            | Reply::Video { media_id, .. } => require("media_id", media_id),
            Reply::Music { thumb_media_id, .. } => require("thumb_media_id", thumb_media_id),
            Reply::News { articles } => match articles.len() {
                0 => Err(ReplyError::NoArticles),
                n if n > MAX_ARTICLES => Err(ReplyError::TooManyArticles(n)),
                _ => Ok(()),
            },
            Reply::TransferCustomerService { kf_account } => match kf_account {
                // `Some("")` would render an empty KfAccount, which WeChat treats as an unknown account.
                Some(account) => require("kf_account", account),
                None => Ok(()),
            },
        }
    }

    /// Renders the reply XML: ToUserName = `to` (the user), FromUserName = `from` (the account), CreateTime = `create_time`.
    pub fn render(&self, to: &str, from: &str, create_time: i64) -> String {
        let mut out = String::with_capacity(256 + self.text_len());
        self.render_into(&mut out, to, from, create_time);
        out
    }

    /// Appends the reply XML to `out` (see [`Reply::render`]).
    pub fn render_into(&self, out: &mut String, to: &str, from: &str, create_time: i64) {
        out.push_str("<xml>");
        cdata_element(out, "ToUserName", to);
        cdata_element(out, "FromUserName", from);
        out.push_str("<CreateTime>");
        push_int(out, create_time);
        out.push_str("</CreateTime>");
        cdata_element(out, "MsgType", self.kind());
        match self {
            Reply::Text { content } => cdata_element(out, "Content", content),
            Reply::Image { media_id } => {
                out.push_str("<Image>");
                cdata_element(out, "MediaId", media_id);
                out.push_str("</Image>");
            }
            Reply::Voice { media_id } => {
                out.push_str("<Voice>");
                cdata_element(out, "MediaId", media_id);
                out.push_str("</Voice>");
            }
            Reply::Video {
                media_id,
                title,
                description,
            } => {
                out.push_str("<Video>");
                cdata_element(out, "MediaId", media_id);
                optional_element(out, "Title", title);
                optional_element(out, "Description", description);
                out.push_str("</Video>");
            }
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => {
                out.push_str("<Music>");
                optional_element(out, "Title", title);
                optional_element(out, "Description", description);
                optional_element(out, "MusicUrl", music_url);
                optional_element(out, "HQMusicUrl", hq_music_url);
                cdata_element(out, "ThumbMediaId", thumb_media_id);
                out.push_str("</Music>");
            }
            Reply::News { articles } => {
                out.push_str("<ArticleCount>");
                push_int(out, articles.len() as i64);
                out.push_str("</ArticleCount><Articles>");
                for article in articles {
                    out.push_str("<item>");
                    cdata_element(out, "Title", &article.title);
                    cdata_element(out, "Description", &article.description);
                    cdata_element(out, "PicUrl", &article.pic_url);
                    cdata_element(out, "Url", &article.url);
                    out.push_str("</item>");
                }
                out.push_str("</Articles>");
            }
            Reply::TransferCustomerService { kf_account } => {
                if let Some(account) = kf_account {
                    out.push_str("<TransInfo>");
                    cdata_element(out, "KfAccount", account);
                    out.push_str("</TransInfo>");
                }
            }
        }
        out.push_str("</xml>");
    }

    /// Bytes of text this reply carries, to size the output buffer once.
    fn text_len(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        match self {
            Reply::Text { content } => content.len(),
            Reply::Image { media_id } | Reply::Voice { media_id } => media_id.len(),
            Reply::Video {
                media_id,
                title,
                description,
            } => media_id.len() + opt(title) + opt(description),
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => {
                opt(title)
                    + opt(description)
                    + opt(music_url)
                    + opt(hq_music_url)
                    + thumb_media_id.len()
            }
            Reply::News { articles } => articles
                .iter()
                .map(|a| 120 + a.title.len() + a.description.len() + a.pic_url.len() + a.url.len())
                .sum(),
            Reply::TransferCustomerService { kf_account } => opt(kf_account),
        }
    }
}

/// Fails when `value` would render empty: blank, or made only of characters XML cannot carry.
fn require(field: &'static str, value: &str) -> Result<(), ReplyError> {
    if value.chars().all(is_xml_forbidden) {
        Err(ReplyError::EmptyField(field))
    } else {
        Ok(())
    }
}

/// Appends `<name><![CDATA[value]]></name>`.
fn cdata_element(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    push_cdata(out, value);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Appends the element only when the value is present.
fn optional_element(out: &mut String, name: &str, value: &Option<String>) {
    if let Some(value) = value {
        cdata_element(out, name, value);
    }
}

/// Appends a decimal integer without an intermediate `String`.
fn push_int(out: &mut String, n: i64) {
    // Writing into a `String` cannot fail.
    let _ = write!(out, "{n}");
}

/// Characters XML 1.0 does not allow anywhere in a document: C0 controls other than tab, LF and
/// CR, and the non-characters U+FFFE and U+FFFF (surrogates cannot occur in a Rust `str`).
pub(crate) fn is_xml_forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
}

/// Bytes that may start something CDATA cannot hold as it is: the UTF-8 form of
/// [`is_xml_forbidden`] (a C0 control other than tab, LF and CR; 0xEF, the first byte of
/// U+FFFE and U+FFFF and of many allowed characters, which the check then looks past) and the
/// `>` of a `]]>`. A proptest holds the two forms together.
const CDATA_CARE: [bool; 256] = {
    let mut care = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        care[b] = !matches!(b as u8, b'\t' | b'\n' | b'\r');
        b += 1;
    }
    care[b'>' as usize] = true;
    care[0xEF] = true;
    care
};

/// Whether `value` holds a character XML forbids or a `]]>`, so that [`push_cdata`] must go
/// through it character by character.
fn needs_cdata_care(value: &[u8]) -> bool {
    value.iter().enumerate().any(|(i, &b)| {
        CDATA_CARE[b as usize]
            && match b {
                b'>' => i >= 2 && value[i - 2] == b']' && value[i - 1] == b']',
                0xEF => {
                    value.get(i + 1) == Some(&0xBF) && matches!(value.get(i + 2), Some(0xBE | 0xBF))
                }
                _ => true,
            }
    })
}

/// Appends `value` as CDATA: forbidden characters dropped, every `]]>` split as
/// `]]]]><![CDATA[>` so the parsed text is exactly the (filtered) value.
pub(crate) fn push_cdata(out: &mut String, value: &str) {
    out.push_str("<![CDATA[");
    // Nearly every value (names, text, safe mode's base64) has nothing to drop or split:
    // checked byte by byte and copied whole, rather than decoded character by character.
    if needs_cdata_care(value.as_bytes()) {
        push_cdata_filtered(out, value);
    } else {
        out.push_str(value);
    }
    out.push_str("]]>");
}

/// The inside of [`push_cdata`] character by character: forbidden characters dropped, every
/// `]]>` split.
fn push_cdata_filtered(out: &mut String, value: &str) {
    // Clean runs are copied whole; only a forbidden character or a `]]>` interrupts them.
    let mut run_start = 0;
    // `]` characters written immediately before the current one (2 is all that matters). Counted
    // on the output, so a `]]>` formed by dropping a control character in between is split too.
    let mut brackets = 0u8;
    for (i, c) in value.char_indices() {
        match c {
            c if is_xml_forbidden(c) => {
                out.push_str(&value[run_start..i]);
                run_start = i + c.len_utf8();
            }
            ']' => brackets = (brackets + 1).min(2),
            '>' if brackets == 2 => {
                out.push_str(&value[run_start..i]);
                out.push_str("]]><![CDATA[");
                run_start = i;
                brackets = 0;
            }
            _ => brackets = 0,
        }
    }
    out.push_str(&value[run_start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use quick_xml::events::Event;
    use quick_xml::Reader;

    /// Every leaf element as (slash-joined path, text), adjacent CDATA sections joined, parsed
    /// by a real XML parser so the test does not share assumptions with the renderer.
    fn leaves(xml: &str) -> Vec<(String, String)> {
        let mut reader = Reader::from_str(xml);
        let mut path: Vec<String> = Vec::new();
        let mut text: Option<String> = None;
        let mut out = Vec::new();
        loop {
            match reader.read_event().unwrap() {
                Event::Start(e) => {
                    path.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap());
                    text = Some(String::new());
                }
                Event::CData(e) => text.as_mut().unwrap().push_str(&e.decode().unwrap()),
                Event::Text(e) => text.as_mut().unwrap().push_str(&e.decode().unwrap()),
                Event::End(_) => {
                    if let Some(t) = text.take() {
                        out.push((path.join("/"), t));
                    }
                    path.pop();
                }
                Event::Eof => break,
                other => panic!("unexpected event {other:?}"),
            }
        }
        assert!(path.is_empty(), "unbalanced XML: {xml}");
        out
    }

    fn header(kind: &str) -> Vec<(String, String)> {
        vec![
            ("xml/ToUserName".into(), "oUser".into()),
            ("xml/FromUserName".into(), "gh_account".into()),
            ("xml/CreateTime".into(), "1700000000".into()),
            ("xml/MsgType".into(), kind.into()),
        ]
    }

    fn check(reply: &Reply, body: &[(&str, &str)]) {
        reply.validate().unwrap();
        let xml = reply.render("oUser", "gh_account", 1_700_000_000);
        let mut expected = header(reply.kind());
        expected.extend(body.iter().map(|(p, v)| (p.to_string(), v.to_string())));
        assert_eq!(leaves(&xml), expected, "{xml}");
    }

    #[test]
    fn text_renders_exactly_as_documented() {
        let reply = Reply::Text {
            content: "你好".into(),
        };
        assert_eq!(
            reply.render("toUser", "fromUser", 12345678),
            "<xml><ToUserName><![CDATA[toUser]]></ToUserName>\
             <FromUserName><![CDATA[fromUser]]></FromUserName>\
             <CreateTime>12345678</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[你好]]></Content></xml>"
        );
    }

    #[test]
    fn every_reply_type_round_trips() {
        check(
            &Reply::Text {
                content: "hi".into(),
            },
            &[("xml/Content", "hi")],
        );
        check(
            &Reply::Image {
                media_id: "img1".into(),
            },
            &[("xml/Image/MediaId", "img1")],
        );
        check(
            &Reply::Voice {
                media_id: "v1".into(),
            },
            &[("xml/Voice/MediaId", "v1")],
        );
        check(
            &Reply::Video {
                media_id: "vid".into(),
                title: Some("T".into()),
                description: Some("D".into()),
            },
            &[
                ("xml/Video/MediaId", "vid"),
                ("xml/Video/Title", "T"),
                ("xml/Video/Description", "D"),
            ],
        );
        check(
            &Reply::Video {
                media_id: "vid".into(),
                title: None,
                description: None,
            },
            &[("xml/Video/MediaId", "vid")],
        );
        check(
            &Reply::Music {
                title: Some("song".into()),
                description: Some("desc".into()),
                music_url: Some("http://m/a.mp3".into()),
                hq_music_url: Some("http://m/a-hq.mp3".into()),
                thumb_media_id: "thumb".into(),
            },
            &[
                ("xml/Music/Title", "song"),
                ("xml/Music/Description", "desc"),
                ("xml/Music/MusicUrl", "http://m/a.mp3"),
                ("xml/Music/HQMusicUrl", "http://m/a-hq.mp3"),
                ("xml/Music/ThumbMediaId", "thumb"),
            ],
        );
        check(
            &Reply::Music {
                title: None,
                description: None,
                music_url: None,
                hq_music_url: None,
                thumb_media_id: "thumb".into(),
            },
            &[("xml/Music/ThumbMediaId", "thumb")],
        );
        let article = |n: &str| Article {
            title: format!("t{n}"),
            description: format!("d{n}"),
            pic_url: format!("http://p/{n}.jpg"),
            url: format!("http://u/{n}"),
        };
        check(
            &Reply::News {
                articles: vec![article("1"), article("2")],
            },
            &[
                ("xml/ArticleCount", "2"),
                ("xml/Articles/item/Title", "t1"),
                ("xml/Articles/item/Description", "d1"),
                ("xml/Articles/item/PicUrl", "http://p/1.jpg"),
                ("xml/Articles/item/Url", "http://u/1"),
                ("xml/Articles/item/Title", "t2"),
                ("xml/Articles/item/Description", "d2"),
                ("xml/Articles/item/PicUrl", "http://p/2.jpg"),
                ("xml/Articles/item/Url", "http://u/2"),
            ],
        );
        check(&Reply::TransferCustomerService { kf_account: None }, &[]);
        check(
            &Reply::TransferCustomerService {
                kf_account: Some("test1@test".into()),
            },
            &[("xml/TransInfo/KfAccount", "test1@test")],
        );
    }

    #[test]
    fn hostile_content_survives_exactly() {
        let hostile = "<b>&amp; \"q\" 'a' ]]> ]]]]> ]] > ]> ] 😀 中文 \t\r\n end]]";
        let reply = Reply::Text {
            content: hostile.into(),
        };
        let xml = reply.render("]]><evil/>", "a&b<c>", -5);
        let got = leaves(&xml);
        assert_eq!(got[0].1, "]]><evil/>");
        assert_eq!(got[1].1, "a&b<c>");
        assert_eq!(got[2].1, "-5");
        assert_eq!(got[4], ("xml/Content".into(), hostile.into()));
        assert!(xml.contains("]]]]><![CDATA[>"));
    }

    #[test]
    fn forbidden_characters_are_dropped_even_when_that_forms_a_cdata_end() {
        let reply = Reply::Text {
            content: "a\u{0}b\u{1F}c\u{FFFE}d\u{FFFF}e\u{B}f]]\u{1}>g\u{7F}\u{85}".into(),
        };
        let xml = reply.render("u", "a", 1);
        for c in xml.chars() {
            assert!(!is_xml_forbidden(c), "{c:?} left in {xml:?}");
        }
        // DEL and NEL are allowed by XML 1.0 and kept.
        assert_eq!(leaves(&xml)[4].1, "abcdef]]>g\u{7F}\u{85}");
    }

    #[test]
    fn render_into_appends() {
        let mut out = String::from("prefix|");
        Reply::Image {
            media_id: "m".into(),
        }
        .render_into(&mut out, "u", "a", 1);
        assert!(out.starts_with("prefix|<xml>"));
        assert!(out.ends_with("</xml>"));
    }

    #[test]
    fn kinds_match_the_documented_msg_types() {
        let kinds: Vec<&str> = [
            Reply::Text {
                content: "x".into(),
            },
            Reply::Image {
                media_id: "x".into(),
            },
            Reply::Voice {
                media_id: "x".into(),
            },
            Reply::Video {
                media_id: "x".into(),
                title: None,
                description: None,
            },
            Reply::Music {
                title: None,
                description: None,
                music_url: None,
                hq_music_url: None,
                thumb_media_id: "x".into(),
            },
            Reply::News { articles: vec![] },
            Reply::TransferCustomerService { kf_account: None },
        ]
        .iter()
        .map(Reply::kind)
        .collect();
        assert_eq!(kinds, Reply::KINDS);
    }

    #[test]
    fn validation_failures() {
        let empty = |r: Reply| r.validate().unwrap_err();
        assert_eq!(
            empty(Reply::Text {
                content: String::new()
            }),
            ReplyError::EmptyField("content")
        );
        assert_eq!(
            empty(Reply::Text {
                content: "\u{1}\u{2}".into()
            }),
            ReplyError::EmptyField("content")
        );
        assert_eq!(
            empty(Reply::Image {
                media_id: String::new()
            }),
            ReplyError::EmptyField("media_id")
        );
        assert_eq!(
            empty(Reply::Voice {
                media_id: String::new()
            }),
            ReplyError::EmptyField("media_id")
        );
        assert_eq!(
            empty(Reply::Video {
                media_id: String::new(),
                title: Some("t".into()),
                description: None
            }),
            ReplyError::EmptyField("media_id")
        );
        assert_eq!(
            empty(Reply::Music {
                title: Some("t".into()),
                description: None,
                music_url: Some("http://m".into()),
                hq_music_url: None,
                thumb_media_id: String::new()
            }),
            ReplyError::EmptyField("thumb_media_id")
        );
        assert_eq!(
            empty(Reply::News { articles: vec![] }),
            ReplyError::NoArticles
        );
        assert_eq!(
            empty(Reply::News {
                articles: vec![Article::default(); 9]
            }),
            ReplyError::TooManyArticles(9)
        );
        assert!(Reply::News {
            articles: vec![Article::default(); 8]
        }
        .validate()
        .is_ok());
        assert_eq!(
            empty(Reply::TransferCustomerService {
                kf_account: Some(String::new())
            }),
            ReplyError::EmptyField("kf_account")
        );
        assert_eq!(
            ReplyError::TooManyArticles(9).to_string(),
            "a news reply takes at most 8 articles, got 9"
        );
        assert_eq!(
            ReplyError::EmptyField("media_id").to_string(),
            "reply field `media_id` must not be empty"
        );
    }

    proptest! {
        // A `]]>` among short strings of nine characters turns up once in about a hundred.
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn the_clean_check_copies_only_what_the_filter_would_leave_alone(
            // Few letters, so `]]>` and the 0xEF-led characters come up often.
            value in "[a\\]>\u{0}\u{9}\u{1F}\u{FF0C}\u{FFFD}\u{FFFE}\u{FFFF}]{0,16}"
        ) {
            let mut fast = String::new();
            push_cdata(&mut fast, &value);
            let mut filtered = String::from("<![CDATA[");
            push_cdata_filtered(&mut filtered, &value);
            filtered.push_str("]]>");
            prop_assert_eq!(fast, filtered);
        }
    }

    proptest! {
        #[test]
        fn any_text_round_trips_minus_forbidden_characters(content in any::<String>(), to in "[\\PC\\]>]*") {
            let reply = Reply::Text { content: content.clone() };
            let xml = reply.render(&to, "gh", 0);
            let got = leaves(&xml);
            let expected: String = content.chars().filter(|c| !is_xml_forbidden(*c)).collect();
            let expected_to: String = to.chars().filter(|c| !is_xml_forbidden(*c)).collect();
            prop_assert_eq!(&got[0].1, &expected_to);
            prop_assert_eq!(&got[4].1, &expected);
        }

        #[test]
        fn bracket_heavy_text_round_trips(content in "[\\]>\u{1}a]{0,40}") {
            let xml = Reply::Text { content: content.clone() }.render("u", "a", 0);
            prop_assert_eq!(&leaves(&xml)[4].1, &content.replace('\u{1}', ""));
        }
    }
}
